"""`tortuner synth`: synthetic [mel, tokens] pairs from the public models.

Group g (one text, one conditioning voice, `samples_per_text` GPT samples) is fully determined by (seed, g), and
belongs to writer `g % writers`; a rerun skips groups already in the index, so a killed run resumes without
duplicates and `--shard i/n` x Accelerate processes fill one folder together. With `--ray`, actors on a Ray
cluster make the groups and this process writes them, in the same order: the same shards as one process.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
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
    threads: int = arg(0, "torch threads (0 = torch's default; 1 per Ray actor)")
    ray: str = arg("", "make the groups on Ray: --ray alone (= local) starts a cluster on this machine, 'auto' or "
                       "HOST:PORT joins a running one (pip install 'tortuner[ray]'); this process writes the shards",
                  bare="local", metavar="ADDRESS")
    ray_workers: int = arg(0, "Ray actors, each holding the models once (0 = one per GPU of the cluster, or per CPU)")


def _speech_rows(path: str) -> dict[str, list[str]]:
    p = Path(path)
    p = p / "manifest.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise TortunerError(f"{p}: no speech manifest (the conditioning voices)")
    by_speaker: dict[str, list[str]] = {}
    for r in read_jsonl(p):
        by_speaker.setdefault(r.get("speaker", "?"), []).append(str((p.parent / r["audio"]).resolve()))
    return by_speaker


def _shard(cfg: SynthConfig) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in cfg.shard.split("/"))
        assert 0 <= i < n
    except (ValueError, AssertionError):
        raise TortunerError(f"--shard {cfg.shard!r}: expected i/n with 0 <= i < n") from None
    return i, n


def _writer(cfg: SynthConfig) -> tuple[int, int, torch.device]:
    """(this process's writer number, writers in all, its device): `--shard i/n` x Accelerate processes."""
    i, n = _shard(cfg)
    try:
        from accelerate import PartialState

        state = PartialState(cpu=cfg.device == "cpu")
        rank, procs, device = state.process_index, state.num_processes, state.device
    except Exception:  # accelerate not configured: one process
        rank, procs, device = 0, 1, torch.device("cpu")
    if cfg.device not in ("auto", ""):
        device = torch.device(cfg.device)
    return i * procs + rank, n * procs, device


class Synthesizer:
    """The public models, loaded once (in this process, or in each Ray actor), and the pairs of one text group.

    `group(g)` is a pure function of (cfg.seed, g): the same pairs wherever and in whatever order it runs, which is
    what makes `--shard`, `--ray` and resuming agree.
    """

    def __init__(self, cfg: SynthConfig, device: torch.device | str = "cpu"):
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.cfg, self.device = cfg, torch.device(device)
        models = Path(cfg.models)
        self.gpt = load_tortoise_model(models, "gpt").to(self.device).eval()
        self.clvp = load_tortoise_model(models, "clvp").to(self.device).eval()
        self.renderer = make_renderer(models, self.device, cfg.renderer, diffusion_steps=cfg.diffusion_steps,
                                      cond_free=cfg.cond_free, griffin_lim_iters=cfg.griffin_lim_iters)
        self.cond_samples = cond_samples_of(model_configs(models))
        self.voices = _speech_rows(cfg.speech)
        self.names = sorted(self.voices)
        texts = Path(cfg.texts).read_text().splitlines() if cfg.texts else []
        self.texts = [t.strip() for t in texts if t.strip()]
        self.mel = DvaeMel()

    def group(self, g: int) -> list[tuple[torch.Tensor, torch.Tensor, dict]]:
        """Group g's pairs: [(dVAE mel (80, 4 x codes), codes (codes,), index row)], ids g x spt + j < num_pairs."""
        cfg, spt = self.cfg, self.cfg.samples_per_text
        rng = random.Random(cfg.seed * 1_000_003 + g)
        torch.manual_seed(cfg.seed * 1_000_003 + g)
        text = rng.choice(self.texts) if self.texts else text_line(rng, cfg.min_words, cfg.max_words)
        speaker = rng.choice(self.names)
        clips = [rng.choice(self.voices[speaker]) for _ in range(cfg.cond_clips)]
        cond = make_conditioning([load_audio(c, DVAE_SR) for c in clips], self.cond_samples, self.mel)
        temp = max(0.05, cfg.temperature + rng.uniform(-cfg.temperature_jitter, cfg.temperature_jitter))
        scfg = SamplingConfig(temp, cfg.top_p, cfg.repetition_penalty, 1.0, cfg.max_tokens)
        ids = encode_text(text)
        with torch.no_grad():
            cond_latent = self.gpt.get_conditioning(cond.mels[None].to(self.device))
        kept = [(g * spt + j, c) for j, c in enumerate(sample_codes(self.gpt, cond_latent, ids, spt, scfg))
                if g * spt + j < cfg.num_pairs and c.numel() >= 2]
        latents, logliks = teacher_forced(self.gpt, cond_latent, ids, [c for _, c in kept]) if kept else ([], [])
        items = []
        for (item, codes), lat, loglik in zip(kept, latents, logliks):
            m = to_dvae_mel(self.renderer.render(cond, lat), codes.numel(), self.mel)
            row = {"id": item, "text": text, "speaker": speaker, "temperature": round(temp, 3),
                   "clvp": clvp_score(self.clvp, ids, codes), "loglik": loglik}
            items.append((m, codes, row))
        return items


def run_synth(cfg: SynthConfig) -> dict:
    """Make this writer's groups not yet in the index (here, or on Ray actors with `--ray`) and append them to the
    folder's shards in group order; returns the summary (also in synth_summary.json)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.ray:
        rank, writers, device = _shard(cfg) + (torch.device("cpu"),)
    else:
        rank, writers, device = _writer(cfg)
    _speech_rows(cfg.speech)  # a missing manifest is reported before any model loads
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
    for g, items in tqdm(zip(todo, _made(cfg, todo, device)), total=len(todo), desc=f"synth {name}", unit="text"):
        pending += items
        made += len(items)
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


def _made(cfg: SynthConfig, todo: list[int], device: torch.device) -> Iterator[list]:
    """Each group's pairs, in `todo` order: made here, or by `--ray-workers` actors (default: one per GPU of the
    cluster, or per CPU without GPUs or with `--device cpu`) that each hold the models once and pull the next group
    when done (a killed actor is restarted and its group made again: groups are pure)."""
    if not cfg.ray:
        synth = Synthesizer(cfg, device) if todo else None
        for g in todo:
            yield synth.group(g)
        return
    from tortuner.cluster import actor_pool, connect

    with connect(cfg.ray) as ray:
        gpu = cfg.device != "cpu" and ray.cluster_resources().get("GPU", 0) >= 1  # one actor per GPU, else per CPU
        pool = actor_pool(ray, Synthesizer, cfg.ray_workers, replace(cfg, threads=cfg.threads or 1),
                          "cuda" if gpu else "cpu", gpu=gpu)
        yield from pool.map(lambda actor, g: actor.group.remote(g), todo)
