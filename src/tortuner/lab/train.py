"""Training the lab's models: the hidden teacher dVAE, and the public GPT, renderer and CLVP built on its tokens.

Plain loops you can read top to bottom; each returns its loss history so the world report can plot it. Each takes
an optional `training.LoopCheckpoint`, so a killed `lab build` continues inside the stage, bit for bit.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.gpt_data import GPTExample, collate, crop_or_pad, encode_text, gpt_losses, total_loss
from tortuner.models.renderer import Renderer, output_frames
from tortuner.synth.sample import teacher_forced
from tortuner.training import LoopCheckpoint, ScalarLog, autocast, optimizer_step, param_groups, warmup_cosine


@dataclass
class WorldClip:
    """One utterance of a world's speech, held in memory while the world is built."""

    wav: torch.Tensor              # 22.05 kHz
    mel: torch.Tensor | None       # (80, T) dVAE mel, where the teacher trains on it
    text: str
    speaker: str
    tokens: torch.Tensor | None = None     # teacher tokens of the clip + 1024 zero samples (DL-Art-School style)
    univnet: torch.Tensor | None = None    # (100, frames) 24 kHz mel, the renderer's target


def train_teacher(clips: list[WorldClip], model: DiscreteVAE, steps: int, batch: int, crop_frames: int,
                  writer: SummaryWriter, seed: int, lr: float = 2e-3, bf16: bool = False,
                  ckpt: LoopCheckpoint | None = None) -> list[float]:
    """Standard VQ-VAE: MSE reconstruction + 0.25 commitment, EMA codebook; plus two usual fixes for usage.

    The EMA codebook starts from random vectors far from the encoder's outputs, so after a short warm-up it is
    re-seeded from encoder outputs (k-means style), and codes used less than a tenth as often as the average code
    are moved onto recent encoder outputs every 10 steps until the last fifth of training, so that a small codebook
    ends up well used (`EMACodebook.restart_dead_codes`).
    """
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    log = ScalarLog(writer, "teacher")
    model.train()
    history: list[float] = []
    warmup = max(1, steps // 20)
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=model, opt=opt, rng=rng, gen=gen, history=history)
    for step in tqdm(range(start, steps), desc="teacher dVAE", leave=False, initial=start, total=steps):
        mels = []
        for clip in rng.choices(clips, k=batch):
            m = clip.mel
            start = rng.randint(0, max(0, m.shape[1] - crop_frames))
            m = m[:, start : start + crop_frames]
            mels.append(F.pad(m, (0, crop_frames - m.shape[1]), value=float(m.min())))
        mel = torch.stack(mels)
        with autocast(bf16):
            recon, commit, _ = model(mel)
        rec = F.mse_loss(recon.float(), mel)
        optimizer_step(opt, rec + 0.25 * commit, warmup_cosine(step, steps, lr))
        if step == warmup or (warmup < step < steps * 0.8 and step % 10 == 0):
            with torch.no_grad():
                flat = model.encode(mel).reshape(-1, model.cfg.codebook_dim)
            restarted = model.codebook.restart_dead_codes(flat, relative=0.1, refill=0.5, jitter=0.0, generator=gen,
                                                          reseed=step == warmup)
            writer.add_scalar("teacher/restarted", restarted, step)
        history.append(rec.item())
        log(step, recon_mse=rec.item())
        ckpt.save_if_due(step + 1)
    model.eval()
    return history


def group_by_speaker(clips: list[WorldClip]) -> dict[str, list[WorldClip]]:
    """Clips of each speaker, in input order (where conditioning clips are drawn from)."""
    out: dict[str, list[WorldClip]] = {}
    for c in clips:
        out.setdefault(c.speaker, []).append(c)
    return out


def gpt_example(clip: WorldClip, same_speaker: list[WorldClip], mel: DvaeMel, cond_samples: int, rng: random.Random,
                cond_clips: int = 2) -> GPTExample:
    """Text, teacher codes and `cond_clips` conditioning clips of the same speaker (others when there are)."""
    others = [c for c in same_speaker if c is not clip] or [clip]
    conds = torch.stack([crop_or_pad(rng.choice(others).wav, cond_samples, rng) for _ in range(cond_clips)])
    return GPTExample(encode_text(clip.text), clip.tokens, clip.wav.numel(), mel(conds))


BUCKET_POOL = 8  # batches drawn at once and regrouped by length


def length_buckets(pool: list[int], clips: list[WorldClip], batch: int, rng: random.Random) -> list[list[int]]:
    """`pool` (indices into `clips`) cut into batches of similar length, in random order.

    Random batches of the lab's 1-11 s clips are 38 % padding; grouping a pool of 8 batches by length cuts that to
    10 %, and the GPT computes on every padded position.
    """
    pool = sorted(pool, key=lambda i: clips[i].wav.numel())
    out = [pool[i : i + batch] for i in range(0, len(pool), batch)]
    rng.shuffle(out)
    return out


def train_gpt(clips: list[WorldClip], gpt: torch.nn.Module, steps: int, batch: int, cond_samples: int,
              writer: SummaryWriter, seed: int, lr: float = 1e-3, bf16: bool = False,
              hook: Callable[[int], None] | None = None, cond_clips: int = 2,
              ckpt: LoopCheckpoint | None = None) -> list[float]:
    """TorToiSe's GPT objective (0.01 text CE + mel CE) from scratch, AdamW with warmup and cosine decay.

    Weight decay 0.01 on weight matrices only (`training.param_groups`). `hook(step)` runs after every step
    (benchmarks use it to score the GPT along the way).
    """
    rng = random.Random(seed)
    mel = DvaeMel()
    by_speaker = group_by_speaker(clips)
    opt = torch.optim.AdamW(param_groups(gpt, 0.01), lr=lr, betas=(0.9, 0.96))
    log = ScalarLog(writer, "gpt")
    gpt.train()
    history: list[float] = []
    batches: list[list[int]] = []
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=gpt, opt=opt, rng=rng, history=history, batches=batches)
    for step in tqdm(range(start, steps), desc="public GPT", leave=False, initial=start, total=steps):
        if not batches:
            batches += length_buckets(rng.choices(range(len(clips)), k=batch * BUCKET_POOL), clips, batch, rng)
        picked = [clips[i] for i in batches.pop()]
        b = collate([gpt_example(c, by_speaker[c.speaker], mel, cond_samples, rng, cond_clips) for c in picked],
                    gpt.stop_mel_token)
        with autocast(bf16):
            loss_text, loss_mel = gpt_losses(gpt, b)
        loss = total_loss(loss_text.float(), loss_mel.float())
        optimizer_step(opt, loss, warmup_cosine(step, steps, lr), clip=4.0, params=gpt.parameters())
        history.append(loss_mel.item())
        log(step, mel_ce=loss_mel.item(), text_ce=loss_text.item())
        if hook is not None:
            hook(step + 1)
        ckpt.save_if_due(step + 1)
    gpt.eval()
    return history


@torch.no_grad()
def gpt_latents(gpt: torch.nn.Module, examples: list[GPTExample], batch: int = 16) -> list[torch.Tensor]:
    """(N, model_dim) latents of each clip's codes, teacher-forced, as TorToiSe feeds its diffusion decoder.

    N = the codes `UnifiedVoice` keeps for the clip's `wav_length`. Clips run in batches of similar length
    (`synth.sample.teacher_forced` masks the padding, so a clip's latents do not depend on its batch): 2x faster than
    one clip at a time on the small world (`experiments/build_costs.py`).
    """
    def length(i: int) -> int:
        return examples[i].text.numel() + examples[i].wav_length // SAMPLES_PER_TOKEN

    order = sorted(range(len(examples)), key=length)
    out: list[torch.Tensor | None] = [None] * len(examples)
    for j in range(0, len(order), batch):
        idx = order[j : j + batch]
        chunk = [examples[i] for i in idx]
        conds = gpt.get_conditioning(torch.stack([ex.cond_mels for ex in chunk]))
        lats, _ = teacher_forced(gpt, conds, [ex.text for ex in chunk],
                                 [ex.codes[: ex.wav_length // SAMPLES_PER_TOKEN] for ex in chunk])
        for i, lat in zip(idx, lats):
            out[i] = lat
    return out  # type: ignore[return-value]


def train_renderer(items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], model: Renderer, steps: int,
                   batch: int, crop_codes: int, writer: SummaryWriter, seed: int, lr: float = 2e-3,
                   bf16: bool = False, ckpt: LoopCheckpoint | None = None) -> list[float]:
    """L1 between rendered and real univnet mels on random crops. items: (latents (N,D), cond_mels, target)."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    log = ScalarLog(writer, "renderer")
    model.train()
    history: list[float] = []
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=model, opt=opt, rng=rng, history=history)
    for step in tqdm(range(start, steps), desc="renderer", leave=False, initial=start, total=steps):
        lats, conds, targets = [], [], []
        for lat, cond, target in rng.choices(items, k=batch):
            n = min(crop_codes, lat.shape[0])
            s = rng.randint(0, lat.shape[0] - n)
            lat = F.pad(lat[s : s + n], (0, 0, 0, crop_codes - n))
            f0 = output_frames(s)
            tgt = target[:, f0 : f0 + output_frames(crop_codes)]
            tgt = F.pad(tgt, (0, output_frames(crop_codes) - tgt.shape[1]), value=math.log(1e-5))
            lats.append(lat), conds.append(cond), targets.append(tgt)
        with autocast(bf16):
            out = model(torch.stack(lats), torch.stack(conds))
        loss = F.l1_loss(out.float(), torch.stack(targets))
        optimizer_step(opt, loss, warmup_cosine(step, steps, lr))
        history.append(loss.item())
        log(step, l1=loss.item())
        ckpt.save_if_due(step + 1)
    model.eval()
    return history


def clvp_batch(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(text, codes) pairs -> zero-padded text (B, max text) and codes (B, max codes), CLVP's inputs."""
    lt = max(t.numel() for t, _ in pairs)
    ls = max(s.numel() for _, s in pairs)
    text = torch.zeros(len(pairs), lt, dtype=torch.long)
    speech = torch.zeros(len(pairs), ls, dtype=torch.long)
    for i, (t, s) in enumerate(pairs):
        text[i, : t.numel()] = t
        speech[i, : s.numel()] = s
    return text, speech


def train_clvp(pairs: list[tuple[torch.Tensor, torch.Tensor]], clvp: torch.nn.Module, steps: int, batch: int,
               writer: SummaryWriter, seed: int, lr: float = 1e-3,
               ckpt: LoopCheckpoint | None = None) -> list[float]:
    """Contrastive (text, teacher tokens) training of the stock CLVP."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(clvp.parameters(), lr=lr, weight_decay=0.01)
    log = ScalarLog(writer, "clvp")
    clvp.train()
    history: list[float] = []
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=clvp, opt=opt, rng=rng, history=history)
    for step in tqdm(range(start, steps), desc="CLVP", leave=False, initial=start, total=steps):
        text, speech = clvp_batch(rng.sample(pairs, k=min(batch, len(pairs))))
        loss = clvp(text, speech, return_loss=True)
        optimizer_step(opt, loss, warmup_cosine(step, steps, lr))
        history.append(loss.item())
        log(step, loss=loss.item())
        ckpt.save_if_due(step + 1)
    clvp.eval()
    return history

