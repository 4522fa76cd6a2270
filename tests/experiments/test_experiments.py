"""Every script in experiments/ runs on the session's `test` world with its smallest settings and prints its result
line, changing nothing of the world; each names the claim it backs and uses tortuner's public names only."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import torch

from tortuner.lab.world import WorldPaths
from tortuner.synth.synth import SynthConfig, run_synth

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"

# script -> (its arguments: {world}, {run} and {teacher} are filled in; a regex its printed result must match)
CASES: dict[str, tuple[list[str], str]] = {
    "analysis_by_synthesis": (["--world", "{world}", "--dvae", "{teacher}", "--clips", "1", "--k", "2", "--iters", "1",
                               "--alphas", "0"], r"renderer-picked, alpha 0\.0 +\d\.\d{3}$"),
    "build_costs": (["{world}", "--steps", "1", "--warmup", "0", "--clips", "2"],
                    r"^teacher tokens of 2 clips: .* identical: True$"),
    "clvp_training": (["{world}", "--steps", "2", "--dropouts", "0", "--threads", "1"],
                      r"^\| 0 \| \d\.\d{3} \| \d\.\d{3} \| [\d.]+ \| 1\.00x \|$"),
    "distill_variants": (["--world", "{world}", "--run", "{run}", "--steps", "2", "--offsets", "0"],
                         r"^ +\+0\.00 \( +\+0 samples\) +\d\.\d{3} +\d\.\d{3}$"),
    "domain_adaptation": (["--world", "{world}", "--run", "{run}", "--mode", "dann", "--weight", "0.1", "--seeds", "0",
                           "--steps", "2"], r"^mode dann w 0\.1: mean top-1 \d\.\d{4}$"),
    "gpt_nll": (["{world}", "--clips", "2"],
                r"^unseen speakers \(eval\) +2 clips +NLL [\d.]+ nats/token +ratio [\d.]+$"),
    "gpt_training": (["{world}", "--steps", "2", "--every", "1"], r"^step +2 +eval [\d.]+ +training speakers [\d.]+ "),
    "guided_labels": (["--world", "{world}", "--dvae", "{teacher}", "--lams", "1", "--clips", "2", "--threads", "1"],
                      r"^ +lambda 1\.0 +beams 4 k 5: guided \d\.\d{3} "),
    "oracle_labels": (["--world", "{world}", "--run", "{run}", "--steps", "2"],
                      r"synthetic pairs \(the recipe\) .* held-out top-1 \d\.\d{3} +top-5 \d\.\d{3}$"),
    "renderer_timing": (["{world}", "--clips", "1"], r"^ +\+128 +\d\.\d{3} +\d\.\d{3}$"),
    "renderer_training": (["{world}", "--runs", "2:16:1", "--clips", "1"], r"^ +2 +16 +1 +\d+ +[\d.]+ +\d\.\d{3}$"),
    "teacher_step": (["--size", "test", "--steps", "2"], r"^seconds per step, alternating: oneDNN [\d.]+, without "),
    "teacher_training": (["{world}", "--steps", "2", "--clips", "1"], r"^ +2( +[\d.]+){7}$"),
    "token_stability": (["{world}", "--clips", "1", "--gl-iters", "2"], r"^ +gain -0\.5 dB +\d\.\d{3}$"),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"experiments.{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def lab_run(built_world: WorldPaths, tmp_path_factory) -> Path:
    """A run folder as `lab run` leaves it, as far as the experiments read it: `RUN/synth`, synthetic pairs of the
    world's public models (the test preset's settings, fewer pairs: the probe holds out a fifth of at least 5)."""
    run = tmp_path_factory.mktemp("run")
    run_synth(SynthConfig(models=str(built_world.models), speech=str(built_world.public_speech), out=str(run / "synth"),
                          num_pairs=6, samples_per_text=3, max_tokens=60, renderer="lab", seed=0))
    return run


def test_every_experiment_has_a_smoke_case():
    assert {p.stem for p in EXPERIMENTS.glob("*.py")} == set(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_experiment_runs_on_a_test_world(name, built_world, lab_run, capsys):
    args, result = CASES[name]
    argv = [a.format(world=built_world.root, run=lab_run, teacher=built_world.teacher) for a in args]
    before, threads = _files(built_world.root), torch.get_num_threads()
    try:
        _load(name).main(argv)
    finally:
        torch.set_num_threads(threads)  # some time 1 and 2 threads
    out = capsys.readouterr().out
    assert re.search(result, out, re.MULTILINE), out
    assert _files(built_world.root) == before


def _private_names(tree: ast.AST) -> list[str]:
    """Names an experiment reaches that are private to tortuner: `_x` imported from it, or any `._x` attribute."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tortuner"):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
            found += [node.module] if any(part.startswith("_") for part in node.module.split(".")) else []
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("tortuner")
                      and any(part.startswith("_") for part in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.endswith("__"):
            found.append(f"<attribute>.{node.attr} (line {node.lineno})")
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_experiment_names_its_claim_and_uses_public_names_only(name):
    path = EXPERIMENTS / f"{name}.py"
    tree = ast.parse(path.read_text())
    doc = ast.get_docstring(tree) or ""
    assert "Backs docs/" in doc and f"python experiments/{name}.py" in doc, "docstring: the claim and the command"
    assert not _private_names(tree)


def test_the_docs_cite_only_scripts_that_exist():
    cited = set()
    for path in [*(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py"), *EXPERIMENTS.glob("*.py")]:
        cited |= {(path.name, m) for m in re.findall(r"\b(?:benchmarks|experiments)/\w+\.py", path.read_text())}
    missing = sorted((doc, script) for doc, script in cited if not (REPO / script).is_file())
    assert not missing
