"""Bad input gets one line naming the file and the problem, and the good items are still processed (issue 27).

The fast subset of `benchmarks/bad_input.py`: each verb runs once over a folder (or dataset) holding every fault
at once beside good clips, so one fault cannot hide behind another's early exit; model-file faults through the
dVAE and GPT loaders; read-only and full output file systems where this machine lets the test mount a tmpfs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from support.bad_corpus import AUDIO_FAULTS, LONG, SEARCHED, USABLE, write_audio_faults, write_model_faults
from support.bad_inputs import (
    LIST_FAULTS,
    CannotMount,
    Kit,
    _dataset,
    _folder,
    finetune_args,
    make_kit,
    model_case,
    output_case,
    run_cli,
)


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Kit:
    return make_kit(tmp_path_factory.mktemp("kit"))


def _every_fault_in(d: Path, kit: Kit) -> dict[str, Path]:
    """`d/in`: the good clips and every audio fault beside them."""
    folder, _ = _folder(d, kit, None)
    return write_audio_faults(folder)


def _assert_named(out, faults: dict[str, Path], searched_ok: bool, streams: bool = False) -> None:
    assert not out.traceback, out.traceback
    for fault, path in faults.items():
        if fault in USABLE or (searched_ok and fault in SEARCHED) or (streams and fault == LONG):
            continue
        named = out.names(path)
        assert len(named) == 1, (fault, out.lines)
        assert "\n" not in named[0] and len(named[0]) < 250, named[0]


def test_tokenize_a_folder_of_every_bad_file_keeps_the_good_ones(kit, tmp_path):
    """The reported case: a valid WAV of a few samples killed `tokenize` and lost every good clip with it."""
    faults = _every_fault_in(tmp_path, kit)
    out = run_cli(["tokenize", "--dvae", str(kit.dvae), "--out", str(tmp_path / "t.jsonl"), str(tmp_path / "in")])
    assert out.status == 0
    _assert_named(out, faults, searched_ok=True)
    rows = {json.loads(x)["audio"] for x in (tmp_path / "t.jsonl").read_text().splitlines()}
    assert {str(tmp_path / "in" / "good_0.wav"), str(tmp_path / "in" / "good_1.wav")} <= rows
    assert {str(faults[f]) for f in USABLE} <= rows  # usable audio (8 channels, 192/8 kHz, cut data) is used
    assert "too short" in out.names(faults["5 samples"])[0]
    assert "too long for a clip" in out.names(faults[LONG])[0]


def test_eval_tokenizer_skips_bad_manifest_rows(kit, tmp_path):
    faults = _every_fault_in(tmp_path, kit)
    rows = [{"audio": f"good_{i}.wav", "text": t} for i, t in enumerate(kit.texts)]
    rows += [{"audio": p.name, "text": "x"} for p in faults.values()] + [{"text": "no audio field"}]
    (tmp_path / "in" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_cli(["eval", "tokenizer", "--speech", str(tmp_path / "in"), "--dvae", str(kit.dvae), "--out",
                   str(tmp_path / "eval.json")])
    assert out.status == 0
    _assert_named(out, faults, searched_ok=False)
    assert any("manifest.jsonl:" in ln and "audio" in ln for ln in out.lines), out.lines
    assert json.loads((tmp_path / "eval.json").read_text())["clips"] == 2 + len(USABLE)


def test_finetune_trains_on_the_good_lines_of_a_bad_dataset(kit, tmp_path):
    """Every list fault and every audio fault in one train.txt: each is named once, the rest trains."""
    extra = [line for line, _ in LIST_FAULTS.values()]
    ds = _dataset(tmp_path, kit, extra)
    shutil.copy(kit.good[0], tmp_path / "outside.wav")
    faults = write_audio_faults(ds / "wavs")
    with open(ds / "train.txt", "ab") as fh:
        fh.write(b"".join(f"wavs/{p.name}|Some words here.\n".encode() for p in faults.values()))
    out = run_cli(finetune_args(kit, ds, tmp_path / "run"))
    assert out.status == 0, out.lines
    _assert_named(out, faults, searched_ok=False)
    assert len(out.names(ds / "nowhere.wav")) == 1
    assert sum("train.txt:" in ln for ln in out.lines) == 4  # non-UTF-8, empty text, no text field, outside
    skipped = json.loads((tmp_path / "run" / "skipped.json").read_text())
    assert len(skipped["bad_lines"]) == 4 and len(skipped["unreadable"]) == 2 + len(AUDIO_FAULTS) - len(USABLE)
    assert (tmp_path / "run" / "checkpoints" / "step_0000001" / "model.safetensors").is_file()


@pytest.mark.slow
def test_prepare_and_speak_name_every_bad_file(kit, tmp_path):
    faults = _every_fault_in(tmp_path, kit)
    out = run_cli(["prepare", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), "--min-seconds", "3",
                   "--max-speaker-change", "off"])
    assert out.status == 0
    _assert_named(out, faults, searched_ok=True, streams=True)
    kept = [json.loads(x) for x in (tmp_path / "ds" / "clips.jsonl").read_text().splitlines()]
    assert any("good_" in c["source"] and c["kept"] for c in kept)
    out = run_cli(["speak", "--models", str(kit.models), "--voice", str(tmp_path / "in"), "--text", "Testing.",
                   "--out", str(tmp_path / "o.wav"), "--preset", "ultra_fast", "--num-samples", "1",
                   "--autoregressive-batch-size", "1", "--max-mel-tokens", "8", "--diffusion-iterations", "2",
                   "--device", "cpu"])
    assert out.status == 0 and (tmp_path / "o.wav").is_file()
    _assert_named(out, faults, searched_ok=True)


@pytest.mark.parametrize("verb", ["tokenize --dvae", "speak --gpt"])
def test_broken_or_malicious_model_files_are_refused_in_one_line(kit, tmp_path, verb):
    source = kit.dvae if "dvae" in verb else kit.models / "autoregressive.pth"
    names = list(write_model_faults(tmp_path / "probe", torch.load(source, weights_only=True)))
    for fault in names:
        d = tmp_path / fault.replace(" ", "_")
        bad = write_model_faults(d / "corpus", torch.load(source, weights_only=True))[fault]
        v = model_case(verb, kit, d, bad)
        assert v.ok, (fault, v.cell)
        if "pickle" in fault:
            assert "refused" in v.cell or "not a PyTorch weights file" in v.cell, v.cell
    assert not list(tmp_path.rglob("PWNED"))


@pytest.mark.parametrize("fault", ["read-only output", "full disk"])
@pytest.mark.parametrize("verb", ["tokenize", "finetune"])
def test_unwritable_output_is_one_line_and_leaves_no_partial_file(kit, tmp_path, verb, fault):
    try:
        v = output_case(verb, fault, kit, tmp_path)
    except CannotMount as e:
        pytest.skip(f"cannot mount a tmpfs here: {e}")
    assert v.ok, v.cell
    assert ("Read-only" in v.cell) if fault == "read-only output" else ("No space left" in v.cell)
