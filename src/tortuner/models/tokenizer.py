"""Audio -> dVAE tokens, batched and exact: a batch gives the same tokens as one file at a time."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
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

    def tokenize_training_wavs(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Tokens of clips the GPT trains on: each clip with one token's worth of zeros appended.

        DL-Art-School tokenized zero-padded clips, so the code one past a clip's end was the code of silence
        (`models.gpt_data.collate` keeps it, then the model predicts stop).
        """
        return self.tokenize_wavs([F.pad(w, (0, SAMPLES_PER_TOKEN)) for w in wavs])
