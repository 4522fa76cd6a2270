"""Controlled corruptions of clean speech, used to calibrate and test the clip filters.

Every function is deterministic given `seed`, works on mono float32 numpy arrays and returns the same length.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal as ss
import soundfile as sf

from tortuner.audio.io import resample


def _power(x: np.ndarray) -> float:
    """Active level: mean power of the louder half of 20 ms frames (so pauses do not dilute it)."""
    n = len(x) // 320 * 320
    e = (x[:n].reshape(-1, 320) ** 2).mean(axis=1) if n else np.array([np.mean(x**2)])
    return float(np.mean(np.sort(e)[len(e) // 2 :])) + 1e-12


def add_at_snr(speech: np.ndarray, other: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + other, with `other` scaled to sit `snr_db` below the speech's active level."""
    other = np.resize(other, speech.shape)
    gain = np.sqrt(_power(speech) / (_power(other) * 10 ** (snr_db / 10)))
    out = speech + gain * other
    return (out / max(1.0, np.abs(out).max() / 0.99)).astype(np.float32)


def white_noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def babble_free_noise(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """Pink-ish (1/f) noise, closer to room/street hum than white noise."""
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    return np.fft.irfft(spec / np.sqrt(f), n).astype(np.float32)


def music(n: int, sr: int, seed: int = 0) -> np.ndarray:
    """A synthetic music bed: chords of harmonic notes (0.25-1.2 s, attack/decay envelopes) plus a bass line."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=np.float64)
    t0 = 0
    while t0 < n:
        dur = int(sr * rng.uniform(0.25, 1.2))
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        for semis in (0, 4, 7, 12) if rng.random() < 0.5 else (0, 3, 7, 10):
            f0 = root * 2 ** (semis / 12)
            t = np.arange(dur) / sr
            env = np.minimum(1, t / 0.02) * np.exp(-t / rng.uniform(0.3, 1.5))
            tone = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 6.3)) for k in range(6))
            out[t0 : t0 + dur] += (env * tone)[: n - t0]
        bass = 55 * 2 ** (rng.integers(0, 12) / 12)
        t = np.arange(min(dur, n - t0)) / sr
        out[t0 : t0 + t.size] += 0.8 * np.sin(2 * np.pi * bass * t) * np.exp(-t / 0.8)
        t0 += dur
    return (out / (np.abs(out).max() + 1e-9)).astype(np.float32)


def phone_band(x: np.ndarray, sr: int) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass, 8 kHz sampling, 8-bit mu-law, back to `sr`."""
    sos = ss.butter(6, [300, 3400], btype="bandpass", fs=sr, output="sos")
    y = resample(ss.sosfilt(sos, x).astype(np.float32), sr, 8000)
    mu = 255.0
    q = np.round(np.sign(y) * np.log1p(mu * np.minimum(np.abs(y), 1)) / np.log1p(mu) * 127) / 127
    y = np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu
    return np.resize(resample(y.astype(np.float32), 8000, sr), x.shape).astype(np.float32)


def low_bitrate(x: np.ndarray, sr: int, kbps: int = 16) -> np.ndarray:
    """Round trip through a low-bitrate MP3 (ffmpeg + LAME), which drops everything above a few kHz."""
    with tempfile.TemporaryDirectory() as d:
        src, mp3 = Path(d) / "in.wav", Path(d) / "out.mp3"
        sf.write(str(src), x, sr, subtype="PCM_16")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:a", "libmp3lame", "-b:a", f"{kbps}k",
                        str(mp3)], check=True, capture_output=True)
        y, ysr = sf.read(str(mp3), dtype="float32", always_2d=True)
    y = resample(y.mean(axis=1), ysr, sr)
    return np.resize(y, x.shape).astype(np.float32)


def clip(x: np.ndarray, fraction: float) -> np.ndarray:
    """Hard-clip so that `fraction` of the samples hit the ceiling (gain then clamp at the 1 - fraction quantile)."""
    ceiling = float(np.quantile(np.abs(x), 1 - fraction))
    return (np.clip(x, -ceiling, ceiling) / ceiling * 0.99).astype(np.float32)


def room_impulse(rt60: float, sr: int, seed: int = 0, direct_to_reverb_db: float = 0.0) -> np.ndarray:
    """Synthetic room impulse response: a direct path plus exponentially decaying noise (-60 dB at `rt60` s)."""
    rng = np.random.default_rng(seed)
    n = int(sr * rt60 * 1.2)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60)
    tail[: int(0.003 * sr)] = 0  # first reflections arrive after a few ms
    tail *= np.sqrt(10 ** (-direct_to_reverb_db / 10) / np.sum(tail**2))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverb(x: np.ndarray, sr: int, rt60: float, seed: int = 0) -> np.ndarray:
    y = ss.fftconvolve(x, room_impulse(rt60, sr, seed))[: len(x)]
    return (y / (np.abs(y).max() + 1e-9) * 0.9).astype(np.float32)
