"""espeak-ng speech synthesis: the project's source of deterministic, scriptable speech (lab worlds, filter tests)."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import soundfile as sf

from tortuner.audio.io import resample
from tortuner.errors import TortunerError


def synthesize(text: str, sr: int, voice: str = "en-us", pitch: int = 50, rate: int = 160) -> np.ndarray:
    """espeak-ng speech as mono float32 at `sr` (espeak-ng renders 22.05 kHz); same inputs, same samples.

    Read from espeak-ng's stdout, so that many calls can run side by side in threads without temporary files.
    """
    if shutil.which("espeak-ng") is None:
        raise TortunerError("espeak-ng is not installed (apt-get install espeak-ng)")
    out = subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(rate), "--stdout", text],
                         check=True, capture_output=True).stdout
    data, file_sr = sf.read(io.BytesIO(out), dtype="float32")
    return np.ascontiguousarray(resample(data.reshape(len(data), -1).mean(1), file_sr, sr), dtype=np.float32)
