"""Throughput of `tortuner prepare` without ASR, side by side with its VAD pass alone, on CPU.

Builds a multi-minute recording of espeak-ng speech (sentences separated by random 0.2-1.5 s pauses), then times
(1) VAD alone: streaming decode + 16 kHz resampling + batched silero-vad, and (2) the whole `prepare` (VAD, clip
planning, every filter, 22.05 kHz wavs, manifests and report) with `--asr none`. Prints seconds of audio per second
(x real time) for both and their ratio last. Goal: prepare >= 100x real time on 2 cores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tortuner.audio.espeak import synthesize
from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.prepare_run import run
from tortuner.data.stream import StreamResampler, probe, read_blocks
from tortuner.data.vad import VAD_SR, SpeechDetector
from tortuner.synth.sentences import text_lines


def make_recording(path: Path, minutes: float, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    voices = ("en-us", "en-gb", "en-us+m3")
    pool = [synthesize(t, 22050, voice=voices[i % 3]) for i, t in enumerate(text_lines(40, seed=seed, max_words=30))]
    with sf.SoundFile(str(path), "w", samplerate=22050, channels=1, subtype="PCM_16") as f:
        total = 0.0
        while total < minutes * 60:
            s = pool[int(rng.integers(len(pool)))]
            gap = np.zeros(int(22050 * rng.uniform(0.2, 1.5)), np.float32)
            f.write(np.concatenate([s, gap]))
            total += (len(s) + len(gap)) / 22050
    return total


def vad_only(path: Path) -> int:
    info = probe(path)
    rs = StreamResampler(info.sr, VAD_SR)
    blocks = (rs(b) for b in read_blocks(info, 60.0))
    return len(SpeechDetector().probabilities(blocks))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        seconds = make_recording(tmp / "long.wav", args.minutes)
        SpeechDetector()  # warm-up: model load
        t0 = time.perf_counter()
        vad_only(tmp / "long.wav")
        t_vad = time.perf_counter() - t0
        t0 = time.perf_counter()
        cfg = PrepareConfig(inputs=[str(tmp / "long.wav")], out=str(tmp / "ds"), asr="none")
        report = run(cfg, show_progress=False)
        t_prep = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"audio: {seconds / 60:.1f} min, {report['kept']}/{report['candidates']} clips kept, "
          f"{args.threads} threads")
    print(f"VAD alone:             {seconds / t_vad:7.0f}x real time ({t_vad:.1f} s)")
    print(f"prepare (without ASR): {seconds / t_prep:7.0f}x real time ({t_prep:.1f} s)  "
          f"= {seconds / t_prep:.0f} h of audio per hour")
    print(f"prepare / VAD-alone throughput ratio: {t_vad / t_prep:.2f}")


if __name__ == "__main__":
    main()
