"""How stable are a world's teacher tokens? The ceiling any synthetic-pair method works under, measured.

Backs docs/recovery.md, "Why top-1 stays near 0.5", "The teacher's tokens are fragile": on the tiny world the teacher
keeps only 90 % of its tokens for a 0.5 dB quieter clip, 77 % for a 64-sample shift, 98 % with noise at 40 dB SNR,
88 % through univnet mel -> Griffin-Lim; and `recover.data.Augment`'s docstring (gain changes flip tokens).

    .venv/bin/python experiments/token_stability.py worlds/tiny [--clips 24]

Teacher agreement between a held-out clip's tokens and the tokens of the same clip after:
* a 24 kHz univnet mel -> Griffin-Lim -> 22.05 kHz round trip (the lab's vocoder path, renderer excluded);
* a shift by 64 samples (1/16 of a token), white noise at 40 dB SNR, a 0.5 dB gain change (intrinsic sensitivity).
Printed side by side; the lower these are, the noisier any label that has passed through audio is.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.lab.report import token_hits
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--gl-iters", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    teacher, mel, umel = load_dvae(w.teacher).eval(), DvaeMel(), UnivNetMel()
    rng = np.random.default_rng(0)
    rows = load_manifest(w.eval)[: args.clips]
    hits: dict[str, list[int]] = {}

    def score(name: str, wav: np.ndarray, ref: torch.Tensor) -> None:
        hit, m = token_hits(teacher, mel, torch.from_numpy(wav.astype(np.float32)), ref)
        h = hits.setdefault(name, [0, 0])
        h[0] += hit
        h[1] += m

    with torch.no_grad():
        for r in rows:
            x = load_audio(r["audio"], DVAE_SR).numpy()
            ref = teacher.tokenize(mel(torch.from_numpy(x)[None]))[0]
            score("same audio (sanity)", x, ref)
            score("shift 64 samples", np.concatenate([np.zeros(64, np.float32), x[:-64]]), ref)
            noise = rng.normal(size=x.shape).astype(np.float32) * np.sqrt(np.mean(x**2) / 1e4)
            score("noise 40 dB SNR", x + noise, ref)
            score("gain -0.5 dB", x * 10 ** (-0.5 / 20), ref)
            u = umel(torch.from_numpy(resample(x, DVAE_SR, UNIVNET_SR))[None])[0]
            for it in args.gl_iters:
                score(f"univnet mel -> Griffin-Lim {it} it", resample(univnet_mel_to_wav(u, n_iter=it).numpy(),
                                                                      UNIVNET_SR, DVAE_SR), ref)
    print(f"{w.root}: teacher token agreement on {len(rows)} held-out clips (chance {1 / teacher.cfg.num_tokens:.4f})")
    for name, (a, n) in hits.items():
        print(f"  {name:36s} {a / n:.3f}")


if __name__ == "__main__":
    main()
