"""CLI verbs of the fine-tune stage: `finetune`, `export`, `speak`.

Flags are generated from the config dataclasses (`--max-steps` <-> `max_steps`), so they map 1:1 and defaults live
in one place. Multi-GPU: `accelerate launch -m tortuner.cli finetune ...` (see docs/finetune.md).
"""

from __future__ import annotations

import argparse
import os

from tortuner.config_args import add_config_args, config_from_args

HELP = {
    "data": "dataset folder with train.txt / val.txt (`wavs/NAME.wav|text`) and optional clips.jsonl (speakers)",
    "dvae": "dVAE state dict (TorToiSe's dvae.pth or a recovered one)",
    "models": "TorToiSe models folder (autoregressive.pth, ...; optional models.json) or a lab world's public/models",
    "out": "output",
    "gpt": "GPT weights to start from / speak with instead of MODELS/autoregressive.pth",
    "resume": "continue the run in --out exactly where its last checkpoint left it",
    "freeze": "comma-separated parameter-name prefixes to freeze (e.g. conditioning_encoder,text_embedding)",
    "cache_dir": "token cache folder (default: DATA/.tortuner-cache)",
    "voice": "folder (or file) of reference clips of the voice",
    "preset": "TorToiSe's speed/quality presets",
    "max_steps": "optimizer steps to train to",
    "batch_size": "clips per micro-batch per process",
    "grad_accum": "micro-batches per optimizer step",
    "lr": "peak AdamW learning rate (DL-Art-School fine-tune: 1e-5)",
    "weight_decay": "AdamW weight decay on weight matrices only",
    "warmup_steps": "linear warmup steps",
    "milestones": "multistep schedule: steps at which the lr is multiplied by --gamma",
    "grad_clip": "gradient-norm clip",
    "mixed_precision": "autocast precision (auto = bf16 on GPUs that support it, else fp32)",
    "grad_checkpointing": "recompute activations in backward (less memory, ~30% slower)",
    "save_every": "checkpoint every N steps (and at the end)",
    "keep_checkpoints": "checkpoints kept (0 = all)",
    "val_every": "validation loss + sample generation every N steps (0 = only at the end)",
    "samples": "validation texts generated at each validation",
    "num_workers": "DataLoader worker processes",
    "num_cond": "conditioning clips of the same speaker per example",
    "cond_samples": "conditioning window in samples at 22.05 kHz",
    "max_wav_samples": "skip longer clips (DL-Art-School: 255995)",
    "max_text_tokens": "skip clips with longer BPE text (DL-Art-School: 200)",
    "step": "checkpoint step (default: the newest)",
    "half": "store fp16 weights",
    "num_samples": "GPT candidates ranked by CLVP (default: the preset's)",
    "diffusion_iterations": "diffusion steps (default: the preset's)",
    "cond_free": "conditioning-free diffusion guidance (default: the preset's)",
    "max_mel_tokens": "longest generation in codes",
    "max_voice_clips": "reference clips used from --voice",
    "steps": "fine-tune steps per arm",
    "world": "lab world folder (`tortuner lab build`)",
    "run": "run folder (`tortuner finetune --out`; for `lab finetune`: `tortuner lab run --out`)",
    "autoregressive_batch_size": "GPT candidates sampled per call",
    "threads": "torch threads (0 = torch's default)",
}
CHOICES = {
    "schedule": ["multistep", "cosine", "constant"],
    "mixed_precision": ["auto", "no", "bf16", "fp16"],
    "preset": ["ultra_fast", "fast", "standard", "high_quality"],
}


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
    add_config_args(p, FinetuneConfig, required=("data", "dvae", "models", "out"), help=HELP, choices=CHOICES)
    p.set_defaults(func=_finetune)

    p = sub.add_parser("export", help="write a fine-tune checkpoint as a stock-loadable autoregressive.pth")
    add_config_args(p, ExportConfig, positional=("run",), help=HELP, choices=CHOICES)
    p.set_defaults(func=_export)

    p = sub.add_parser("speak", help="TorToiSe inference (GPT -> CLVP -> diffusion -> vocoder) with a (fine-tuned) GPT")
    add_config_args(p, SpeakConfig, required=("models", "voice", "text", "out"), help=HELP, choices=CHOICES)
    p.set_defaults(func=_speak)
