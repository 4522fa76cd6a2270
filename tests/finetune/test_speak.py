"""`tortuner speak`: the stock pipeline on tiny random-weight models gives a valid 24 kHz wav of the right length."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch

from tortuner.cli import main
from tortuner.finetune.speak import SpeakConfig, fix_codes, speak, trim_latents


def test_speak_writes_a_wav_of_the_length_of_its_codes(tmp_path, tiny_models, espeak_dataset):
    out = tmp_path / "out.wav"
    info = speak(SpeakConfig(models=str(tiny_models), voice=str(espeak_dataset / "wavs"), text="Hello there, friend.",
                             out=str(out), preset="ultra_fast", num_samples=3, autoregressive_batch_size=2,
                             max_mel_tokens=24,
                             diffusion_iterations=4, device="cpu"))
    wav, sr = sf.read(out)
    assert sr == 24000 and wav.ndim == 1 and abs(wav).max() > 0
    # Diffusion makes codes*4*24000//22050 univnet frames; UnivNet makes 256 samples per frame.
    assert len(wav) == info["codes"] * 4 * 24000 // 22050 * 256
    assert info["candidates"] == 3 and 0 < info["codes"] <= 24


def test_speak_cli_with_a_gpt_file(tmp_path, tiny_models, espeak_dataset):
    gpt = torch.load(tiny_models / "autoregressive.pth", weights_only=True)
    torch.save({k: v * 0.5 for k, v in gpt.items()}, tmp_path / "ft.pth")
    out = tmp_path / "cli.wav"
    assert main(["speak", "--models", str(tiny_models), "--gpt", str(tmp_path / "ft.pth"), "--voice",
                 str(espeak_dataset / "wavs" / "c0.wav"), "--text", "Testing.", "--out", str(out), "--preset",
                 "ultra_fast", "--num-samples", "2", "--autoregressive-batch-size", "2", "--max-mel-tokens", "12",
                 "--diffusion-iterations", "3", "--device", "cpu"]) == 0
    assert sf.info(str(out)).samplerate == 24000
    with pytest.raises(SystemExit):
        main(["speak", "--models", str(tiny_models), "--voice", str(espeak_dataset / "wavs"), "--text", "x",
              "--out", str(out), "--preset", "nope"])
    assert main(["speak", "--models", str(tiny_models), "--voice", str(tmp_path / "missing"), "--text", "x",
                 "--out", str(out)]) == 2


def test_code_fixups_follow_tortoise():
    stop, silence = 8193, 83
    codes = torch.tensor([5, 9, 8192, 7, stop, 4, 4, 4, 4])
    fixed = fix_codes(codes, stop, 8192, silence)
    assert fixed.tolist() == [5, 9, silence, 7, silence, silence, 45, 45, 248]  # TorToiSe's tail for its dVAE
    small = fix_codes(torch.tensor([1, 2, 65, 3]), 65, 64, 0)
    assert small.tolist() == [1, 2, 0, 0]
    lat = torch.arange(20.0)[:, None]
    codes = torch.tensor([1] * 5 + [0] * 15)
    assert trim_latents(codes, lat, 0).shape[0] == 5 + 8  # cut after more than 8 silent codes
