"""`tortuner lab finetune` on a freshly built `test`-size world: oracle-equal tokens give ratio 1, bad ones do not."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from tortuner.cli import main
from tortuner.lab.build import BuildConfig, build_world
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.models.dvae import DiscreteVAE


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
    out = tmp_path_factory.mktemp("world") / "w"
    build_world(BuildConfig(out=str(out), size="test", seed=0, threads=1))
    yield out
    torch.set_num_threads(before)


def lab_finetune(world, run):
    return main(["lab", "finetune", "--world", str(world), "--run", str(run), "--steps", "12", "--batch-size", "4",
                 "--lr", "1e-3", "--warmup-steps", "2"])


def test_teacher_tokens_give_ratio_one_and_fine_tuning_helps(world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(world / "hidden" / "teacher_dvae.pth", run / "dvae.pth")
    (run / "report.json").write_text(json.dumps({"agreement": 0.5}))
    (run / "report.md").write_text("# Recovery report\n\nbody\n")
    assert lab_finetune(world, run) == 0
    r = json.loads((run / "report.json").read_text())
    assert r["agreement"] == 0.5  # the recovery's keys are kept
    assert r["finetune_ratio"] == 1.0 and r["finetune_nll_recovered"] == r["finetune_nll_oracle"]
    assert r["finetune_nll_oracle"] < r["finetune_nll_base"]
    assert r["finetune"]["train_token_agreement"] == 1.0
    assert r["finetune"]["dvae_sha256"] == hashlib.sha256((run / "dvae.pth").read_bytes()).hexdigest()
    # Rerunning resumes (nothing to train) and replaces its report section instead of adding another.
    assert lab_finetune(world, run) == 0
    md = (run / "report.md").read_text()
    assert md.startswith("# Recovery report") and md.count("## Fine-tune experiment") == 1
    assert (run / "finetune" / "finetune.png").is_file()


def test_a_wrong_tokenizer_scores_worse_than_the_oracle(world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(3)
    save_dvae(DiscreteVAE(load_dvae(world / "hidden" / "teacher_dvae.pth").cfg), run / "dvae.pth")  # untrained
    assert lab_finetune(world, run) == 0
    r = json.loads((run / "report.json").read_text())
    assert r["finetune_ratio"] > 1.0 and r["finetune"]["train_token_agreement"] < 0.5
    assert main(["lab", "finetune", "--world", str(world), "--run", str(tmp_path / "none")]) == 2


def test_speak_runs_a_lab_world_through_its_renderer(world, tmp_path):
    import soundfile as sf

    from tortuner.finetune.speak import SpeakConfig, speak

    info = speak(SpeakConfig(models=str(world / "public" / "models"), voice=str(world / "hidden" / "newvoice" / "wavs"),
                             text="Hello there.", out=str(tmp_path / "x.wav"), preset="ultra_fast", num_samples=2,
                             autoregressive_batch_size=2, max_mel_tokens=40, device="cpu"))
    wav, sr = sf.read(tmp_path / "x.wav")
    frames = info["codes"] * 4 * 24000 // 22050  # the renderer's (and the diffusion decoder's) frame count
    assert sr == 24000 and len(wav) == (frames - 1) * 256 and abs(wav).max() > 0.1  # Griffin-Lim, centred frames
