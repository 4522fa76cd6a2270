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
from tortuner.errors import TortunerError
from tortuner.files import read_jsonl, write_json
from tortuner.models.checkpoints import cond_samples_of, load_renderer, load_tortoise_model, model_configs
from tortuner.models.gpt_data import encode_text
from tortuner.synth import shards
from tortuner.synth.render import LabRenderer, TortoiseRenderer, make_conditioning, to_dvae_mel
from tortuner.synth.sample import SamplingConfig, clvp_score, sample_codes, teacher_forced
from tortuner.synth.sentences import text_line


@dataclass
class SynthConfig:
    models: str = ""              # TorToiSe-style models dir (autoregressive.pth, clvp2.pth, + renderer or diffusion/vocoder)
    speech: str = ""              # real-speech manifest.jsonl (or its folder): conditioning voices
    out: str = "synth"
    num_pairs: int = 1000
    samples_per_text: int = 4     # GPT samples per (text, voice), drawn in one batched generate call
    texts: str = ""               # text file, one line per text; empty = built-in sentence generator
    min_words: int = 3
    max_words: int = 24
    cond_clips: int = 2           # conditioning clips per voice (TorToiSe: 2+)
    temperature: float = 0.8
    temperature_jitter: float = 0.2   # each group samples at temperature +- jitter (variety)
    top_p: float = 0.8
    repetition_penalty: float = 2.0
    max_tokens: int = 500
    renderer: str = "auto"        # auto | lab | tortoise
    diffusion_steps: int = 50
    cond_free: bool = True
    griffin_lim_iters: int = 32
    batch_items: int = 64         # items per shard file
    shard: str = "0/1"            # i/n: this machine's share
    seed: int = 0
    device: str = "auto"
    threads: int = 0


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


def load_renderer_for(models: Path, kind: str, device, cfg: SynthConfig):
    if kind == "auto":
        kind = "lab" if "renderer" in model_configs(models) else "tortoise"
    if kind == "lab":
        return LabRenderer(load_renderer(models).to(device), cfg.griffin_lim_iters)
    return TortoiseRenderer(load_tortoise_model(models, "diffusion").to(device),
                            load_tortoise_model(models, "vocoder").to(device), cfg.diffusion_steps, cfg.cond_free)


def run_synth(cfg: SynthConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rank, writers, device = _writer(cfg)
    models = Path(cfg.models)
    gpt = load_tortoise_model(models, "gpt").to(device).eval()
    clvp = load_tortoise_model(models, "clvp").to(device).eval()
    renderer = load_renderer_for(models, cfg.renderer, device, cfg)
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
