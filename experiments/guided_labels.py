"""How often GPT-guided pseudo-labels of public speech equal the hidden teacher's tokens, next to the encoder's argmax.

Backs docs/recovery.md, "GPT-guided labels", and the choice of the beam search in `recover.pseudo`: on the tiny world
(runs/tiny decoder.pth, 150 public clips) the encoder's argmax is the teacher's token 0.575 of the time (the teacher's
token is in its top-5 0.930), the beam-guided labels 0.617 / 0.622 / 0.605 at lambda 0.5 / 1 / 2. Iterated
conditional modes, the search it replaced (removed after commit 5cb50af), reached 0.616.

    .venv/bin/python experiments/guided_labels.py --world worlds/tiny --dvae runs/tiny/decoder.pth [--lams 0.5 1 2]

Public material makes the labels (the public GPT, public speech and its transcripts); the hidden teacher only scores.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs
from tortuner.recover.data import load_real
from tortuner.recover.pseudo import pseudo_pairs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--dvae", required=True, help="the student whose encoder proposes the candidates")
    ap.add_argument("--lams", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--beams", type=int, default=4)
    ap.add_argument("--clips", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    teacher, student = load_dvae(w.teacher).eval(), load_dvae(args.dvae).eval()
    gpt = load_tortoise_model(w.models, "gpt").eval()
    clips = [c for c in load_real(w.public_speech) if c.text and c.mel.shape[1] >= 32]
    random.Random(0).shuffle(clips)
    clips = clips[: args.clips]
    cond = cond_samples_of(model_configs(w.models))
    with torch.no_grad():
        mels = [c.mel[:, : 4 * (c.mel.shape[1] // 4)] for c in clips]
        ref = [teacher.tokenize(m[None])[0] for m in mels]
        enc = [student.logits(m[None])[0] for m in mels]
    total = sum(r.numel() for r in ref)
    top1 = sum(int((e.argmax(-1) == r).sum()) for e, r in zip(enc, ref)) / total
    topk = sum(int((e.topk(args.k, -1).indices == r[:, None]).any(-1).sum()) for e, r in zip(enc, ref)) / total
    print(f"{len(clips)} public clips, {total} tokens: encoder argmax {top1:.3f}, teacher in its top-{args.k} "
          f"{topk:.3f}")
    for lam in args.lams:
        t0 = time.time()
        pairs, changed = pseudo_pairs(student, gpt, clips, cond, lam=lam, k=args.k, beams=args.beams)
        acc = sum(int((p.tokens == r).sum()) for p, r in zip(pairs, ref)) / total
        print(f"  lambda {lam:<4} beams {args.beams} k {args.k}: guided {acc:.3f}  changed {changed:.3f}  "
              f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
