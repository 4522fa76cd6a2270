"""Synthetic pairs on disk: safetensors shards + one JSONL index per writer.

A shard holds the concatenated mels (80, sum 4N_i) and tokens (sum N_i) of a batch of items; each index row
describes one item (`id`, `shard`, offsets, `text`, `speaker`, `clvp`, `loglik`). Index rows are appended only after
their shard file exists, so a killed writer loses at most the batch in flight and never leaves a half item.
Items are identified by a global `id`, which is what makes resuming (and many writers filling one folder) free of
duplicates. A CLVP-filtered subset is a selection of index rows (`select`), never a copy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from tortuner.errors import TortunerError
from tortuner.files import atomic_path, load_safetensors, read_jsonl, save_safetensors


@dataclass
class Pair:
    mel: torch.Tensor     # (80, 4N) dVAE mel of the rendered audio
    tokens: torch.Tensor  # (N,) the GPT's sampled codes
    row: dict


def read_index(folder: str | Path) -> list[dict]:
    """All index rows of a synth folder (every writer), sorted by id, duplicates (if any) dropped."""
    rows: dict[int, dict] = {}
    for path in sorted(Path(folder).glob("index_*.jsonl")):
        for row in read_jsonl(path):
            rows.setdefault(row["id"], row)
    return [rows[k] for k in sorted(rows)]


def write_batch(folder: Path, writer: str, batch_no: int, items: list[tuple[torch.Tensor, torch.Tensor, dict]]) -> None:
    """Save one shard of (mel, tokens, row) then append the rows to `index_<writer>.jsonl`."""
    name = f"shard_{writer}_{batch_no:05d}.safetensors"
    mels = torch.cat([m for m, _, _ in items], 1).contiguous()
    toks = torch.cat([t for _, t, _ in items]).to(torch.int32).contiguous()
    save_safetensors({"mels": mels.float(), "tokens": toks}, folder / name)
    rows, mo, to = [], 0, 0
    for m, t, row in items:
        rows.append({**row, "shard": name, "mel_offset": mo, "tok_offset": to, "n_tokens": int(t.numel())})
        mo, to = mo + m.shape[1], to + t.numel()
    index = folder / f"index_{writer}.jsonl"
    old = index.read_text() if index.is_file() else ""
    with atomic_path(index) as tmp:
        Path(tmp).write_text(old + "".join(json.dumps(r) + "\n" for r in rows))


def select(rows: list[dict], clvp_top: float = 1.0, clvp_min: float = -math.inf, max_items: int = 0) -> list[dict]:
    """The CLVP-filtered view: rows with score >= clvp_min, then the best `clvp_top` fraction; then the first
    `max_items` by id (0 = all)."""
    rows = [r for r in rows if r.get("clvp", 0.0) >= clvp_min and r["n_tokens"] > 0]
    if clvp_top < 1.0:
        keep = max(1, round(len(rows) * clvp_top))
        rows = sorted(sorted(rows, key=lambda r: -r.get("clvp", 0.0))[:keep], key=lambda r: r["id"])
    return rows[:max_items] if max_items else rows


def load_pairs(folder: str | Path, rows: list[dict]) -> list[Pair]:
    folder = Path(folder)
    cache: dict[str, dict[str, torch.Tensor]] = {}
    out = []
    for r in rows:
        if r["shard"] not in cache:
            cache[r["shard"]] = load_safetensors(folder / r["shard"])
        sd, n = cache[r["shard"]], r["n_tokens"]
        mel = sd["mels"][:, r["mel_offset"] : r["mel_offset"] + 4 * n]
        out.append(Pair(mel, sd["tokens"][r["tok_offset"] : r["tok_offset"] + n].long(), r))
    if not out:
        raise TortunerError(f"{folder}: no synthetic pairs selected (run `tortuner synth` first)")
    return out
