"""Tiny random-weight stock TorToiSe models in a models folder, and a small real-speech manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.tiny_models import make_tiny_models
from tortuner.files import write_jsonl

NUM_CODES = 64


def espeak_wav(path: Path, text: str, voice: str = "en-us") -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    return make_tiny_models(tmp_path_factory.mktemp("models"), NUM_CODES)


@pytest.fixture(scope="session")
def tiny_speech(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    (d / "wavs").mkdir()
    rows = []
    for i, (voice, text) in enumerate([("en-us", "The quick brown fox jumps over the lazy dog."),
                                       ("en-gb", "A small boat drifted slowly across the lake."),
                                       ("en-us", "Every morning she walks to the old market.")]):
        espeak_wav(d / "wavs" / f"c{i}.wav", text, voice=voice)
        rows.append({"audio": f"wavs/c{i}.wav", "text": text, "speaker": voice, "duration": 2.0})
    write_jsonl(d / "manifest.jsonl", rows)
    return d
