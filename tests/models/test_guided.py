"""GPT-guided tokenization reads the GPT exactly as its training forward does, and weighs it against the encoder."""

from __future__ import annotations

import torch

from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.gpt_data import encode_text
from tortuner.models.guided import guided_tokens
from tortuner.synth.sample import teacher_forced


def _inputs(gpt, n_clips: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    k = gpt.start_mel_token
    texts = [encode_text(t) for t in ("Hello there.", "A much longer line of text to read.", "Yes.")][:n_clips]
    lengths = [7, 12, 4][:n_clips]  # different lengths: the batch pads and masks
    enc = [torch.randn(n, k, generator=g).log_softmax(-1) for n in lengths]
    with torch.no_grad():
        conds = gpt.get_conditioning(torch.randn(n_clips, 2, 80, 60, generator=g))
    return enc, texts, conds


def test_without_the_gpt_it_is_the_encoder_argmax(tiny_models):
    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    enc, texts, conds = _inputs(gpt)
    for kwargs in ({"lam": 0.0, "beams": 3}, {"k": 1, "beams": 2}):
        out = guided_tokens(gpt, enc, texts, conds, **kwargs)
        assert all(torch.equal(o, e.argmax(-1)) for o, e in zip(out, enc))


def test_with_a_flat_encoder_one_beam_is_the_gpts_greedy_reading_as_trained(tiny_models):
    """Each code is the argmax of the GPT's teacher-forced prediction given the codes before it (the training forward,
    one clip at a time): the incremental, batched, left-padded decoding sees what training saw."""
    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    enc, texts, conds = _inputs(gpt)
    flat = [torch.zeros_like(e) for e in enc]
    out = guided_tokens(gpt, flat, texts, conds, k=flat[0].shape[1], beams=1, lam=1.0)
    for i, codes in enumerate(out):
        lat, _ = teacher_forced(gpt, conds[i : i + 1], texts[i], [codes])
        greedy = gpt.mel_head(lat[0]).log_softmax(-1)[:, : gpt.start_mel_token].argmax(-1)
        assert torch.equal(greedy, codes)


def test_a_beam_as_wide_as_all_sequences_finds_the_best_one(tiny_models):
    """With k candidates over N positions and k**N beams nothing is pruned: the result is the brute-force argmax of
    encoder log-probability + lam x GPT log-probability, each sequence scored independently by the training forward."""
    import itertools

    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    enc, texts, conds = _inputs(gpt, n_clips=3, seed=1)
    enc = [e[:4] for e in enc]  # N = 4 positions, k = 2 candidates: 16 sequences per clip
    lam = 2.0
    out = guided_tokens(gpt, enc, texts, conds, k=2, beams=16, lam=lam)
    for i, e in enumerate(enc):
        top = e.topk(2, -1).indices
        best, best_score = None, float("-inf")
        for pick in itertools.product(range(2), repeat=4):
            codes = top[torch.arange(4), torch.tensor(pick)]
            lat, _ = teacher_forced(gpt, conds[i : i + 1], texts[i], [codes])
            g = gpt.mel_head(lat[0]).float().log_softmax(-1).gather(1, codes[:, None])[:, 0]
            score = float(e.gather(1, codes[:, None]).sum() + lam * g.sum())
            if score > best_score:
                best, best_score = codes, score
        assert torch.equal(out[i], best)
