"""A world's public GPT: per-token NLL of teacher tokens on its training speakers vs unseen speakers, side by side.

    .venv/bin/python benchmarks/lab_gpt_nll.py worlds/tiny [--clips 32]

Tells a GPT that has not learnt enough (both high) from one that does not carry over to new voices (training low,
held-out high). Conditioning: 2 other clips of the same speaker, as in training; codes with the 1024-sample tail.
"""

from __future__ import annotations

import argparse
import math
import random

import torch

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.lab.report import manifest_examples
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs
from tortuner.models.gpt_data import code_nll, collate
from tortuner.models.tokenizer import Tokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("world")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    gpt, teacher, mel = load_tortoise_model(w.models, "gpt"), load_dvae(w.teacher), DvaeMel()
    cond = cond_samples_of(model_configs(w.models))
    k = teacher.cfg.num_tokens
    print(f"{w.root}: ln({k}) = {math.log(k):.3f}")
    for name, folder in (("training speakers (teacher speech)", w.teacher_speech), ("unseen speakers (eval)", w.eval),
                         ("unseen speaker (newvoice)", w.newvoice)):
        rows = [r for r in load_manifest(folder) if r["text"]]
        random.Random(0).shuffle(rows)
        rows = rows[: args.clips]
        for r, tokens in zip(rows, Tokenizer(teacher).tokenize_training_wavs([load_audio(r["audio"], DVAE_SR) for r in rows])):
            r["tokens"] = tokens.tolist()
        examples = manifest_examples(rows, mel, cond, random.Random(0))
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(examples), 8):
                s, c = code_nll(gpt, collate(examples[i : i + 8], gpt.stop_mel_token))
                total, count = total + s, count + c
        print(f"{name:36s} {len(rows):3d} clips  NLL {total / count:.3f} nats/token  ratio {total / count / math.log(k):.3f}")


if __name__ == "__main__":
    main()
