"""Kill anywhere, lose nothing (issue 27): the fast subset of `benchmarks/chaos.py`.

`tokenize` on a folder and `prepare` on several recordings are SIGKILLed at seeded random moments and rerun until
they finish; their outputs must equal an uninterrupted run's byte for byte, and no file under a final name may
ever be partial. (`finetune`'s exact resume has its own kill test in tests/finetune/test_trainer.py.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support.bad_inputs import make_kit
from support.chaos import broken_files, chaos, same_files, voice_clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return voice_clips(tmp_path_factory.mktemp("clips"), 12)


def test_broken_files_finds_a_partial_file(tmp_path):
    """The check the chaos runs rely on must see a half-written file (else every run would pass)."""
    (tmp_path / "ok.json").write_text('{"a": 1}')
    (tmp_path / "half.json").write_text('{"a": ')
    (tmp_path / ".half.json.x.tmp").write_text('{"a": ')  # temporaries are not under final names
    assert broken_files(tmp_path) == ["half.json: JSONDecodeError"]


@pytest.mark.slow
def test_tokenize_survives_kills(tmp_path, clips):
    kit = make_kit(tmp_path / "kit")
    rep = chaos("tokenize", lambda out: ["tokenize", "--dvae", str(kit.dvae), "--batch-files", "2", "--out",
                                         str(out / "tokens.jsonl"), str(clips)],
                same_files(["tokens.jsonl"]), tmp_path / "chaos", kills=2, seed=1)
    assert rep.kills >= 1 and rep.ok, rep


@pytest.mark.slow
def test_finetune_survives_kills_inside_its_checkpoint_writes(tmp_path):
    """Killed just before a rename (a temporary complete, the final name not yet replaced), every time."""
    from support.bad_inputs import _dataset, finetune_args

    kit = make_kit(tmp_path / "kit")
    ds = _dataset(tmp_path / "ft", kit, [])
    rep = chaos("finetune", lambda out: finetune_args(kit, ds, out) + ["--batch-size", "2", "--grad-accum", "4",
                                                                      "--max-steps", "6", "--save-every", "2",
                                                                      "--resume"],
                same_files(["checkpoints/step_0000006/model.safetensors"]), tmp_path / "chaos", kills=3, seed=3,
                at_writes=True)
    assert rep.kills >= 2 and rep.ok, rep


@pytest.mark.slow
def test_prepare_survives_kills(tmp_path, clips):
    inputs = [str(p) for p in sorted(clips.glob("*.wav"))[:6]]
    rep = chaos("prepare", lambda out: ["prepare", *inputs, "--out", str(out), "--min-seconds", "3",
                                        "--max-speaker-change", "off", "--asr", "none"],
                same_files(["wavs/*.wav", "train.txt", "val.txt", "clips.jsonl"]), tmp_path / "chaos", kills=2,
                seed=2)
    assert rep.kills >= 1 and rep.ok, rep
