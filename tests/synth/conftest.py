"""Tiny random-weight stock TorToiSe models in a models folder, and a small real-speech manifest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tortuner.files import torch_save, write_jsonl
from tortuner.models.checkpoints import save_model_config
from tortuner.models.tortoise import (
    build_clvp,
    build_diffusion,
    build_gpt,
    build_vocoder,
    tiny_clvp_config,
    tiny_diffusion_config,
    tiny_gpt_config,
    tiny_vocoder_config,
)

NUM_CODES = 64


def espeak_wav(path: Path, text: str, voice: str = "en-us") -> Path:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    cfgs = {"gpt": tiny_gpt_config(NUM_CODES), "clvp": tiny_clvp_config(NUM_CODES),
            "diffusion": tiny_diffusion_config(NUM_CODES), "vocoder": tiny_vocoder_config()}
    save_model_config(d, cfgs)
    torch_save(build_gpt(cfgs["gpt"]).state_dict(), d / "autoregressive.pth")
    torch_save(build_clvp(cfgs["clvp"]).state_dict(), d / "clvp2.pth")
    torch_save(build_diffusion(cfgs["diffusion"]).state_dict(), d / "diffusion_decoder.pth")
    torch_save({"model_g": build_vocoder(cfgs["vocoder"]).state_dict()}, d / "vocoder.pth")
    return d


@pytest.fixture(scope="session")
def tiny_speech(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    (d / "wavs").mkdir()
    rows = []
    for i, (voice, text) in enumerate([("en-us", "The quick brown fox jumps over the lazy dog."),
                                       ("en-gb", "A small boat drifted slowly across the lake."),
                                       ("en-us", "Every morning she walks to the old market.")]):
        espeak_wav(d / "wavs" / f"c{i}.wav", text, voice=voice)
        rows.append({"audio": f"wavs/c{i}.wav", "text": text, "speaker": voice, "duration": 2.0})
    write_jsonl(d / "manifest.jsonl", rows)
    return d


