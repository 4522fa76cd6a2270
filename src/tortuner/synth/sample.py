"""GPT sampling with TorToiSe's settings, plus the scores every synthetic pair carries (CLVP, GPT log-likelihood).

Sampling goes through the stock `UnifiedVoice.inference_speech` with the KV cache (transformers < 4.56: later
versions silently drop the prompt when sampling with the cache, see tests/synth/test_sample.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tortuner.audio.mel import SAMPLES_PER_TOKEN
from tortuner.finetune.gpt_data import GPTExample, code_nll, collate


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
def sample_codes(gpt: nn.Module, cond_mels: torch.Tensor, text: torch.Tensor, n: int, cfg: SamplingConfig,
                 greedy: bool = False) -> list[torch.Tensor]:
    """`n` code sequences for one text (Lt,) and one conditioning (k, 80, T), batched in one generate call."""
    prepare_for_sampling(gpt)
    device = next(gpt.parameters()).device
    latent = gpt.get_conditioning(cond_mels[None].to(device))
    kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, top_p=cfg.top_p, temperature=cfg.temperature)
    max_len = min(cfg.max_tokens, gpt.max_mel_tokens - 3)
    out = gpt.inference_speech(latent, text[None].to(device), num_return_sequences=n, max_generate_length=max_len,
                               repetition_penalty=cfg.repetition_penalty, length_penalty=cfg.length_penalty,
                               **kwargs)
    return [cut_at_stop(row.cpu(), gpt.start_mel_token) for row in out]


@torch.no_grad()
def teacher_forced_latents(gpt: nn.Module, cond_mels: torch.Tensor, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """(N, model_dim) GPT latents of `codes`, teacher-forced, which TorToiSe feeds its diffusion decoder."""
    device = next(gpt.parameters()).device
    b = collate([GPTExample(text, codes, codes.numel() * SAMPLES_PER_TOKEN, cond_mels)], gpt.stop_mel_token)
    b = {k: v.to(device) for k, v in b.items()}
    conds = gpt.get_conditioning(b["cond_mels"])
    return gpt(conds, b["text"], b["text_lengths"], b["codes"], b["wav_lengths"], return_latent=True)[0].cpu()


@torch.no_grad()
def code_loglik(gpt: nn.Module, cond_mels: torch.Tensor, text: torch.Tensor, codes: torch.Tensor) -> float:
    """Mean per-token log-likelihood (nats) of `codes` under the GPT, teacher-forced."""
    if codes.numel() == 0:
        return float("nan")
    b = collate([GPTExample(text, codes, codes.numel() * SAMPLES_PER_TOKEN, cond_mels)], gpt.stop_mel_token)
    device = next(gpt.parameters()).device
    nll, count = code_nll(gpt, {k: v.to(device) for k, v in b.items()})
    return -nll / max(count, 1)


@torch.no_grad()
def clvp_score(clvp: nn.Module, text: torch.Tensor, codes: torch.Tensor) -> float:
    """CLVP text/speech similarity, as tortoise.api ranks its candidates."""
    device = next(clvp.parameters()).device
    if codes.numel() == 0:
        return float("-inf")
    return float(clvp(text[None].to(device), codes[None].to(device), return_loss=False).flatten()[0])
