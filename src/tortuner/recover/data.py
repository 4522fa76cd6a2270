"""Training material for recovery: crops of synthetic (mel, tokens) pairs and of real-speech mels."""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from tortuner.audio.io import AudioError, load_audio
from tortuner.audio.mel import DVAE_SR, FRAMES_PER_TOKEN, DvaeMel
from tortuner.errors import TortunerError
from tortuner.files import read_jsonl
from tortuner.synth import shards


@dataclass
class Augment:
    """Perturbations of synthetic mels for the renderer gap (log-mel domain, time-stretch-free).

    Only noise by default: a dVAE's tokens are not gain- or tilt-invariant (the lab teacher changes 10 % of its
    tokens for a 0.5 dB gain change, `experiments/token_stability.py`), so label-preserving gain/tilt
    perturbations teach a wrong invariance. Tiny lab world, 480 pairs, distill top-1
    (`experiments/distill_variants.py`): gain 0.3 + tilt 0.3 + noise 0.05 -> 0.396; noise only 0.497; none 0.507.
    """

    gain: float = 0.0     # +- constant offset (log amplitude)
    tilt: float = 0.0     # +- linear spectral tilt across the 80 bands
    noise: float = 0.05   # gaussian noise std

    def __call__(self, mel: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        b = mel.shape[0]
        u = lambda: (torch.rand(b, 1, 1, generator=g) * 2 - 1)  # noqa: E731
        tilt = u() * self.tilt * torch.linspace(-1, 1, mel.shape[1])[None, :, None]
        return mel + u() * self.gain + tilt + self.noise * torch.randn(mel.shape, generator=g)


def load_synth(folder: str | Path, clvp_top: float = 1.0, max_items: int = 0,
               match_speech: str | Path = "") -> list[shards.Pair]:
    """Synthetic pairs (the CLVP view if `clvp_top` < 1); per-band moment-matched to real speech if given."""
    pairs = shards.load_pairs(folder, shards.select(shards.read_index(folder), clvp_top=clvp_top, max_items=max_items))
    if match_speech:
        pairs = match_bands(pairs, [c.mel for c in load_real(match_speech)])
    return pairs


def match_bands(pairs: list[shards.Pair], real: list[torch.Tensor]) -> list[shards.Pair]:
    """Per-band mean/std of the synthetic mels mapped onto real speech's: rendered mels are over-smoothed (lower
    variance) and slightly tilted; matching the moments is a public-only domain adaptation."""
    s, r = torch.cat([p.mel for p in pairs], 1), torch.cat(real, 1)
    ms, ss, mr, sr = s.mean(1, keepdim=True), s.std(1, keepdim=True), r.mean(1, keepdim=True), r.std(1, keepdim=True)
    return [shards.Pair((p.mel - ms) / ss.clamp(min=1e-3) * sr + mr, p.tokens, p.row) for p in pairs]


def pair_batch(pairs: list[shards.Pair], batch: int, crop_tokens: int,
               rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 80, 4C) mel crops aligned with (B, C) tokens; short items padded with -100 targets."""
    mels = torch.zeros(batch, 80, crop_tokens * FRAMES_PER_TOKEN)
    toks = torch.full((batch, crop_tokens), -100, dtype=torch.long)
    for i, p in enumerate(rng.choices(pairs, k=batch)):
        n = min(crop_tokens, p.tokens.numel())
        s = rng.randint(0, p.tokens.numel() - n)
        mels[i, :, : 4 * n] = p.mel[:, 4 * s : 4 * (s + n)]
        mels[i, :, 4 * n :] = p.mel.min()
        toks[i, :n] = p.tokens[s : s + n]
    return mels, toks


@dataclass
class RealClip:
    mel: torch.Tensor   # (80, T)
    text: str
    speaker: str
    wav: torch.Tensor


def load_real(manifest: str | Path, max_items: int = 0) -> list[RealClip]:
    """The clips of a speech manifest (`{"audio", "text", "speaker"}` rows, audio relative to it). A row without
    audio or with unreadable audio is skipped with a line on stderr; none readable is an error."""
    p = Path(manifest)
    p = p / "manifest.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise TortunerError(f"{p}: no speech manifest")
    mel = DvaeMel()
    rows = read_jsonl(p)[: max_items or None]
    out = []
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not isinstance(r.get("audio"), str):
            print(f"skipped: {p}:{i}: no \"audio\" field", file=sys.stderr)
            continue
        try:
            w = load_audio(p.parent / r["audio"], DVAE_SR)
        except AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
            continue
        out.append(RealClip(mel(w[None])[0], str(r.get("text", "")), str(r.get("speaker", "?")), w))
    if not out:
        raise TortunerError(f"{p}: no readable clips")
    return out


def mel_batch(clips: list[torch.Tensor], batch: int, crop_frames: int, rng: random.Random) -> torch.Tensor:
    out = torch.zeros(batch, 80, crop_frames)
    for i, m in enumerate(rng.choices(clips, k=batch)):
        n = min(crop_frames, m.shape[1])
        s = rng.randint(0, m.shape[1] - n)
        out[i, :, :n] = m[:, s : s + n]
        out[i, :, n:] = m.min()
    return out
