"""How the lab's public GPT learns: held-out NLL of teacher tokens along training, for one training variant.

Backs docs/lab.md, "What changed in this world" ("98 voice variants instead of 26": unseen-voice NLL 0.058 -> 0.024
of ln K above the training speakers; "2 conditioning blocks instead of the stock 6": the table of held-out NLL per
block count), "Where the time goes" ("bf16 for the GPT, measured again": 0.582 float32 vs 0.581 bf16), "Measured
and not taken" (lr 2e-3 for 1500 or 2000 steps, batches of 16, one conditioning clip per line) and "The GPT
(previous worlds)" (the dropout / lines-per-speaker table); the comments on `gpt_dropout`, `cond_samples` and
`gpt_cond_blocks` in `lab/sizes.py`.

    .venv/bin/python experiments/gpt_training.py worlds/tiny --steps 2000 [--dropout 0.0] [--batch 16] ...

Trains a fresh GPT of the world's size on the world's own training clips (teacher + public speech with teacher
tokens, as `lab build` does) and prints, every `--every` steps, the per-token NLL / ln K of the eval set's teacher
tokens (unseen speakers, the world report's gate) and of 32 training-speaker clips, plus seconds per step. Run two
variants side by side to compare them; nothing of the world is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time

import torch
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.mel import DvaeMel
from tortuner.lab import train
from tortuner.lab.build import WorldBuilder
from tortuner.lab.report import mean_code_nll, tokenized_examples
from tortuner.models.checkpoints import load_dvae
from tortuner.models.tortoise import build_gpt
from tortuner.training import set_dropout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--steps", type=int, default=0, help="0 = the world size's gpt_steps")
    ap.add_argument("--batch", type=int, default=0, help="0 = the world size's gpt_batch")
    ap.add_argument("--lr", type=float, default=0.0, help="0 = the world size's gpt_lr")
    ap.add_argument("--dropout", type=float, default=-1.0, help="GPT-2 dropouts (stock 0.1); -1 = the size's")
    ap.add_argument("--cond-samples", type=int, default=0, help="0 = the world size's cond_samples")
    ap.add_argument("--layers", type=int, default=0, help="0 = the world size's gpt_layers")
    ap.add_argument("--dim", type=int, default=0, help="0 = the world size's gpt_dim")
    ap.add_argument("--cond-clips", type=int, default=2, help="conditioning clips per training line (the build's: 2)")
    ap.add_argument("--cond-blocks", type=int, default=0, help="0 = the world size's gpt_cond_blocks")
    ap.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    builder = WorldBuilder.open(args.world)
    size = builder.size
    steps, batch = args.steps or size.gpt_steps, args.batch or size.gpt_batch
    lr, cond = args.lr or size.gpt_lr, args.cond_samples or size.cond_samples
    clips = builder.training_clips()
    teacher, mel, k = load_dvae(builder.paths.teacher), DvaeMel(), size.num_codes
    held_out = tokenized_examples(builder.paths.eval, teacher, mel, cond, 10_000)
    seen = tokenized_examples(builder.paths.teacher_speech, teacher, mel, cond, 32)

    torch.manual_seed(args.seed)
    size = dataclasses.replace(size, gpt_layers=args.layers or size.gpt_layers, gpt_dim=args.dim or size.gpt_dim,
                               gpt_cond_blocks=args.cond_blocks or size.gpt_cond_blocks)
    gpt = build_gpt(size.model_configs()["gpt"])
    dropout = args.dropout if args.dropout >= 0 else size.gpt_dropout
    set_dropout(gpt, dropout)
    print(f"{args.world}: GPT {size.gpt_layers} x {size.gpt_dim}, steps {steps} batch {batch} lr {lr:g} dropout "
          f"{dropout:g} cond {args.cond_clips} x {cond} samples, {size.gpt_cond_blocks} blocks"
          f"{' bf16' if args.bf16 else ''}; "
          f"{len(clips)} training clips, "
          f"{len(held_out)} eval clips; NLL / ln {k}", flush=True)
    clock = {"t": time.time(), "train": 0.0}

    def hook(step: int) -> None:
        if step % args.every and step != steps:
            return
        clock["train"] += time.time() - clock["t"]
        gpt.eval()
        unseen, trained_on = (mean_code_nll(gpt, examples) / math.log(k) for examples in (held_out, seen))
        print(f"step {step:5d}  eval {unseen:.3f}  training speakers {trained_on:.3f}  "
              f"{clock['train'] / step:.3f} s/step", flush=True)
        gpt.train()
        clock["t"] = time.time()

    train.train_gpt(clips, gpt, steps, batch, cond, SummaryWriter(tempfile.mkdtemp()),
                    args.seed, lr=lr, bf16=args.bf16, hook=hook, cond_clips=args.cond_clips)


if __name__ == "__main__":
    main()
