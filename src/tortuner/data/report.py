"""The `prepare` report: what was kept, what was dropped and why (report.json + report.png)."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from tortuner.data.asr import transcript_quality
from tortuner.data.filters import FILTERS
from tortuner.data.prepare_config import PrepareConfig
from tortuner.plots import figure


def build_report(cfg: PrepareConfig, results: list[dict], rows: list[dict], skipped: list[dict]) -> dict:
    """Inputs done / skipped, hours in / of speech / kept, dropped clips and hours per reason, clips per speaker,
    and each score's 5/50/95th percentiles next to its threshold, so thresholds can be judged from the report."""
    kept = [r for r in rows if r["kept"]]
    by_reason: dict[str, float] = defaultdict(float)
    count = Counter()
    for r in rows:
        if not r["kept"]:
            by_reason[r["reason"]] += r["seconds"]
            count[r["reason"]] += 1
    scores = {}
    for f in FILTERS:
        vals = np.array([r["scores"][f.score] for r in rows if r["scores"].get(f.score) is not None])
        if vals.size:
            q = np.percentile(vals, [5, 50, 95])
            scores[f.score] = {"threshold": getattr(cfg, f.flag) if cfg.thresholds().get(f.flag) is not None else None,
                               "p5": round(float(q[0]), 3), "median": round(float(q[1]), 3),
                               "p95": round(float(q[2]), 3), "failed": sum(f.reason in r["failed"] for r in rows)}
    speakers = Counter(r["speaker"] for r in kept)
    return {
        "inputs": len(results) + len(skipped),
        "inputs_done": len(results),
        "inputs_skipped": skipped,
        "hours_input": round(sum(r["seconds"] for r in results) / 3600, 4),
        "hours_speech": round(sum(r["speech_seconds"] for r in results) / 3600, 4),
        "candidates": len(rows),
        "kept": len(kept),
        "hours_kept": round(sum(r["seconds"] for r in kept) / 3600, 4),
        "dropped": {k: {"clips": count[k], "hours": round(v / 3600, 4)} for k, v in sorted(by_reason.items())},
        "speakers": dict(speakers),
        "clip_seconds": _summary([r["seconds"] for r in kept]),
        "scores": scores,
        "transcripts": transcript_quality(cfg.asr, cfg.transcripts is not None),
        "settings": {k: v for k, v in vars(cfg).items() if k not in ("inputs",)},
    }


def _summary(v: list[float]) -> dict:
    if not v:
        return {}
    a = np.asarray(v)
    return {"min": round(float(a.min()), 2), "mean": round(float(a.mean()), 2), "max": round(float(a.max()), 2)}


def plot_report(report: dict, rows: list[dict], cfg: PrepareConfig, path: Path) -> None:
    """Clip-duration and per-score histograms (kept vs dropped, threshold marked) and hours per outcome."""
    panels = [f for f in FILTERS if any(r["scores"].get(f.score) is not None for r in rows)]
    n = 2 + len(panels)
    cols = 3
    rows_n = (n + cols - 1) // cols
    with figure(path, rows_n, cols, dpi=80, figsize=(13, 3.2 * rows_n)) as (fig, axes):
        _draw(np.atleast_1d(axes).ravel(), n, panels, report, rows, cfg)


def _draw(axes, n: int, panels: list, report: dict, rows: list[dict], cfg: PrepareConfig) -> None:
    kept = [r for r in rows if r["kept"]]
    drop = [r for r in rows if not r["kept"]]
    ax = axes[0]
    ax.hist([[r["seconds"] for r in kept], [r["seconds"] for r in drop]], bins=30, stacked=True,
            label=["kept", "dropped"], color=["tab:green", "tab:gray"])
    for x in (cfg.min_seconds, cfg.max_seconds):
        ax.axvline(x, color="k", ls="--", lw=1)
    ax.set_title("clip duration (s)")
    ax.legend()
    ax = axes[1]
    labels = ["kept"] + list(report["dropped"])
    hours = [report["hours_kept"]] + [d["hours"] for d in report["dropped"].values()]
    unit, scale = ("hours", 1) if sum(hours) >= 1 else ("minutes", 60)  # readable ticks for small sets
    ax.barh(labels, [h * scale for h in hours], color=["tab:green"] + ["tab:red"] * (len(labels) - 1))
    ax.set_title(f"{unit} kept / dropped per reason")
    for ax, f in zip(axes[2:], panels):
        vals = [r["scores"][f.score] for r in rows if r["scores"].get(f.score) is not None]
        ax.hist(vals, bins=30, color="tab:blue")
        t = cfg.thresholds().get(f.flag)
        if t is not None:
            ax.axvline(t, color="tab:red", ls="--", label=f"{f.flag} = {t}")
            ax.legend(fontsize=8)
        ax.set_title(f"{f.score} ({f.reason})")
    for ax in axes[n:]:
        ax.axis("off")
