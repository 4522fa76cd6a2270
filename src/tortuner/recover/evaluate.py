"""`eval tokenizer`: score a dVAE on real speech.

* agreement with a reference dVAE (the hidden teacher in the lab, TorToiSe's own `dvae.pth` when a user has it):
  top-1 = same token, top-5 = the reference token is among the 5 nearest codes of ours;
* the public GPT's teacher-forced NLL per token of each tokenizer's tokens (no reference needed: lower = the
  tokens look more like what the GPT was trained on);
* CLVP text/speech score, reconstruction L1 (decoder(tokens) vs mel), codebook usage and perplexity.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
from tortuner.config_args import arg
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.gpt_data import COND_SAMPLES, GPTExample, code_nll, collate, crop_or_pad, encode_text
from tortuner.recover.data import RealClip, load_real


@dataclass
class EvalConfig:
    speech: str = arg("", "manifest of real speech (held-out in the lab)")
    dvae: str = arg("", "the tokenizer to score")
    reference: str = arg("", "reference dVAE to measure agreement with (optional)")
    models: str = arg("", "public models folder: GPT NLL and CLVP score (optional)")
    max_items: int = arg(0, "score at most this many clips (0 = all)")
    out: str = arg("", "also write the scores to this JSON file (optional)")
    threads: int = arg(0, "torch threads (0 = torch's default)")


@torch.no_grad()
def clip_tokens(dvae: DiscreteVAE, clip: RealClip) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (N,), 5 nearest codes (N, 5)) of a clip's mel."""
    d = dvae.codebook.distances(dvae.encode(clip.mel[None]))[0]
    return d.argmin(-1), d.topk(min(5, d.shape[-1]), largest=False).indices


def _conds(clips: list[RealClip], cond_samples: int) -> list[torch.Tensor]:
    rng, mel = random.Random(0), DvaeMel()
    by: dict[str, list[RealClip]] = {}
    for c in clips:
        by.setdefault(c.speaker, []).append(c)
    out = []
    for c in clips:
        others = [o for o in by[c.speaker] if o is not c] or [c]
        out.append(mel(torch.stack([crop_or_pad(rng.choice(others).wav, cond_samples, rng) for _ in range(2)])))
    return out


@torch.no_grad()
def gpt_nll(gpt, clips: list[RealClip], tokens: list[torch.Tensor], conds: list[torch.Tensor]) -> float:
    total, count = 0.0, 0
    for c, t, cm in zip(clips, tokens, conds):
        if not c.text:
            continue
        n = min(t.numel(), c.wav.numel() // SAMPLES_PER_TOKEN, gpt.max_mel_tokens - 3)
        if n < 1:
            continue
        b = collate([GPTExample(encode_text(c.text), t[:n], n * SAMPLES_PER_TOKEN, cm)], gpt.stop_mel_token)
        s, k = code_nll(gpt, b)
        total, count = total + s, count + k
    return total / max(1, count)


@torch.no_grad()
def usage(tokens: list[torch.Tensor], k: int) -> dict:
    flat = torch.cat(tokens)
    counts = torch.bincount(flat, minlength=k).float()
    p = counts / counts.sum()
    ent = -(p[p > 0] * p[p > 0].log()).sum()
    return {"codes_used": int((counts > 0).sum()), "usage": float((counts > 0).float().mean()),
            "perplexity": float(ent.exp())}


@torch.no_grad()
def score_tokenizer(dvae: DiscreteVAE, clips: list[RealClip], reference: DiscreteVAE | None = None, gpt=None,
                    clvp=None, cond_samples: int = COND_SAMPLES, prefix: str = "") -> dict:
    """Metrics of one tokenizer on real speech (keys prefixed): usage, perplexity and recon L1 always; agreement
    with `reference` (and the reference's own GPT NLL) when given; GPT NLL and gain with `gpt`; CLVP score with
    `clvp`."""
    dvae, out = dvae.eval(), {}
    toks, top5 = zip(*[clip_tokens(dvae, c) for c in clips])
    out.update({prefix + k: v for k, v in usage(list(toks), dvae.cfg.num_tokens).items()})
    l1 = [(dvae.decode(t[None])[0, :, : c.mel.shape[1]] - c.mel[:, : 4 * t.numel()]).abs().mean()
          for t, c in zip(toks, clips)]
    out[prefix + "recon_l1"] = float(sum(l1) / len(clips))
    if reference is not None:
        ref = [clip_tokens(reference.eval(), c)[0] for c in clips]
        tot = sum(r.numel() for r in ref)
        out[prefix + "agreement_top1"] = sum(int((t == r).sum()) for t, r in zip(toks, ref)) / tot
        out[prefix + "agreement_top5"] = sum(int((f == r[:, None]).any(-1).sum()) for f, r in zip(top5, ref)) / tot
    if gpt is not None:
        conds = _conds(clips, cond_samples)
        out[prefix + "nll"] = gpt_nll(gpt, clips, list(toks), conds)
        # What the public GPT's context (text, voice, earlier codes) explains about the tokens, in nats per token:
        # H(tokens) - NLL. Unlike the NLL alone it does not reward a codebook collapsing onto fewer, more predictable
        # codes, and the tokens the GPT was trained on score highest.
        texted = [t for t, c in zip(toks, clips) if c.text]
        if texted:
            out[prefix + "gpt_gain"] = math.log(usage(texted, dvae.cfg.num_tokens)["perplexity"]) - out[prefix + "nll"]
        if reference is not None:
            out["nll_reference"] = gpt_nll(gpt, clips, ref, conds)
    if clvp is not None:
        scores = [float(clvp(encode_text(c.text)[None], t[None], return_loss=False).flatten()[0])
                  for c, t in zip(clips, toks) if c.text]
        out[prefix + "clvp"] = sum(scores) / max(1, len(scores))
    return out


def reference_metrics(reference: DiscreteVAE, clips: list[RealClip]) -> dict:
    return {"recon_l1_reference": score_tokenizer(reference, clips)["recon_l1"]}


def run_eval(cfg: EvalConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    clips = load_real(cfg.speech, cfg.max_items)
    ref = load_dvae(cfg.reference) if cfg.reference else None
    gpt = clvp = None
    cond_samples = COND_SAMPLES
    if cfg.models:
        gpt = load_tortoise_model(cfg.models, "gpt").eval()
        clvp = load_tortoise_model(cfg.models, "clvp").eval()
        cond_samples = cond_samples_of(model_configs(cfg.models))
    out = score_tokenizer(load_dvae(cfg.dvae), clips, ref, gpt, clvp, cond_samples)
    if ref is not None:
        out.update(reference_metrics(ref, clips))
        if "nll" in out and out.get("nll_reference"):
            out["nll_ratio"] = out["nll"] / out["nll_reference"]
    out["clips"] = len(clips)
    return {k: (round(v, 5) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()}


@torch.no_grad()
def fit_temperature(dvae: DiscreteVAE, pairs: list, grid: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0),
                    max_pairs: int = 400) -> float:
    """The softmax temperature at which the dVAE's code beliefs best predict labelled pairs (lowest NLL on a grid):
    synthetic pairs in recovery, so soft targets say how unsure the tokenizer is, as measured on public data."""
    logits, labels = [], []
    for p in pairs[:max_pairs]:
        n = min(p.tokens.numel(), p.mel.shape[1] // dvae.cfg.downsample)
        logits.append(dvae.logits(p.mel[None, :, : n * dvae.cfg.downsample])[0, :n])
        labels.append(p.tokens[:n])
    lg, lb = torch.cat(logits), torch.cat(labels)
    nll = {t: float(torch.nn.functional.cross_entropy(lg / t, lb)) for t in grid}
    return min(nll, key=nll.get)
