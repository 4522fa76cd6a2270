"""CLI verbs of the lab: `lab build` (here), `lab run` (tortuner.lab.run), `lab finetune` (finetune_experiment)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json

from tortuner.lab.build import SIZES, STAGES, BuildConfig, build_world


def _build(args: argparse.Namespace) -> int:
    report = build_world(BuildConfig(out=args.out, size=args.size, seed=args.seed, threads=args.threads,
                                     until=args.until or "", mixed_precision=args.mixed_precision))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser("lab", help="the hidden-teacher lab (build a world, recover its tokenizer, fine-tune)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    lab_sub.required = True
    p = lab_sub.add_parser("build", help="build a world: hidden teacher dVAE + public GPT, renderer, CLVP",
                           description="Build a hidden-teacher world (see docs/lab.md). Resumable: rerun to continue.")
    p.add_argument("--size", choices=sorted(SIZES), default=BuildConfig.size,
                   help="test (machinery only), tiny (minutes), small (make demo), base (GPU)")
    p.add_argument("--out", default=BuildConfig.out, help="world folder (created; rerun to resume)")
    p.add_argument("--seed", type=int, default=BuildConfig.seed, help="same seed, same world")
    p.add_argument("--threads", type=int, default=BuildConfig.threads, help="torch threads (0 = default)")
    p.add_argument("--until", choices=STAGES, default=None, help="stop after this stage")
    p.add_argument("--mixed-precision", choices=("auto", "no", "bf16"), default=BuildConfig.mixed_precision,
                   help="bf16 autocast for the teacher and renderer training (auto = where the CPU has native bf16)")
    p.set_defaults(func=_build)
    for name in ("tortuner.lab.run", "tortuner.lab.finetune_experiment"):
        if importlib.util.find_spec(name):
            importlib.import_module(name).register(lab_sub)
