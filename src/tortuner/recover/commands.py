"""`tortuner recover distill|decoder|recon`, `tortuner eval tokenizer`, `tortuner baseline` (flags = config fields)."""

from __future__ import annotations

import argparse
import json

from tortuner.config_args import add_config_args, config_from_args


def _runner(cls, fn_name: str, module: str):
    def handler(args: argparse.Namespace) -> int:
        import importlib

        fn = getattr(importlib.import_module(module), fn_name)
        result = fn(config_from_args(cls, args))
        if getattr(args, "out", "") and fn_name == "run_eval":
            from tortuner.files import write_json

            write_json(args.out, result)
        print(json.dumps(result, indent=2))
        return 0

    return handler


def register(sub: argparse._SubParsersAction) -> None:
    from tortuner.recover.baseline import BaselineConfig
    from tortuner.recover.decoder import DecoderConfig
    from tortuner.recover.distill import DistillConfig
    from tortuner.recover.evaluate import EvalConfig
    from tortuner.recover.recon import ReconConfig

    rec = sub.add_parser("recover", help="recover the withheld dVAE from the public models")
    rsub = rec.add_subparsers(dest="recover_command", metavar="STAGE")
    rsub.required = True
    for name, cls, fn, mod, req, desc in [
        ("distill", DistillConfig, "run_distill", "tortuner.recover.distill", ("synth", "models"),
         "train encoder + codebook on synthetic pairs (CE over -distance logits), then fine-tune on the CLVP view"),
        ("decoder", DecoderConfig, "run_decoder", "tortuner.recover.decoder", ("synth",),
         "pre-train the decoder (codebook vectors -> mel) on the synthetic pairs"),
        ("recon", ReconConfig, "run_recon", "tortuner.recover.recon", ("speech", "synth"),
         "fine-tune the whole dVAE by reconstruction on real speech with an anchor loss; reports drift"),
    ]:
        p = rsub.add_parser(name, help=desc, description=desc)
        add_config_args(p, cls, required=req)
        p.set_defaults(func=_runner(cls, fn, mod))
    ev = sub.add_parser("eval", help="score tokenizers")
    esub = ev.add_subparsers(dest="eval_command", metavar="WHAT")
    esub.required = True
    p = esub.add_parser("tokenizer", help="agreement vs a reference dVAE, GPT NLL, CLVP, recon error, usage",
                        description="Score a dVAE on a real-speech manifest.")
    add_config_args(p, EvalConfig, required=("speech", "dvae"))
    p.set_defaults(func=_runner(EvalConfig, "run_eval", "tortuner.recover.evaluate"))
    p = sub.add_parser("baseline", help="fresh VQ-VAE from scratch on real speech (the no-recovery baseline)")
    add_config_args(p, BaselineConfig, required=("speech", "models"))
    p.set_defaults(func=_runner(BaselineConfig, "run_baseline", "tortuner.recover.baseline"))
