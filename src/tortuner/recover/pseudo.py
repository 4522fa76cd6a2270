"""GPT-guided pseudo-labels for real speech with transcripts (the synthetic -> real gap closer).

Per frame group, the encoder proposes its top-k codes; the chosen sequence maximises
  log p_enc(code) + lambda * log p_GPT(code | text, voice, previous codes)
by iterated conditional modes: start from the encoder's argmax, recompute the GPT's teacher-forced
log-probabilities given the current sequence, re-pick every position among its k candidates, repeat.
Only public material is used: the public GPT, the public speech and its transcripts.
"""

from __future__ import annotations

import random

import torch
from torch import nn

from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.gpt_data import GPTExample, collate, crop_or_pad, encode_text
from tortuner.recover.data import RealClip
from tortuner.synth.shards import Pair


@torch.no_grad()
def gpt_logprobs(gpt: nn.Module, cond_mels: torch.Tensor, text: str, codes: torch.Tensor) -> torch.Tensor:
    """(N, num_codes) teacher-forced log-probabilities of every code at every position."""
    example = GPTExample(encode_text(text), codes, codes.numel() * SAMPLES_PER_TOKEN, cond_mels)
    b = collate([example], gpt.stop_mel_token)
    conds = gpt.get_conditioning(b["cond_mels"])
    _, _, logits = gpt(conds, b["text"], b["text_lengths"], b["codes"], b["wav_lengths"])
    n = codes.numel()
    lp = logits[0, :, :n].float().t().log_softmax(-1)  # (n, vocab)
    return lp[:, : gpt.start_mel_token]


@torch.no_grad()
def pseudo_label(dvae: DiscreteVAE, gpt: nn.Module, clip: RealClip, cond_mels: torch.Tensor, lam: float = 1.0,
                 k: int = 5, iters: int = 3, temperature: float = 1.0) -> tuple[torch.Tensor, float]:
    """(tokens (N,), fraction changed vs the encoder's argmax) for one clip."""
    n = clip.mel.shape[1] // 4
    enc = (dvae.logits(clip.mel[None, :, : 4 * n])[0] / temperature).log_softmax(-1)  # (n, K)
    top = enc.topk(k, -1)
    cur = top.indices[:, 0].clone()
    start = cur.clone()
    for _ in range(iters):
        g = gpt_logprobs(gpt, cond_mels, clip.text, cur)
        score = top.values + lam * g.gather(1, top.indices)
        new = top.indices.gather(1, score.argmax(-1, keepdim=True))[:, 0]
        if torch.equal(new, cur):
            break
        cur = new
    return cur, float((cur != start).float().mean()) if n else 0.0


def pseudo_pairs(dvae: DiscreteVAE, gpt: nn.Module, clips: list[RealClip], cond_samples: int, lam: float, k: int,
                 iters: int, seed: int = 0) -> tuple[list[Pair], float]:
    """Pseudo-labelled real pairs for every clip with a transcript, and the mean fraction the GPT changed."""
    rng, mel = random.Random(seed), DvaeMel()
    by_speaker: dict[str, list[RealClip]] = {}
    for c in clips:
        by_speaker.setdefault(c.speaker, []).append(c)
    out, changed = [], []
    for c in clips:
        if not c.text or c.mel.shape[1] < 8:
            continue
        others = [o for o in by_speaker[c.speaker] if o is not c] or [c]
        cond = mel(torch.stack([crop_or_pad(rng.choice(others).wav, cond_samples, rng) for _ in range(2)]))
        tok, ch = pseudo_label(dvae, gpt, c, cond, lam, k, iters)
        out.append(Pair(c.mel[:, : 4 * tok.numel()], tok, {"text": c.text, "speaker": c.speaker}))
        changed.append(ch)
    return out, float(sum(changed) / max(1, len(changed)))
