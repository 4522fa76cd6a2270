"""espeak-ng speech for tests: one wav per line of text, in the voice and prosody asked for."""

from __future__ import annotations

import subprocess
from pathlib import Path


def espeak_wav(path: Path, text: str, voice: str = "en-us", pitch: int = 50, rate: int = 175) -> Path:
    """Write `text` spoken by espeak-ng to `path` (22.05 kHz wav). `pitch` (0-99) and `rate` (words per minute)
    default to espeak-ng's own, so a call without them sounds as `espeak-ng -v VOICE` does."""
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(path), text],
                   check=True, capture_output=True)
    return path
