"""The lab's renderer: GPT latents (+ conditioning) -> 24 kHz univnet mel.

It plays the part of TorToiSe's diffusion decoder (whose input is also the GPT's latents of teacher-forced codes
and a conditioning clip, and whose output is the univnet mel the vocoder turns into audio), as a small
deterministic convolutional network. It never sees the teacher dVAE's decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.audio.mel import DVAE_SR, FRAMES_PER_TOKEN, UNIVNET_SR


@dataclass
class RendererConfig:
    latent_dim: int = 256     # the GPT's model_dim
    channels: int = 192
    blocks: int = 4
    n_mels: int = 100
    cond_channels: int = 80
    advance: float = 0.0      # univnet frames the output is moved earlier (set by `fit_advance` after training)


def output_frames(num_codes: int) -> int:
    """Univnet-mel frames for `num_codes` codes, as TorToiSe's diffusion decoder computes it."""
    return num_codes * FRAMES_PER_TOKEN * UNIVNET_SR // DVAE_SR


class _Block(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(c, c, 5, padding=2 * dilation, dilation=dilation)
        self.norm = nn.GroupNorm(1, c)
        self.proj = nn.Conv1d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(F.gelu(self.norm(self.conv(x))))


class Renderer(nn.Module):
    def __init__(self, cfg: RendererConfig = RendererConfig()):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.latent_in = nn.Conv1d(cfg.latent_dim, c, 3, padding=1)
        self.cond_enc = nn.Sequential(nn.Conv1d(cfg.cond_channels, c, 5, padding=2, stride=2), nn.GELU(),
                                      nn.Conv1d(c, c, 5, padding=2, stride=2))
        self.blocks = nn.Sequential(*[_Block(c, 2 ** (i % 3)) for i in range(cfg.blocks)])
        self.out = nn.Conv1d(c, cfg.n_mels, 1)

    def forward(self, latents: torch.Tensor, cond_mels: torch.Tensor) -> torch.Tensor:
        """latents (B, N, latent_dim), cond_mels (B, k, 80, T) -> mel (B, n_mels, output_frames(N))."""
        return shift_frames(self.unshifted(latents, cond_mels), self.cfg.advance)

    def unshifted(self, latents: torch.Tensor, cond_mels: torch.Tensor) -> torch.Tensor:
        """The network's output before the fitted `advance` (what training and `fit_advance` see)."""
        b, k = cond_mels.shape[:2]
        cond = self.cond_enc(cond_mels.flatten(0, 1)).mean(-1).view(b, k, -1).mean(1)  # speaker vector (B, C)
        x = self.latent_in(latents.transpose(1, 2)) + cond[:, :, None]
        x = F.interpolate(x, size=output_frames(latents.shape[1]), mode="linear", align_corners=False)
        return self.out(self.blocks(x))


def shift_frames(mel: torch.Tensor, advance: float) -> torch.Tensor:
    """mel (..., T) read `advance` frames later (linear interpolation, edges held): out[t] = mel[t + advance]."""
    if not advance:
        return mel
    t = mel.shape[-1]
    pos = (torch.arange(t, device=mel.device) + advance).clamp(0, t - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo).to(mel.dtype)
    return mel[..., lo] * (1 - w) + mel[..., hi] * w


@torch.no_grad()
def fit_advance(model: Renderer, items: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                grid: tuple[float, ...] = tuple(x / 8 for x in range(-12, 13))) -> float:
    """The output shift (frames) with the least L1 to the real mels of `items` (latents, cond_mels, target).

    A small regression renderer learns its timing only approximately: trained on aligned targets, the tiny lab
    renderer still came out ~0.6 frames late on held-out speech, and the world's teacher then re-read only 46 %
    of the rendered tokens instead of 60 %. Measured on the renderer's own training data (no tokenizer involved).
    """
    errs = {}
    outs = [(model.unshifted(lat[None], cond[None])[0], target) for lat, cond, target in items]
    for a in grid:
        errs[a] = 0.0
        for o, t in outs:
            n = min(o.shape[1], t.shape[1])
            errs[a] += float((shift_frames(o, a)[:, :n] - t[:, :n]).abs().mean()) / len(outs)
    return min(errs, key=errs.get)
