"""`tortuner prepare` over many inputs: skip the finished ones, process the rest (in this process or in workers),
report bad inputs without stopping, then rebuild the dataset's manifests and report from every finished input.

An input's work is `prepare.process`; what is finished is `jobs`; the files written at the end are `manifests`.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tortuner.audio.io import AudioError
from tortuner.data.asr import transcript_quality
from tortuner.data.jobs import Job, add_earlier_results, collect_jobs, split_finished
from tortuner.data.manifests import write_outputs
from tortuner.data.prepare import PrepareModels, process
from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.stream import probe
from tortuner.errors import TortunerError

Outcome = tuple[Job, dict | None, str | None]  # (input, its result record or None, the error message or None)


def run(cfg: PrepareConfig, show_progress: bool = True) -> dict:
    """Prepare a dataset from `cfg.inputs` into `cfg.out`; returns the report (also written to report.json)."""
    from tqdm import tqdm

    _check(cfg)
    out = Path(cfg.out)
    jobs, problems = collect_jobs(cfg)
    models = PrepareModels(cfg)
    models.preload()
    note = transcript_quality(cfg.asr, cfg.transcripts is not None)["note"]
    if note and cfg.asr != "none":
        print(f"note: {note}", file=sys.stderr)
    fp = cfg.fingerprint()
    results, todo = split_finished(jobs, out, fp)
    skipped = [{"source": p.split(":")[0], "error": p} for p in problems]
    for p in problems:
        print(f"skipped: {p}", file=sys.stderr)
    sizes = {j: j.path.stat().st_size for j in todo}
    bar = tqdm(total=sum(sizes.values()) / 1e6, unit="MB", desc="prepare", disable=not show_progress,
               file=sys.stderr, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} MB [{elapsed}<{remaining}]")
    if cfg.ray and todo:
        outcomes = _on_ray(todo, cfg, out, bar, sizes)
    elif cfg.workers <= 1 or len(todo) <= 1:
        outcomes = _in_process(todo, cfg, models, out, bar, sizes)
    else:
        outcomes = _in_workers(todo, cfg, out, bar, sizes)
    for job, result, err in outcomes:
        if result is None:
            skipped.append({"source": str(job.path), "error": err})
            tqdm.write(f"skipped: {err}", file=sys.stderr)
        else:
            results[job] = result
    bar.close()
    add_earlier_results(results, out, fp)  # the dataset is every input finished into this folder, these settings
    ordered = sorted(results.values(), key=lambda r: r["source"])
    return write_outputs(cfg, out, ordered, skipped)


def _check(cfg: PrepareConfig) -> None:
    if not cfg.inputs:
        raise TortunerError("no inputs given")
    if not cfg.out:
        raise TortunerError("no dataset folder given (--out)")
    if cfg.min_seconds >= cfg.max_seconds:
        raise TortunerError(f"--min-seconds ({cfg.min_seconds}) must be below --max-seconds ({cfg.max_seconds})")


class _InputProgress:
    """Moves the MB bar through one input of `size` bytes as `process` reports seconds done (never past `size`)."""

    def __init__(self, bar, size: int) -> None:
        self.bar, self.size = bar, size
        self.done_mb = 0.0
        self.seconds = 1.0  # the input's duration, once probed

    def __call__(self, s: float) -> None:
        step = min(self.size / 1e6 - self.done_mb, s / self.seconds * self.size / 1e6)
        self.done_mb += step
        self.bar.update(step)

    def finish(self) -> None:
        self.bar.update(self.size / 1e6 - self.done_mb)


def _in_process(todo: list[Job], cfg: PrepareConfig, models: PrepareModels, out: Path, bar,
                sizes: dict[Job, int]) -> Iterator[Outcome]:
    """One input after the other in this process, the bar moving within each input."""
    for job in todo:
        tick = _InputProgress(bar, sizes[job])
        try:
            seconds = probe(job.path).seconds
            tick.seconds = seconds if np.isfinite(seconds) and seconds > 0 else float("inf")
            outcome = job, process(job, cfg, models, out, progress=tick), None
        except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
            if _cannot_write(e):
                raise
            outcome = job, None, _input_error(job, e)
        yield outcome
        tick.finish()


def _in_workers(todo: list[Job], cfg: PrepareConfig, out: Path, bar, sizes: dict[Job, int]) -> Iterator[Outcome]:
    """`cfg.workers` processes (spawned: one torch thread and one set of models each), outcomes as they finish."""
    with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(cfg,)) as pool:
        futures = [pool.submit(_work, job, str(out)) for job in todo]
        for fut in as_completed(futures):
            job, result, err = fut.result()
            yield job, result, err
            bar.update(sizes[job] / 1e6)


def _on_ray(todo: list[Job], cfg: PrepareConfig, out: Path, bar, sizes: dict[Job, int]) -> Iterator[Outcome]:
    """Each input a call on one of `cfg.workers` Ray actors (0: one per CPU of the cluster), outcomes as they finish.

    Actors rather than plain tasks: the VAD, speaker, quality and ASR models load once per actor, not per input. An
    input is the unit: its clips depend on the whole stream before them (the silence splits, the speaker of the
    previous clip), so a long input is one call, streamed at the speed `prepare` has on one core. A killed actor is
    restarted and its input done again from the start; its clips are written under the same names, and its result
    file is written last, so the dataset gets no duplicates and no holes."""
    from tortuner.cluster import actor_pool, connect

    with connect(cfg.ray) as ray:
        pool = actor_pool(ray, PrepareWorker, cfg.workers, cfg)
        for job, result, err in pool.map_unordered(lambda actor, job: actor.work.remote(job, str(out)), todo):
            if err == _CANNOT_WRITE:
                raise OSError(result["errno"], result["strerror"], result["filename"])
            yield job, result, err
            bar.update(sizes[job] / 1e6)


_CANNOT_WRITE = "cannot write"  # a Ray actor's outcome for a full / read-only output: the driver stops the run


class PrepareWorker:
    """One worker's models, loaded once (a worker process of `--workers`, or a Ray actor of `--ray`), with one torch
    thread: parallelism comes from the workers."""

    def __init__(self, cfg: PrepareConfig) -> None:
        import torch

        torch.set_num_threads(1)
        self.cfg, self.models = cfg, PrepareModels(cfg)

    def work(self, job: Job, out: str) -> Outcome:
        try:
            return job, process(job, self.cfg, self.models, Path(out)), None
        except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
            if _cannot_write(e) and self.cfg.ray:  # raised on the driver (a Ray task error would wrap it)
                return job, {"errno": e.errno, "strerror": e.strerror, "filename": e.filename}, _CANNOT_WRITE
            if _cannot_write(e):
                raise
            return job, None, _input_error(job, e)


_WORKER: dict = {}  # a worker process's `PrepareWorker`, set once by `_init_worker`


def _init_worker(cfg: PrepareConfig) -> None:
    _WORKER["worker"] = PrepareWorker(cfg)


def _work(job: Job, out: str) -> Outcome:
    return _WORKER["worker"].work(job, out)


def _cannot_write(e: Exception) -> bool:
    """A full, read-only or forbidden output stops the whole run: every other input would fail the same way."""
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT)


def _input_error(job: Job, e: Exception) -> str:
    """One line naming the input: bad audio is reported and skipped, never a stop for the whole run."""
    if isinstance(e, AudioError):
        return str(e)
    first = (str(e).strip().splitlines() or [""])[0][:150]
    return f"{job.path}: failed ({type(e).__name__}: {first})"
