"""`tortuner lab build` on the `test` size: layout, public/hidden separation, gates, determinism, resume."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from tortuner.cli import main
from tortuner.lab.build import BuildConfig, build_world
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae, load_renderer, load_tortoise_model

pytestmark = pytest.mark.slow  # they share the session's built world (tests/conftest.py: `built_world`, seed 3)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def world(built_world) -> WorldPaths:
    return built_world


def test_layout_and_gates(world):
    for path in (world.models / "autoregressive.pth", world.models / "clvp2.pth", world.models / "renderer.pth",
                 world.models / "models.json", world.public_speech / "manifest.jsonl", world.teacher,
                 world.eval / "manifest.jsonl", world.newvoice / "train.txt", world.newvoice / "val.txt",
                 world.report, world.root / "world_report.png"):
        assert path.is_file(), path
    report = json.loads(world.report.read_text())
    assert 0 < report["gpt_nll"] < report["gpt_nll_uniform"]
    assert report["teacher_perplexity"] > 1 and 0 < report["teacher_used_fraction"] <= 1
    assert set(report["gates"]) == {"teacher_uses_codebook", "gpt_far_below_uniform", "gpt_beats_bigram",
                                    "clvp_above_chance", "renderer_keeps_tokens"}
    assert 0 < report["bigram_nll"] < report["gpt_nll_uniform"] + 0.5
    assert 0 <= report["renderer_roundtrip_agreement"] <= 1
    # Griffin-Lim of the real clip's own mel keeps most tokens even for a barely trained teacher
    assert 0.3 < report["vocoder_roundtrip_agreement"] <= 1
    state = json.loads(world.state.read_text())
    assert all(state["stages"][s]["done"] for s in ("speech", "teacher", "gpt", "renderer", "clvp", "report"))


def test_public_half_is_self_sufficient_and_holds_nothing_hidden(world):
    gpt = load_tortoise_model(world.models, "gpt")
    clvp = load_tortoise_model(world.models, "clvp")
    renderer = load_renderer(world.models)
    teacher = load_dvae(world.teacher)
    assert gpt.number_mel_codes == teacher.cfg.num_tokens + 2
    assert renderer.cfg.latent_dim == gpt.model_dim and clvp is not None
    public_rows = load_manifest(world.public_speech)
    assert public_rows and all("tokens" not in r and Path(r["audio"]).is_file() for r in public_rows)
    assert all(r["text"] for r in public_rows)
    hidden_hashes = {_sha(p) for p in world.hidden.rglob("*") if p.is_file()}
    for p in world.public.rglob("*"):
        if p.is_file():
            assert _sha(p) not in hidden_hashes, p
            if p.suffix in (".json", ".jsonl", ".txt"):
                assert "hidden" not in p.read_text() and "teacher" not in p.read_text(), p
    eval_rows = load_manifest(world.eval)
    assert all("tokens" in r for r in eval_rows)
    speakers = lambda rows: {r["speaker"] for r in rows}  # noqa: E731
    teacher_rows = load_manifest(world.teacher_speech)
    assert not speakers(eval_rows) & (speakers(public_rows) | speakers(teacher_rows))
    assert not speakers(public_rows) & speakers(teacher_rows)
    assert any(s.startswith("human:") for s in speakers(eval_rows))


def test_same_seed_same_world_and_resume_skips_finished_stages(world, tmp_path, capsys):
    again = WorldPaths(tmp_path / "again")
    build_world(BuildConfig(out=str(again.root), size="test", seed=3, until="teacher"))
    said = capsys.readouterr().out.splitlines()[0]  # the precision is said before any work
    bf16 = json.loads(again.state.read_text())["mixed_precision"] == "bf16"
    assert said.startswith("lab build: test world, seed 3, ") and ("under bf16" in said) == bf16, said
    assert _sha(again.teacher) == _sha(world.teacher)
    assert (again.eval / "manifest.jsonl").read_text() == (world.eval / "manifest.jsonl").read_text()
    assert not (again.models / "autoregressive.pth").exists()
    mtime = again.teacher.stat().st_mtime_ns
    build_world(BuildConfig(out=str(again.root), size="test", seed=3, until="gpt"))  # continues, does not redo
    assert again.teacher.stat().st_mtime_ns == mtime
    assert torch.equal(torch.load(again.models / "autoregressive.pth", weights_only=True)["mel_head.weight"],
                       torch.load(world.models / "autoregressive.pth", weights_only=True)["mel_head.weight"])
    # resumed at a stage boundary, the next stage trains what the uninterrupted build trained: loading its inputs
    # (the teacher, here) must not draw from the stage's random stream (found by benchmarks/chaos.py)
    build_world(BuildConfig(out=str(again.root), size="test", seed=3, until="renderer"))
    assert _sha(again.models / "renderer.pth") == _sha(world.models / "renderer.pth")
    # the renderer ran on the training tokens the GPT stage kept; the CLVP stage still needs them, its latents no one
    assert (again.work / "training_tokens.pt").is_file() and not (again.work / "renderer_latents.pt").exists()


def test_what_a_build_keeps_for_a_rerun_is_used_only_with_the_model_file_it_came_from(tmp_path):
    from tortuner.lab.build import WorldBuilder

    builder = WorldBuilder(BuildConfig(out=str(tmp_path / "w"), size="test", seed=3))
    builder._keep = tmp_path / "work"
    source, made = tmp_path / "model.pth", []
    source.write_bytes(b"one")

    def make() -> list[torch.Tensor]:
        made.append(1)
        return [torch.arange(3.0) * len(made)]

    assert torch.equal(builder._kept("x", source, make)[0], torch.arange(3.0))
    assert torch.equal(builder._kept("x", source, make)[0], torch.arange(3.0)) and len(made) == 1  # loaded
    source.write_bytes(b"another model")
    assert torch.equal(builder._kept("x", source, make)[0], torch.arange(3.0) * 2)  # made again


def test_other_settings_on_an_existing_world_are_refused(world, capsys):
    assert main(["lab", "build", "--size", "test", "--out", str(world.root), "--seed", "4"]) == 2
    assert "seed=3" in capsys.readouterr().err


def test_a_world_started_with_other_size_settings_is_refused(world, tmp_path, capsys):
    state = json.loads(world.state.read_text())
    state["config"]["gpt_steps"] += 1  # as if an older tortuner had started this world
    (tmp_path / "world.json").write_text(json.dumps(state))
    assert main(["lab", "build", "--size", "test", "--out", str(tmp_path), "--seed", "3"]) == 2
    assert "other 'test' settings" in capsys.readouterr().err


def test_a_setting_a_world_does_not_record_counts_as_its_default(world, tmp_path, capsys):
    from dataclasses import asdict

    from tortuner.lab.build import WorldBuilder
    from tortuner.lab.sizes import SIZES

    gpt = load_tortoise_model(world.models, "gpt")
    assert len(gpt.conditioning_encoder.attn) == SIZES["test"].build.gpt_cond_blocks
    state = json.loads(world.state.read_text())
    del state["config"]["gpt_cond_blocks"]  # a world started before the setting existed had the stock 6 blocks
    (tmp_path / "world.json").write_text(json.dumps(state))
    assert main(["lab", "build", "--size", "test", "--out", str(tmp_path), "--seed", "3"]) == 2  # test size: 2
    assert "other 'test' settings" in capsys.readouterr().err
    base = {k: v for k, v in asdict(SIZES["base"].build).items() if k != "gpt_cond_blocks"}  # base keeps the stock 6
    (tmp_path / "world.json").write_text(json.dumps({"size": "base", "seed": 3, "config": base, "stages": {}}))
    WorldBuilder(BuildConfig(out=str(tmp_path), size="base", seed=3))
    # a setting introduced with a new behaviour as its default counts as the old one: CLVPs before it had dropout 0.1
    assert SIZES["test"].build.clvp_dropout != 0.1
    state = json.loads(world.state.read_text())
    del state["config"]["clvp_dropout"]
    (tmp_path / "world.json").write_text(json.dumps(state))
    assert main(["lab", "build", "--size", "test", "--out", str(tmp_path), "--seed", "3"]) == 2
    assert "other 'test' settings" in capsys.readouterr().err


def test_a_world_started_in_one_precision_is_not_finished_in_another(world, capsys):
    used = json.loads(world.state.read_text())["mixed_precision"]
    assert used in ("no", "bf16")
    other = "no" if used == "bf16" else "bf16"
    args = ["lab", "build", "--size", "test", "--out", str(world.root), "--seed", "3", "--mixed-precision", other]
    assert main(args) == 2
    assert f"mixed precision {used!r}" in capsys.readouterr().err


def test_gpt_gain_ranks_the_teacher_above_a_relabelled_and_a_collapsed_codebook(world):
    """The selection criterion of `lab run`: what the public GPT explains about a tokenizer's tokens."""
    from tortuner.models.checkpoints import cond_samples_of, model_configs
    from tortuner.recover.data import load_real
    from tortuner.recover.evaluate import score_tokenizer

    teacher, gpt = load_dvae(world.teacher), load_tortoise_model(world.models, "gpt").eval()
    clips, cond = load_real(world.teacher_speech), cond_samples_of(model_configs(world.models))
    relabelled, collapsed = load_dvae(world.teacher), load_dvae(world.teacher)
    perm = torch.randperm(teacher.cfg.num_tokens, generator=torch.Generator().manual_seed(0))
    relabelled.codebook.embed.copy_(teacher.codebook.embed[:, perm])  # same partition, other code ids
    collapsed.codebook.embed.copy_(teacher.codebook.embed.mean(1, keepdim=True).expand_as(teacher.codebook.embed))
    gain = {name: score_tokenizer(d, clips, None, gpt, None, cond)["gpt_gain"]
            for name, d in (("teacher", teacher), ("relabelled", relabelled), ("collapsed", collapsed))}
    assert gain["teacher"] > gain["relabelled"] and gain["teacher"] > gain["collapsed"]


def test_an_existing_world_opens_with_its_own_size_and_seed_and_is_not_written(world):
    from tortuner.lab.build import WorldBuilder

    state = world.state.read_bytes()
    builder = WorldBuilder.open(world.root)
    assert (builder.cfg.size, builder.cfg.seed) == ("test", 3) and builder.paths.root == world.root
    assert world.state.read_bytes() == state
