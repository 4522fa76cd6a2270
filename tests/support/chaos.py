"""Kill a verb anywhere, rerun it, and check that nothing was lost (issue 27, part 1).

`chaos(...)` runs a `tortuner` command once uninterrupted (the reference), then again in a fresh folder, sending it
SIGKILL at seeded random moments and rerunning the same command after each kill until it finishes. After every
kill it checks that each file under an output's final name is whole (JSON parses, wavs and checkpoints load); at
the end it compares the outputs with the reference's. `benchmarks/chaos.py` runs every long verb;
`tests/reliability/test_chaos.py` a fast subset.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


def cli(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "tortuner.cli", *argv]


# Runs `tortuner ARGV` with `os.replace` counted; SIGKILLs itself just before the Nth call (N from the environment):
# the instant a temporary is complete and not yet renamed, the moment a writer without atomic renames would leave a
# half file under the final name. N = 0 counts the calls and writes the count to TORTUNER_CHAOS_COUNT at exit.
_AT_WRITE = """
import atexit, os, signal, sys
n, count, real = int(os.environ["TORTUNER_CHAOS_AT_WRITE"]), [0], os.replace
def replace(src, dst, *args, **kwargs):
    count[0] += 1
    if count[0] == n:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(src, dst, *args, **kwargs)
os.replace = replace
if n == 0:
    atexit.register(lambda: open(os.environ["TORTUNER_CHAOS_COUNT"], "w").write(str(count[0])))
from tortuner.cli import main
sys.exit(main(sys.argv[1:]))
"""


def cli_at_write(argv: list[str]) -> list[str]:
    return [sys.executable, "-c", _AT_WRITE, *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def voice_clips(folder: Path, n: int) -> Path:
    """The first `n` real voice clips shipped with `tortoise`, copied into `folder` (the long verbs' inputs)."""
    import importlib.resources
    import shutil

    root = Path(str(importlib.resources.files("tortoise") / "voices"))
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(sorted(root.rglob("*.wav"))[:n]):
        shutil.copy(v, folder / f"{i:02d}_{v.parent.name}.wav")
    return folder


def broken_files(root: Path) -> list[str]:
    """Files under final names (not `.*.tmp`) that do not read whole: what a kill must never leave visible."""
    import soundfile as sf
    import torch
    from safetensors.torch import load_file

    bad = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.endswith(".tmp"):
            continue
        try:
            if p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".jsonl":
                for line in p.read_text().splitlines():
                    if line.strip():
                        json.loads(line)
            elif p.suffix == ".wav":
                sf.read(str(p))
            elif p.suffix == ".safetensors":
                load_file(str(p))
            elif p.suffix in (".pth", ".pt"):
                torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any failure to read is the finding
            bad.append(f"{p.relative_to(root)}: {type(e).__name__}")
    return bad


@dataclass
class ChaosReport:
    verb: str
    kills: int = 0                 # SIGKILLs that landed while the command was running
    reruns: int = 0                # runs in all, the final one included
    reference_seconds: float = 0.0
    chaos_seconds: float = 0.0     # wall time of every run of the killed job
    broken: list[str] = field(default_factory=list)   # partial files seen under final names after a kill
    differences: list[str] = field(default_factory=list)  # outputs that differ from the uninterrupted run
    finished: bool = False
    mid_loop: int = 0              # reruns that continued a training loop from its in-loop checkpoint

    @property
    def redone_per_kill(self) -> float:
        """Seconds of extra wall time per kill: work redone plus one process start-up."""
        return (self.chaos_seconds - self.reference_seconds) / max(1, self.kills)

    @property
    def ok(self) -> bool:
        return self.finished and not self.broken and not self.differences


def chaos(verb: str, make_argv: Callable[[Path], list[str]], compare: Callable[[Path, Path], list[str]],
          workdir: Path, kills: int = 3, seed: int = 0, max_runs: int = 12, at_writes: bool = False) -> ChaosReport:
    """Reference run in `workdir/reference`, killed run in `workdir/killed`; `make_argv(out)` gives the command
    writing into `out`; `compare(reference, killed)` lists differences. Each run is killed at a moment uniform
    over 20-70 % of the reference's duration (start-up included; a resumed run has less left to do, so later
    moments would often miss it), so kills land in every phase: loading, work, output writes. With `at_writes`,
    each run is killed instead just before its Nth file rename (N uniform over the first half of the reference's
    renames): inside a write, every time. A run that finishes before its moment ends the job: `kills` counts the
    kills that landed."""
    rng = random.Random(seed)
    rep = ChaosReport(verb)
    ref, killed = workdir / "reference", workdir / "killed"
    counter = workdir / "renames"
    env = _env() | ({"TORTUNER_CHAOS_AT_WRITE": "0", "TORTUNER_CHAOS_COUNT": str(counter)} if at_writes else {})
    launch = cli_at_write if at_writes else cli
    workdir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    subprocess.run(launch(make_argv(ref)), check=True, capture_output=True, env=env)
    rep.reference_seconds = time.perf_counter() - t
    renames = int(counter.read_text()) if at_writes else 0
    t = time.perf_counter()
    for _ in range(max_runs):
        rep.reruns += 1
        last = rep.kills >= kills
        if at_writes:
            env["TORTUNER_CHAOS_AT_WRITE"] = "0" if last else str(rng.randint(1, max(1, renames // 2)))
        proc = subprocess.Popen(launch(make_argv(killed)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env)
        if not last and not at_writes:
            try:
                proc.wait(timeout=rng.uniform(0.2, 0.7) * rep.reference_seconds)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        out, err = (b.decode(errors="replace") for b in proc.communicate())
        rep.mid_loop += "resuming at step" in out  # training.LoopCheckpoint.resume
        if proc.returncode == -signal.SIGKILL:
            rep.kills += 1
            rep.broken += broken_files(killed) if killed.exists() else []
            continue
        if proc.returncode == 0:
            rep.finished = True
            break
        rep.differences.append(f"run {rep.reruns} exited {proc.returncode}: {err.strip().splitlines()[-1:]}")
    rep.chaos_seconds = time.perf_counter() - t
    if rep.finished:
        rep.differences += compare(ref, killed)
    return rep


def same_files(patterns: list[str], jsonl_as_sets: bool = False) -> Callable[[Path, Path], list[str]]:
    """A `compare` that wants the files matching `patterns` byte-identical in both folders (JSONL files: the
    same lines, in any order, when `jsonl_as_sets`)."""

    def compare(a: Path, b: Path) -> list[str]:
        diffs = []
        for pattern in patterns:
            fa = {p.relative_to(a) for p in a.glob(pattern) if p.is_file()}
            fb = {p.relative_to(b) for p in b.glob(pattern) if p.is_file()}
            if fa != fb:
                diffs.append(f"{pattern}: files differ ({sorted(map(str, fa ^ fb))[:3]})")
            for rel in sorted(fa & fb):
                x, y = (a / rel).read_bytes(), (b / rel).read_bytes()
                if jsonl_as_sets and rel.suffix == ".jsonl":
                    x, y = sorted(x.splitlines()), sorted(y.splitlines())
                if x != y:
                    diffs.append(f"{rel}: differs")
        return diffs

    return compare
