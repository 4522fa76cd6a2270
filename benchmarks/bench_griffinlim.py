"""Griffin-Lim throughput and fidelity (the lab's vocoder stand-in), side by side for a few iteration counts.

    .venv/bin/python benchmarks/bench_griffinlim.py [--threads 1] [--clips 24]

Real speech: the human clips shipped with `tortoise` (first 4 s each). Prints clips/minute and the L1 between the
original univnet mel and the mel of the reconstructed audio (lower = closer), for each iteration count.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, UnivNetMel
from tortuner.lab.speech import human_voices


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clips", type=int, default=24)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    umel = UnivNetMel()
    clips = [p for v in human_voices() for p in sorted(v.glob("*.wav"))][: args.clips]
    mels = [umel(torch.from_numpy(resample(load_audio(p, DVAE_SR)[: DVAE_SR * 4].numpy(), DVAE_SR, UNIVNET_SR)))[0]
            for p in clips]
    seconds = sum(m.shape[1] * 256 / UNIVNET_SR for m in mels)
    print(f"{len(mels)} clips, {seconds:.0f} s of audio, {args.threads} thread(s)")
    for n_iter in (8, 16, 32, 64):
        t0 = time.time()
        errs = []
        for m in mels:
            again = umel(univnet_mel_to_wav(m, n_iter=n_iter)[None])[0][:, : m.shape[1]]
            errs.append(F.l1_loss(again, m[:, : again.shape[1]]).item())
        dt = time.time() - t0
        print(f"n_iter {n_iter:3d}: {60 * len(mels) / dt:7.0f} clips/min  {seconds / dt:6.1f}x real time  "
              f"mel L1 {sum(errs) / len(errs):.3f}")


if __name__ == "__main__":
    main()
