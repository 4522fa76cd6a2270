"""`tortuner tokenize`: audio files -> one JSON line of dVAE tokens each (batched through `models.tokenizer`)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from tortuner.audio.io import AudioError, find_audio, load_audio
from tortuner.audio.mel import DVAE_SR
from tortuner.files import atomic_path
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.tokenizer import Tokenizer


@dataclass
class TokenizeConfig:
    dvae: str = ""
    inputs: list[str] = field(default_factory=list)
    out: str | None = None  # JSONL; stdout when None
    device: str = "cpu"
    batch_files: int = 32  # files decoded per step


def tokenize_files(cfg: TokenizeConfig, dvae: DiscreteVAE) -> tuple[int, list[str]]:
    """Tokenize every audio file in `cfg.inputs`; returns (files written, skipped-file messages).

    With `--out`, files already in the output are skipped (resume) and the JSONL is rewritten atomically after each
    step, so a killed run loses at most one step.
    """
    files = find_audio(cfg.inputs)
    done: dict[str, list[int]] = {}
    out_path = Path(cfg.out) if cfg.out else None
    if out_path and out_path.is_file():
        for line in out_path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["audio"]] = row["tokens"]
    todo = [f for f in files if str(f) not in done]
    tok = Tokenizer(dvae, cfg.device)
    skipped: list[str] = []
    rows = dict(done)
    for start in tqdm(range(0, len(todo), cfg.batch_files), desc="tokenize", unit="batch", disable=len(todo) <= cfg.batch_files):
        wavs, names = [], []
        for f in todo[start : start + cfg.batch_files]:
            try:
                wavs.append(load_audio(f, DVAE_SR))
                names.append(str(f))
            except AudioError as e:
                skipped.append(str(e))
        for name, t in zip(names, tok.tokenize_wavs(wavs)):
            rows[name] = t.tolist()
        if out_path:
            with atomic_path(out_path) as tmp:
                tmp.write_text("".join(json.dumps({"audio": k, "tokens": v}) + "\n" for k, v in rows.items()))
    if not out_path:
        for k, v in rows.items():
            sys.stdout.write(json.dumps({"audio": k, "tokens": v}) + "\n")
    return len(rows), skipped
