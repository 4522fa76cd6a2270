"""Shared fixtures: real speech that ships with the `tortoise` package, tiny stock models, one built lab world."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One BLAS thread too (read when numpy loads, so before torch is imported): on a busy 2-core machine numpy's SVDs
# (e.g. the pseudo-inverse every `UnivNetMel()` computes) took 3-5x longer with two threads than with one.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from support.tiny_models import make_tiny_models  # noqa: E402
from tortuner.cli import main  # noqa: E402
from tortuner.lab.world import WorldPaths  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One torch thread for the whole suite: the models here are tiny, and on a busy 2-core machine two spinning
    threads per process are many times slower, not faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tortoise_voices() -> Path:
    """Folder of real human voice clips (one subfolder per speaker) shipped inside the `tortoise` package."""
    return Path(str(importlib.resources.files("tortoise") / "voices"))


@pytest.fixture(scope="session")
def real_clip(tortoise_voices: Path) -> Path:
    return tortoise_voices / "lj" / "1.wav"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Path:
    """Tiny random-weight stock TorToiSe models (64 codes) in a models folder. Read-only: shared by the session."""
    return make_tiny_models(tmp_path_factory.mktemp("models"), 64)


@pytest.fixture(scope="session")
def built_world(tmp_path_factory, one_thread) -> WorldPaths:
    """One `lab build --size test --seed 3` world, built once per session for every test that needs a real world
    (`lab build`'s, `lab finetune`'s and the experiments' tests). Read-only: a test that changes a world copies it
    first."""
    out = tmp_path_factory.mktemp("world") / "w"
    assert main(["lab", "build", "--size", "test", "--out", str(out), "--seed", "3", "--threads", "1"]) == 0
    return WorldPaths(out)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> Path:
    """A real local Ray cluster of 2 CPUs for the session (`--ray auto` joins it), whose workers can be killed on cue
    (`support.ray_faults`): returns the folder where a test arms that kill. Skipped without Ray installed."""
    ray = pytest.importorskip("ray")
    from support.ray_faults import runtime_env

    faults = tmp_path_factory.mktemp("ray_faults")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env=runtime_env(faults), log_to_driver=False)
    yield faults
    ray.shutdown()
