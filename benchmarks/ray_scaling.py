"""`prepare --ray` and `synth --ray` on this machine with 1 and 2 Ray workers, side by side with the plain verbs
(issue 26): wall seconds, speed-up over one worker, and whether the outputs are byte-identical to the plain run's.

Each Ray row starts its own local cluster (`--ray local`), so its wall time includes the cluster's start (~5 s) and
each actor loading its models. Inputs: `--recordings` espeak-ng recordings of `--minutes` each (prepare, default
ASR), and `--pairs` synthetic pairs from a `test`-size lab world built here (synth, lab renderer).

    python benchmarks/ray_scaling.py [--recordings 4] [--minutes 1] [--pairs 1200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_prepare import make_recording  # noqa: E402

from support.chaos import same_files  # noqa: E402
from tortuner.cli import main as tortuner  # noqa: E402


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    assert tortuner(argv) == 0, argv
    return time.perf_counter() - t


def table(title: str, rows: list[tuple[str, float, bool]]) -> None:
    one = next(s for name, s, _ in rows if name.endswith("1 worker"))
    print(f"\n{title}\n| run | wall | vs 1 Ray worker | outputs equal the plain run's |\n|---|---|---|---|")
    for name, s, same in rows:
        print(f"| {name} | {s:.1f} s | {one / s:.2f}x | {'yes' if same else '**no**'} |", flush=True)


def ray_rows(base: list[str], root: Path, prefix: str, workers_flag: str, check) -> list[tuple[str, float, bool]]:
    """`base` on a local Ray cluster with 1 and 2 workers into `root/<prefix><n>`, each output compared with the
    plain run's in `root/<prefix>0`."""
    rows = []
    for n in (1, 2):
        out = root / f"{prefix}{n}"
        rows.append((f"{base[0]} --ray local, {n} worker{'s' * (n > 1)}",
                     timed(base + ["--out", str(out), "--ray", "local", workers_flag, str(n)]),
                     check(root / f"{prefix}0", out) == []))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recordings", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--pairs", type=int, default=1200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        recs = [root / "rec" / f"r{i}.wav" for i in range(args.recordings)]
        recs[0].parent.mkdir()
        audio = sum(make_recording(p, args.minutes, seed=i) for i, p in enumerate(recs))
        base = ["prepare", *map(str, recs), "--max-speaker-change", "off"]
        check = same_files(["wavs/*.wav", "train.txt", "val.txt", "clips.jsonl"])
        rows = [("prepare", timed(base + ["--out", str(root / "p0")]), True),
                ("prepare --workers 2 (local processes)", timed(base + ["--out", str(root / "pw"), "--workers", "2"]),
                 check(root / "p0", root / "pw") == [])]
        rows += ray_rows(base, root, "p", "--workers", check)
        table(f"prepare: {len(recs)} recordings, {audio / 60:.1f} min of audio", rows)

        world = root / "world"
        assert tortuner(["lab", "build", "--size", "test", "--seed", "3", "--out", str(world)]) == 0
        base = ["synth", "--models", str(world / "public" / "models"), "--speech", str(world / "public" / "speech"),
                "--num-pairs", str(args.pairs), "--renderer", "lab", "--max-tokens", "120"]
        check = same_files(["shard_*.safetensors", "index_*.jsonl"])
        rows = [("synth --threads 1", timed(base + ["--out", str(root / "s0"), "--threads", "1"]), True)]
        rows += ray_rows(base, root, "s", "--ray-workers", check)
        table(f"synth: {args.pairs} pairs, test-size lab world", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
