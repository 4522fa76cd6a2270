"""synth on tiny random-weight stock TorToiSe models (diffusion + vocoder path): shards, resume, views."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch

from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.gpt_data import encode_text
from tortuner.synth import shards
from tortuner.synth.sample import SamplingConfig, cut_at_stop, prepare_for_sampling, sample_codes, teacher_forced
from tortuner.synth.synth import SynthConfig, run_synth


@contextlib.contextmanager
def transformers_messages():
    """Collect what transformers logs or warns inside the block (its log-once warnings included) into a list."""
    from transformers.utils import logging as hf_logging

    hf_logging.warning_once.cache_clear()  # else a warning some earlier test triggered would stay silent here
    out, messages = io.StringIO(), []
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("transformers")  # it does not propagate to the root logger, so caplog misses it
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield messages
    finally:
        logger.removeHandler(handler)
        messages += out.getvalue().splitlines() + [str(w.message) for w in caught]


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


def test_sampling_passes_the_attention_mask_so_transformers_does_not_warn(tiny_models):
    """The stock `inference_speech` leaves the mask out, so transformers prints that it "cannot infer" it (pad token =
    eos token) into the progress bars of every synth run; `sample_codes` passes it: the same samples, no warning."""
    gpt = prepare_for_sampling(load_tortoise_model(tiny_models, "gpt"))
    cond = gpt.get_conditioning(torch.randn(1, 2, 80, 100))
    text = encode_text("hello there, my friend")
    with transformers_messages() as ours:
        torch.manual_seed(0)
        codes = sample_codes(gpt, cond, text, 3, SamplingConfig(max_tokens=12))
    with transformers_messages() as stock:  # the control: the capture does see the warning when it is emitted
        torch.manual_seed(0)
        ref = gpt.inference_speech(cond, text[None], num_return_sequences=3, max_generate_length=12, do_sample=True,
                                   top_p=0.8, temperature=0.8, repetition_penalty=2.0, length_penalty=1.0)
    assert ours == [] and any("attention mask is not set" in m for m in stock)
    assert all(torch.equal(c, cut_at_stop(r, gpt.start_mel_token)) for c, r in zip(codes, ref))


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
