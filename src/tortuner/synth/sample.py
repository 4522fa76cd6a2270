"""GPT sampling with TorToiSe's settings, plus the scores every synthetic pair carries (CLVP, GPT log-likelihood).

Sampling goes through the stock `UnifiedVoice.inference_speech` with the KV cache (transformers < 4.56: later
versions silently drop the prompt when sampling with the cache, see tests/synth/test_synth.py), always via
`inference_speech` here, which passes the attention mask the stock method leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.config_args import arg


@dataclass
class SamplingConfig:
    """tortoise.api's defaults for `tts()`."""

    temperature: float = arg(0.8, "GPT sampling temperature")
    top_p: float = arg(0.8, "nucleus-sampling mass")
    repetition_penalty: float = arg(2.0, "repetition penalty")
    length_penalty: float = arg(1.0, "length penalty")
    max_tokens: int = arg(500, "longest generation in codes")


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


def inference_speech(gpt: nn.Module, cond_latent: torch.Tensor, text: torch.Tensor,
                     **generate_kwargs) -> torch.Tensor:
    """`gpt.inference_speech(cond_latent, text, **generate_kwargs)` with its prompt's attention mask given.

    The stock method prompts `generate` with placeholder ids, one per prompt embedding (conditioning latent, start,
    the (B, Lt) text, stop) plus the start-of-speech token: Lt + 4 ids, none of them padding, so the mask is all
    ones. Left out, transformers infers exactly that mask, but warns on stderr that it cannot (TorToiSe's pad token
    is its stop token, the eos), into every caller's progress bars. Given, the samples are the same (test_synth).
    """
    mask = torch.ones(cond_latent.shape[0], text.shape[-1] + 4, dtype=torch.long, device=text.device)
    return gpt.inference_speech(cond_latent, text, attention_mask=mask, **generate_kwargs)


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
    out = inference_speech(gpt, cond_latent.to(device), text[None].to(device), num_return_sequences=n,
                           max_generate_length=max_len, repetition_penalty=cfg.repetition_penalty,
                           length_penalty=cfg.length_penalty, **kwargs)
    return [cut_at_stop(row.cpu(), gpt.start_mel_token) for row in out]


def _sequence_embeddings(gpt: nn.Module, cond_latent: torch.Tensor, text: torch.Tensor,
                         codes: torch.Tensor) -> torch.Tensor:
    """(1 + Lt + 2 + N + 2, model_dim): what `UnifiedVoice.forward` feeds its GPT-2 for one clip.

    The conditioning latent, then [start, text, stop] and [start, codes, stop] with their own learned positions
    (the GPT-2 itself has none), assembled from the stock model's own embedding layers.
    """
    text = F.pad(F.pad(text, (0, 1), value=gpt.stop_text_token), (1, 0), value=gpt.start_text_token)[None]
    codes = F.pad(F.pad(codes, (0, 1), value=gpt.stop_mel_token), (1, 0), value=gpt.start_mel_token)[None]
    text_emb = gpt.text_embedding(text) + gpt.text_pos_embedding(text)
    mel_emb = gpt.mel_embedding(codes) + gpt.mel_pos_embedding(codes)
    return torch.cat([cond_latent.view(1, 1, -1), text_emb, mel_emb], dim=1)[0]


@torch.no_grad()
def teacher_forced(gpt: nn.Module, cond_latents: torch.Tensor, texts: torch.Tensor | list[torch.Tensor],
                   codes: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[float]]:
    """GPT latents (N_i, model_dim) and mean log-likelihood (nats) per code of each sequence, in one forward pass.

    The latents are what TorToiSe feeds its diffusion decoder; the log-likelihood scores each pair. `cond_latents`
    is (1, model_dim) for one voice or (B, model_dim), `texts` one (Lt,) text or B of them. Sequences are padded at
    their *start* and the padding is masked out of attention, so the causal GPT gives each one exactly what
    `UnifiedVoice.forward` gives it alone, whatever the other sequences' texts and lengths (the test compares).
    """
    device = next(gpt.parameters()).device
    b = len(codes)
    texts = texts if isinstance(texts, list) else [texts] * b
    conds = cond_latents.to(device).expand(b, -1) if cond_latents.shape[0] == 1 else cond_latents.to(device)
    seqs = [_sequence_embeddings(gpt, conds[i], texts[i].to(device), codes[i].to(device)) for i in range(b)]
    length = max(s.shape[0] for s in seqs)
    emb = torch.zeros(b, length, seqs[0].shape[1], device=device, dtype=seqs[0].dtype)
    mask = torch.zeros(b, length, dtype=torch.long, device=device)
    for i, s in enumerate(seqs):
        emb[i, length - s.shape[0] :] = s
        mask[i, length - s.shape[0] :] = 1
    hidden = gpt.final_norm(gpt.gpt(inputs_embeds=emb, attention_mask=mask, return_dict=True).last_hidden_state)
    lats, logliks = [], []
    for i, c in enumerate(codes):
        # the hidden state at [start, c_0 .. c_{N-2}] predicts c_0 .. c_{N-1}; the last two positions are dropped
        lat = hidden[i, length - c.numel() - 2 : length - 2]
        logp = gpt.mel_head(lat).float().log_softmax(-1).gather(-1, c.to(device)[:, None])[:, 0]
        lats.append(lat.to("cpu", copy=True))  # a copy: a view would keep the whole batch alive
        logliks.append(float(logp.mean()))
    return lats, logliks


@torch.no_grad()
def clvp_score(clvp: nn.Module, text: torch.Tensor, codes: torch.Tensor) -> float:
    """CLVP text/speech similarity, as tortoise.api ranks its candidates."""
    device = next(clvp.parameters()).device
    if codes.numel() == 0:
        return float("-inf")
    return float(clvp(text[None].to(device), codes[None].to(device), return_loss=False).flatten()[0])
