"""Does the public CLVP need the stock dropout? Held-out retrieval and step time, variants one after another.

Backs docs/lab.md, "Where the time goes", "The CLVP without dropout": dropout 0.1 top-1 0.475 public / 0.547 eval,
dropout 0 0.509 / 0.531, a step 0.80x and 0.74x as long; hence `LabSize.clvp_dropout` = 0 (its comment in
`lab/sizes.py` cites this script too).

    .venv/bin/python experiments/clvp_training.py worlds/small [--dropouts 0.1,0] [--steps 0] [--threads 2]

Each variant trains a fresh stock `CLVP` of the world's size with `lab.train.train_clvp` (as `lab build` does, the
same seed) on the teacher's speech only, and scores it on the public speech (other speakers and lines: many groups
of 8, so differences of a few points are visible) and on `hidden/eval` (the world report's gate), as top-1 retrieval
of the right text among 8. Nothing of the world is changed.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.tensorboard import SummaryWriter

from tortuner.lab import train
from tortuner.lab.build import WorldBuilder, texted_clips
from tortuner.lab.report import clvp_top1
from tortuner.lab.world import load_manifest
from tortuner.models.checkpoints import load_dvae
from tortuner.models.gpt_data import encode_text
from tortuner.models.tortoise import build_clvp
from tortuner.training import set_dropout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--dropouts", default="0.1,0", help="comma-separated dropouts of every CLVP layer (stock 0.1)")
    ap.add_argument("--steps", type=int, default=0, help="0 = the world size's clvp_steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    builder = WorldBuilder.open(args.world)
    size, paths = builder.size, builder.paths
    steps = args.steps or size.clvp_steps
    dvae = load_dvae(paths.teacher)
    pairs = [(encode_text(c.text), c.tokens) for c in texted_clips(paths.teacher_speech, dvae)]
    public = [(encode_text(c.text), c.tokens) for c in texted_clips(paths.public_speech, dvae)]
    hidden = [(encode_text(r["text"]), torch.tensor(r["tokens"])) for r in load_manifest(paths.eval) if r["text"]]
    print(f"{args.world}: CLVP {size.clvp_dim} x {size.clvp_depth}, {steps} steps, batch {size.batch}; trained on "
          f"{len(pairs)} teacher-speech lines, scored on {len(public) // 8 * 8} public and {len(hidden) // 8 * 8} eval "
          "lines (top-1 among 8, chance 0.125)", flush=True)
    rows = []
    for p in [float(x) for x in args.dropouts.split(",")]:
        torch.manual_seed(args.seed)
        clvp = build_clvp(size.model_configs()["clvp"])
        set_dropout(clvp, p)
        t0 = time.time()
        train.train_clvp(pairs, clvp, steps, size.batch, SummaryWriter(tempfile.mkdtemp()), args.seed)
        sec = (time.time() - t0) / steps
        (ph, pn), (eh, en) = clvp_top1(clvp, public), clvp_top1(clvp, hidden)
        rows.append((p, ph / max(pn, 1), eh / max(en, 1), sec))
        print(f"dropout {p:g}: public {rows[-1][1]:.3f}  eval {rows[-1][2]:.3f}  {sec:.3f} s/step", flush=True)
    base = rows[0][3]
    print("| dropout | public top-1 | eval top-1 | s/step | vs first |")
    print("|---|---|---|---|---|")
    for p, pub, ev, sec in rows:
        print(f"| {p:g} | {pub:.3f} | {ev:.3f} | {sec:.3f} | {sec / base:.2f}x |")


if __name__ == "__main__":
    main()
