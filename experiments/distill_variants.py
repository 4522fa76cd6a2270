"""Distillation variants on one lab run's synthetic pairs, scored on the world's held-out speech, side by side.

Backs docs/recovery.md, "Why top-1 stays near 0.5": "Augmentation that assumes invariance hurts" (gain +-0.3 + tilt
+-0.3 + noise 0.396, noise only 0.497, none 0.507: noise only became `recover.data.Augment`'s default, whose
docstring cites this script) and "A renderer's lag cannot be seen from synthetic pairs" (the probe on synthetic pairs
stays at 0.67-0.68 for mels moved by -128..+256 samples while real-speech top-1 goes 0.410 / 0.497 / 0.461 / 0.366).

    .venv/bin/python experiments/distill_variants.py --world worlds/tiny --run runs/tiny

1. Augmentation: gain/tilt/noise (the old default) vs noise only (the default) vs none.
2. Timing: the pairs' mels moved by a fraction of a frame before training. For each offset, a per-4-frame-group
   linear probe's accuracy on held-out *synthetic* pairs (what a recovering user can measure) next to the distilled
   encoder's agreement with the hidden teacher on *real* speech (what matters).
Same student, steps and seed everywhere (the tiny preset's distill settings). Reads `RUN/synth` (`lab run`'s pairs).
"""

from __future__ import annotations

import argparse
import random

import torch
import torch.nn.functional as F

from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import load_dvae
from tortuner.models.renderer import shift_frames
from tortuner.recover.data import Augment, load_real, load_synth
from tortuner.recover.distill import CodeTrainer, DistillConfig, init_codebook_from_classes, new_dvae, train_on_pairs
from tortuner.recover.evaluate import score_tokenizer
from tortuner.synth.shards import Pair


def distill_top1(pairs: list[Pair], aug: Augment | None, k: int, steps: int, ev, teacher) -> float:
    torch.manual_seed(0)
    model = new_dvae(DistillConfig(codebook_dim=32, hidden_dim=96, num_resnet_blocks=1), k)
    init_codebook_from_classes(model, pairs)
    tr = CodeTrainer(model, 1e-3)
    train_on_pairs(tr, pairs, steps, 16, 32, 0, aug, tag="distill")
    return score_tokenizer(tr.commit().eval(), ev, teacher)["agreement_top1"]


def probe_accuracy(pairs: list[Pair], k: int) -> float:
    """A linear classifier from each group's 4 x 80 mel values to its code; accuracy on a held-out fifth."""
    rng = random.Random(0)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    held = set(order[: len(pairs) // 5])
    xs, ys = {True: [], False: []}, {True: [], False: []}
    for i, p in enumerate(pairs):
        n = p.tokens.numel()
        xs[i in held].append(p.mel[:, : 4 * n].reshape(80, n, 4).permute(1, 2, 0).reshape(n, 320))
        ys[i in held].append(p.tokens)
    xt, yt, xv, yv = torch.cat(xs[False]), torch.cat(ys[False]), torch.cat(xs[True]), torch.cat(ys[True])
    mu, sd = xt.mean(0), xt.std(0) + 1e-3
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    torch.manual_seed(0)
    lin = torch.nn.Linear(320, k)
    opt = torch.optim.Adam(lin.parameters(), 3e-3)
    for _ in range(300):
        b = torch.randint(0, xt.shape[0], (1024,))
        loss = F.cross_entropy(lin(xt[b]), yt[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((lin(xv).argmax(-1) == yv).float().mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--offsets", type=float, nargs="+", default=[-0.5, 0.0, 0.5, 1.0],
                    help="frames the synthetic mels are read later (dVAE mel frames of 256 samples)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    w = WorldPaths(args.world)
    teacher = load_dvae(w.teacher).eval()
    k = teacher.cfg.num_tokens
    ev = load_real(w.eval)
    pairs = load_synth(f"{args.run}/synth")
    print(f"{w.root}, {len(pairs)} synthetic pairs of {args.run}, {args.steps} distill steps, top-1 on {len(ev)} "
          "held-out clips")
    print("augmentation")
    for name, aug in (("gain 0.3 + tilt 0.3 + noise 0.05", Augment(0.3, 0.3, 0.05)),
                      ("noise 0.05 (default)", Augment()), ("none", None)):
        print(f"  {name:34s} top-1 {distill_top1(pairs, aug, k, args.steps, ev, teacher):.3f}", flush=True)
    print("timing offset (frames)   synthetic probe acc   real top-1")
    for off in args.offsets:
        moved = [Pair(shift_frames(p.mel, off), p.tokens, p.row) for p in pairs]
        print(f"  {off:+5.2f} ({int(off * 256):+5d} samples)     {probe_accuracy(moved, k):.3f}"
              f"               {distill_top1(moved, Augment(), k, args.steps, ev, teacher):.3f}", flush=True)


if __name__ == "__main__":
    main()
