"""A tiny random-weight teacher dVAE, espeak speech tokenized by it, and those pairs stored as synth shards."""

from __future__ import annotations

import pytest
import torch

from support.speech import espeak_wav
from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.files import torch_save, write_jsonl
from tortuner.models.checkpoints import save_dvae, save_model_config
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.tortoise import build_clvp, build_gpt, tiny_clvp_config, tiny_gpt_config
from tortuner.synth import shards

K = 16
TEXTS = ["The quick brown fox jumps over the lazy dog.", "A small boat drifted slowly across the lake.",
         "Every morning she walks to the old market.", "Seven green bottles stood upon the wall.",
         "He quietly closed the heavy wooden door.", "Bright stars were shining above the hills.",
         "Please bring the red book to the kitchen.", "Nobody expected the rain to stop so soon."]


@pytest.fixture(scope="session")
def rec_env(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("recover")
    torch.manual_seed(0)
    teacher = DiscreteVAE(DVAEConfig(num_tokens=K, codebook_dim=8, hidden_dim=16, num_resnet_blocks=1)).eval()
    save_dvae(teacher, d / "teacher.pth")
    (d / "speech" / "wavs").mkdir(parents=True)
    rows, mel = [], DvaeMel()
    for i, text in enumerate(TEXTS):
        voice = ["en-us", "en-gb"][i % 2]
        espeak_wav(d / "speech" / "wavs" / f"c{i}.wav", text, voice=voice)
        rows.append({"audio": f"wavs/c{i}.wav", "text": text, "speaker": voice, "duration": 2.0})
    write_jsonl(d / "speech" / "manifest.jsonl", rows)
    items = []
    for i, r in enumerate(rows[:6]):  # the last two clips stay held out
        m = mel(load_audio(d / "speech" / r["audio"], DVAE_SR)[None])[0]
        n = m.shape[1] // 4
        row = {"id": i, "text": r["text"], "speaker": r["speaker"], "clvp": float(i)}
        items.append((m[:, : 4 * n], teacher.tokenize(m[None, :, : 4 * n])[0], row))
    (d / "synth").mkdir()
    shards.write_batch(d / "synth", "000of001", 0, items)
    models = d / "models"
    models.mkdir()
    cfgs = {"gpt": tiny_gpt_config(K), "clvp": tiny_clvp_config(K)}
    save_model_config(models, cfgs)
    torch_save(build_gpt(cfgs["gpt"]).state_dict(), models / "autoregressive.pth")
    torch_save(build_clvp(cfgs["clvp"]).state_dict(), models / "clvp2.pth")
    return {"dir": d, "teacher": d / "teacher.pth", "speech": d / "speech", "synth": d / "synth", "models": models}


