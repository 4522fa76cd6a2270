"""`tortuner synth`: CLI flags map 1:1 to `SynthConfig`."""

from __future__ import annotations

import argparse
import json

from tortuner.config_args import add_config_args, config_from_args
from tortuner.synth.synth import SynthConfig, run_synth


def _synth(args: argparse.Namespace) -> int:
    print(json.dumps(run_synth(config_from_args(SynthConfig, args)), indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthetic [mel, tokens] pairs from the public GPT + renderer",
                       description="GPT-sample codes for random texts and voices, render them (diffusion+vocoder or "
                                   "the lab renderer), store dVAE mels + codes in shards. Resumable; --shard i/n.")
    add_config_args(p, SynthConfig, required=("models", "speech"))
    p.set_defaults(func=_synth)
