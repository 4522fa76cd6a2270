"""A fine-tune run folder on disk: `run.json`, atomic checkpoints, and exact resume from the newest one.

A checkpoint `checkpoints/step_N/` holds the GPT (`model.safetensors`, stock UnifiedVoice keys, float32), the
optimizer and scheduler (`trainer.pt`), every process's RNG states (`rng_<rank>.pt`) and `state.json` (step,
micro-batch position, last train losses). It is written into `.step_N.tmp/` and renamed only when complete, so a
kill at any moment leaves the previous checkpoint intact and `checkpoint_dirs` never sees a half-written one.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tortuner.errors import TortunerError
from tortuner.files import load_safetensors, read_json, save_safetensors, torch_load, write_json

# Fields that may change on --resume without breaking exactness.
RESUMABLE_CHANGES = {"max_steps", "save_every", "val_every", "resume", "device", "num_workers", "samples",
                     "keep_checkpoints", "log_every", "out"}


def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp folders of interrupted saves are ignored)."""
    d = run / "checkpoints"
    return sorted(p for p in d.glob("step_*") if p.is_dir() and (p / "state.json").is_file()) if d.is_dir() else []


def find_checkpoint(run: str | Path, step: int | None = None) -> Path:
    """The checkpoint of `step` in a run folder (default: the newest)."""
    cks = checkpoint_dirs(Path(run))
    if not cks:
        raise TortunerError(f"{run}: no checkpoints (run `tortuner finetune --out {run}` first)")
    if step is None:
        return cks[-1]
    for c in cks:
        if int(c.name.split("_")[1]) == step:
            return c
    raise TortunerError(f"{run}: no checkpoint for step {step} (have {', '.join(c.name for c in cks)})")


# ------------------------------------------------------------------------------------------------ starting a run
def check_resume(run: Path, meta: dict) -> None:
    """Refuse to resume into a run whose data, model or recipe differ: that would not be a continuation."""
    old = read_json(run / "run.json")
    diffs = [k for k in set(old.get("config", {})) | set(meta["config"])
             if k not in RESUMABLE_CHANGES and old.get("config", {}).get(k) != meta["config"].get(k)]
    for k in ("gpt_config", "dvae_sha256", "data"):
        if old.get(k) != meta.get(k):
            diffs.append(k)
    if diffs:
        raise TortunerError(f"{run}: --resume with changed settings {sorted(diffs)}; use the original ones or a "
                            "new --out")


def open_run(run: Path, meta: dict, resume: bool, main: bool) -> Path | None:
    """Start a run folder (writing `run.json`) or, with `resume`, return the checkpoint to continue from.

    A folder with checkpoints is never trained into afresh; resuming checks that `meta` (config, GPT config, dVAE,
    data) matches the run's, except for the `RESUMABLE_CHANGES`.
    """
    existing = checkpoint_dirs(run)
    if existing and not resume:
        raise TortunerError(f"{run}: already has checkpoints; pass --resume to continue or choose a new --out")
    if resume and existing:
        check_resume(run, meta)
        return existing[-1]
    if main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "run.json", meta)
    return None


# ------------------------------------------------------------------------------------------------ save / restore
def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])


def save_checkpoint(accelerator, run: Path, step: int, gpt: nn.Module, optimizer, scheduler, state: dict,
                    keep: int) -> None:
    """Atomic: every file goes into `.step_N.tmp/`, renamed to `step_N/` only when all processes are done; then all
    but the newest `keep` checkpoints are deleted (0 keeps all)."""
    final = run / "checkpoints" / f"step_{step:07d}"
    tmp = run / "checkpoints" / f".step_{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        save_safetensors({k: v.float() for k, v in gpt.state_dict().items()}, tmp / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "trainer.pt")
        write_json(tmp / "state.json", state)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_dirs(run)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_weights(gpt: nn.Module, ck: Path) -> int:
    """Load a checkpoint's GPT weights (strictly) into `gpt`; returns the checkpoint's step."""
    gpt.load_state_dict(load_safetensors(ck / "model.safetensors"), strict=True)
    return int(read_json(ck / "state.json")["step"])


def restore_training_state(ck: Path, optimizer, scheduler, rank: int) -> None:
    """Optimizer and scheduler state, and this process's RNG states, as they were when `ck` was saved."""
    state = torch_load(ck / "trainer.pt", "trainer state")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng_file = ck / f"rng_{rank}.pt"
    if not rng_file.is_file():  # more processes than the run had: exactness is impossible anyway
        rng_file = ck / "rng_0.pt"
    _set_rng_state(torch_load(rng_file, "RNG state"))
