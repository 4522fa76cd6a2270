"""`tortuner synth`: CLI flags map 1:1 to `SynthConfig`."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from tortuner.synth.synth import SynthConfig, run_synth


def add_dataclass_flags(p: argparse.ArgumentParser, cls, required: tuple[str, ...] = ()) -> None:
    """One `--flag` per dataclass field (bools as --x / --no-x)."""
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            p.add_argument(flag, type=type(default), default=default, required=f.name in required)


def config_from_args(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def _synth(args: argparse.Namespace) -> int:
    print(json.dumps(run_synth(config_from_args(SynthConfig, args)), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthetic [mel, tokens] pairs from the public GPT + renderer",
                       description="GPT-sample codes for random texts and voices, render them (diffusion+vocoder or "
                                   "the lab renderer), store dVAE mels + codes in shards. Resumable; --shard i/n.")
    add_dataclass_flags(p, SynthConfig, required=("models", "speech"))
    p.set_defaults(func=_synth)
