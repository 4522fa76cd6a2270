"""The bad-input corpus of issue 27, made on the fly (nothing binary is committed): broken audio, broken model files.

Each fault is a file a user can really end up with; `support.bad_inputs` runs the verbs against them.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch

SR = 22050


def _tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    """A voiced-looking test signal (harmonics of 140 Hz with a slow envelope), (frames, channels)."""
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * math.pi * 2 * t))
    x = (0.2 * x / np.abs(x).max()).astype(np.float32)
    return np.repeat(x[:, None], channels, 1)


def _wav_bytes(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def _long(seconds: float, sr: int = 8000) -> np.ndarray:
    """Quiet noise with a 2 s voiced burst every minute: long, cheap to write (8 kHz), not silent."""
    x = np.random.default_rng(2).normal(0, 1e-3, (int(seconds * sr), 1)).astype(np.float32)
    burst = _tone(2.0, sr)
    for start in range(0, len(x) - len(burst), 60 * sr):
        x[start : start + len(burst)] += burst
    return x


def _nan(x: np.ndarray, value: float) -> np.ndarray:
    x = x.copy()
    x[len(x) // 2 : len(x) // 2 + 100] = value
    return x


# fault name -> writer of that fault at a path with an audio name. Each is a file a user can really end up with.
AUDIO_FAULTS: dict[str, Callable[[Path], None]] = {
    "empty (0 bytes)": lambda p: p.write_bytes(b""),
    "header only (0 frames)": lambda p: p.write_bytes(_wav_bytes(np.zeros((0, 1), np.float32))),
    "truncated header": lambda p: p.write_bytes(_wav_bytes(_tone(1.0))[:30]),
    "truncated data": lambda p: p.write_bytes(_wav_bytes(_tone(2.0))[:20000]),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(0).bytes(50000)),
    "text under an audio name": lambda p: p.write_text("this is not audio\n" * 100),
    "5 samples": lambda p: p.write_bytes(_wav_bytes(_tone(1.0)[:5])),
    "silent": lambda p: p.write_bytes(_wav_bytes(np.zeros((SR * 2, 1), np.float32))),
    "NaN samples": lambda p: p.write_bytes(_wav_bytes(_nan(_tone(2.0), np.nan), subtype="FLOAT")),
    "inf samples": lambda p: p.write_bytes(_wav_bytes(_nan(_tone(2.0), np.inf), subtype="FLOAT")),
    "8 channels": lambda p: p.write_bytes(_wav_bytes(_tone(2.0, channels=8))),
    "192 kHz": lambda p: p.write_bytes(_wav_bytes(_tone(2.0, sr=192000), sr=192000)),
    "8 kHz": lambda p: p.write_bytes(_wav_bytes(_tone(2.0, sr=8000), sr=8000)),
    "a folder with an audio name": lambda p: p.mkdir(),
    "11 minutes": lambda p: p.write_bytes(_wav_bytes(_long(11 * 60), sr=8000)),
}
# faults a verb may accept (usable audio, or nothing to say); every other one must be named on a line of its own
USABLE = {"8 channels", "192 kHz", "8 kHz", "truncated data"}
# too long to load whole as a clip; `prepare` streams it and keeps what is speech
LONG = "11 minutes"
# a verb that searches folders recursively searches a folder with an audio name too: nothing to say about it
SEARCHED = {"a folder with an audio name"}


def write_audio_faults(folder: Path) -> dict[str, Path]:
    """Every audio fault under its own `bad_NN.wav` in `folder`; returns fault name -> path."""
    return _write_each(folder, AUDIO_FAULTS, "bad_{:02d}.wav")


class _Evil:
    """Unpickling this runs `touch MARKER`; a loader that honours it runs code from a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_model_faults(folder: Path, good: dict[str, torch.Tensor]) -> dict[str, Path]:
    """Broken copies of a real state dict `good` (a dVAE's or a GPT's): fault name -> path. The pickle fault
    creates `folder/PWNED` if it is ever unpickled with code execution."""
    folder.mkdir(parents=True, exist_ok=True)
    k0 = next(iter(good))
    faults: dict[str, Callable[[Path], None]] = {
        "missing keys": lambda p: torch.save({k: v for k, v in good.items() if k != k0}, p),
        "wrong shapes": lambda p: torch.save({k: (torch.zeros(3, 3) if k == k0 else v) for k, v in good.items()}, p),
        "not a state dict": lambda p: torch.save([1, 2, 3], p),
        "truncated": lambda p: p.write_bytes(_saved(good)[:2000]),
        "random bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(4096)),
        "empty (0 bytes)": lambda p: p.write_bytes(b""),
        "code-running pickle": lambda p: torch.save({"weights": _Evil(folder / "PWNED")}, p),
        "code-running raw pickle": lambda p: p.write_bytes(pickle.dumps({"weights": _Evil(folder / "PWNED")})),
        "a folder with a model name": lambda p: p.mkdir(),
    }
    return _write_each(folder, faults, "model_{:02d}.pth")


def _write_each(folder: Path, faults: dict[str, Callable[[Path], None]], name: str) -> dict[str, Path]:
    """Each writer's fault under `folder / name.format(i)`; returns fault name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (fault, write) in enumerate(faults.items()):
        out[fault] = folder / name.format(i)
        write(out[fault])
    return out


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
