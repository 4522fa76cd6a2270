"""The training toolkit every loop in tortuner uses: learning-rate schedules, AdamW parameter groups, one optimiser
step, scalar logging, mid-loop checkpoints, and the resumable stage runner of `lab build` / `lab run`.

The loops themselves stay plain Python you can read top to bottom (lab/train.py, recover/*.py, finetune/trainer.py);
what they all do the same way lives here, once. Each schedule returns the learning rate itself, with the arithmetic
in the order the loops always used, so a world or a run built before this module existed is rebuilt bit for bit.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tortuner.config_args import arg
from tortuner.files import torch_load, torch_save, write_json


# ------------------------------------------------------------------------------------------------ schedules
def warmup_cosine(step: int, total: int, peak: float, warmup: int = 50) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `peak` to 0 at `total` (the lab's from-scratch runs)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def warmup_linear_decay(frac: float, peak: float) -> float:
    """Warm-up over the first 5 % of training (from 5 % of `peak`), then linear decay to 10 % of `peak` (recovery's
    distillation); `frac` = step / total."""
    return peak * min(1.0, 20 * frac + 0.05) * (0.1 + 0.9 * (1 - frac))


def linear_decay(step: int, total: int, peak: float) -> float:
    """Linear decay from `peak` to 10 % of it (recovery's decoder pre-training)."""
    return peak * (0.1 + 0.9 * (1 - step / total))


def lr_factor(step: int, schedule: str, warmup_steps: int, max_steps: int, milestones: Sequence[int],
              gamma: float) -> float:
    """Multiplier of the peak learning rate for `finetune` (a `LambdaLR`): linear warm-up times `constant`,
    `multistep` (x gamma at each milestone: DL-Art-School's GPT fine-tune) or `cosine` (to 0 at `max_steps`)."""
    from tortuner.errors import TortunerError

    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant":
        return warm
    if schedule == "multistep":
        return warm * gamma ** sum(step >= m for m in milestones)
    if schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, max_steps) / max(1, max_steps)))
    raise TortunerError(f"unknown --schedule {schedule!r} (multistep, cosine, constant)")


# ------------------------------------------------------------------------------------------------ optimiser
NO_DECAY_MODULES = (nn.Embedding, nn.LayerNorm, nn.GroupNorm)

# how often a training loop saves its state by default: a kill loses at most this much training, plus the restart
# (issue 27: at most about a minute redone after a kill on the small world; docs/reliability.md)
CHECKPOINT_SECONDS = 30.0


def checkpoint_seconds_arg(job: str = "run") -> Any:
    """The `--checkpoint-seconds` field of every config whose verb trains (one help text, one default)."""
    return arg(CHECKPOINT_SECONDS, f"save the training state this often, so a killed {job} loses at most this much "
                                   "training (0 = after every step)")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups with DL-Art-School's weight-decay rule: decay on weight matrices only; biases, norms and
    embedding tables (every parameter of an `Embedding`, `LayerNorm` or `GroupNorm`, and every 1-D one) excluded.
    Frozen parameters (`requires_grad=False`) are left out."""
    exempt = {id(p) for m in model.modules() if isinstance(m, NO_DECAY_MODULES) for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or id(p) in exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def optimizer_step(opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float | None = None,
                   clip: float | None = None, params: Iterable[nn.Parameter] | None = None) -> None:
    """One step: set the learning rate (when given), zero the gradients, backward, clip the gradient norm of
    `params` to `clip` (when given), step."""
    if lr is not None:
        set_lr(opt, lr)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        assert params is not None, "clip needs the parameters to clip"
        torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def autocast(bf16: bool) -> torch.autocast:
    """bf16 autocast on the CPU (weights, optimiser state and losses stay float32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout of a model (the stock GPT-2 and CLVP configs have no argument for it)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


class ScalarLog:
    """TensorBoard scalars every `every` steps (the loops log every 25): `log(step, recon_mse=0.1)` writes
    `<prefix>/recon_mse`. A `None` writer logs nothing. `offset` is added to the step recorded (a loop run in
    rounds whose steps restart at 0 keeps one time axis)."""

    def __init__(self, writer: Any | None, prefix: str, every: int = 25, offset: int = 0):
        self.writer, self.prefix, self.every, self.offset = writer, prefix, every, offset

    def __call__(self, step: int, **scalars: float) -> None:
        if self.writer is None or step % self.every:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(f"{self.prefix}/{name}", value, self.offset + step)


# ------------------------------------------------------------------------------------------------ checkpoints
def kept(path: Path, source: Path, make: Callable[[], Any]) -> Any:
    """`make()`, a pure function of the file `source` (a model), kept in `path` so a stage rerun after a kill loads
    it instead of computing it again (what a stage computes before its loop: the small world's renderer restart fell
    from 83 s to 50 s, the oracle's from 55 s to 22 s, docs/reliability.md). A file made from another version of
    `source` (size or mtime) is made again; the caller deletes `path` once no rerun needs it."""
    key = f"{source.stat().st_size} {source.stat().st_mtime_ns}"
    saved = torch_load(path, "kept stage input") if path.is_file() else {}
    if saved.get("key") == key:
        return saved["value"]
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch_save({"key": key, "value": value}, path)
    return value


Stateful = nn.Module | torch.optim.Optimizer | random.Random | torch.Generator | torch.Tensor | list | dict


def _capture(obj: Stateful) -> Any:
    if isinstance(obj, (nn.Module, torch.optim.Optimizer)):
        return obj.state_dict()
    if isinstance(obj, random.Random):
        return obj.getstate()
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, (list, dict)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__}")


def _restore(obj: Stateful, saved: Any) -> None:
    if isinstance(obj, (nn.Module, torch.optim.Optimizer)):
        obj.load_state_dict(saved)
    elif isinstance(obj, random.Random):
        obj.setstate(_as_tuples(saved))
    elif isinstance(obj, torch.Generator):
        obj.set_state(saved)
    elif isinstance(obj, torch.Tensor):
        with torch.no_grad():
            obj.copy_(saved)
    elif isinstance(obj, list):
        obj[:] = saved
    else:
        obj.clear()
        obj.update(saved)


def _as_tuples(x: Any) -> Any:
    """`random.Random.setstate` wants tuples all the way down."""
    return tuple(_as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


class LoopCheckpoint:
    """Mid-loop resume for a training loop, so a kill costs at most `every_seconds` of training, not a whole stage.

    The loop hands over everything its future depends on — models, optimisers, its `random.Random` and
    `torch.Generator`s, its history lists, a dict of anything else (tensors, numbers, strings) — with `resume`, and
    calls `save_if_due(steps_done)` after each step. Every `every_seconds` (0: after every step) the state of all of
    them plus torch's global RNG (dropout) is written to `path` atomically. A rerun of the same loop restores it in
    `resume`, which returns the step to continue from, and goes on bit for bit as if never stopped. The owner calls
    `done()` once the loop's outputs are written, which deletes the file. `path=None` checkpoints nothing (loops
    called from tests and benchmarks). `key` names the settings the loop ran with: a file saved with another key
    is from another job and is ignored (with a line saying so).
    """

    def __init__(self, path: str | Path | None, every_seconds: float = CHECKPOINT_SECONDS, key: str = ""):
        self.path = Path(path) if path is not None else None
        self.every, self.key = every_seconds, key
        self.objects: dict[str, Stateful] = {}
        self.last = time.monotonic()

    @classmethod
    def beside(cls, out: str | Path, cfg: Any, tag: str = "loop") -> LoopCheckpoint:
        """The checkpoint `<out stem>.<tag>.pt` of a verb writing `out`, run with the dataclass config `cfg`: saved
        every `cfg.checkpoint_seconds`, keyed by every other setting but `threads`."""
        settings = {k: v for k, v in asdict(cfg).items() if k not in ("threads", "checkpoint_seconds")}
        return cls(Path(out).with_suffix(f".{tag}.pt"), cfg.checkpoint_seconds,
                   f"{tag} {json.dumps(settings, sort_keys=True, default=str)}")

    def resume(self, **objects: Stateful) -> int:
        """Register the loop's state; restore it from the file when there is one. Returns the steps already done."""
        self.objects, self.last = objects, time.monotonic()
        if self.path is None or not self.path.is_file():
            return 0
        saved = torch_load(self.path, "training checkpoint")
        if saved.get("key") != self.key or set(saved["state"]) != set(objects):
            print(f"{self.path}: saved by a run with other settings; starting this loop from step 0", flush=True)
            return 0
        for name, obj in objects.items():
            _restore(obj, saved["state"][name])
        torch.set_rng_state(saved["torch_rng"])
        print(f"{self.path}: resuming at step {saved['step']}", flush=True)
        return int(saved["step"])

    def save_if_due(self, step: int) -> None:
        """After `step` steps: save when `every_seconds` have passed since the last save (or the start)."""
        if self.path is not None and time.monotonic() - self.last >= self.every:
            self.save(step)

    def save(self, step: int) -> None:
        """Save now (also after an expensive piece of work inside a loop, e.g. relabelling)."""
        if self.path is None:
            return
        torch_save({"key": self.key, "step": step, "torch_rng": torch.get_rng_state(),
                    "state": {name: _capture(obj) for name, obj in self.objects.items()}}, self.path)
        self.last = time.monotonic()

    def done(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ stages
def run_stages(stages: Sequence[str], state: dict, state_path: str | Path, run: Callable[[int, str], dict | None],
               until: str = "", label: str = "") -> dict:
    """Run every stage not yet marked done in `state["stages"]`, in order; after each, record
    `{"done": True, "seconds": s, **result}` and write `state` to `state_path` atomically, so a killed job reruns
    only what was not finished. `run(i, name)` does stage number i. Stops after `until` when given."""
    done = state.setdefault("stages", {})
    for i, name in enumerate(stages):
        if done.get(name, {}).get("done"):
            continue
        t0 = time.time()
        result = run(i, name)
        seconds = time.time() - t0
        done[name] = {"done": True, "seconds": round(seconds, 1), **(result or {})}
        write_json(state_path, state)
        if label:
            print(f"{label}: {name} done in {seconds:.0f} s", flush=True)
        if name == until:
            break
    return state
