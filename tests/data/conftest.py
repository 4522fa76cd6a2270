"""Fixtures for the dataset pipeline: espeak-ng recordings with known speech and silence layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tortuner.audio.espeak import synthesize


@dataclass
class Recording:
    path: Path
    sr: int
    speech: list[tuple[float, float]]  # known speech intervals (s), from espeak-ng's own non-silent samples


def _trimmed(x: np.ndarray) -> np.ndarray:
    nz = np.flatnonzero(np.abs(x) > 1e-3)
    return x[nz[0] : nz[-1] + 1]


@pytest.fixture(scope="session")
def sentences() -> list[np.ndarray]:
    """14 espeak-ng sentences (22.05 kHz, leading/trailing silence trimmed), 2-5 s each."""
    from tortuner.synth.sentences import text_lines

    return [_trimmed(synthesize(t, 22050)) for t in text_lines(14, seed=5, min_words=6, max_words=12)]


def build_recording(path: Path, parts: list[np.ndarray | float], sr: int = 22050, channels: int = 1) -> Recording:
    """Concatenate speech arrays and silences (floats, seconds) into a file; returns the known speech intervals."""
    audio, speech, t = [], [], 0.0
    for p in parts:
        if isinstance(p, float):
            audio.append(np.zeros(int(round(p * sr)), np.float32))
        else:
            audio.append(p.astype(np.float32))
            speech.append((t, t + len(p) / sr))
        t += len(audio[-1]) / sr
    x = np.concatenate(audio)
    sf.write(str(path), np.stack([x] * channels, 1) if channels > 1 else x, sr, subtype="PCM_16")
    return Recording(path, sr, speech)


@pytest.fixture(scope="session")
def long_recording(tmp_path_factory, sentences) -> Recording:
    """~75 s stereo recording: groups of sentences 0.3 s apart, 1.2 s between groups, one lone short sentence
    (too short for a clip), and a 26 s run without any >= 0.5 s silence (must be split at an inner pause)."""
    s = sentences
    parts: list[np.ndarray | float] = [0.8, s[0], 0.3, s[1], 0.3, s[2], 1.2, s[3], 0.25, s[4], 1.2, s[5], 3.0]
    parts += [s[6], 0.3, s[7], 0.2, s[8], 0.35, s[9], 0.2, s[10], 0.3, s[11], 0.2, s[12], 3.0, s[13][: 22050 * 2], 1.0]
    return build_recording(tmp_path_factory.mktemp("rec") / "book.wav", parts, channels=2)


@pytest.fixture(scope="session")
def make_recording():
    """`build_recording` as a fixture (tests folders are not packages)."""
    return build_recording
