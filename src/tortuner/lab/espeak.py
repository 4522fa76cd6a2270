"""espeak-ng speech with controllable "speakers" (voice, variant, pitch, rate): the lab's real-ish speech."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from tortuner.audio.espeak import synthesize
from tortuner.audio.mel import DVAE_SR

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
# espeak-ng's voice variants (`espeak-ng --voices=variant`) except the whispered ones and "Demonic": each is a
# different timbre (formants, voicing, synthesis method), the lab's stand-in for many human speakers.
VARIANTS = ["adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda", "benjamin", "boris",
            "caleb", "david", "Denis", "Diogo", "ed", "edward", "edward2", "Gene", "Gene2", "gustave", "announcer",
            "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "john", "kaukovalta", "Lee", "linda",
            "marcelo", "Marco", "Mario", "max", "Michael", "michel", "miguel", "Mike", "Mr", "Nguyen", "pablo", "paul",
            "pedro", "quincy", "RicishayMax", "RicishayMax2", "RicishayMax3", "rob", "robert", "robosoft", "robosoft2",
            "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "steph", "steph2", "steph3",
            "Storm", "Tweaky", "UniRobot", "zac", "anika", "anikaRobot", "AnxiousAndy", "fast", "f1", "f2", "f3", "f4",
            "f5", "grandpa", "grandma", "croak", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "m1", "m2",
            "m3", "m4", "m5", "m6", "m7", "m8", "norbert", "sandro", "shelby", "travis", "victor"]


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
