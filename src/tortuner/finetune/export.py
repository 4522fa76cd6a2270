"""`tortuner export`: a fine-tune checkpoint -> a plain `autoregressive.pth` that stock TorToiSe loads strictly.

The checkpoint already stores the stock `UnifiedVoice` keys (the training wrapper is never saved), so export is a
format change (safetensors -> the `.pth` state dict TorToiSe reads) plus a proof: the keys and shapes must equal
those of the stock class built with the run's config (TorToiSe's inference config for real models).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import load_safetensors, read_json, torch_save
from tortuner.finetune.checkpoint import find_checkpoint
from tortuner.models.tortoise import GPTConfig, build_gpt


@dataclass
class ExportConfig:
    run: str = arg("", "run folder of `tortuner finetune --out`")
    out: str = arg("autoregressive.pth", "where to write the stock-loadable GPT state dict")
    step: int | None = arg(None, "checkpoint step (default: the newest)")
    half: bool = arg(False, "store fp16 weights")


def check_stock_layout(sd: dict[str, torch.Tensor], cfg: GPTConfig) -> None:
    """Raise unless `sd` has exactly the keys and shapes of the stock UnifiedVoice for `cfg` (built on `meta`, free)."""
    with torch.device("meta"):
        ref = build_gpt(cfg).state_dict()
    missing, extra = sorted(set(ref) - set(sd)), sorted(set(sd) - set(ref))
    wrong = sorted(k for k in set(ref) & set(sd) if tuple(ref[k].shape) != tuple(sd[k].shape))
    if missing or extra or wrong:
        raise TortunerError(f"checkpoint does not match the stock UnifiedVoice: missing {missing[:3]}, "
                            f"unexpected {extra[:3]}, shape mismatches {wrong[:3]}")


def export_checkpoint(cfg: ExportConfig) -> Path:
    run = Path(cfg.run)
    ck = find_checkpoint(run, cfg.step)
    gpt_cfg = GPTConfig(**read_json(run / "run.json")["gpt_config"])
    sd = load_safetensors(ck / "model.safetensors")
    check_stock_layout(sd, gpt_cfg)
    dtype = torch.float16 if cfg.half else torch.float32
    out = Path(cfg.out)
    torch_save({k: v.to(dtype).contiguous() for k, v in sd.items()}, out)
    return out
