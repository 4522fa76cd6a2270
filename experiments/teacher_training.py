"""How the lab teacher's training budget shapes its tokens: reconstruction, codebook use and token stability.

Backs docs/lab.md, "What changed in this world", "A converged teacher" (the table of recon MSE, codes used,
perplexity and tokens kept per teacher budget) and "Measured and not taken" ("A teacher of 2000 steps instead of
3000": tokens survive audio less well, not taken).

    .venv/bin/python experiments/teacher_training.py worlds/tiny --steps 500 2000 [--clips 24]

Trains one fresh teacher per `--steps` value on the world's teacher speech, exactly as `lab build` does (same size,
seed and recipe; nothing of the world is changed), and prints side by side, on held-out eval clips: reconstruction
MSE, fraction of codes used and perplexity, and how many of its own tokens survive a 0.5 dB gain change, a 64-sample
(1/16 token) shift and the univnet mel -> Griffin-Lim round trip. Fragile tokens make every label that passed
through audio noisy, for the GPT that models them and for recovery alike.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, UnivNetMel
from tortuner.lab import train
from tortuner.lab.build import WorldBuilder, speech_clips
from tortuner.lab.report import token_hits
from tortuner.lab.world import load_manifest
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.recover.evaluate import usage


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--steps", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    builder = WorldBuilder.open(args.world)
    paths = builder.paths
    s, mel, umel = builder.size, builder.mel, UnivNetMel()
    clips = speech_clips(paths.teacher_speech, mel)
    held_out = [load_audio(r["audio"], DVAE_SR).numpy() for r in load_manifest(paths.eval)[: args.clips]]
    cols = ["steps", "s", "recon MSE", "used", "perplexity", "gain -0.5 dB", "shift 64", "Griffin-Lim"]
    print(f"{args.world}: fresh teachers on {len(clips)} clips, scored on {len(held_out)} eval clips")
    print("  ".join(f"{c:>12s}" for c in cols), flush=True)
    for steps in args.steps:
        torch.manual_seed(builder.cfg.seed * 100 + 1)
        dvae = DiscreteVAE(DVAEConfig(num_tokens=s.num_codes, codebook_dim=s.codebook_dim, hidden_dim=s.dvae_hidden,
                                      num_resnet_blocks=s.dvae_blocks))
        t0 = time.time()
        train.train_teacher(clips, dvae, steps, s.batch, 256, SummaryWriter(tempfile.mkdtemp()),
                            builder.cfg.seed * 100 + 1)
        seconds = time.time() - t0
        mse, tokens, hits = [], [], {"gain": [0, 0], "shift": [0, 0], "gl": [0, 0]}
        with torch.no_grad():
            for x in held_out:
                m = mel(torch.from_numpy(x)[None])
                recon, _, tok = dvae(m)
                mse.append(F.mse_loss(recon, m).item())
                tokens.append(tok.flatten())
                ref = tok[0]
                u = umel(torch.from_numpy(resample(x, DVAE_SR, UNIVNET_SR))[None])[0]
                variants = {"gain": x * 10 ** (-0.5 / 20),
                            "shift": np.concatenate([np.zeros(64, np.float32), x[:-64]]),
                            "gl": resample(univnet_mel_to_wav(u).numpy(), UNIVNET_SR, DVAE_SR)}
                for name, wav in variants.items():
                    hit, n = token_hits(dvae, mel, torch.from_numpy(np.asarray(wav, np.float32)), ref)
                    hits[name][0] += hit
                    hits[name][1] += n
        use = usage(tokens, s.num_codes)
        row = [steps, seconds, sum(mse) / len(mse), use["usage"], use["perplexity"],
               *(a / n for a, n in hits.values())]
        print("  ".join(f"{v:12d}" if isinstance(v, int) else f"{v:12.3f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
