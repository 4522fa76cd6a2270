"""Soft mel targets: the same positions and normalisation as the stock UnifiedVoice loss."""

from __future__ import annotations

import torch

from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.gpt_data import GPTExample, collate, encode_text, soft_mel_loss


def _batch(gpt, soft: str):
    g = torch.Generator().manual_seed(0)
    examples = []
    for i, (text, n) in enumerate((("Hello there.", 9), ("A longer line to say.", 14))):
        codes = torch.randint(0, gpt.start_mel_token, (n + 1,), generator=g)  # + the tail code
        probs = torch.zeros(n + 1, 3)
        cands = torch.stack([codes, (codes + 1) % gpt.start_mel_token, (codes + 2) % gpt.start_mel_token], 1)
        if soft == "onehot":
            probs[:, 0] = 1.0
        elif soft == "spread":
            probs[:] = torch.tensor([0.5, 0.3, 0.2])
        examples.append(GPTExample(encode_text(text), codes, n * 1024 + 300 * i, torch.randn(2, 80, 60, generator=g),
                                   soft=(cands, probs)))
    return collate(examples, gpt.stop_mel_token)


def _stock(gpt, batch):
    conds = gpt.get_conditioning(batch["cond_mels"])
    return gpt(conds, batch["text"], batch["text_lengths"], batch["codes"], batch["wav_lengths"])


@torch.no_grad()
def test_soft_targets_reduce_to_the_stock_loss_and_move_it_otherwise(tiny_models):
    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    for soft in ("none", "onehot"):  # no soft probability mass, or all of it on the hard code: the stock loss
        batch = _batch(gpt, soft)
        _, loss_mel, logits = _stock(gpt, batch)
        assert torch.allclose(soft_mel_loss(gpt, logits, batch), loss_mel, atol=1e-6)
    batch = _batch(gpt, "spread")
    _, loss_mel, logits = _stock(gpt, batch)
    spread = soft_mel_loss(gpt, logits, batch)
    assert abs(float(spread - loss_mel)) > 1e-3
    # by hand for one position: clip 0, code 2
    logp = logits.float().log_softmax(1)
    want = -(logp[0, batch["soft_codes"][0, 2], 2] * batch["soft_probs"][0, 2]).sum()
    hard = -logp[0, batch["codes"][0, 2], 2]
    diff = (want - hard) / logits.shape[0] / logits.shape[2]
    one_position = dict(batch, soft_probs=batch["soft_probs"].clone().zero_())
    one_position["soft_probs"][0, 2] = batch["soft_probs"][0, 2]
    assert torch.allclose(soft_mel_loss(gpt, logits, one_position), loss_mel + diff, atol=1e-6)
