"""Load any common audio file as mono float32 at a chosen rate; write 16-bit wavs atomically."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from tortuner.errors import TortunerError
from tortuner.files import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".wma", ".aiff", ".aif")


class AudioError(TortunerError):
    """A file that is not usable audio (missing, corrupt, empty, silent, unsupported)."""


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode to (frames, channels) float32 with libsndfile, or ffmpeg for formats it lacks (m4a, aac, ...)."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data, int(sr)
    except Exception as sf_error:
        try:
            probe = subprocess.run(
                ["ffmpeg", "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le", "-ac", "1", "-ar", "44100", "-"],
                capture_output=True, check=True, timeout=3600,
            )
        except FileNotFoundError:
            first = str(sf_error).splitlines()[0][:120]
            raise AudioError(f"{path}: cannot decode ({first}); ffmpeg not installed") from None
        except subprocess.CalledProcessError as e:
            msg = e.stderr.decode(errors="replace").strip().splitlines()
            last = msg[-1].removeprefix(f"{path}: ")[:120] if msg else "ffmpeg failed"
            raise AudioError(f"{path}: not a readable audio file ({last})") from None
        data = np.frombuffer(probe.stdout, dtype=np.float32).reshape(-1, 1)
        return data, 44100


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """High-quality (soxr VHQ) resampling of a 1-D float signal."""
    if sr_in == sr_out:
        return wav
    return soxr.resample(wav, sr_in, sr_out, quality="VHQ").astype(np.float32)


MIN_SECONDS = 0.1  # shorter than any word, and than every model's analysis window (a dVAE token is 46 ms)
MAX_CLIP_SECONDS = 600.0  # a clip, whole in memory; long recordings are streamed by `prepare` instead


def load_audio(path: str | os.PathLike, sr: int, allow_silent: bool = False,
               max_seconds: float = MAX_CLIP_SECONDS) -> torch.Tensor:
    """Return the clip as a 1-D float32 tensor in [-1, 1], mono (channel mean), resampled to `sr`.

    Raises `AudioError` with a one-line message naming the file when it is missing, unreadable, empty, shorter
    than `MIN_SECONDS` (a few samples crash STFTs downstream), longer than `max_seconds` (checked before decoding
    where the header tells, so a 3-hour file is refused without being read), silent, or holds NaN/inf samples.
    """
    path = Path(path)
    check_audio_file(path)
    try:
        info = sf.info(str(path))
        header_seconds = info.frames / info.samplerate
    except Exception:  # not a libsndfile format: measured after decoding
        header_seconds = 0.0
    if header_seconds > max_seconds:
        raise _too_long(path, header_seconds, max_seconds)
    data, file_sr = _decode(path)
    if data.shape[0] > max_seconds * file_sr:
        raise _too_long(path, data.shape[0] / file_sr, max_seconds)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no audio samples")
    check_not_too_short(path, data.shape[0], file_sr)
    wav = data.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if not allow_silent and float(np.abs(wav).max()) < 1e-4:
        raise AudioError(f"{path}: audio is silent")
    wav = resample(wav, file_sr, sr)
    return torch.from_numpy(np.clip(wav, -1.0, 1.0))


def check_audio_file(path: Path) -> None:
    """An `AudioError` naming `path` if it is a folder, missing or empty: what every audio reader checks first."""
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")


def check_not_too_short(path: Path, frames: int, sr: float) -> None:
    """An `AudioError` naming `path` if its `frames` at `sr` are under `MIN_SECONDS`."""
    if frames < MIN_SECONDS * sr:
        raise AudioError(f"{path}: too short ({frames} samples, {frames / sr:.3f} s; at least {MIN_SECONDS} s needed)")


def _too_long(path: Path, seconds: float, limit: float) -> AudioError:
    return AudioError(f"{path}: too long for a clip ({seconds / 60:.1f} min, at most {limit / 60:.0f} min); "
                      "split long recordings into clips with `tortuner prepare`")


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds without decoding the whole file (libsndfile formats), else by decoding."""
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:
        data, sr = _decode(Path(path))
        return data.shape[0] / sr


def save_wav(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sr: int) -> None:
    """Write a mono 16-bit PCM wav atomically."""
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().float().numpy()
    wav = np.clip(np.asarray(wav, dtype=np.float32).reshape(-1), -1.0, 1.0)
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), wav, sr, subtype="PCM_16", format="WAV")
        except sf.LibsndfileError as e:  # libsndfile hides the OS error; a full disk is the usual one
            full = shutil.disk_usage(tmp.parent).free < wav.size * 2 + (1 << 16)
            raise OSError(errno.ENOSPC if full else errno.EIO,
                          os.strerror(errno.ENOSPC) if full else f"cannot write audio ({e})", str(path)) from None


def find_audio(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of audio files; missing inputs raise."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS))
        elif p.is_file():
            out.append(p)
        else:
            raise AudioError(f"{p}: no such file or folder")
    return out
