"""What one GPT training example is, how a batch is built, and TorToiSe's GPT loss.

Shared by `tortuner finetune` (fine-tuning TorToiSe's GPT on a voice) and the lab (training its public GPT from
scratch), so both train exactly the way DL-Art-School trained TorToiSe:
* text: TorToiSe's BPE tokenizer (`VoiceBpeTokenizer`, English cleaners), stop token 0 appended by the model;
* mel codes: dVAE tokens of the clip; `wav_lengths` in **samples** so that `UnifiedVoice.set_mel_padding` puts
  the stop token right after each clip's own end (the community forks multiply by 1024 twice and lose this);
* conditioning: k clips of the same speaker (other clips when there are), each cut/padded to `cond_samples`,
  turned into TorToiSe's 22.05 kHz mel;
* loss: 0.01 x text cross-entropy + 1.0 x mel-code cross-entropy.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.audio.mel import SAMPLES_PER_TOKEN

TEXT_WEIGHT = 0.01
MEL_WEIGHT = 1.0
COND_SAMPLES = 44000  # DL-Art-School's conditioning clip length for GPT training (2 s at 22.05 kHz)


_TOKENIZER = None


def text_tokenizer():
    """TorToiSe's BPE text tokenizer (ships inside the `tortoise` package)."""
    global _TOKENIZER
    if _TOKENIZER is None:
        from tortoise.utils.tokenizer import VoiceBpeTokenizer

        _TOKENIZER = VoiceBpeTokenizer()
    return _TOKENIZER


def encode_text(text: str) -> torch.Tensor:
    return torch.tensor(text_tokenizer().encode(text), dtype=torch.long)


def crop_or_pad(wav: torch.Tensor, samples: int, rng: random.Random | None = None) -> torch.Tensor:
    """A `samples`-long window of a 1-D clip (random start when `rng` is given, else the start), zero-padded."""
    if wav.shape[-1] >= samples:
        start = rng.randint(0, wav.shape[-1] - samples) if rng is not None else 0
        return wav[..., start : start + samples]
    return F.pad(wav, (0, samples - wav.shape[-1]))


@dataclass
class GPTExample:
    text: torch.Tensor        # (Lt,) BPE ids
    codes: torch.Tensor       # (N,) dVAE tokens of the clip
    wav_length: int           # clip length in samples at 22.05 kHz
    cond_mels: torch.Tensor   # (k, 80, T) conditioning mels from the same speaker
    soft: tuple[torch.Tensor, torch.Tensor] | None = None  # optional soft targets: (N, K) codes, (N, K) probabilities


def collate(examples: list[GPTExample], stop_token: int) -> dict[str, torch.Tensor]:
    """Pad a list of examples into the tensors `UnifiedVoice.forward` takes.

    Codes are padded with the stop token. DL-Art-School tokenized zero-padded audio, so the code one past a clip's
    end was the code of silence; to reproduce that, tokenize each clip with `SAMPLES_PER_TOKEN` zeros appended
    (`codes` may then hold one code more than `wav_length` covers; the model keeps it, then predicts stop).
    """
    b = len(examples)
    lt = max(e.text.numel() for e in examples)
    n = max(e.codes.numel() for e in examples)
    text = torch.zeros(b, lt, dtype=torch.long)
    codes = torch.full((b, n), stop_token, dtype=torch.long)
    for i, e in enumerate(examples):
        text[i, : e.text.numel()] = e.text
        codes[i, : e.codes.numel()] = e.codes
    batch = {
        "text": text,
        "text_lengths": torch.tensor([e.text.numel() for e in examples]),
        "codes": codes,
        # Samples, as DL-Art-School passes them: the model divides by mel_length_compression itself.
        "wav_lengths": torch.tensor([e.wav_length for e in examples]),
        "cond_mels": torch.stack([e.cond_mels for e in examples]),
    }
    if any(e.soft is not None for e in examples):
        k = max(e.soft[0].shape[1] for e in examples if e.soft is not None)
        batch["soft_codes"] = torch.zeros(b, n, k, dtype=torch.long)
        batch["soft_probs"] = torch.zeros(b, n, k)  # all zero where an example has none: hard targets there
        for i, e in enumerate(examples):
            if e.soft is not None:
                m, kk = e.soft[0].shape
                batch["soft_codes"][i, :m, :kk], batch["soft_probs"][i, :m, :kk] = e.soft
    return batch


def gpt_losses(gpt: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(text CE, mel CE) of the stock UnifiedVoice on a collated batch (teacher forcing); with soft targets in the
    batch, the mel CE of every code position is taken against them instead of the hard code (`soft_mel_loss`)."""
    conds = gpt.get_conditioning(batch["cond_mels"])
    loss_text, loss_mel, logits = gpt(conds, batch["text"], batch["text_lengths"], batch["codes"],
                                      batch["wav_lengths"])
    if "soft_codes" in batch:
        loss_mel = soft_mel_loss(gpt, logits, batch)
    return loss_text, loss_mel


def mel_targets(gpt: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, L + 2) the stock forward's mel targets: codes clipped to the longest clip, stop-padded past each clip's
    end + 1 (`set_mel_padding`), then a stop (as `UnifiedVoice.forward` builds them; a test compares the losses)."""
    codes = batch["codes"][:, : int(batch["wav_lengths"].max()) // gpt.mel_length_compression].clone()
    codes = gpt.set_mel_padding(codes, batch["wav_lengths"])
    return F.pad(F.pad(codes, (0, 1), value=gpt.stop_mel_token), (0, 1), value=gpt.stop_mel_token)


def soft_mel_loss(gpt: nn.Module, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean mel CE over the stock forward's positions, where a code position with soft targets contributes
    -sum_k p_k log q(c_k) (a tokenizer's belief over its top-K codes) and every other position its hard CE.

    logits (B, V, L + 2) from the stock forward; batch["soft_codes"] / ["soft_probs"] (B, N, K), zero probability
    rows = no soft target there. The inputs stay the hard codes: only what the GPT is asked to predict changes.
    """
    logp = logits.float().log_softmax(1)                              # (B, V, L + 2)
    targets = mel_targets(gpt, batch)
    loss = -logp.gather(1, targets[:, None, :])[:, 0]                 # hard CE per position (B, L + 2)
    n = min(batch["soft_codes"].shape[1], loss.shape[1])
    codes, probs = batch["soft_codes"][:, :n], batch["soft_probs"][:, :n]
    soft = -(logp[:, :, :n].transpose(1, 2).gather(2, codes) * probs).sum(-1)   # (B, n)
    use = (probs.sum(-1) > 0) & (targets[:, :n] != gpt.stop_mel_token)
    loss = torch.cat([torch.where(use, soft, loss[:, :n]), loss[:, n:]], 1)
    return loss.mean()


def total_loss(loss_text: torch.Tensor, loss_mel: torch.Tensor) -> torch.Tensor:
    return TEXT_WEIGHT * loss_text + MEL_WEIGHT * loss_mel


@torch.no_grad()
def code_nll(gpt: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed teacher-forced NLL (nats) of the clips' own codes and the count of codes (stop tokens excluded).

    The per-token NLL of one tokenizer's codes under the GPT is how tortuner scores a tokenizer without a reference.
    """
    conds = gpt.get_conditioning(batch["cond_mels"])
    _, _, logits = gpt(conds, batch["text"], batch["text_lengths"], batch["codes"], batch["wav_lengths"])
    # The model keeps floor(wav_length / 1024) codes per clip (UnifiedVoice's clip_inputs / set_mel_padding);
    # logits[:, :, i] predicts code i. Score exactly those codes.
    n = min(batch["codes"].shape[1], logits.shape[-1])
    logp = logits[:, :, :n].float().log_softmax(1)
    nll = -logp.gather(1, batch["codes"][:, None, :n]).squeeze(1)
    lengths = torch.clamp(batch["wav_lengths"] // SAMPLES_PER_TOKEN, max=n)
    mask = torch.arange(n)[None, :] < lengths[:, None]
    return float((nll * mask).sum()), int(mask.sum())
