"""Dataset lists, the per-dVAE token cache, length limits and deterministic micro-batches."""

from __future__ import annotations

import json
import shutil

import torch

from support.speech import espeak_wav
from tortuner.audio.io import load_audio
from tortuner.finetune.dataset import (
    ExampleSource,
    LimitReport,
    MicroBatches,
    attach_tokens,
    read_dataset,
    stream_index,
)
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.tokenizer import Tokenizer


def test_reads_prepare_output_and_ljspeech_metadata(tmp_path, espeak_dataset):
    train, val = read_dataset(espeak_dataset)
    assert len(train) == 6 and len(val) == 2
    assert {c.speaker for c in train} == {"anna", "ben"} and all(c.audio.is_file() for c in train + val)
    lj = tmp_path / "lj"
    shutil.copytree(espeak_dataset / "wavs", lj / "wavs")
    (lj / "metadata.csv").write_text("c0|Mr. Smith's 1st line|Mister Smith's first line\nc1|Second one.|Second one.\n")
    train, val = read_dataset(lj)
    assert [c.text for c in train] == ["Mister Smith's first line", "Second one."] and val == []
    assert train[0].audio == lj / "wavs" / "c0.wav" and train[0].speaker == "default"


def test_token_cache_is_exact_reused_and_invalidated(tmp_path, espeak_dataset, tiny_dvae):
    data = tmp_path / "data"
    shutil.copytree(espeak_dataset, data)
    train, _ = read_dataset(data)
    cache = tmp_path / "cache"
    clips = attach_tokens(train, tiny_dvae, cache)
    direct = Tokenizer(load_dvae(tiny_dvae)).tokenize_training_wavs([load_audio(c.audio, 22050) for c in clips])
    assert all(torch.equal(c.tokens, d) for c, d in zip(clips, direct))
    assert clips[0].samples == load_audio(clips[0].audio, 22050).numel()
    assert clips[0].tokens.numel() == -(-(clips[0].samples // 256 + 1 + 4) // 4)  # clip + one token of silence
    # The cache is used: plant a marker in it and read it back.
    (path,) = cache.glob("tokens-*.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["tokens"] = [7, 7, 7]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = attach_tokens(read_dataset(data)[0], tiny_dvae, cache)
    assert again[0].tokens.tolist() == [7, 7, 7]
    # A changed clip is re-tokenized...
    espeak_wav(data / "wavs" / "c0.wav", "Something else entirely now.")
    changed = attach_tokens(read_dataset(data)[0], tiny_dvae, cache)
    assert changed[0].tokens.tolist() != [7, 7, 7] and changed[1].tokens.equal(again[1].tokens)
    # ...and another dVAE gets its own cache.
    other = tmp_path / "other.pth"
    torch.manual_seed(5)
    save_dvae(DiscreteVAE(DVAEConfig(num_tokens=64, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)), other)
    attach_tokens(read_dataset(data)[0], other, cache)
    assert len(list(cache.glob("tokens-*.jsonl"))) == 2


def test_length_limits_skip_and_report(tmp_path, espeak_dataset, tiny_dvae):
    train, _ = read_dataset(espeak_dataset)
    lengths = sorted(load_audio(c.audio, 22050).numel() for c in train)
    report = LimitReport()
    kept = attach_tokens(train, tiny_dvae, tmp_path, max_samples=lengths[2], max_text_tokens=200, report=report)
    assert len(kept) == 3 and len(report.too_long_audio) == 3
    report = LimitReport()
    kept = attach_tokens(read_dataset(espeak_dataset)[0], tiny_dvae, tmp_path, max_text_tokens=5, report=report)
    assert kept == [] and len(report.too_long_text) == 6 and "6 text too long" in report.summary()


def test_micro_batches_are_pure_functions_of_their_index(tmp_path, espeak_dataset, tiny_dvae):
    clips = attach_tokens(read_dataset(espeak_dataset)[0], tiny_dvae, tmp_path)
    src = ExampleSource(clips)
    mb = MicroBatches(src, batch_size=2, seed=3, stop_token=65)
    a, b = mb[5], MicroBatches(ExampleSource(clips), batch_size=2, seed=3, stop_token=65)[5]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["cond_mels"].shape[:3] == (2, 2, 80)
    assert not torch.equal(mb[5]["codes"], MicroBatches(src, 2, seed=4, stop_token=65)[5]["codes"]) or \
        not torch.equal(mb[5]["cond_mels"], MicroBatches(src, 2, seed=4, stop_token=65)[5]["cond_mels"])
    # Every epoch visits every clip exactly once.
    for epoch in range(3):
        seen = [stream_index(3, 6, epoch * 6 + k) for k in range(6)]
        assert {e for e, _ in seen} == {epoch} and sorted(i for _, i in seen) == list(range(6))
    # Two processes split a round into disjoint halves of the same stream.
    r0 = MicroBatches(src, 1, 3, 65, rank=0, world=2)[0]["codes"]
    r1 = MicroBatches(src, 1, 3, 65, rank=1, world=2)[0]["codes"]
    both = MicroBatches(src, 2, 3, 65)[0]["codes"]
    assert torch.equal(r0[0, : r0.shape[1]], both[0, : r0.shape[1]])
    assert torch.equal(r1[0, : r1.shape[1]], both[1, : r1.shape[1]])


def test_guided_tokens_pick_among_the_dvae_candidates_and_are_cached_apart(tmp_path, espeak_dataset, tiny_dvae,
                                                                            tiny_models):
    """`--guided-tokens`: each token is one of the dVAE's top-k codes there; with no weight on the GPT they are the
    plain tokens; the GPT moves some; guided tokens are cached under their own key, beside the plain ones."""
    from tortuner.finetune.guide import Guide
    from tortuner.models.checkpoints import load_tortoise_model

    train, _ = read_dataset(espeak_dataset)
    cache = tmp_path / "cache"
    plain = attach_tokens(read_dataset(espeak_dataset)[0], tiny_dvae, cache)
    gpt = load_tortoise_model(tiny_models, "gpt").eval()
    no_gpt = attach_tokens(read_dataset(espeak_dataset)[0], tiny_dvae, cache, guide=Guide(gpt, "tiny", 22050, lam=0.0))
    assert all(torch.equal(a.tokens, b.tokens) for a, b in zip(plain, no_gpt))
    guide = Guide(gpt, "tiny", 22050, k=3, beams=3, lam=5.0)
    guided = attach_tokens(train, tiny_dvae, cache, guide=guide)
    logp = Tokenizer(load_dvae(tiny_dvae)).training_logprobs([load_audio(c.audio, 22050) for c in guided])
    for c, lp in zip(guided, logp):
        top3 = lp.topk(3, -1).indices
        assert c.tokens.shape == (lp.shape[0],) and bool((top3 == c.tokens[:, None]).any(-1).all())
    assert sum(int((a.tokens != b.tokens).sum()) for a, b in zip(plain, guided)) > 0
    assert len(list(cache.glob("tokens-*.jsonl"))) == 3
    assert len(list(cache.glob(f"tokens-*-{guide.key()}.jsonl"))) == 1
