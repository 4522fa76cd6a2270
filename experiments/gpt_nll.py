"""A world's public GPT: per-token NLL of teacher tokens on its training speakers vs unseen speakers, side by side.

Backs docs/lab.md, "Measured" (its heading names this script), the table row "GPT NLL ratio: training speakers /
eval / new voice": 0.622 / 0.644 / 0.688 (tiny), 0.536 / 0.585 / 0.643 (small).

    .venv/bin/python experiments/gpt_nll.py worlds/tiny [--clips 32]

Tells a GPT that has not learnt enough (both high) from one that does not carry over to new voices (training low,
held-out high). Conditioning: 2 other clips of the same speaker, as in training; codes with the 1024-sample tail.
"""

from __future__ import annotations

import argparse
import math

import torch

from tortuner.audio.mel import DvaeMel
from tortuner.lab.report import mean_code_nll, tokenized_examples
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    gpt, teacher, mel = load_tortoise_model(w.models, "gpt"), load_dvae(w.teacher), DvaeMel()
    cond = cond_samples_of(model_configs(w.models))
    k = teacher.cfg.num_tokens
    print(f"{w.root}: ln({k}) = {math.log(k):.3f}")
    for name, folder in (("training speakers (teacher speech)", w.teacher_speech), ("unseen speakers (eval)", w.eval),
                         ("unseen speaker (newvoice)", w.newvoice)):
        examples = tokenized_examples(folder, teacher, mel, cond, args.clips)
        nll = mean_code_nll(gpt, examples)
        print(f"{name:36s} {len(examples):3d} clips  NLL {nll:.3f} nats/token  ratio {nll / math.log(k):.3f}")

if __name__ == "__main__":
    main()
