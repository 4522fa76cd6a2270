"""A real worker death on a Ray cluster, on cue: `install` runs in every Ray worker process at start-up
(`worker_process_setup_hook`) and wraps the per-item work of `prepare` and `synth`. While the file `<dir>/armed`
exists, the first worker to take it (an atomic rename to `fired`, so exactly one) SIGKILLs its own process before the
item's work, the way a crashed or OOM-killed node would; Ray restarts the actor and retries the item."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

ENV = "TORTUNER_TEST_RAY_FAULTS"  # the folder holding `armed` / `fired`


def _die_if_armed() -> None:
    folder = Path(os.environ.get(ENV, "/nonexistent"))
    try:
        os.rename(folder / "armed", folder / "fired")
    except OSError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


def _wrap(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        _die_if_armed()
        return fn(*args, **kwargs)

    return wrapped


def install() -> None:
    from tortuner.data import prepare_run
    from tortuner.synth.synth import Synthesizer

    prepare_run.process = _wrap(prepare_run.process)
    Synthesizer.group = _wrap(Synthesizer.group)


def runtime_env(folder: Path) -> dict:
    """What `ray.init(runtime_env=...)` needs for this: the hook, the tests folder importable, the fault folder."""
    tests = str(Path(__file__).resolve().parents[1])
    return {"worker_process_setup_hook": "support.ray_faults.install",
            "env_vars": {ENV: str(folder), "PYTHONPATH": tests, "OPENBLAS_NUM_THREADS": "1"}}
