"""CLI verbs of the fine-tune stage: `finetune`, `export`, `speak`.

Flags are generated from the config dataclasses (`--max-steps` <-> `max_steps`), so they map 1:1 and defaults, help
and choices live in one place. Multi-GPU: `accelerate launch -m tortuner.cli finetune ...` (see docs/finetune.md).
"""

from __future__ import annotations

import argparse
import os

from tortuner.config_args import add_config_args, config_from_args


def _finetune(args: argparse.Namespace) -> int:
    from tortuner.finetune.run import FinetuneConfig, run_finetune

    result = run_finetune(config_from_args(FinetuneConfig, args))
    if int(os.environ.get("RANK", "0")) != 0:  # under accelerate/torchrun only the main process reports
        return 0
    val = result.get("val") or {}
    print(f"finetune: step {result['step']}, train loss {result['train'].get('loss', float('nan')):.4f}"
          + (f", val loss {val['loss']:.4f}, val code NLL {val['code_nll']:.4f} nats" if val else "")
          + f"; export with `tortuner export {args.out} --out autoregressive.pth`")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tortuner.finetune.export import ExportConfig, export_checkpoint

    out = export_checkpoint(config_from_args(ExportConfig, args))
    print(f"export: wrote {out} (stock UnifiedVoice state dict; replace autoregressive.pth in your TorToiSe models "
          "folder, or pass it to `tortuner speak --gpt`)")
    return 0


def _speak(args: argparse.Namespace) -> int:
    from tortuner.finetune.speak import SpeakConfig, speak

    info = speak(config_from_args(SpeakConfig, args))
    print(f"speak: wrote {info['out']} ({info['seconds']:.2f} s at {info['sample_rate']} Hz; "
          f"{info['codes']} codes, best of {info['candidates']} by CLVP)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from tortuner.finetune.export import ExportConfig
    from tortuner.finetune.run import FinetuneConfig
    from tortuner.finetune.speak import SpeakConfig

    p = sub.add_parser("finetune", help="fine-tune TorToiSe's GPT on a prepared dataset (exact --resume; Accelerate)",
                       description="Fine-tune TorToiSe's GPT (UnifiedVoice) on a voice. Multi-GPU: "
                                   "`accelerate launch -m tortuner.cli finetune ...`.")
    add_config_args(p, FinetuneConfig, required=("data", "dvae", "models", "out"))
    p.set_defaults(func=_finetune)

    p = sub.add_parser("export", help="write a fine-tune checkpoint as a stock-loadable autoregressive.pth")
    add_config_args(p, ExportConfig, positional=("run",))
    p.set_defaults(func=_export)

    p = sub.add_parser("speak", help="TorToiSe inference (GPT -> CLVP -> diffusion -> vocoder) with a (fine-tuned) GPT")
    add_config_args(p, SpeakConfig, required=("models", "voice", "text", "out"))
    p.set_defaults(func=_speak)
