"""Is a world's renderer on time? Its output against the real clip, side by side for a range of output shifts.

Backs docs/lab.md, "The GPT (previous worlds)", "Two renderer fixes ... (2) its timing": the untimed renderer renders
~0.6 univnet frames late (L1 lowest with its output moved 0.75 frames earlier; the teacher re-reads 0.600 of the
tokens with the audio advanced by 128 samples vs 0.462 as rendered), which `fit_advance` now corrects; and
docs/recovery.md, "Why top-1 stays near 0.5", "A renderer's lag cannot be seen from synthetic pairs".

    .venv/bin/python experiments/renderer_timing.py worlds/tiny [--clips 16]

The renderer is run *without* its fitted `advance` (as trained), on held-out clips from teacher-forced latents.
Printed per shift: univnet-mel L1 and energy-envelope correlation with the real clip (advance in univnet frames),
and the hidden teacher's agreement when the Griffin-Lim waveform is moved earlier by 0.5 frame steps (samples at
22.05 kHz), next to the same for Griffin-Lim of the real clip's own mel. The build's `fit_advance` value is shown.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.lab.report import manifest_examples, token_hits
from tortuner.lab.train import gpt_latents
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_renderer, load_tortoise_model, model_configs
from tortuner.models.renderer import shift_frames


def _advance_wav(x: np.ndarray, samples: int) -> np.ndarray:
    if samples > 0:
        return np.concatenate([x[samples:], np.zeros(samples, np.float32)])
    if samples < 0:
        return np.concatenate([np.zeros(-samples, np.float32), x[:samples]])
    return x


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--clips", type=int, default=16)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    w = WorldPaths(args.world)
    gpt, ren, teacher = load_tortoise_model(w.models, "gpt"), load_renderer(w.models), load_dvae(w.teacher).eval()
    mel, umel = DvaeMel(), UnivNetMel()
    cs = cond_samples_of(model_configs(w.models))
    rows = [r for r in load_manifest(w.eval) if r["text"]][: args.clips]
    examples = manifest_examples(rows, mel, cs, random.Random(0))
    frames = [x / 4 for x in range(-4, 5)]
    samples = [-256, -128, 0, 128, 192, 256]
    l1, corr = {f: 0.0 for f in frames}, {f: 0.0 for f in frames}
    agree = {("renderer", s): [0, 0] for s in samples} | {("vocoder", s): [0, 0] for s in samples}
    with torch.no_grad():
        for r, ex, lat in zip(rows, examples, gpt_latents(gpt, examples)):
            x = load_audio(r["audio"], DVAE_SR).numpy()
            target = umel(torch.from_numpy(resample(x, DVAE_SR, UNIVNET_SR))[None])[0]
            out = ren.unshifted(lat[None], ex.cond_mels[None])[0]
            n = min(out.shape[1], target.shape[1])
            env = target[:, :n].exp().mean(0)
            for f in frames:
                o = shift_frames(out, f)[:, :n]
                l1[f] += float((o - target[:, :n]).abs().mean()) / len(rows)
                corr[f] += float(torch.corrcoef(torch.stack([o.exp().mean(0), env]))[0, 1]) / len(rows)
            real = torch.tensor(r["tokens"])
            for name, spec in (("renderer", out), ("vocoder", target)):
                wav = resample(univnet_mel_to_wav(spec).numpy(), UNIVNET_SR, DVAE_SR)
                for s in samples:
                    hit, m = token_hits(teacher, mel, torch.from_numpy(_advance_wav(wav, s)), real)
                    agree[(name, s)][0] += hit
                    agree[(name, s)][1] += m
    print(f"{w.root}: renderer as trained (fitted advance in models.json: {ren.cfg.advance} frames), {len(rows)} "
          "held-out clips")
    print("  advance (univnet frames)   L1      envelope corr")
    for f in frames:
        print(f"  {f:+6.2f}                   {l1[f]:.4f}  {corr[f]:.4f}")
    print("  waveform advanced by (samples @22.05k)   teacher agreement: renderer   vocoder only")
    for s in samples:
        a, b = agree[("renderer", s)], agree[("vocoder", s)]
        print(f"  {s:+5d}                                                 {a[0] / a[1]:.3f}      {b[0] / b[1]:.3f}")


if __name__ == "__main__":
    main()
