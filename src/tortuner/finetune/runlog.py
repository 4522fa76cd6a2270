"""What a fine-tune run reports: `log.jsonl` (train and validation rows), `samples.jsonl`, `loss.png` and TensorBoard.

Only the main process logs; the other processes get a `RunLog` that writes nothing. A resumed run first forgets the
rows logged after its checkpoint (they are about to be logged again, identically).
"""

from __future__ import annotations

from pathlib import Path

from tortuner.files import read_jsonl, write_jsonl
from tortuner.plots import figure
from tortuner.training import ScalarLog

TRAIN_SCALARS = ("loss", "loss_text", "loss_mel", "lr", "grad_norm")


def rows_up_to(path: Path, step: int) -> list[dict]:
    """The rows of a JSONL log with `step` <= `step` (none if the file does not exist)."""
    return [r for r in read_jsonl(path) if r["step"] <= step] if path.is_file() else []


class RunLog:
    def __init__(self, run: Path, step: int, enabled: bool):
        from torch.utils.tensorboard import SummaryWriter

        self.run, self.enabled = run, enabled
        self.rows = rows_up_to(run / "log.jsonl", step)
        self.samples = rows_up_to(run / "samples.jsonl", step)
        self.writer = SummaryWriter(str(run / "tb"), purge_step=step if step else None) if enabled else None
        self.train_scalars = ScalarLog(self.writer, "train", every=1)
        self.val_scalars = ScalarLog(self.writer, "val", every=1)

    def train(self, step: int, row: dict) -> None:
        """One train row: {loss, loss_text, loss_mel, lr, grad_norm, sec_per_step}."""
        if not self.enabled:
            return
        self.rows.append({"step": step, "split": "train", **row})
        self.train_scalars(step, **{k: row[k] for k in TRAIN_SCALARS})
        write_jsonl(self.run / "log.jsonl", self.rows)

    def validation(self, step: int, metrics: dict[str, float], samples: list[dict]) -> None:
        """Validation metrics (`validate.validate`) and sampled codes (`validate.generate_samples`)."""
        if not self.enabled:
            return
        self.rows.append({"step": step, "split": "val", **metrics})
        self.val_scalars(step, **metrics)
        for s in samples:
            self.samples.append({"step": step, **s})
            self.writer.add_text(f"samples/{s['index']}", f"{s['generated_codes']} codes (reference "
                                 f"{s['reference_codes']}), stopped={s['stopped']}: {s['codes'][:64]}", step)
        write_jsonl(self.run / "samples.jsonl", self.samples)
        write_jsonl(self.run / "log.jsonl", self.rows)
        plot_losses(self.rows, self.run / "loss.png")

    def validation_at(self, step: int) -> dict[str, float] | None:
        """The validation metrics logged at `step`, if any."""
        vals = [r for r in self.rows if r.get("split") == "val" and r["step"] == step]
        return {k: v for k, v in vals[-1].items() if k not in ("step", "split")} if vals else None

    def close(self) -> None:
        if not self.enabled:
            return
        if self.rows:
            plot_losses(self.rows, self.run / "loss.png")
        self.writer.close()


def plot_losses(rows: list[dict], path: Path) -> None:
    tr = [(r["step"], r["loss"]) for r in rows if r.get("split") == "train"]
    va = [(r["step"], r["loss"]) for r in rows if r.get("split") == "val"]
    with figure(path, figsize=(7, 4)) as (fig, ax):
        if tr:
            ax.plot(*zip(*tr), label="train (0.01 text + mel CE)", lw=1)
        if va:
            ax.plot(*zip(*va), "o-", label="validation", lw=1.5)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)
