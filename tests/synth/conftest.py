"""A small real-speech manifest (espeak-ng voices) for synthesis; the tiny stock models are tests/conftest.py's."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.speech import espeak_wav
from tortuner.files import write_jsonl


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
