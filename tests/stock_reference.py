"""What the stock TorToiSe classes compute, for tests to hold tortuner's faster paths to (importable from any test)."""

from __future__ import annotations

import torch


@torch.no_grad()
def stock_latents(gpt: torch.nn.Module, cond_latent: torch.Tensor, text: torch.Tensor,
                  codes: torch.Tensor) -> torch.Tensor:
    """The stock `UnifiedVoice.forward` latents of one clip alone: the reference batched latents are held to."""
    from tortuner.audio.mel import SAMPLES_PER_TOKEN

    return gpt(cond_latent, text[None], torch.tensor([text.numel()]), codes[None],
               torch.tensor([codes.numel() * SAMPLES_PER_TOKEN]), return_latent=True)[0]
