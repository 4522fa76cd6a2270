"""CLI verbs of the lab: `lab build` (tortuner.lab.build), `lab run` (tortuner.lab.run), `lab finetune`
(tortuner.lab.finetune_experiment). Every flag is a field of the verb's config dataclass."""

from __future__ import annotations

import argparse
import json

from tortuner.config_args import add_config_args, config_from_args


def _build(args: argparse.Namespace) -> int:
    from tortuner.lab.build import BuildConfig, build_world

    report = build_world(config_from_args(BuildConfig, args))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list)}, indent=2))
    return 0


def _run(args: argparse.Namespace) -> int:
    from tortuner.lab.run import RunConfig, run_lab

    rep = run_lab(config_from_args(RunConfig, args))
    print(json.dumps({k: v for k, v in rep.items() if not isinstance(v, (dict, list))}, indent=2))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from tortuner.lab.finetune_experiment import TARGET_RATIO, LabFinetuneConfig, run_experiment

    r = run_experiment(config_from_args(LabFinetuneConfig, args))
    print(f"lab finetune: NLL base {r['finetune_nll_base']:.4f}, oracle {r['finetune_nll_oracle']:.4f}, recovered "
          f"{r['finetune_nll_recovered']:.4f}; ratio {r['finetune_ratio']:.4f} (target <= {TARGET_RATIO})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from tortuner.lab import finetune_experiment
    from tortuner.lab.build import BuildConfig
    from tortuner.lab.run import RunConfig

    lab = sub.add_parser("lab", help="the hidden-teacher lab (build a world, recover its tokenizer, fine-tune)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    lab_sub.required = True
    p = lab_sub.add_parser("build", help="build a world: hidden teacher dVAE + public GPT, renderer, CLVP",
                           description="Build a hidden-teacher world (see docs/lab.md). Resumable: rerun to continue.")
    add_config_args(p, BuildConfig)
    p.set_defaults(func=_build)
    p = lab_sub.add_parser("run", help="recover a world's tokenizer from its public half and score it",
                           description="synth -> distill -> decoder -> recon -> improved -> baseline on WORLD/public, "
                                       "then score against WORLD/hidden. Resumable; --ablation adds the seed's doubts.")
    add_config_args(p, RunConfig)
    p.set_defaults(func=_run)
    p = lab_sub.add_parser("finetune", help="fine-tune the world's GPT on its new voice with recovered vs. teacher "
                                            "tokens", description=finetune_experiment.__doc__.split("\n\n")[0])
    add_config_args(p, finetune_experiment.LabFinetuneConfig, required=("world", "run"))
    p.set_defaults(func=_finetune)
