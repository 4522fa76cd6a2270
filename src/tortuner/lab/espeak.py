"""espeak-ng speech with controllable "speakers" (voice, variant, pitch, rate): the lab's real-ish speech."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from tortuner.audio.espeak import synthesize
from tortuner.audio.mel import DVAE_SR

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
            "croak", "iven", "john", "linda", "max", "steph", "paul", "robert", "annie", "grandpa", "shelby"]


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str
    pitch: int  # espeak-ng -p, 0..99
    rate: int   # espeak-ng -s, words per minute

    @property
    def name(self) -> str:
        return f"{self.voice}+{self.variant}-p{self.pitch}-s{self.rate}"

    def as_dict(self) -> dict:
        return asdict(self)


def speak(text: str, speaker: Speaker) -> torch.Tensor:
    """espeak-ng speech as a 1-D float tensor at 22.05 kHz (espeak-ng's native rate), deterministic."""
    wav = torch.from_numpy(synthesize(text, DVAE_SR, f"{speaker.voice}+{speaker.variant}", speaker.pitch,
                                      speaker.rate))
    return wav * (0.5 / wav.abs().max().clamp(min=1e-4))  # espeak's level varies by variant: normalise the peak
