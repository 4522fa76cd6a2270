"""GPT sampling with TorToiSe's settings, plus the scores every synthetic pair carries (CLVP, GPT log-likelihood).

Sampling goes through the stock `UnifiedVoice.inference_speech` with the KV cache (transformers < 4.56: later
versions silently drop the prompt when sampling with the cache, see tests/synth/test_sample.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tortuner.audio.mel import SAMPLES_PER_TOKEN


@dataclass
class SamplingConfig:
    """tortoise.api's defaults for `tts()`."""

    temperature: float = 0.8
    top_p: float = 0.8
    repetition_penalty: float = 2.0
    length_penalty: float = 1.0
    max_tokens: int = 500


def prepare_for_sampling(gpt: nn.Module) -> nn.Module:
    """Build the stock inference wrapper with KV cache once (idempotent)."""
    if getattr(gpt, "inference_model", None) is None or not getattr(gpt, "_tortuner_kv", False):
        gpt.post_init_gpt2_config(kv_cache=True)
        gpt._tortuner_kv = True
    return gpt.eval()


def cut_at_stop(codes: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Codes before the first stop (or any non-code, e.g. a stray start) token: the GPT's own end of speech."""
    stops = (codes >= num_codes).nonzero()
    return codes[: int(stops[0])] if len(stops) else codes


@torch.no_grad()
def sample_codes(gpt: nn.Module, cond_latent: torch.Tensor, text: torch.Tensor, n: int, cfg: SamplingConfig,
                 greedy: bool = False) -> list[torch.Tensor]:
    """`n` code sequences for one text (Lt,) and one voice, batched in one generate call.

    `cond_latent` (1, model_dim) is `gpt.get_conditioning(cond_mels[None])`: computed once per voice and shared with
    `teacher_forced`, since the conditioning encoder costs more than the GPT itself at the lab's sizes.
    """
    prepare_for_sampling(gpt)
    device = next(gpt.parameters()).device
    kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, top_p=cfg.top_p, temperature=cfg.temperature)
    max_len = min(cfg.max_tokens, gpt.max_mel_tokens - 3)
    out = gpt.inference_speech(cond_latent.to(device), text[None].to(device), num_return_sequences=n,
                               max_generate_length=max_len, repetition_penalty=cfg.repetition_penalty,
                               length_penalty=cfg.length_penalty, **kwargs)
    return [cut_at_stop(row.cpu(), gpt.start_mel_token) for row in out]


@torch.no_grad()
def teacher_forced(gpt: nn.Module, cond_latent: torch.Tensor, text: torch.Tensor,
                   codes: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float]]:
    """GPT latents (N_i, model_dim) and mean log-likelihood (nats) per code of each sequence, in one forward pass.

    The latents are what TorToiSe feeds its diffusion decoder; the log-likelihood scores each pair. All sequences
    share the text and voice and are padded at their end only, so the causal GPT gives each one exactly what it would
    give it alone.
    """
    device = next(gpt.parameters()).device
    n = torch.tensor([c.numel() for c in codes])
    padded = torch.full((len(codes), int(n.max())), gpt.stop_mel_token, dtype=torch.long)
    for i, c in enumerate(codes):
        padded[i, : c.numel()] = c
    lat = gpt(cond_latent.to(device).expand(len(codes), -1), text[None].expand(len(codes), -1).to(device),
              torch.full((len(codes),), text.numel(), device=device), padded.to(device),
              (n * SAMPLES_PER_TOKEN).to(device), return_latent=True)
    logp = gpt.mel_head(lat).float().log_softmax(-1).gather(-1, padded[..., None].to(device))[..., 0].cpu()
    lat = lat.cpu()
    return [lat[i, : n[i]] for i in range(len(codes))], [float(logp[i, : n[i]].mean()) for i in range(len(codes))]


@torch.no_grad()
def clvp_score(clvp: nn.Module, text: torch.Tensor, codes: torch.Tensor) -> float:
    """CLVP text/speech similarity, as tortoise.api ranks its candidates."""
    device = next(clvp.parameters()).device
    if codes.numel() == 0:
        return float("-inf")
    return float(clvp(text[None].to(device), codes[None].to(device), return_loss=False).flatten()[0])
