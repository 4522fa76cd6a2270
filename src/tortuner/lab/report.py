"""The world's quality gates (`world_report.json` + `world_report.png`): is recovery a meaningful test here?"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.files import torch_load
from tortuner.lab.sizes import LabSize
from tortuner.lab.train import clvp_batch, gpt_latents
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae, load_renderer, load_tortoise_model
from tortuner.models.gpt_data import GPTExample, code_nll, collate, crop_or_pad, encode_text
from tortuner.models.tokenizer import Tokenizer
from tortuner.plots import figure
from tortuner.recover.evaluate import usage


@torch.no_grad()
def token_hits(dvae, mel: DvaeMel, wav: torch.Tensor, ref: torch.Tensor) -> tuple[int, int]:
    """(matching, compared) tokens of `dvae` on a 22.05 kHz waveform against `ref`, over their common length."""
    toks = dvae.tokenize(mel(wav.float()[None]))[0]
    m = min(toks.numel(), ref.numel())
    return int((toks[:m] == ref[:m]).sum()), m


def bigram_nll(train: list[torch.Tensor], held_out: list[torch.Tensor], k: int) -> float:
    """Per-token NLL (nats) of `held_out` under a code bigram model counted on `train`: no text, no voice.

    The reference a GPT has to beat to show it reads the text and the voice, not only which code tends to follow
    which. Counts are smoothed towards the unigram distribution; of a few smoothing strengths the best one on
    `held_out` is kept, so the reference errs on the strong side.
    """
    pairs = torch.zeros(k + 1, k)  # row k: the start of a sequence
    for seq in train:
        prev = torch.cat([torch.tensor([k]), seq[:-1]])
        pairs.index_put_((prev, seq), torch.ones(seq.numel()), accumulate=True)
    unigram = (pairs.sum(0) + 1) / (pairs.sum() + k)
    prev = torch.cat([torch.cat([torch.tensor([k]), seq[:-1]]) for seq in held_out])
    nxt = torch.cat(held_out)
    best = math.inf
    for alpha in (1.0, 3.0, 10.0, 30.0, 100.0):
        probs = (pairs + alpha * unigram) / (pairs.sum(1, keepdim=True) + alpha)
        best = min(best, float(-probs[prev, nxt].log().mean()))
    return best


def manifest_examples(rows: list[dict], mel: DvaeMel, cond_samples: int, rng: random.Random) -> list[GPTExample]:
    """GPT examples of manifest rows that carry teacher tokens (a hidden set's, e.g. the eval speakers'): each row's
    text and tokens, conditioned on two `cond_samples` crops of other clips of its speaker (itself if alone)."""
    by_speaker: dict[str, list[dict]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], []).append(r)
    out = []
    for r in rows:
        others = [o for o in by_speaker[r["speaker"]] if o is not r] or [r]
        conds = torch.stack([crop_or_pad(load_audio(rng.choice(others)["audio"], DVAE_SR), cond_samples, rng)
                             for _ in range(2)])
        wav = load_audio(r["audio"], DVAE_SR)
        out.append(GPTExample(encode_text(r["text"]), torch.tensor(r["tokens"]), wav.numel(), mel(conds)))
    return out


def tokenized_examples(folder, dvae, mel: DvaeMel, cond_samples: int, n: int, seed: int = 0) -> list[GPTExample]:
    """`manifest_examples` of up to `n` transcribed clips of any speech set (shuffled by `seed`), tokenized here by
    `dvae` as the lab GPT is trained (clip + 1024-sample tail): to score a GPT on sets without stored tokens."""
    rows = [r for r in load_manifest(folder) if r["text"]]
    random.Random(seed).shuffle(rows)
    rows = rows[:n]
    for r, tokens in zip(rows, Tokenizer(dvae).tokenize_training_wavs([load_audio(r["audio"], DVAE_SR) for r in rows])):
        r["tokens"] = tokens.tolist()
    return manifest_examples(rows, mel, cond_samples, random.Random(seed))


@torch.no_grad()
def clvp_top1(clvp, pairs: list[tuple[torch.Tensor, torch.Tensor]], group: int = 8) -> tuple[int, int]:
    """(hits, tries) of CLVP picking each line's own codes among the `group` of consecutive pairs it is in."""
    hits, total = 0, 0
    for i in range(0, len(pairs) - group + 1, group):
        text, speech = clvp_batch(pairs[i : i + group])
        tl = torch.stack([clvp(text[j : j + 1].expand(group, -1), speech) for j in range(group)])  # (text j, speech)
        hits += int((tl.argmax(1) == torch.arange(group)).sum())
        total += group
    return hits, total


@torch.no_grad()
def teacher_quality(teacher, mel: DvaeMel, rows: list[dict]) -> tuple[dict, torch.Tensor]:
    """The teacher's reconstruction and codebook usage on `rows` (held-out speakers), and all their tokens (N,)."""
    recon_mse, recon_l1, all_tokens = [], [], []
    for r in rows:
        m = mel(load_audio(r["audio"], DVAE_SR))[None]
        recon, _, tokens = teacher(m)
        recon_mse.append(F.mse_loss(recon, m).item())
        recon_l1.append(F.l1_loss(recon, m).item())
        all_tokens.append(tokens.flatten())
    use = usage(all_tokens, teacher.cfg.num_tokens)
    return {"teacher_recon_mse": sum(recon_mse) / len(recon_mse), "teacher_recon_l1": sum(recon_l1) / len(recon_l1),
            "teacher_perplexity": use["perplexity"], "teacher_used_fraction": use["usage"]}, torch.cat(all_tokens)


@torch.no_grad()
def mean_code_nll(gpt, examples: list[GPTExample], batch: int = 8) -> float:
    """The GPT's per-token NLL (nats) of the examples' codes, teacher-forced."""
    nll, n = 0.0, 0
    for i in range(0, len(examples), batch):
        s, c = code_nll(gpt, collate(examples[i : i + batch], gpt.stop_mel_token))
        nll, n = nll + s, n + c
    return nll / max(n, 1)


@torch.no_grad()
def renderer_quality(gpt, renderer, teacher, mel: DvaeMel, rows: list[dict], examples: list[GPTExample],
                     roundtrips: int = 16) -> tuple[dict, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The renderer's univnet-mel L1 from teacher-forced latents, and the token round trip of the first
    `roundtrips` clips; with the (real, rendered) univnet mels of every clip.

    Round trip: rendered mel -> Griffin-Lim -> 22.05 kHz -> teacher tokens, compared with the real clip's tokens:
    how much of the token sequence survives the public synthesis path (what recovery learns from). The same with the
    real clip's own mel instead of the rendering separates the vocoder's share from the renderer's.
    """
    umel = UnivNetMel()
    r_l1, rendered = [], []
    agree, agree_n = {"renderer": 0, "vocoder": 0}, {"renderer": 0, "vocoder": 0}
    for j, (r, ex, lat) in enumerate(zip(rows, examples, gpt_latents(gpt, examples))):
        out = renderer(lat[None], ex.cond_mels[None])[0]
        target = umel(torch.from_numpy(resample(load_audio(r["audio"], DVAE_SR).numpy(), DVAE_SR, UNIVNET_SR)))[0]
        t = min(out.shape[1], target.shape[1])
        r_l1.append(F.l1_loss(out[:, :t], target[:, :t]).item())
        rendered.append((target, out))
        if j < roundtrips:
            real = torch.tensor(r["tokens"])
            for name, spec in (("renderer", out), ("vocoder", target)):
                wav = torch.from_numpy(resample(univnet_mel_to_wav(spec).numpy(), UNIVNET_SR, DVAE_SR))
                hit, m = token_hits(teacher, mel, wav, real)
                agree[name] += hit
                agree_n[name] += m
    return {"renderer_l1": sum(r_l1) / max(len(r_l1), 1),
            "renderer_roundtrip_agreement": agree["renderer"] / max(agree_n["renderer"], 1),
            "vocoder_roundtrip_agreement": agree["vocoder"] / max(agree_n["vocoder"], 1)}, rendered


@torch.no_grad()
def gpt_samples(gpt, renderer, examples: list[GPTExample], k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(codes, rendered univnet mel) of one GPT sample per example, with TorToiSe's sampling settings."""
    gpt.post_init_gpt2_config(kv_cache=True)
    samples = []
    for ex in examples:
        conds = gpt.get_conditioning(ex.cond_mels[None])
        codes = gpt.inference_speech(conds, ex.text[None], do_sample=True, top_p=0.8, temperature=0.8,
                                     repetition_penalty=2.0, max_generate_length=250)[0]
        stop = (codes == gpt.stop_mel_token).nonzero()
        codes = codes[: int(stop[0]) if len(stop) else len(codes)]
        codes = codes[codes < k]
        lat = gpt_latents(gpt, [GPTExample(ex.text, codes, codes.numel() * 1024, ex.cond_mels)])[0]
        samples.append((codes, renderer(lat[None], ex.cond_mels[None])[0]))
    return samples


def quality_gates(report: dict) -> dict[str, bool]:
    """Is recovery a meaningful test in this world? Each gate one property the public models must have."""
    k = report["num_codes"]
    return {
        "teacher_uses_codebook": report["teacher_used_fraction"] >= 0.5,
        "gpt_far_below_uniform": report["gpt_nll_ratio_to_uniform"] < 0.6,
        "gpt_beats_bigram": report["gpt_nll"] < report["bigram_nll"],
        "clvp_above_chance": (report["clvp_retrieval_top1"] or 0) > 2 * report["clvp_chance"],
        "renderer_keeps_tokens": report["renderer_roundtrip_agreement"] > 10 / k,
    }


@torch.no_grad()
def world_report(paths: WorldPaths, size: LabSize, seed: int) -> dict:
    """The world's quality numbers on its held-out eval speakers (who never trained anything) and its gates; draws
    them into world_report.png."""
    rng = random.Random(seed)
    mel = DvaeMel()
    teacher = load_dvae(paths.teacher)
    k = teacher.cfg.num_tokens
    eval_rows = load_manifest(paths.eval)
    gpt = load_tortoise_model(paths.models, "gpt")
    renderer = load_renderer(paths.models)
    clvp = load_tortoise_model(paths.models, "clvp")

    teacher_numbers, all_tokens = teacher_quality(teacher, mel, eval_rows)
    # GPT: held-out per-token NLL of teacher tokens (texted eval clips) ...
    texted = [r for r in eval_rows if r["text"]]
    examples = manifest_examples(texted, mel, size.cond_samples, rng)
    nll = mean_code_nll(gpt, examples)
    # ... and of the same tokens under a text- and voice-free code bigram counted on the teacher's training speech.
    train_tokens = [torch.tensor(r["tokens"]) for r in load_manifest(paths.teacher_speech) if r["text"]]
    bigram = bigram_nll(train_tokens, [torch.tensor(r["tokens"]) for r in texted], k)
    renderer_numbers, rendered = renderer_quality(gpt, renderer, teacher, mel, texted, examples)
    # CLVP: held-out retrieval accuracy within batches of 8 (chance 1/8).
    hits, total = clvp_top1(clvp, [(encode_text(r["text"]), torch.tensor(r["tokens"])) for r in texted])
    # GPT samples, rendered next to a real clip of the same speaker.
    samples = gpt_samples(gpt, renderer, examples[:2], k)

    report = {
        "num_codes": k,
        **teacher_numbers,
        "gpt_nll": nll,
        "gpt_nll_uniform": math.log(k),
        "gpt_nll_ratio_to_uniform": nll / math.log(k),
        "bigram_nll": bigram,
        "bigram_nll_ratio_to_uniform": bigram / math.log(k),
        **renderer_numbers,
        "clvp_retrieval_top1": hits / total if total else None,
        "clvp_chance": 1 / 8,
        "gpt_sample_lengths": [int(c.numel()) for c, _ in samples],
        "gpt_sample_real_lengths": [len(r["tokens"]) for r in texted[: len(samples)]],
        "eval_clips": len(eval_rows),
        "eval_texted_clips": len(texted),
    }
    report["gates"] = quality_gates(report)
    _plot(paths, report, rendered[:2], samples, all_tokens, k)
    return report


def _plot(paths: WorldPaths, report: dict, rendered, samples, tokens, k) -> None:
    hist = {}
    for name in ("teacher", "gpt", "renderer", "clvp"):
        f = paths.work / f"history_{name}.pt"
        if f.is_file():
            hist[name] = torch_load(f)[name]
    with figure(paths.root / "world_report.png", 3, 3, dpi=80, figsize=(15, 10)) as (fig, axes):
        _draw(axes, report, hist, rendered, samples, tokens, k)


def _draw(axes, report: dict, hist: dict, rendered, samples, tokens, k) -> None:
    for ax, (name, h) in zip(axes[0], list(hist.items())[:3]):
        ax.plot(h.numpy())
        ax.set_title(f"{name} training loss")
        ax.set_yscale("log")
    for i, (real, out) in enumerate(rendered[:1]):
        axes[1, 0].imshow(real.numpy(), origin="lower", aspect="auto")
        axes[1, 0].set_title("held-out real (univnet mel)")
        axes[1, 1].imshow(out.numpy(), origin="lower", aspect="auto")
        axes[1, 1].set_title("renderer from teacher tokens")
    counts = torch.bincount(tokens, minlength=k).sort(descending=True).values
    axes[1, 2].bar(range(k), counts.numpy(), width=1.0)
    axes[1, 2].set_title(f"teacher code usage (perplexity {report['teacher_perplexity']:.0f} of {k})")
    for ax, (codes, out) in zip(axes[2], samples):
        ax.imshow(out.numpy(), origin="lower", aspect="auto")
        ax.set_title(f"GPT sample ({codes.numel()} codes) rendered")
    axes[2, 2].axis("off")
    axes[2, 2].text(0, 0.5, "\n".join(f"{k_}: {v:.3f}" if isinstance(v, float) else f"{k_}: {v}"
                                      for k_, v in report.items() if not isinstance(v, (dict, list))), fontsize=9)
