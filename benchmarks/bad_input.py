"""Every verb that reads user files, against every bad input of issue 27 (the table of docs/reliability.md).

Each cell runs the real CLI once on a fresh folder holding good items and one bad one, and passes when there is no
traceback, the bad item is named on one line, the good items are still processed, and the exit status is right.
The corpus is generated here (`tests/support/bad_inputs.py`), nothing binary is committed. About 3 min on 2 cores.

    python benchmarks/bad_input.py [--only tokenize,prepare,...] [--long]

`--long` adds the memory row: `prepare` (streaming) on a 3-hour recording against a 10-minute one of the same
make (quiet noise, one real 7 s sentence a minute), peak resident memory of each run (a few minutes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the corpus and runner are test support

from support.bad_corpus import AUDIO_FAULTS, write_audio_faults, write_model_faults  # noqa: E402
from support.bad_inputs import (  # noqa: E402
    AUDIO_VERBS,
    LIST_FAULTS,
    MODEL_VERBS,
    OUTPUT_FAULTS,
    OUTPUT_VERBS,
    CannotMount,
    list_case,
    make_kit,
    model_case,
    output_case,
)


def long_recording(path: Path, seconds: int, speech: Path, sr: int = 16000) -> Path:
    """Quiet noise with one real sentence every minute, written in 10-minute blocks (16-bit, 16 kHz)."""
    import numpy as np
    import soundfile as sf
    import soxr

    wav, wsr = sf.read(str(speech), dtype="float32")
    wav = soxr.resample(wav, wsr, sr).astype(np.float32)
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16") as f:
        for start in range(0, seconds, 600):
            n = min(600, seconds - start)
            block = rng.normal(0, 1e-3, n * sr).astype(np.float32)
            for m in range(0, n - 10, 60):
                block[m * sr : m * sr + len(wav)] += wav
            f.write(block)
    return path


def peak_memory(argv: list[str]) -> tuple[float, float]:
    """(peak resident MB, seconds) of `tortuner ARGV` in a fresh process."""
    import subprocess
    import time

    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "tortuner.cli", *argv],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024, time.perf_counter() - t


def long_rows(root: Path, speech: Path) -> None:
    print("\n| recording | prepare peak memory | wall time | kept clips |\n|---|---|---|---|")
    for label, seconds in (("10 minutes", 600), ("3 hours", 3 * 3600)):
        d = root / "long" / str(seconds)
        d.mkdir(parents=True)
        rec = long_recording(d / "rec.wav", seconds, speech)
        mb, wall = peak_memory(["prepare", str(rec), "--out", str(d / "ds"), "--asr", "none", "--min-seconds", "3",
                                "--max-speaker-change", "off"])
        kept = sum(1 for _ in (d / "ds" / "train.txt").open()) + sum(1 for _ in (d / "ds" / "val.txt").open())
        print(f"| {label} ({rec.stat().st_size / 1e6:.0f} MB wav) | {mb:.0f} MB | {wall:.0f} s | {kept} |",
              flush=True)
        rec.unlink()


def torch_state(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _cell(v) -> str:
    """A verdict as a markdown table cell."""
    return ("ok: " if v.ok else "**FAIL**: ") + v.cell.replace("|", "\\|")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated verbs (default: all)")
    ap.add_argument("--long", action="store_true", help="also measure prepare's memory on a 3-hour recording")
    args = ap.parse_args()
    verbs = [v for v in AUDIO_VERBS if not args.only or v in args.only.split(",")]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kit = make_kit(root / "kit")
        print("| audio fault | " + " | ".join(verbs) + " |")
        print("|---" * (len(verbs) + 1) + "|")
        for fault in AUDIO_FAULTS:
            cells = []
            for verb in verbs:
                d = root / "cases" / f"{verb}-{fault}".replace(" ", "_")
                bad = write_audio_faults(d / "corpus")[fault]
                v = AUDIO_VERBS[verb](kit, d, bad, fault)
                failures += not v.ok
                cells.append(_cell(v))
            print(f"| {fault} | " + " | ".join(cells) + " |", flush=True)
        print("\n| dataset-list fault (finetune) | result |\n|---|---|")
        for fault in LIST_FAULTS:
            v = list_case(kit, root / "lists" / fault.replace(" ", "_"), fault)
            failures += not v.ok
            print(f"| {fault} | {_cell(v)} |", flush=True)
        print("\n| model-file fault | " + " | ".join(MODEL_VERBS) + " |\n" + "|---" * (len(MODEL_VERBS) + 1) + "|")
        names = list(write_model_faults(root / "probe", torch_state(kit.dvae)))
        for fault in names:
            cells = []
            for verb in MODEL_VERBS:
                d = root / "models" / f"{verb}-{fault}".replace(" ", "_")
                source = kit.dvae if "dvae" in verb else kit.models / "autoregressive.pth"
                bad = write_model_faults(d / "corpus", torch_state(source))[fault]
                v = model_case(verb, kit, d, bad)
                failures += not v.ok
                cells.append(_cell(v))
            print(f"| {fault} | " + " | ".join(cells) + " |", flush=True)
        print("\n| output fault | " + " | ".join(OUTPUT_VERBS) + " |\n" + "|---" * (len(OUTPUT_VERBS) + 1) + "|")
        for fault in OUTPUT_FAULTS:
            cells = []
            for verb in OUTPUT_VERBS:
                try:
                    v = output_case(verb, fault, kit, root / "outputs" / f"{verb}-{fault}".replace(" ", "_"))
                except CannotMount as e:
                    cells.append(f"not run: cannot mount a tmpfs ({e})")
                    continue
                failures += not v.ok
                cells.append(_cell(v))
            print(f"| {fault} | " + " | ".join(cells) + " |", flush=True)
        if args.long:
            long_rows(root, kit.good[0])
    print(f"\n{failures} failing cells")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
