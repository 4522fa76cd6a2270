"""The dataset's files, rebuilt from every finished input at the end of each `prepare` run: clips.jsonl (every
candidate with its scores and outcome), train.txt / val.txt (LJSpeech `wavs/NAME.wav|text`), report.json/png."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.report import build_report, plot_report
from tortuner.files import write_json, write_jsonl, write_text


def is_val(name: str, fraction: float) -> bool:
    """Clip `name` belongs to the validation split (a hash of the name: stable as the dataset grows)."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def write_outputs(cfg: PrepareConfig, out: Path, results: list[dict], skipped: list[dict]) -> dict:
    """Write every manifest and the report from the inputs' result records (sorted by source); returns the report.

    A dataset of two or more kept clips always gets one validation clip, however small `val_fraction` is.
    """
    rows = [r for res in results for r in res["clips"]]
    kept = [r for r in rows if r["kept"]]
    val = [r for r in kept if is_val(r["name"], cfg.val_fraction)]
    if not val and len(kept) >= 2 and cfg.val_fraction > 0:
        val = [min(kept, key=lambda r: hashlib.sha1(r["name"].encode()).hexdigest())]
    val_names = {r["name"] for r in val}
    write_jsonl(out / "clips.jsonl", rows)
    write_text(out / "train.txt", "".join(_line(r) for r in kept if r["name"] not in val_names))
    write_text(out / "val.txt", "".join(_line(r) for r in val))
    report = build_report(cfg, results, rows, skipped)
    write_json(out / "report.json", report)
    plot_report(report, rows, cfg, out / "report.png")
    return report


def _line(row: dict) -> str:
    return f"{row['audio']}|{row['transcript'] or ''}\n"
