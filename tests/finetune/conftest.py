"""A tiny dVAE and an espeak-ng dataset in `tortuner prepare`'s layout (the tiny stock models: tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from support.speech import espeak_wav
from tortuner.models.checkpoints import save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig

CODES = 64  # as the session's `tiny_models` (tests/conftest.py)
RATE = 170  # espeak-ng words per minute
LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore.",
    "A journey of a thousand miles begins with one step.",
    "Birds of a feather flock together, they say.",
    "Every cloud has a silver lining.",
    "Practice makes perfect, so keep going.",
    "Time flies when you are having fun.",
    "Actions speak louder than words.",
]


def make_dataset(d: Path) -> Path:
    """8 espeak clips of 2 speakers; 6 train, 2 val; clips.jsonl carries the speakers."""
    (d / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, line in enumerate(LINES):
        spk, voice, pitch = ("anna", "en-us", 70) if i % 2 == 0 else ("ben", "en-gb", 30)
        espeak_wav(d / "wavs" / f"c{i}.wav", line, voice=voice, pitch=pitch, rate=RATE)
        rows.append({"audio": f"wavs/c{i}.wav", "text": line, "speaker": spk})
    (d / "train.txt").write_text("".join(f"{r['audio']}|{r['text']}\n" for r in rows[:6]))
    (d / "val.txt").write_text("".join(f"{r['audio']}|{r['text']}\n" for r in rows[6:]))
    (d / "clips.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


@pytest.fixture(scope="session")
def tiny_dvae(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("dvae") / "dvae.pth"
    save_dvae(DiscreteVAE(DVAEConfig(num_tokens=CODES, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)), path)
    return path


@pytest.fixture(scope="session")
def espeak_dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))
