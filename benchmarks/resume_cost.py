"""What a kill costs on a real-size lab job: kill `lab build` or `lab run` once inside each training loop (and once in
the synthesis), rerun it, and measure the work redone (issue 27: at most a minute on the small world).

A kill inside a loop loses the training since the loop's last in-loop checkpoint (`--checkpoint-seconds`, 30 s by
default), and the rerun repeats its start-up before it can continue (imports, loading models and data, e.g. the
renderer's training items). Both are measured: `lost` = kill time - the checkpoint's (or the last shard's) time,
`restart` = rerun start -> its "resuming" line. Each stage is killed at a seeded moment 10-60 s after its first
checkpoint (or shard) appeared; the job runs to the end, so the last line gives its wall time with the kills.

    python benchmarks/resume_cost.py build --world worlds/small [--seed 0]
    python benchmarks/resume_cost.py run --world worlds/small --run runs/small [--seed 0]
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tortuner.training import CHECKPOINT_SECONDS


def command(args) -> tuple[list[str], list[str]]:
    """The job's argv and the glob patterns of its progress files (one kill per distinct file name)."""
    base = [sys.executable, "-c", "import sys; from tortuner.cli import main; sys.exit(main(sys.argv[1:]))"]
    if args.job == "build":
        return base + ["lab", "build", "--size", args.size, "--seed", "0", "--out", args.world,
                       "--checkpoint-seconds", str(args.checkpoint_seconds)], [f"{args.world}/work/*.loop.pt"]
    return base + ["lab", "run", "--world", args.world, "--out", args.run, "--checkpoint-seconds",
                   str(args.checkpoint_seconds)], [f"{args.run}/*.loop.pt", f"{args.run}/synth/shard_*.safetensors"]


def key(path: Path) -> str:
    """One kill per loop checkpoint file, one for the whole synthesis."""
    return "synth" if path.name.startswith("shard_") else path.name.removesuffix(".loop.pt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=("build", "run"))
    ap.add_argument("--world", default="worlds/small")
    ap.add_argument("--run", default="runs/small")
    ap.add_argument("--size", default="small", help="for a build")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-seconds", type=float, default=CHECKPOINT_SECONDS)
    ap.add_argument("--window", default="10,60", help="kill this many seconds (uniform) after a stage's first save")
    args = ap.parse_args()
    argv, patterns = command(args)
    rng = random.Random(args.seed)
    window = tuple(float(x) for x in args.window.split(","))
    killed: set[str] = set()
    rows = []
    t_job = time.time()
    while True:
        started = time.time()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
        resumed_at: list[float] = []

        def read(p=proc, marks=resumed_at):
            for line in p.stdout:
                print(line, end="", flush=True)
                if "resuming" in line and not marks:
                    marks.append(time.time())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        if rows and rows[-1].get("restart") is None:
            pending = rows[-1]
        else:
            pending = None
        target, kill_at = None, 0.0
        while proc.poll() is None:
            time.sleep(min(1.0, window[0] / 2))
            if pending is not None and resumed_at:
                pending["restart"] = resumed_at[0] - started
                pending = None
            if target is None:
                fresh = [p for pat in patterns for p in map(Path, glob.glob(pat))
                         if p.stat().st_mtime > started and key(p) not in killed]
                if fresh:
                    target = key(fresh[0])
                    kill_at = time.time() + rng.uniform(*window)
            elif time.time() >= kill_at:
                files = [p for pat in patterns for p in map(Path, glob.glob(pat)) if key(p) == target]
                if not files:  # the stage ended first: its loop state is gone, nothing to measure
                    killed.add(target)
                    target = None
                    continue
                last = max(p.stat().st_mtime for p in files)
                proc.send_signal(signal.SIGKILL)
                t = time.time()
                rows.append({"stage": target, "lost": t - last, "restart": None})
                killed.add(target)
                print(f"[resume_cost] killed in {target}, {t - last:.0f} s after its last checkpoint", flush=True)
                break
        proc.wait()
        reader.join()
        if proc.returncode == -signal.SIGKILL:
            continue
        if pending is not None:  # killed stage finished without a "resuming" line (e.g. a stage-level resume)
            pending["restart"] = float("nan")
        break
    wall = time.time() - t_job
    print("\n| stage | training lost | restart until resumed | redone |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['lost']:.0f} s | {r['restart']:.0f} s | {r['lost'] + r['restart']:.0f} s |")
    print(f"\n{args.job}: exit {proc.returncode}, {wall / 60:.1f} min wall with {len(rows)} kills")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
