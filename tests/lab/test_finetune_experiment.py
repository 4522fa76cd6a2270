"""`tortuner lab finetune` on a freshly built `test`-size world: oracle-equal tokens give ratio 1, bad ones do not."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch

from tortuner.cli import main
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.models.dvae import DiscreteVAE

pytestmark = pytest.mark.slow  # they share the session's built world (tests/conftest.py: `built_world`)


@pytest.fixture
def world(built_world) -> WorldPaths:
    return built_world


def lab_finetune(world, run, *extra: str):
    """Quick settings; by default without the levers' arms and the outcome measures (one test covers those)."""
    return main(["lab", "finetune", "--world", str(world.root), "--run", str(run), "--steps", "12", "--batch-size", "4",
                 "--lr", "1e-3", "--warmup-steps", "2", *(extra or ("--levers", "", "--outcome-samples", "0"))])


def test_teacher_tokens_give_ratio_one_and_fine_tuning_helps(world, tmp_path):
    """With the teacher as the 'recovered' dVAE both arms learn the same tokens: the same GPT, the same NLL and the same
    outcome figures (every GPT speaks the same texts with the same conditioning and sampling seeds)."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(world.teacher, run / "dvae.pth")
    (run / "report.json").write_text(json.dumps({"agreement": 0.5, "outcome_wer_none": -1.0}))
    (run / "report.md").write_text("# Recovery report\n\nbody\n")
    full = ("--levers", "guided,soft", "--outcome-samples", "1")
    assert lab_finetune(world, run, *full) == 0
    r = json.loads((run / "report.json").read_text())
    assert r["agreement"] == 0.5  # the recovery's keys are kept
    assert r["finetune_ratio"] == 1.0 and r["finetune_nll_recovered"] == r["finetune_nll_oracle"]
    assert r["finetune_nll_oracle"] < r["finetune_nll_base"] and r["finetune_kept"] == 1.0
    assert r["finetune"]["train_token_agreement"] == 1.0
    assert r["finetune"]["dvae_sha256"] == hashlib.sha256((run / "dvae.pth").read_bytes()).hexdigest()
    # the guided arm: the same dVAE read with the GPT as a prior (tokens among its candidates, some moved)
    assert r["finetune_ratio_guided"] == pytest.approx(
        r["finetune_nll_recovered_guided"] / r["finetune_nll_oracle"], abs=1e-4)
    assert 0.3 < r["finetune"]["arms"]["recovered_guided"]["train_token_agreement"] < 1.0
    # the soft arm: the teacher's own beliefs over its top codes, at the temperature that fits the run's pairs
    assert r["finetune"]["arms"]["recovered_soft"]["soft_temperature"] > 0
    assert r["finetune"]["arms"]["recovered_soft"]["train_token_agreement"] == 1.0
    val = r["finetune"]["val_clips"]
    for arm in ("none", "teacher", "recovered", "recovered_guided", "recovered_soft"):
        assert r[f"outcome_generations_{arm}"] == val
        assert 0 <= r[f"outcome_stop_rate_{arm}"] <= 1 and -1 <= r[f"outcome_speaker_sim_{arm}"] <= 1
        assert r[f"outcome_wer_{arm}"] >= 0 and r[f"outcome_length_ratio_{arm}"] > 0
        assert 0 <= r[f"outcome_code_tv_{arm}"] <= 1
    for measure in ("wer", "speaker_sim", "stop_rate", "length_ratio", "code_tv"):
        assert r[f"outcome_{measure}_recovered"] == r[f"outcome_{measure}_teacher"]
        lo, hi = r["outcome_interval"][measure]
        assert lo <= hi and r[f"outcome_separates_{measure}"] == (lo > 0 or hi < 0)
        # credited only where the teacher's fine-tune moves the measure; identical tokens keep all of it
        assert r[f"outcome_kept_{measure}"] == (1.0 if r[f"outcome_separates_{measure}"] else None)
    # Rerunning resumes (nothing to train) and replaces its report section instead of adding another.
    assert lab_finetune(world, run) == 0
    r = json.loads((run / "report.json").read_text())
    assert not any(k.startswith("outcome_") for k in r)  # this run measured none: no stale outcome figures
    md = (run / "report.md").read_text()
    assert md.startswith("# Recovery report") and md.count("## Fine-tune experiment") == 1
    assert (run / "finetune" / "finetune.png").is_file()


def test_a_wrong_tokenizer_scores_worse_than_the_oracle(world, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    torch.manual_seed(3)
    save_dvae(DiscreteVAE(load_dvae(world.teacher).cfg), run / "dvae.pth")  # untrained
    assert lab_finetune(world, run) == 0
    r = json.loads((run / "report.json").read_text())
    assert r["finetune_ratio"] > 1.0 and r["finetune"]["train_token_agreement"] < 0.5
    assert main(["lab", "finetune", "--world", str(world.root), "--run", str(tmp_path / "none")]) == 2


def test_speak_runs_a_lab_world_through_its_renderer(world, tmp_path):
    import soundfile as sf

    from tortuner.finetune.speak import SpeakConfig, speak

    info = speak(SpeakConfig(models=str(world.models), voice=str(world.newvoice / "wavs"),
                             text="Hello there.", out=str(tmp_path / "x.wav"), preset="ultra_fast", num_samples=2,
                             autoregressive_batch_size=2, max_mel_tokens=40, device="cpu"))
    wav, sr = sf.read(tmp_path / "x.wav")
    frames = info["codes"] * 4 * 24000 // 22050  # the renderer's (and the diffusion decoder's) frame count
    assert sr == 24000 and len(wav) == (frames - 1) * 256 and abs(wav).max() > 0.1  # Griffin-Lim, centred frames
