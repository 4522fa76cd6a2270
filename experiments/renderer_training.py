"""How much renderer training a world needs: renderers trained with different budgets on a world's data, scored
side by side (held-out univnet-mel L1 and the hidden teacher's round-trip agreement).

Backs docs/lab.md, "The GPT (previous worlds)", "Two renderer fixes ... (1) trained 10x longer": round trip
0.30 -> 0.49 for 300 -> 3000 steps, 8000 steps or the 4x bigger renderer 0.50-0.51; and docs/recovery.md, "Why top-1
stays near 0.5", "The public synthesis path loses 39 % of the tokens" (round trip 0.31 -> 0.48).

    .venv/bin/python experiments/renderer_training.py worlds/tiny --runs 300:96:3 3000:96:3 8000:96:3 3000:192:6

Each run is steps:channels:blocks (lr 2e-3 up to 96 channels, 1e-3 above), seed 0, the world's training items and
GPT; no timing fit (advance 0), so the figures compare training budgets only. Round trip: teacher-forced latents of
`--clips` held-out clips -> renderer -> Griffin-Lim -> teacher tokens vs the clip's teacher tokens.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.lab import train
from tortuner.lab.build import WorldBuilder
from tortuner.lab.report import manifest_examples, token_hits
from tortuner.lab.world import load_manifest
from tortuner.models.checkpoints import load_dvae, load_tortoise_model
from tortuner.models.renderer import Renderer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--runs", nargs="+", default=["300:96:3", "3000:96:3"])
    ap.add_argument("--clips", type=int, default=16, help="held-out clips scored")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    b = WorldBuilder.open(args.world)
    gpt = load_tortoise_model(b.paths.models, "gpt")
    items = b.renderer_items(b.training_clips(), gpt, random.Random(0))
    mel, umel, teacher = DvaeMel(), UnivNetMel(), load_dvae(b.paths.teacher)
    rows = [r for r in load_manifest(b.paths.eval) if r["text"]][: args.clips]
    examples = manifest_examples(rows, mel, b.size.cond_samples, random.Random(0))
    print(f"{args.world}: {len(items)} training items, {len(rows)} held-out clips")
    print("  steps  channels  blocks  seconds  held-out L1  round trip")
    for spec in args.runs:
        steps, ch, blocks = (int(x) for x in spec.split(":"))
        cfg = b.size.model_configs()["renderer"]
        cfg.channels, cfg.blocks, cfg.advance = ch, blocks, 0.0
        torch.manual_seed(0)
        model = Renderer(cfg)
        t0 = time.time()
        with tempfile.TemporaryDirectory() as tb:
            train.train_renderer(items, model, steps, b.size.batch, 48, SummaryWriter(tb), 0,
                                 lr=2e-3 if ch <= 96 else 1e-3)
        seconds = time.time() - t0
        agree = n = 0
        l1 = []
        with torch.no_grad():
            for r, ex, lat in zip(rows, examples, train.gpt_latents(gpt, examples)):
                out = model(lat[None], ex.cond_mels[None])[0]
                real = load_audio(r["audio"], DVAE_SR).numpy()
                target = umel(torch.from_numpy(resample(real, DVAE_SR, UNIVNET_SR)))[0]
                t = min(out.shape[1], target.shape[1])
                l1.append(F.l1_loss(out[:, :t], target[:, :t]).item())
                wav = torch.from_numpy(resample(univnet_mel_to_wav(out).numpy(), UNIVNET_SR, DVAE_SR))
                hit, m = token_hits(teacher, mel, wav, torch.tensor(r["tokens"]))
                agree, n = agree + hit, n + m
        print(f"  {steps:5d}  {ch:8d}  {blocks:6d}  {seconds:7.0f}  {sum(l1) / len(l1):11.3f}  {agree / n:10.3f}",
              flush=True)


if __name__ == "__main__":
    main()
