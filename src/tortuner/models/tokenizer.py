"""Audio -> dVAE tokens, batched and exact: a batch gives the same tokens as one file at a time."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
from tortuner.models.dvae import DiscreteVAE


class Tokenizer:
    """A dVAE plus TorToiSe's 22.05 kHz mel: waveforms or mels in, token sequences (or the encoder's code
    log-probabilities) out."""

    def __init__(self, dvae: DiscreteVAE, device: str | torch.device = "cpu", max_batch_frames: int = 60_000):
        self.device = torch.device(device)
        self.dvae = dvae.to(self.device).eval()
        self.mel = DvaeMel().to(self.device)
        self.max_batch_frames = max_batch_frames

    def _per_item(self, mels: list[torch.Tensor],
                  fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]) -> list[torch.Tensor]:
        """`fn(batch (B, 80, T), lengths or None) -> (B, ceil(T/4), ...)` over length-sorted, masked batches; each
        item's rows cut to its own length, in input order."""
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
            result = fn(batch, lengths if len(idx) > 1 else None).cpu()
            for row, i in enumerate(idx):
                out[i] = result[row, : -(-mels[i].shape[-1] // self.dvae.cfg.downsample)]
            start = end
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def tokenize_mels(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of (80, T_i) mels -> list of (ceil(T_i/4),) int64 token tensors, in the same order."""
        return self._per_item(mels, self.dvae.tokenize)

    @torch.inference_mode()
    def logprobs_mels(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of (80, T_i) mels -> (ceil(T_i/4), K) log-softmax of the negative code distances: the encoder's
        belief over codes (its argmax is the token)."""
        def fn(batch: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
            return (-self.dvae.codebook.distances(self.dvae.encode(batch, lengths))).log_softmax(-1)

        return self._per_item(mels, fn)

    @torch.inference_mode()
    def tokenize_wavs(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """List of 1-D 22.05 kHz waveforms -> token tensors."""
        return self.tokenize_mels([self.mel(w.to(self.device)) for w in wavs])

    @staticmethod
    def training_wav(wav: torch.Tensor) -> torch.Tensor:
        """A clip as the GPT's training tokens see it: with one token's worth of zeros appended.

        DL-Art-School tokenized zero-padded clips, so the code one past a clip's end was the code of silence
        (`models.gpt_data.collate` keeps it, then the model predicts stop).
        """
        return F.pad(wav, (0, SAMPLES_PER_TOKEN))

    def tokenize_training_wavs(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Tokens of clips the GPT trains on (see `training_wav`)."""
        return self.tokenize_wavs([self.training_wav(w) for w in wavs])

    @torch.inference_mode()
    def training_logprobs(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Code log-probabilities (N_i, K) of clips the GPT trains on (see `training_wav`)."""
        return self.logprobs_mels([self.mel(self.training_wav(w).to(self.device)) for w in wavs])
