"""Tokenize throughput of the full-size TorToiSe dVAE (random weights) on CPU.

Side by side in one run: tortuner's `Tokenizer` (length-sorted exact batches, encoder + codebook only, inference
mode) versus a straightforward reference (one file at a time through the whole `DiscreteVAE.forward`, as a
training-style forward would). Prints seconds of audio per second for both and their ratio last.
"""

from __future__ import annotations

import argparse
import importlib.resources
import time
from pathlib import Path

import torch

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.tokenizer import Tokenizer


def speech_clips(n: int, seconds: float) -> list[torch.Tensor]:
    """n clips of real speech (the voices shipped with `tortoise`), cut to varied lengths up to `seconds`."""
    voices = Path(str(importlib.resources.files("tortoise") / "voices"))
    audio = torch.cat([load_audio(p, DVAE_SR) for p in sorted(voices.glob("*/*.wav"))[:40]])
    g = torch.Generator().manual_seed(0)
    clips = []
    for _ in range(n):
        length = int(DVAE_SR * seconds * (0.5 + 0.5 * torch.rand(1, generator=g).item()))
        start = int(torch.randint(0, audio.numel() - length, (1,), generator=g))
        clips.append(audio[start : start + length])
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clips = speech_clips(args.clips, args.seconds)
    total = sum(c.numel() for c in clips) / DVAE_SR
    model = DiscreteVAE().eval()  # TorToiSe's configuration: 8192 codes of dim 512

    tok = Tokenizer(model)
    tok.tokenize_wavs(clips[:2])  # warm-up
    t0 = time.perf_counter()
    ours = tok.tokenize_wavs(clips)
    t_ours = time.perf_counter() - t0

    mel = DvaeMel()
    t0 = time.perf_counter()
    ref = []
    with torch.no_grad():
        for c in clips:
            _, _, tokens = model(mel(c)[None])
            ref.append(tokens[0])
    t_ref = time.perf_counter() - t0

    same = sum(int(torch.equal(a, b)) for a, b in zip(ours, ref))
    print(f"audio: {args.clips} clips, {total:.1f} s; threads: {args.threads}")
    print(f"reference (per file, full forward): {total / t_ref:8.1f} s of audio per s")
    print(f"tortuner Tokenizer (batched):       {total / t_ours:8.1f} s of audio per s")
    print(f"identical token sequences: {same}/{len(clips)}")
    print(f"speed-up ratio: {t_ref / t_ours:.2f}x")


if __name__ == "__main__":
    main()
