"""Kill a recovery verb inside its training loop, rerun it, and get the uninterrupted run's dVAE byte for byte
(issue 27): `--checkpoint-seconds 0` saves the loop's state after every step, and each run is SIGKILLed just before
one of its file renames, so every kill lands inside the loop (or inside one of its writes)."""

from __future__ import annotations

import pytest

from support.chaos import chaos, same_files

SMALL = ["--codebook-dim", "8", "--hidden-dim", "32", "--num-resnet-blocks", "1"]


@pytest.mark.slow
def test_distill_continues_inside_both_phases_after_kills(tmp_path, rec_env):
    rep = chaos("recover distill",
                lambda out: ["recover", "distill", "--synth", str(rec_env["synth"]), "--models", str(rec_env["models"]),
                             "--out", str(out / "d.pth"), "--steps", "40", "--finetune-steps", "20", "--batch", "8",
                             "--crop-tokens", "16", *SMALL, "--checkpoint-seconds", "0", "--threads", "1"],
                same_files(["d.pth", "d.phase1.pth", "d.json"]), tmp_path / "chaos", kills=3, seed=4, at_writes=True)
    assert rep.kills == 3 and rep.mid_loop >= 2 and rep.ok, rep
    assert not list((tmp_path / "chaos" / "killed").glob("*.loop.pt"))  # a finished run leaves no loop state


@pytest.mark.slow
def test_self_training_keeps_its_round_labels_across_kills(tmp_path, rec_env):
    """The improved stage's recipe: two rounds of GPT-guided pseudo-labels; a run killed inside a round must train
    on that round's labels, not relabel with the half-trained encoder."""
    rep = chaos("recover recon",
                lambda out: ["recover", "recon", "--speech", str(rec_env["speech"]), "--synth", str(rec_env["synth"]),
                             "--dvae", str(rec_env["teacher"]), "--out", str(out / "s.pth"), "--steps", "24",
                             "--batch", "8", "--recon-weight", "0", "--anchor-weight", "1", "--pseudo-weight", "1",
                             "--pseudo-rounds", "2", "--models", str(rec_env["models"]), "--checkpoint-seconds", "0",
                             "--threads", "1"],
                same_files(["s.pth", "s.json"]), tmp_path / "chaos", kills=3, seed=5, at_writes=True)
    assert rep.kills == 3 and rep.mid_loop >= 2 and rep.ok, rep
