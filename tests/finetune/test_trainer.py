"""The fine-tune loop: learning, exact resume after SIGKILL, refusal to resume with other settings, freezing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from tortuner.cli import main
from tortuner.files import read_jsonl
from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.tortoise import build_gpt, tiny_gpt_config
from tortuner.training import param_groups


def args(data, dvae, models, out, *extra):
    return ["finetune", "--data", str(data), "--dvae", str(dvae), "--models", str(models), "--out", str(out),
            "--batch-size", "2", "--grad-accum", "2", "--lr", "1e-3", "--warmup-steps", "2", "--milestones", "3,6",
            "--save-every", "2", "--keep-checkpoints", "0", "--val-every", "4", "--log-every", "1",
            "--device", "cpu", "--num-workers", "0", *extra]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory, espeak_dataset, tiny_dvae, tiny_models):
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, out, "--max-steps", "8")) == 0
    return out


def test_training_lowers_losses_and_logs(straight_run):
    rows = read_jsonl(straight_run / "log.jsonl")
    train = [r["loss"] for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in val] == [4, 8]
    assert val[1]["loss"] < val[0]["loss"] and train[-1] < train[0]
    assert all(r["code_nll"] > 0 for r in val)
    assert (straight_run / "loss.png").stat().st_size > 1000
    assert any(p.name.startswith("events") for p in (straight_run / "tb").iterdir())
    samples = read_jsonl(straight_run / "samples.jsonl")
    assert [s["step"] for s in samples] == [4, 8] and all(len(s["codes"]) == s["generated_codes"] for s in samples)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, straight_run, espeak_dataset, tiny_dvae, tiny_models):
    out = tmp_path / "killed"
    # Same run, but aiming at 1000 steps so it is surely still going when killed just after its step-4 checkpoint.
    cmd = [sys.executable, "-m", "tortuner.cli",
           *args(espeak_dataset, tiny_dvae, tiny_models, out, "--max-steps", "1000")]
    # One thread, as this process runs (conftest): the same kernels give the same bits.
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step_0000004" / "state.json").is_file():
        assert proc.poll() is None and time.time() < deadline, "training subprocess ended or stalled"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    assert done[-1] < "step_0000008", done  # killed mid-run
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, out, "--max-steps", "8", "--resume")) == 0
    a = load_file(straight_run / "checkpoints" / "step_0000008" / "model.safetensors")
    b = load_file(out / "checkpoints" / "step_0000008" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    oa = torch.load(straight_run / "checkpoints" / "step_0000008" / "trainer.pt", weights_only=True)["optimizer"]
    ob = torch.load(out / "checkpoints" / "step_0000008" / "trainer.pt", weights_only=True)["optimizer"]
    assert all(torch.equal(oa["state"][i]["exp_avg_sq"], ob["state"][i]["exp_avg_sq"]) for i in oa["state"])
    la = [r["loss"] for r in read_jsonl(straight_run / "log.jsonl") if r["split"] == "train"]
    lb = [r["loss"] for r in read_jsonl(out / "log.jsonl") if r["split"] == "train"]
    assert la == lb


def test_refuses_to_overwrite_or_resume_with_other_settings(straight_run, espeak_dataset, tiny_dvae, tiny_models,
                                                            capsys):
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, straight_run, "--max-steps", "8")) == 2
    assert "--resume" in capsys.readouterr().err
    bad = args(espeak_dataset, tiny_dvae, tiny_models, straight_run, "--max-steps", "9", "--resume")
    bad[bad.index("--batch-size") + 1] = "3"
    assert main(bad) == 2
    assert "batch_size" in capsys.readouterr().err


def test_freeze_keeps_parts_fixed(tmp_path, espeak_dataset, tiny_dvae, tiny_models):
    out = tmp_path / "frozen"
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, out, "--max-steps", "2", "--val-every", "0",
                     "--freeze", "conditioning_encoder,text_embedding")) == 0
    start = torch.load(tiny_models / "autoregressive.pth", weights_only=True)
    end = load_file(out / "checkpoints" / "step_0000002" / "model.safetensors")
    for k in start:
        same = torch.equal(start[k], end[k])
        assert same == (k.startswith("conditioning_encoder") or k.startswith("text_embedding")), k


def test_weight_decay_only_on_weight_matrices():
    gpt = build_gpt(tiny_gpt_config(16))
    decay, no_decay = param_groups(gpt, 0.01)
    names = {id(p): n for n, p in gpt.named_parameters()}
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    decayed = {names[id(p)] for p in decay["params"]}
    assert "gpt.h.0.attn.c_attn.weight" in decayed and "mel_head.weight" in decayed
    assert not any(n.endswith("bias") or "norm" in n or "ln_" in n or "embedding" in n for n in decayed)
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(gpt.parameters()))


def test_soft_targets_train_a_stock_gpt_from_the_dvae_beliefs(tmp_path, espeak_dataset, tiny_dvae, tiny_models):
    """`--soft-targets K`: the cache keeps each position's top-K codes beside the hard tokens (the argmax first),
    training takes a different path from hard targets, and the export is still a stock `autoregressive.pth`."""
    common = ("--max-steps", "2", "--val-every", "0", "--cache-dir", str(tmp_path / "cache"))
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, tmp_path / "hard", *common)) == 0
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, tmp_path / "soft", *common, "--soft-targets", "4",
                     "--soft-temperature", "2.0")) == 0
    rows = read_jsonl(next((tmp_path / "cache").glob("tokens-*-soft4.jsonl")))
    assert rows and all(len(r["soft_codes"]) == len(r["tokens"]) for r in rows)
    assert all(c[0] == t and len(c) == 4 for r in rows for c, t in zip(r["soft_codes"], r["tokens"]))
    loss = {name: [r["loss"] for r in read_jsonl(tmp_path / name / "log.jsonl") if r["split"] == "train"]
            for name in ("hard", "soft")}
    assert all(torch.isfinite(torch.tensor(v)).all() for v in loss.values()) and loss["hard"] != loss["soft"]
    assert main(["export", str(tmp_path / "soft"), "--out", str(tmp_path / "autoregressive.pth")]) == 0
    load_tortoise_model(tiny_models, "gpt", tmp_path / "autoregressive.pth")  # strict load into the stock class


def test_a_run_resumed_at_its_end_reports_its_last_losses(straight_run, espeak_dataset, tiny_dvae, tiny_models,
                                                          tmp_path, capsys):
    """Nothing left to train: the losses come from the checkpoint, not nan (lab finetune's report had None)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(straight_run, run)
    capsys.readouterr()
    assert main(args(espeak_dataset, tiny_dvae, tiny_models, run, "--max-steps", "8", "--resume")) == 0
    last = [r for r in read_jsonl(straight_run / "log.jsonl") if r["split"] == "train"][-1]
    assert f"train loss {last['loss']:.4f}" in capsys.readouterr().out
