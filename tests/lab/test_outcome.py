"""The outcome measures' pooling and the bootstrap that decides whether a measure separates two GPTs."""

from __future__ import annotations

import numpy as np
import pytest

from tortuner.lab.outcome import TextStats, aggregate, gain_kept, separation


def _stats(errors: int, sim: float, codes: list[int], num_codes: int = 4) -> TextStats:
    return TextStats(errors, 10, [sim, sim + 0.01], [1.0, 0.0], [1.0, 1.2], np.bincount(codes, minlength=num_codes))


def test_aggregate_pools_words_and_codes():
    reference = np.array([0.5, 0.5, 0.0, 0.0])
    m = aggregate([_stats(2, 0.5, [0, 1]), _stats(4, 0.7, [2, 2])], reference)
    assert m["wer"] == pytest.approx(6 / 20) and m["speaker_sim"] == pytest.approx(0.605)
    assert m["stop_rate"] == 0.5 and m["length_ratio"] == pytest.approx(1.1) and m["generations"] == 4
    # pooled histogram [1, 1, 2, 0] / 4 against [0.5, 0.5, 0, 0]: half the mass is misplaced
    assert m["code_tv"] == pytest.approx(0.5)


def test_separation_needs_a_consistent_difference():
    reference = np.full(4, 0.25)
    rng = np.random.default_rng(0)
    none = [_stats(int(rng.integers(3, 7)), 0.5, [0, 1, 2, 3]) for _ in range(20)]
    same = [TextStats(s.errors, s.words, s.sims, s.stops, s.ratios, s.histogram) for s in none]
    better = [TextStats(max(0, s.errors - 3), s.words, [x + 0.1 for x in s.sims], s.stops, s.ratios, s.histogram)
              for s in none]
    assert separation(none, same, reference, draws=200)["wer"] == (0.0, 0.0)
    moved = separation(none, better, reference, draws=200)
    assert moved["wer"][1] < 0 and moved["speaker_sim"][0] > 0  # fewer errors, closer voice: both separate
    assert moved["stop_rate"] == (0.0, 0.0)  # unchanged: does not


def test_gain_kept():
    assert gain_kept(1.0, 0.5, 0.75) == pytest.approx(0.5) and gain_kept(1.0, 1.0, 0.5) is None
