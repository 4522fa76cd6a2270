"""GPT-guided training tokens: read each fine-tuning clip's tokens with the GPT about to be fine-tuned as a prior.

A recovered dVAE's argmax is right on only about half of real speech tokens, though the right code is usually among
its top few (docs/recovery.md). A fine-tuning clip comes with its transcript and its speaker's other clips, which is
exactly what the GPT conditions on, so the GPT can say which of the encoder's candidates fits: `models.guided`
beam-searches encoder log-probability + lambda x GPT log-probability. The GPT only reorders the dVAE's own top-k
candidates, and the result is cached like plain tokens (the cache file names the GPT and the search settings).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tortuner.audio.mel import DvaeMel
from tortuner.models.gpt_data import crop_or_pad, encode_text
from tortuner.models.guided import guided_tokens


@dataclass
class Guide:
    """The GPT as a prior over training tokens, with the beam-search settings and how conditioning is drawn."""

    gpt: nn.Module
    name: str              # identifies the GPT weights in the cache key (e.g. a sha256 prefix of its file)
    cond_samples: int
    num_cond: int = 2
    k: int = 5
    beams: int = 4
    lam: float = 1.0
    batch: int = 16        # clips decoded together (x beams rows)

    def key(self) -> str:
        return f"guided-{self.name}-k{self.k}-b{self.beams}-l{self.lam:g}-c{self.cond_samples}x{self.num_cond}"

    @torch.no_grad()
    def tokens(self, audio: list[Path], texts: list[str], speakers: list[str], logprobs: list[torch.Tensor],
               voices: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
        """Guided tokens (N_i,) of clips given their encoder log-probabilities (N_i, K); `voices[speaker]` holds
        22.05 kHz clips of each speaker to condition on (a clip's own speaker; seeded by its file name)."""
        mel, dev = DvaeMel(), next(self.gpt.parameters()).device
        latents = []
        for path, speaker in zip(audio, speakers):
            rng = random.Random(f"guide:{Path(path).name}")
            pool = voices[speaker]
            wavs = [crop_or_pad(pool[rng.randrange(len(pool))], self.cond_samples, rng) for _ in range(self.num_cond)]
            latents.append(self.gpt.get_conditioning(mel(torch.stack(wavs))[None].to(dev))[0])
        order = sorted(range(len(audio)), key=lambda i: logprobs[i].shape[0])
        out: list[torch.Tensor | None] = [None] * len(audio)
        for j in range(0, len(order), self.batch):
            idx = order[j : j + self.batch]
            found = guided_tokens(self.gpt, [logprobs[i] for i in idx], [encode_text(texts[i]) for i in idx],
                                  torch.stack([latents[i] for i in idx]), self.k, self.beams, self.lam)
            for i, tok in zip(idx, found):
                out[i] = tok
        return out  # type: ignore[return-value]
