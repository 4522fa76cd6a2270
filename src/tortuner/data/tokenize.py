"""`tortuner tokenize`: audio files -> one JSON line of dVAE tokens each (batched through `models.tokenizer`)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tortuner.audio.io import AudioError, find_audio, load_audio
from tortuner.audio.mel import DVAE_SR
from tortuner.config_args import arg
from tortuner.files import atomic_path
from tortuner.models.dvae import DiscreteVAE
from tortuner.models.tokenizer import Tokenizer


@dataclass
class TokenizeConfig:
    """Every field is a `tortuner tokenize` flag of the same name (`inputs` is positional)."""

    dvae: str = arg("", "dVAE state dict (DL-Art-School layout), e.g. dvae.pth")
    inputs: list[str] = arg(help="audio files or folders (searched recursively)", factory=list,
                            metavar="AUDIO_OR_DIR")
    out: str | None = arg(None, "output JSONL (default: stdout); an existing one is resumed")
    device: str = arg("cpu", "torch device the dVAE runs on")
    batch_files: int = arg(32, "audio files decoded and tokenized per step (and per rewrite of the output)")


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
    steps = range(0, len(todo), cfg.batch_files)
    for start in tqdm(steps, desc="tokenize", unit="batch", disable=len(todo) <= cfg.batch_files):
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
