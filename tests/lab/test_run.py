"""`lab run` on a random-weight world in the lab layout: recovery uses only public/, scoring uses hidden/, re-scoring
keeps `lab finetune`'s results only for their dvae.pth."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from support.speech import espeak_wav
from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.files import read_json, sha_file, torch_save, write_json, write_jsonl
from tortuner.lab.run import RUN_STAGES, RunConfig, run_lab
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import save_dvae, save_model_config
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.renderer import Renderer, RendererConfig
from tortuner.models.tortoise import build_clvp, build_gpt, tiny_clvp_config, tiny_gpt_config

pytestmark = pytest.mark.slow  # a whole `lab run` (recovery stages and scoring)

TEXTS = ["The quick brown fox jumps over the lazy dog.", "A small boat drifted slowly across the lake.",
         "Every morning she walks to the old market.", "Seven green bottles stood upon the wall.",
         "He quietly closed the heavy wooden door.", "Bright stars were shining above the hills."]


def _speech(folder: Path, items: list[tuple[str, str]], teacher: DiscreteVAE | None = None) -> None:
    (folder / "wavs").mkdir(parents=True)
    rows = []
    for i, (voice, text) in enumerate(items):
        wav = folder / "wavs" / f"c{i}.wav"
        espeak_wav(wav, text, voice=voice)
        row = {"audio": f"wavs/c{i}.wav", "text": text, "speaker": voice, "duration": 2.0}
        if teacher is not None:
            row["tokens"] = teacher.tokenize(DvaeMel()(load_audio(wav, DVAE_SR)[None]))[0].tolist()
        rows.append(row)
    write_jsonl(folder / "manifest.jsonl", rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A random-weight world with the lab layout (docs/lab.md): what matters here is the machinery, not quality."""
    w = WorldPaths(tmp_path_factory.mktemp("world") / "w")
    torch.manual_seed(0)
    k = 32
    gcfg = tiny_gpt_config(k)
    rcfg = RendererConfig(latent_dim=gcfg.model_dim, channels=16, blocks=1)
    w.models.mkdir(parents=True)
    save_model_config(w.models, {"gpt": gcfg, "clvp": tiny_clvp_config(k), "renderer": asdict(rcfg),
                                 "lab": {"cond_samples": 22050}})
    torch_save(build_gpt(gcfg).state_dict(), w.models / "autoregressive.pth")
    torch_save(build_clvp(tiny_clvp_config(k)).state_dict(), w.models / "clvp2.pth")
    torch_save(Renderer(rcfg).state_dict(), w.models / "renderer.pth")
    teacher = DiscreteVAE(DVAEConfig(num_tokens=k, codebook_dim=8, hidden_dim=16, num_resnet_blocks=1)).eval()
    w.hidden.mkdir()
    save_dvae(teacher, w.teacher)
    _speech(w.public_speech, [(["en-us", "en-gb"][i % 2], t) for i, t in enumerate(TEXTS[:4])])
    _speech(w.eval, [("en-029", t) for t in TEXTS[4:]], teacher)
    write_json(w.state, {"size": "test", "seed": 0, "num_codes": k, "stages": {}})
    return w.root


@pytest.fixture(scope="module")
def recovered(world, tmp_path_factory) -> tuple[Path, dict]:
    """`lab run` on a copy of the world without its hidden half: (the run folder, its state). Read-only."""
    public_only = tmp_path_factory.mktemp("public") / "w"
    shutil.copytree(world, public_only, ignore=shutil.ignore_patterns("hidden"))
    run = tmp_path_factory.mktemp("run") / "run"
    return run, run_lab(RunConfig(world=str(public_only), out=str(run), preset="test", threads=1))


def _scorable(recovered, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(recovered[0], run)
    return run


def test_recovery_needs_only_the_public_half(recovered):
    run, state = recovered
    assert state["scored"] is False and (run / "dvae.pth").is_file() and not (run / "report.json").exists()
    assert all(state["stages"][s]["done"] for s in RUN_STAGES)
    sel = state["stages"]["select"]
    assert set(sel["public_gpt_gain"]) == set(sel["public_clvp"]) == {"decoder", "recon", "improved"}
    assert sel["selected"] == max(sel["public_gpt_gain"], key=sel["public_gpt_gain"].get)
    assert (run / "dvae.pth").read_bytes() == (run / f"{sel['selected']}.pth").read_bytes()


def test_score_only_scores_against_the_hidden_half(world, recovered, tmp_path):
    run = _scorable(recovered, tmp_path)
    rep = run_lab(RunConfig(world=str(world), out=str(run), score_only=True, threads=1))
    saved = read_json(run / "report.json")
    for key in ("agreement_top1", "agreement_top5", "baseline_agreement_top1", "baseline_matched_agreement_top1",
                "nll_teacher", "nll_recovered", "nll_ratio", "recon_l1_teacher", "recon_l1_recovered"):
        assert key in saved
    assert 0 <= rep["agreement_top1"] <= rep["agreement_top5"] <= 1
    assert rep["baseline_agreement_top1"] <= rep["baseline_matched_agreement_top1"] + 1e-9
    assert rep["nll_ratio"] == pytest.approx(rep["nll_recovered"] / rep["nll_teacher"])
    assert rep["stages"]["recon"]["agreement_top1"] == rep["proposal_agreement_top1"]
    # the oracle student (teacher labels) is made in scoring only: the public-only recovery has none
    assert not (recovered[0] / "oracle.pth").exists() and (run / "oracle.pth").is_file()
    assert 0 <= rep["oracle_agreement_top1"] <= rep["oracle_agreement_top5"] <= 1
    for name in ("report.md", "agreement_vs_step.png", "agreement_vs_pairs.png", "example_tokens.png"):
        assert (run / name).stat().st_size > 0


def test_score_only_keeps_finetune_results_only_for_the_dvae_they_were_made_with(world, recovered, tmp_path, capsys):
    """A re-score writes the recovery's figures and report.md anew and carries `lab finetune`'s keys and report.md
    section over when their `dvae_sha256` is that of the current dvae.pth; with another dvae.pth it drops them."""
    from tortuner.lab.finetune_report import write_markdown

    def finetune_keys(report: dict) -> dict:
        return {k: v for k, v in report.items() if k.startswith(("finetune", "outcome_"))}

    run = _scorable(recovered, tmp_path)
    ft = {"finetune_nll_base": 3.0, "finetune_nll_oracle": 2.0, "finetune_nll_recovered": 2.2, "finetune_ratio": 1.1,
          "outcome_wer_none": 0.9, "outcome_wer_teacher": 0.7, "outcome_wer_recovered": 0.8,
          "finetune": {"dvae_sha256": sha_file(run / "dvae.pth", "sha256"), "train_clips": 4, "val_clips": 2,
                       "val_codes": 50, "target_ratio": 1.03, "pass": False, "train_token_agreement": 0.5}}
    write_json(run / "report.json", {"agreement_top1": -1.0, **ft})  # a stale recovery figure, and ft
    (run / "report.md").write_text("stale recovery report\n")
    write_markdown(run / "report.md", ft)  # as `lab finetune` leaves them
    write_markdown(tmp_path / "section.md", ft)  # the section alone
    section = (tmp_path / "section.md").read_text().strip()
    start = section.splitlines()[0]  # its start marker

    rep = run_lab(RunConfig(world=str(world), out=str(run), score_only=True, threads=1))
    saved, md = read_json(run / "report.json"), (run / "report.md").read_text()
    assert finetune_keys(rep) == finetune_keys(saved) == ft
    assert saved["agreement_top1"] == rep["agreement_top1"] >= 0  # re-scored
    assert "stale" not in md and md.count(start) == 1 and section in md

    capsys.readouterr()
    shutil.copyfile(run / "baseline.pth", run / "dvae.pth")  # another tokenizer: those results no longer apply
    rep = run_lab(RunConfig(world=str(world), out=str(run), score_only=True, threads=1))
    assert not finetune_keys(rep) and not finetune_keys(read_json(run / "report.json"))
    assert start not in (run / "report.md").read_text()
    assert "fine-tune results dropped (made with another dvae.pth)" in capsys.readouterr().out
