"""`tortuner synth`: synthetic [mel, tokens] pairs from the public models.

Group g (one text, one conditioning voice, `samples_per_text` GPT samples) is fully determined by (seed, g), and
belongs to writer `g % writers`; a rerun skips groups already in the index, so a killed run resumes without
duplicates and `--shard i/n` x Accelerate processes fill one folder together.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import read_jsonl, write_json
from tortuner.models.checkpoints import cond_samples_of, load_tortoise_model, model_configs
from tortuner.models.gpt_data import encode_text
from tortuner.synth import shards
from tortuner.synth.render import make_conditioning, make_renderer, to_dvae_mel
from tortuner.synth.sample import SamplingConfig, clvp_score, sample_codes, teacher_forced
from tortuner.synth.sentences import text_line


@dataclass
class SynthConfig:
    models: str = arg("", "TorToiSe-style models folder: autoregressive.pth, clvp2.pth, and diffusion_decoder.pth + "
                          "vocoder.pth or a lab renderer.pth")
    speech: str = arg("", "real-speech manifest.jsonl (or its folder): the conditioning voices")
    out: str = arg("synth", "output folder (shards, index, TensorBoard); a rerun resumes it")
    num_pairs: int = arg(1000, "synthetic pairs in the whole set (all writers)")
    samples_per_text: int = arg(4, "GPT samples per (text, voice), drawn in one batched generate call")
    texts: str = arg("", "text file, one line per text (default: the built-in sentence generator)")
    min_words: int = arg(3, "sentence generator: fewest words per text")
    max_words: int = arg(24, "sentence generator: most words per text")
    cond_clips: int = arg(2, "conditioning clips per voice (TorToiSe: 2+)")
    temperature: float = arg(0.8, "GPT sampling temperature")
    temperature_jitter: float = arg(0.2, "each group samples at temperature +- jitter (variety)")
    top_p: float = arg(0.8, "GPT nucleus-sampling mass")
    repetition_penalty: float = arg(2.0, "GPT sampling repetition penalty")
    max_tokens: int = arg(500, "longest generation in codes")
    renderer: str = arg("auto", "how codes become audio (auto: diffusion + vocoder when the models folder has them, "
                                "else the lab renderer)", choices=("auto", "lab", "tortoise"))
    diffusion_steps: int = arg(50, "tortoise renderer: diffusion steps")
    cond_free: bool = arg(True, "tortoise renderer: conditioning-free guidance")
    griffin_lim_iters: int = arg(32, "lab renderer: Griffin-Lim iterations")
    batch_items: int = arg(64, "items per shard file")
    shard: str = arg("0/1", "i/n: this machine's share of the groups")
    seed: int = arg(0, "seed: group g is a pure function of (seed, g)")
    device: str = arg("auto", "auto (Accelerate's device) | cpu | cuda")
    threads: int = arg(0, "torch threads (0 = torch's default)")


def _speech_rows(path: str) -> dict[str, list[str]]:
    p = Path(path)
    p = p / "manifest.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise TortunerError(f"{p}: no speech manifest (the conditioning voices)")
    by_speaker: dict[str, list[str]] = {}
    for r in read_jsonl(p):
        by_speaker.setdefault(r.get("speaker", "?"), []).append(str((p.parent / r["audio"]).resolve()))
    return by_speaker


def _writer(cfg: SynthConfig) -> tuple[int, int, torch.device]:
    try:
        i, n = (int(x) for x in cfg.shard.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise TortunerError(f"--shard {cfg.shard!r}: expected i/n with 0 <= i < n") from None
    try:
        from accelerate import PartialState

        state = PartialState(cpu=cfg.device == "cpu")
        rank, procs, device = state.process_index, state.num_processes, state.device
    except Exception:  # accelerate not configured: one process
        rank, procs, device = 0, 1, torch.device("cpu")
    if cfg.device not in ("auto", ""):
        device = torch.device(cfg.device)
    return i * procs + rank, n * procs, device


def run_synth(cfg: SynthConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, writers, device = _writer(cfg)
    models = Path(cfg.models)
    gpt = load_tortoise_model(models, "gpt").to(device).eval()
    clvp = load_tortoise_model(models, "clvp").to(device).eval()
    renderer = make_renderer(models, device, cfg.renderer, diffusion_steps=cfg.diffusion_steps, cond_free=cfg.cond_free,
                             griffin_lim_iters=cfg.griffin_lim_iters)
    cond_samples = cond_samples_of(model_configs(models))
    voices = _speech_rows(cfg.speech)
    names = sorted(voices)
    texts = Path(cfg.texts).read_text().splitlines() if cfg.texts else []
    texts = [t.strip() for t in texts if t.strip()]
    mel = DvaeMel()
    write_json(out / "synth_config.json", asdict(cfg))

    spt = cfg.samples_per_text
    groups = [g for g in range(math.ceil(cfg.num_pairs / spt)) if g % writers == rank]
    done = {r["id"] // spt for r in shards.read_index(out)}
    todo = [g for g in groups if g not in done]
    if done and todo:
        print(f"{out}: {len(groups) - len(todo)} of {len(groups)} texts already made, resuming", flush=True)
    name = f"{rank:03d}of{writers:03d}"
    batch_no = len(list(out.glob(f"shard_{name}_*.safetensors")))
    tb = SummaryWriter(str(out / "tb"))
    pending: list = []
    t0, made = time.time(), 0
    for g in tqdm(todo, desc=f"synth {name}", unit="text"):
        rng = random.Random(cfg.seed * 1_000_003 + g)
        torch.manual_seed(cfg.seed * 1_000_003 + g)
        text = rng.choice(texts) if texts else text_line(rng, cfg.min_words, cfg.max_words)
        speaker = rng.choice(names)
        clips = [rng.choice(voices[speaker]) for _ in range(cfg.cond_clips)]
        cond = make_conditioning([load_audio(c, DVAE_SR) for c in clips], cond_samples, mel)
        temp = max(0.05, cfg.temperature + rng.uniform(-cfg.temperature_jitter, cfg.temperature_jitter))
        scfg = SamplingConfig(temp, cfg.top_p, cfg.repetition_penalty, 1.0, cfg.max_tokens)
        ids = encode_text(text)
        with torch.no_grad():
            cond_latent = gpt.get_conditioning(cond.mels[None].to(device))
        kept = [(g * spt + j, c) for j, c in enumerate(sample_codes(gpt, cond_latent, ids, spt, scfg))
                if g * spt + j < cfg.num_pairs and c.numel() >= 2]
        latents, logliks = teacher_forced(gpt, cond_latent, ids, [c for _, c in kept]) if kept else ([], [])
        for (item, codes), lat, loglik in zip(kept, latents, logliks):
            m = to_dvae_mel(renderer.render(cond, lat), codes.numel(), mel)
            row = {"id": item, "text": text, "speaker": speaker, "temperature": round(temp, 3),
                   "clvp": clvp_score(clvp, ids, codes), "loglik": loglik}
            pending.append((m, codes, row))
            made += 1
        if len(pending) >= cfg.batch_items or g == todo[-1]:
            if pending:
                shards.write_batch(out, name, batch_no, pending)
                batch_no, pending = batch_no + 1, []
            tb.add_scalar("synth/pairs", made, g)
    tb.close()
    rows = shards.read_index(out)
    summary = {"pairs": len(rows), "new_pairs": made, "seconds": round(time.time() - t0, 1),
               "tokens": sum(r["n_tokens"] for r in rows)}
    write_json(out / "synth_summary.json", summary)
    return summary
