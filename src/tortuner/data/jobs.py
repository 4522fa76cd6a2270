"""The inputs of `tortuner prepare` and their result files: what is finished, so a rerun resumes.

Each input's result is one JSON file under `DATASET_DIR/.work/`, written last and atomically: an input with a
result made with the current settings (same fingerprint) is finished and is skipped on rerun.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from tortuner.audio.io import AUDIO_EXTENSIONS
from tortuner.data.prepare_config import PrepareConfig
from tortuner.files import read_json


@dataclass(frozen=True)
class Job:
    """One input file and the speaker label its clips get."""

    path: Path
    speaker: str

    @property
    def source_id(self) -> str:
        """Stable id of the input (from its absolute path): names its result file and, with `prefix`, its clips."""
        return hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]

    @property
    def prefix(self) -> str:
        """Start of every clip name of this input: readable file stem plus `source_id` (unique across folders)."""
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", self.path.stem)[:40] or "audio"
        return f"{stem}_{self.source_id}"


def result_path(out: Path, job: Job) -> Path:
    return out / ".work" / f"{job.source_id}.json"


def collect_jobs(cfg: PrepareConfig) -> tuple[list[Job], list[str]]:
    """Expand inputs into files with a speaker label; missing inputs become messages, not a stop."""
    jobs: list[Job] = []
    problems: list[str] = []
    for item in cfg.inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file() and x.suffix.lower() in AUDIO_EXTENSIONS):
                rel = f.relative_to(p).parts
                folder = rel[0] if len(rel) > 1 else p.resolve().name
                jobs.append(Job(f, cfg.speaker or folder))
        elif p.is_file():
            jobs.append(Job(p, cfg.speaker or p.resolve().parent.name))
        else:
            problems.append(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = [j for j in jobs if not (j.path.resolve() in seen or seen.add(j.path.resolve()))]
    return unique, problems


def split_finished(jobs: list[Job], out: Path, fingerprint: str) -> tuple[dict[Job, dict], list[Job]]:
    """(results of the inputs already finished with these settings, the inputs still to do)."""
    results: dict[Job, dict] = {}
    todo: list[Job] = []
    for job in jobs:
        done = result_path(out, job)
        prev = read_json(done) if done.is_file() else None
        if prev and prev.get("fingerprint") == fingerprint:
            results[job] = prev
        else:
            todo.append(job)
    return results, todo


def add_earlier_results(results: dict[Job, dict], out: Path, fingerprint: str) -> None:
    """Add every input finished into `out` with these settings by earlier runs (the dataset is all of them)."""
    for w in sorted((out / ".work").glob("*.json")):
        res = read_json(w)
        if res.get("fingerprint") == fingerprint and res["source"] not in {r["source"] for r in results.values()}:
            results[Job(Path(res["source"]), res["speaker"])] = res
