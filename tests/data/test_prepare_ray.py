"""`prepare --ray` on a real local Ray cluster (2 CPUs, tests/conftest.py): the dataset local `prepare` makes, byte for
byte (clips, scores, transcripts, lists), and the same when a Ray worker is SIGKILLed in the middle (issue 26)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.chaos import same_files, voice_clips
from tortuner.cli import main

OUTPUTS = ["wavs/*.wav", "train.txt", "val.txt", "clips.jsonl"]


@pytest.mark.slow
def test_prepare_on_ray_makes_the_local_dataset_even_when_a_worker_dies(tmp_path, ray_cluster):
    inputs = [str(p) for p in sorted(voice_clips(tmp_path / "clips", 8).glob("*.wav"))[:6]]
    args = ["--min-seconds", "3", "--max-speaker-change", "off", "--asr", "pocketsphinx"]

    def prepare(name: str, *extra: str) -> Path:
        assert main(["prepare", *inputs, "--out", str(tmp_path / name), *args, *extra]) == 0
        return tmp_path / name

    local = prepare("local")
    assert len(list((local / "wavs").glob("*.wav"))) >= 3 and (local / "train.txt").read_text().strip()
    assert same_files(OUTPUTS)(local, prepare("ray", "--ray", "auto", "--workers", "2")) == []

    (ray_cluster / "armed").touch()  # the next input taken kills its worker's process
    killed = prepare("killed", "--ray", "auto", "--workers", "2")
    assert (ray_cluster / "fired").exists()
    assert same_files(OUTPUTS)(local, killed) == []


def test_ray_flag_alone_means_a_local_cluster_and_takes_an_address():
    from tortuner.cli import build_parser

    parser = build_parser()
    for verb in (["prepare", "in.wav", "--out", "o"], ["synth", "--models", "m", "--speech", "s", "--out", "o"]):
        assert parser.parse_args(verb).ray == ""
        assert parser.parse_args([*verb, "--ray"]).ray == "local"
        assert parser.parse_args([*verb, "--ray", "10.0.0.5:6379"]).ray == "10.0.0.5:6379"
