"""How the lab's public GPT learns: held-out NLL of teacher tokens along training, for one training variant.

    .venv/bin/python benchmarks/lab_gpt_training.py worlds/tiny --steps 2000 [--dropout 0.0] [--batch 16] ...

Trains a fresh GPT of the world's size on the world's own training clips (teacher + public speech with teacher
tokens, as `lab build` does) and prints, every `--every` steps, the per-token NLL / ln K of the eval set's teacher
tokens (unseen speakers, the world report's gate) and of 32 training-speaker clips, plus seconds per step. Run two
variants side by side to compare them; nothing of the world is changed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import tempfile
import time

import torch
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.files import read_json
from tortuner.lab import train
from tortuner.lab.build import BuildConfig, WorldBuilder
from tortuner.lab.report import manifest_examples
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae
from tortuner.models.gpt_data import code_nll, collate
from tortuner.models.tokenizer import Tokenizer
from tortuner.models.tortoise import build_gpt
from tortuner.training import set_dropout


def _scored(folder, teacher, mel, cond: int, n: int) -> list:
    rows = [r for r in load_manifest(folder) if r["text"]]
    random.Random(0).shuffle(rows)
    rows = rows[:n]
    for r, tokens in zip(rows, Tokenizer(teacher).tokenize_training_wavs([load_audio(r["audio"], DVAE_SR) for r in rows])):
        r["tokens"] = tokens.tolist()
    return manifest_examples(rows, mel, cond, random.Random(0))


@torch.no_grad()
def _ratio(gpt, examples, k: int) -> float:
    total, count = 0.0, 0
    for i in range(0, len(examples), 8):
        s, c = code_nll(gpt, collate(examples[i : i + 8], gpt.stop_mel_token))
        total, count = total + s, count + c
    return total / count / math.log(k)


def main() -> None:
    ap = argparse.ArgumentParser()
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    builder = WorldBuilder(BuildConfig(out=args.world, size=read_json(WorldPaths(args.world).state)["size"]))
    size = builder.size
    steps, batch = args.steps or size.gpt_steps, args.batch or size.gpt_batch
    lr, cond = args.lr or size.gpt_lr, args.cond_samples or size.cond_samples
    clips = builder.training_clips()
    teacher, mel, k = load_dvae(builder.paths.teacher), DvaeMel(), size.num_codes
    held_out = _scored(builder.paths.eval, teacher, mel, cond, 10_000)
    seen = _scored(builder.paths.teacher_speech, teacher, mel, cond, 32)

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
        print(f"step {step:5d}  eval {_ratio(gpt, held_out, k):.3f}  training speakers {_ratio(gpt, seen, k):.3f}  "
              f"{clock['train'] / step:.3f} s/step", flush=True)
        gpt.train()
        clock["t"] = time.time()

    train.train_gpt(clips, gpt, steps, batch, cond, SummaryWriter(tempfile.mkdtemp()),
                    args.seed, lr=lr, bf16=args.bf16, hook=hook, cond_clips=args.cond_clips)


if __name__ == "__main__":
    main()
