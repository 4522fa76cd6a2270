"""Read audio files block by block, so hour-long recordings never sit in memory whole.

libsndfile formats (wav, flac, ogg, mp3 with libsndfile >= 1.1, ...) are read directly; anything else (m4a, aac,
wma, ...) is piped through ffmpeg at its native rate. Blocks are mono float32 at the file's own rate.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from tortuner.audio.io import AudioError, check_audio_file, check_not_too_short


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sr: int
    seconds: float
    use_ffmpeg: bool


def probe(path: Path) -> AudioInfo:
    """Sample rate and duration, or an `AudioError` naming the file if it is missing, empty, too short or not
    audio."""
    check_audio_file(path)
    try:
        info = sf.info(str(path))
    except Exception:
        info = None
    if info is not None and info.frames > 0:
        check_not_too_short(path, info.frames, info.samplerate)
        return AudioInfo(path, int(info.samplerate), info.frames / info.samplerate, False)
    try:
        out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
                              "stream=sample_rate:format=duration", "-of", "json", str(path)],
                             capture_output=True, check=True, timeout=120)
        meta = json.loads(out.stdout or b"{}")
        sr = int(meta["streams"][0]["sample_rate"])
        seconds = float(meta.get("format", {}).get("duration", "nan"))
    except FileNotFoundError:
        raise AudioError(f"{path}: not readable by libsndfile and ffmpeg is not installed") from None
    except (subprocess.CalledProcessError, KeyError, IndexError, ValueError, json.JSONDecodeError):
        raise AudioError(f"{path}: not a readable audio file") from None
    if sr <= 0:
        raise AudioError(f"{path}: not a readable audio file (no sample rate)")
    return AudioInfo(path, sr, seconds, True)


def read_blocks(info: AudioInfo, block_seconds: float) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 blocks of about `block_seconds` at `info.sr`."""
    frames = max(1, int(block_seconds * info.sr))
    got = 0
    if not info.use_ffmpeg:
        try:
            with sf.SoundFile(str(info.path)) as f:
                while True:
                    block = f.read(frames, dtype="float32", always_2d=True)
                    if block.shape[0] == 0:
                        break
                    got += block.shape[0]
                    yield _clean(block.mean(axis=1), info.path)
        except sf.LibsndfileError as e:
            raise AudioError(f"{info.path}: corrupt audio after {got / info.sr:.1f} s ({str(e)[:100]})") from None
    else:
        cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", str(info.path), "-f", "f32le", "-ac", "1",
               "-ar", str(info.sr), "-"]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None
            while True:
                raw = proc.stdout.read(frames * 4)
                if not raw:
                    break
                raw = raw[: len(raw) // 4 * 4]
                got += len(raw) // 4
                yield _clean(np.frombuffer(raw, dtype=np.float32).copy(), info.path)
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()
            if proc.wait() != 0 and got == 0:
                last = err[-1][:120] if err else "ffmpeg failed"
                raise AudioError(f"{info.path}: not a readable audio file ({last})")
    if got == 0:
        raise AudioError(f"{info.path}: contains no audio samples")


def _clean(block: np.ndarray, path: Path) -> np.ndarray:
    if not np.all(np.isfinite(block)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return np.clip(block, -1.0, 1.0).astype(np.float32, copy=False)


class StreamResampler:
    """Block-wise resampling with no seams between blocks (soxr's streaming mode)."""

    def __init__(self, sr_in: int, sr_out: int) -> None:
        self.identity = sr_in == sr_out
        self.rs = None if self.identity else soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")

    def __call__(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self.identity:
            return block
        return self.rs.resample_chunk(block, last=last)


class Tape:
    """The file's samples read once, front to back, of which only a moving window is held: `get` reads ahead as far
    as it must, `release` forgets what comes before a point. (Memory: what lies between the two.)"""

    def __init__(self, info: AudioInfo, block_seconds: float = 30.0) -> None:
        self.sr = info.sr
        self._blocks = read_blocks(info, block_seconds)
        self._buf = np.zeros(0, dtype=np.float32)
        self._start = 0  # sample index of _buf[0]
        self._eof = False

    def get(self, start: float, end: float) -> np.ndarray:
        """Samples [start, end) s (fewer when the file ends first: its header promised more than it holds)."""
        a, b = int(start * self.sr), int(end * self.sr)
        while not self._eof and self._start + self._buf.size < b:
            block = next(self._blocks, None)
            if block is None:
                self._eof = True
            else:
                self._buf = np.concatenate([self._buf, block])
        if a < self._start:
            raise ValueError(f"tape: {start:.3f} s was already released")
        return self._buf[a - self._start : max(a, b) - self._start].copy()

    def release(self, before: float) -> None:
        drop = min(self._buf.size, max(0, int(before * self.sr) - self._start))
        self._buf, self._start = self._buf[drop:], self._start + drop
