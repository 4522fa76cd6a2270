"""GPT-guided pseudo-labels for real speech with transcripts (the synthetic -> real gap closer).

The encoder, trained on synthetic pairs, is right on about half of real speech's tokens but has the right code in its
top-5 most of the time. The public GPT, conditioned on the transcript and the speaker's voice, says which candidates
fit: each clip's labels are the sequence maximising

    sum_t [ log p_enc(c_t | mel) + lambda * log p_GPT(c_t | text, voice, c_<t) ]

found by beam search over the encoder's top-k codes (`models.guided`; it replaced iterated conditional modes, which
re-picked positions one at a time given the others and reached 0.616 of the hidden teacher's public-speech tokens
where the beam reaches 0.622 on the tiny world, experiments/guided_labels.py). Only public material is used: the
public GPT, the public speech and its transcripts.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn
from tqdm import tqdm

from tortuner.audio.mel import DvaeMel
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.gpt_data import crop_or_pad, encode_text
from tortuner.models.guided import guided_tokens
from tortuner.recover.data import RealClip
from tortuner.synth.shards import Pair


@torch.no_grad()
def conditioning_latents(gpt: nn.Module, clips: list[RealClip], cond_samples: int, seed: int = 0) -> torch.Tensor:
    """(N, D) the GPT's conditioning of each clip: two random crops of other clips of its speaker (as in training)."""
    rng, mel = random.Random(seed), DvaeMel()
    by_speaker: dict[str, list[RealClip]] = {}
    for c in clips:
        by_speaker.setdefault(c.speaker, []).append(c)
    out = []
    for c in clips:
        others = [o for o in by_speaker[c.speaker] if o is not c] or [c]
        conds = mel(torch.stack([crop_or_pad(rng.choice(others).wav, cond_samples, rng) for _ in range(2)]))
        out.append(gpt.get_conditioning(conds[None])[0])
    return torch.stack(out)


def pseudo_clips(clips: list[RealClip]) -> list[RealClip]:
    """The clips that get pseudo-labels: those with a transcript and at least two tokens of mel."""
    return [c for c in clips if c.text and c.mel.shape[1] >= 8]


def labelled_pairs(clips: list[RealClip], labels: list[torch.Tensor]) -> list[Pair]:
    """`pseudo_clips(clips)` as pairs with `labels` (one (T/4,) tensor each): what `pseudo_pairs` returns, rebuilt from
    its labels alone (a resumed `recover recon` keeps only those)."""
    texted = pseudo_clips(clips)
    return [Pair(c.mel[:, : 4 * (c.mel.shape[1] // 4)], t, {"text": c.text, "speaker": c.speaker})
            for c, t in zip(texted, labels)]


@torch.no_grad()
def pseudo_pairs(dvae: DiscreteVAE, gpt: nn.Module, clips: list[RealClip], cond_samples: int, lam: float = 1.0,
                 k: int = 5, beams: int = 4, seed: int = 0, batch: int = 32,
                 labelled: dict[int, torch.Tensor] | None = None,
                 on_batch: Callable[[dict[int, torch.Tensor]], None] | None = None) -> tuple[list[Pair], float]:
    """Pseudo-labelled real pairs for every clip with a transcript, and the fraction of labels the GPT changed
    (against the encoder's argmax).

    Labelling the small world's real speech takes minutes, so it can be resumed: `labelled` holds the labels of an
    interrupted call ({index in `pseudo_clips(clips)`: (N,) codes}), whose batches are not searched again, and
    `on_batch` receives that dict, grown, after each batch (a clip's label does not depend on its batch, nor on any
    random state but `seed`'s: a resumed call returns what an uninterrupted one does)."""
    texted = pseudo_clips(clips)
    latents = conditioning_latents(gpt, texted, cond_samples, seed)
    mels = [c.mel[:, : 4 * (c.mel.shape[1] // 4)] for c in texted]
    enc = [dvae.eval().logits(m[None])[0].log_softmax(-1) for m in mels]
    order = sorted(range(len(texted)), key=lambda i: enc[i].shape[0])
    done = dict(labelled or {})
    for j in tqdm(range(0, len(order), batch), desc="pseudo-labels", unit="batch", leave=False):
        idx = order[j : j + batch]
        if all(i in done for i in idx):
            continue
        found = guided_tokens(gpt, [enc[i] for i in idx], [encode_text(texted[i].text) for i in idx], latents[idx],
                              k, beams, lam)
        done.update(zip(idx, found))
        if on_batch is not None:
            on_batch(done)
    labels = [done[i] for i in range(len(texted))]
    changed = sum(int((t != e.argmax(-1)).sum()) for t, e in zip(labels, enc)) / max(1, sum(e.shape[0] for e in enc))
    return labelled_pairs(clips, labels), float(changed)
