"""A models folder of tiny random-weight stock TorToiSe models: try finetune/export/speak without real weights."""

from __future__ import annotations

from pathlib import Path

import torch

from tortuner.models.checkpoints import save_model_config
from tortuner.models.tortoise import (
    build_clvp,
    build_diffusion,
    build_gpt,
    build_vocoder,
    tiny_clvp_config,
    tiny_diffusion_config,
    tiny_gpt_config,
    tiny_vocoder_config,
)


def make_tiny_models(out: str | Path, num_codes: int = 64, seed: int = 0, released_gpt_keys: bool = False) -> Path:
    """Write autoregressive.pth, clvp2.pth, diffusion_decoder.pth, vocoder.pth and models.json into `out`.

    `released_gpt_keys`: the GPT file also carries the attention buffers (`attn.bias`, `attn.masked_bias`) that the
    released autoregressive.pth has from older transformers, which loading must ignore.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfgs = {"gpt": tiny_gpt_config(num_codes), "clvp": tiny_clvp_config(num_codes),
            "diffusion": tiny_diffusion_config(num_codes), "vocoder": tiny_vocoder_config()}
    gpt = build_gpt(cfgs["gpt"]).state_dict()
    if released_gpt_keys:
        for i in range(cfgs["gpt"].layers):
            gpt[f"gpt.h.{i}.attn.bias"] = torch.ones(1, 1, 8, 8)
            gpt[f"gpt.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(gpt, out / "autoregressive.pth")
    torch.save(build_clvp(cfgs["clvp"]).state_dict(), out / "clvp2.pth")
    torch.save(build_diffusion(cfgs["diffusion"]).state_dict(), out / "diffusion_decoder.pth")
    torch.save({"model_g": build_vocoder(cfgs["vocoder"]).state_dict()}, out / "vocoder.pth")
    save_model_config(out, cfgs)
    return out
