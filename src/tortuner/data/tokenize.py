"""Audio -> dVAE tokens, batched and exact: a batch gives the same tokens as one file at a time."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from tortuner.audio.io import AudioError, find_audio, load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.files import atomic_path
from tortuner.models.dvae import DiscreteVAE


class Tokenizer:
    """A dVAE plus TorToiSe's 22.05 kHz mel: waveforms or mels in, token sequences out."""

    def __init__(self, dvae: DiscreteVAE, device: str | torch.device = "cpu", max_batch_frames: int = 60_000):
        self.device = torch.device(device)
        self.dvae = dvae.to(self.device).eval()
        self.mel = DvaeMel().to(self.device)
        self.max_batch_frames = max_batch_frames

    @torch.inference_mode()
    def tokenize_mels(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of (80, T_i) mels -> list of (ceil(T_i/4),) int64 token tensors, in the same order."""
        order = sorted(range(len(mels)), key=lambda i: mels[i].shape[-1])
        out: list[torch.Tensor | None] = [None] * len(mels)
        start = 0
        while start < len(order):
            end = start + 1  # grow the batch while the padded size stays under the budget
            while end < len(order) and (end + 1 - start) * mels[order[end]].shape[-1] <= self.max_batch_frames:
                end += 1
            idx = order[start:end]
            lengths = torch.tensor([mels[i].shape[-1] for i in idx], device=self.device)
            batch = torch.zeros(len(idx), mels[idx[0]].shape[0], int(lengths.max()), device=self.device)
            for row, i in enumerate(idx):
                batch[row, :, : mels[i].shape[-1]] = mels[i].to(self.device)
            tokens = self.dvae.tokenize(batch, lengths if len(idx) > 1 else None).cpu()
            for row, i in enumerate(idx):
                out[i] = tokens[row, : -(-mels[i].shape[-1] // self.dvae.cfg.downsample)]
            start = end
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def tokenize_wavs(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of 1-D 22.05 kHz waveforms -> token tensors."""
        return self.tokenize_mels([self.mel(w.to(self.device)) for w in wavs])


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
