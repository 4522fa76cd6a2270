"""Shared fixtures: real speech that ships with the `tortoise` package, and espeak-ng speech."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the whole suite: the models here are tiny, and on a busy 2-core machine two spinning
    threads per process are many times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tortoise_voices() -> Path:
    """Folder of real human voice clips (one subfolder per speaker) shipped inside the `tortoise` package."""
    return Path(str(importlib.resources.files("tortoise") / "voices"))


@pytest.fixture(scope="session")
def real_clip(tortoise_voices: Path) -> Path:
    return tortoise_voices / "lj" / "1.wav"


def espeak_wav(path: Path, text: str, voice: str = "en-us", pitch: int = 50, rate: int = 160) -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(path), text],
                   check=True, capture_output=True)
    return path
