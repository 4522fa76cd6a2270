"""GPT-guided tokenization: the dVAE tokens of transcribed speech, read with the public GPT as a prior.

A tokenizer recovered from synthetic pairs is unsure on real speech: the hidden tokenizer's code is in its top-5 far
more often than at its top-1. TorToiSe's public GPT knows which codes follow which, for this text and this voice. So
for a clip with a transcript, pick the whole sequence

    argmax_c  sum_t [ log p_enc(c_t | mel) + lam * log p_GPT(c_t | text, voice, c_<t) ]

by a beam search over the encoder's top-k codes at each position, the GPT run incrementally with its KV cache exactly
as `UnifiedVoice.forward` lays out a training example ([conditioning, start, text, stop, start, codes...]; positions
from the stock learned tables), so the GPT scores each prefix as it scored its training data. Many clips are decoded
at once (clips x beams rows, left-padded and attention-masked).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache


def _prefix(gpt: nn.Module, cond_latent: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(1 + Lt + 2 + 1, D): conditioning latent, [start, text, stop], then the start-of-codes token."""
    dev = cond_latent.device
    t = F.pad(F.pad(text.to(dev), (0, 1), value=gpt.stop_text_token), (1, 0), value=gpt.start_text_token)[None]
    start = torch.tensor([[gpt.start_mel_token]], device=dev)
    return torch.cat([cond_latent.view(1, 1, -1), gpt.text_embedding(t) + gpt.text_pos_embedding(t),
                      gpt.mel_embedding(start) + gpt.mel_pos_embedding(start)], 1)[0]


@torch.no_grad()
def guided_tokens(gpt: nn.Module, enc_logp: list[torch.Tensor], texts: list[torch.Tensor],
                  cond_latents: torch.Tensor, k: int = 5, beams: int = 4, lam: float = 1.0) -> list[torch.Tensor]:
    """Best code sequence (N_i,) per clip.

    enc_logp[i]: (N_i, K) encoder log-probabilities of clip i's codes; texts[i]: (Lt_i,) BPE ids;
    cond_latents: (B, D) `gpt.get_conditioning` of each clip's voice. With lam = 0 (or k = 1) this is the encoder's
    argmax; with a flat encoder and one beam, the GPT's greedy reading.
    """
    b, dev = len(enc_logp), cond_latents.device
    kk = min(k, enc_logp[0].shape[1])
    lengths = torch.tensor([e.shape[0] for e in enc_logp])
    n_max = int(lengths.max())
    cand = torch.zeros(b, n_max, kk, dtype=torch.long)   # the encoder's top-k codes at each position
    cscore = torch.zeros(b, n_max, kk)                   # and their log-probabilities (0 past a clip's end)
    for i, e in enumerate(enc_logp):
        top = e.float().topk(kk, -1)
        cand[i, : e.shape[0]], cscore[i, : e.shape[0]] = top.indices, top.values
    prefixes = [_prefix(gpt, cond_latents[i], texts[i]) for i in range(b)]
    lp = max(p.shape[0] for p in prefixes)
    emb = torch.zeros(b, lp, prefixes[0].shape[1], device=dev)
    mask = torch.zeros(b, lp, dtype=torch.long, device=dev)
    for i, p in enumerate(prefixes):
        emb[i, lp - p.shape[0]:], mask[i, lp - p.shape[0]:] = p, 1
    emb, mask = emb.repeat_interleave(beams, 0), mask.repeat_interleave(beams, 0)
    cache = DynamicCache()
    out = gpt.gpt(inputs_embeds=emb, attention_mask=mask, past_key_values=cache, use_cache=True, return_dict=True)
    hidden = out.last_hidden_state[:, -1]
    score = torch.full((b, beams), float("-inf"))
    score[:, 0] = 0.0  # all beams start identical: only one may be expanded
    paths = torch.zeros(b, beams, n_max, dtype=torch.long)
    positions = gpt.mel_pos_embedding.emb.weight
    rows = torch.arange(b)[:, None]
    for t in range(n_max):
        g = gpt.mel_head(gpt.final_norm(hidden)).float().log_softmax(-1).cpu().view(b, beams, -1)
        c = cand[:, t]
        total = score[:, :, None] + cscore[:, t, None, :] + lam * g.gather(2, c[:, None, :].expand(b, beams, kk))
        best, idx = total.view(b, beams * kk).topk(beams, -1)
        live = (t < lengths)[:, None]   # clips already complete keep their beams unchanged
        src = torch.where(live, idx // kk, torch.arange(beams)[None, :])
        choice = torch.where(live, c.gather(1, idx % kk), 0)
        score = torch.where(live, best, score)
        paths = paths[rows, src]
        paths[:, :, t] = torch.where(live, choice, paths[:, :, t])
        if t == n_max - 1:
            break
        order = (rows * beams + src).reshape(-1).to(dev)
        cache.reorder_cache(order)
        mask = torch.cat([mask[order], torch.ones(b * beams, 1, dtype=torch.long, device=dev)], 1)
        step = gpt.mel_embedding(choice.reshape(-1).to(dev)) + positions[t + 1]
        out = gpt.gpt(inputs_embeds=step[:, None], attention_mask=mask, past_key_values=cache, use_cache=True,
                      return_dict=True)
        hidden = out.last_hidden_state[:, -1]
    pick = score.argmax(1)
    return [paths[i, pick[i], : lengths[i]].clone() for i in range(b)]
