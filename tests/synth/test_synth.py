"""synth on tiny random-weight stock TorToiSe models (diffusion + vocoder path): shards, resume, views."""

from __future__ import annotations

import torch

from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.gpt_data import encode_text
from tortuner.synth import shards
from tortuner.synth.sample import SamplingConfig, sample_codes, teacher_forced
from tortuner.synth.synth import SynthConfig, run_synth


def test_greedy_sampling_depends_on_prompt(tiny_models):
    """transformers >= 4.56 makes KV-cache sampling ignore the prompt; this catches it."""
    torch.manual_seed(0)
    gpt = load_tortoise_model(tiny_models, "gpt")
    for p in gpt.parameters():  # random weights are too flat to show differences: sharpen them
        p.data.mul_(4.0)
    cond = gpt.get_conditioning(torch.randn(1, 2, 80, 100))
    other = gpt.get_conditioning(torch.randn(1, 2, 80, 100) * 3)
    cfg = SamplingConfig(max_tokens=20)
    a = sample_codes(gpt, cond, encode_text("hello there, my friend"), 1, cfg, greedy=True)[0]
    b = sample_codes(gpt, cond, encode_text("a completely different sentence about cats"), 1, cfg, greedy=True)[0]
    c = sample_codes(gpt, other, encode_text("hello there, my friend"), 1, cfg, greedy=True)[0]
    assert not torch.equal(a, b) and not torch.equal(a, c)


def test_synth_tortoise_path_resume_shards_and_view(tiny_models, tiny_speech, tmp_path):
    base = dict(models=str(tiny_models), speech=str(tiny_speech), out=str(tmp_path / "s"), samples_per_text=2,
                max_tokens=8, diffusion_steps=2, batch_items=2, max_words=5)
    summary = run_synth(SynthConfig(**base, num_pairs=4, shard="0/2"))
    rows = shards.read_index(tmp_path / "s")
    assert summary["pairs"] == len(rows) > 0 and all(r["id"] // 2 % 2 == 0 for r in rows)
    for p in shards.load_pairs(tmp_path / "s", rows):
        assert p.mel.shape == (80, 4 * p.tokens.numel())
        assert p.tokens.max() < 64 and torch.isfinite(p.mel).all()
        assert set(p.row) >= {"text", "speaker", "clvp", "loglik"}
    # a rerun of the whole set (as one writer) only adds the other shard's ids: nothing is duplicated
    again = run_synth(SynthConfig(**base, num_pairs=4, shard="0/1"))
    rows2 = shards.read_index(tmp_path / "s")
    ids = [r["id"] for r in rows2]
    assert len(set(ids)) == len(ids) == again["pairs"] and again["new_pairs"] <= 2
    assert {r["id"] for r in rows} < set(ids)
    # the CLVP view is a selection of the same shard rows
    top = shards.select(rows2, clvp_top=0.5)
    assert 0 < len(top) < len(rows2)
    assert min(r["clvp"] for r in top) >= max(r["clvp"] for r in rows2 if r not in top)


def test_teacher_forced_batch_equals_the_stock_forward_of_each_sequence_alone(tiny_models):
    """One left-padded forward of clips with different texts, voices and lengths gives every clip the latents the
    stock `UnifiedVoice.forward` gives it alone, and the log-likelihood `code_nll` gives it."""
    from stock_reference import stock_latents
    from tortuner.models.gpt_data import GPTExample, code_nll, collate

    torch.manual_seed(0)
    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    cond_mels = torch.randn(3, 2, 80, 100)
    conds = gpt.get_conditioning(cond_mels)
    texts = [encode_text(t) for t in ("a short line of text", "hi.", "and a rather longer line, with a comma")]
    codes = [torch.randint(0, 64, (n,)) for n in (7, 12, 3)]
    lats, logliks = teacher_forced(gpt, conds, texts, codes)
    shared, _ = teacher_forced(gpt, conds[:1], texts[0], codes)  # one voice and text for all
    for i, (t, c, lat, ll) in enumerate(zip(texts, codes, lats, logliks)):
        stock = stock_latents(gpt, conds[i : i + 1], t, c)
        assert lat.shape == (c.numel(), gpt.model_dim)
        assert torch.allclose(lat, stock, atol=1e-5)
        assert not torch.allclose(lat, shared[i], atol=1e-3) or i == 0  # text and voice do matter
        nll, n = code_nll(gpt, collate([GPTExample(t, c, c.numel() * 1024, cond_mels[i])], gpt.stop_mel_token))
        assert n == c.numel() and abs(ll + nll / n) < 1e-4
