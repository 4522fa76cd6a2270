"""Segmentation: speech regions from silero-vad and the 5-20 s clip plan, on recordings with known gaps."""

from __future__ import annotations

import numpy as np

from tortuner.audio.io import load_audio
from tortuner.data.segment import SegmentConfig, Span, plan_clips, speech_regions, windows
from tortuner.data.vad import FRAME_SECONDS, VAD_SR, SpeechDetector


def test_plan_merges_splits_and_pads() -> None:
    cfg = SegmentConfig()
    regions = [Span(1.0, 3.0), Span(3.3, 6.0),    # one utterance (0.3 s pause)
               Span(7.0, 9.0),                     # 1 s later: merged into the same clip (<= max_pause)
               Span(15.0, 16.5),                   # alone and short
               Span(20.0, 29.0), Span(29.2, 38.0), Span(38.4, 45.0)]  # 25 s without a 0.5 s silence
    clips = plan_clips(regions, 50.0, cfg)
    assert [(c.start, c.end, c.status) for c in clips[:2]] == [(0.8, 9.2, "ok"), (14.8, 16.7, "too_short")]
    long = clips[2:]
    assert len(long) == 2 and all(c.status == "ok" for c in long)
    assert long[0].speech[-1].end == 38.0 and long[1].speech[0].start == 38.4  # cut at the widest pause
    assert long[0].end <= 38.2 <= long[1].start  # padding never crosses the middle of the pause


def test_windows_cut_utterances_at_inner_pauses() -> None:
    u = [Span(0.0, 2.0), Span(2.2, 3.5), Span(3.7, 5.0), Span(5.3, 7.0), Span(7.2, 7.8)]
    runs = windows(u, 3.0)
    assert [(r[0].start, r[-1].end) for r in runs] == [(0.0, 3.5), (3.7, 7.8)]  # the short tail joins its neighbour
    assert [s for r in runs for s in r] == u and windows(u, 0) == [u]


def test_unsplittable_speech_is_too_long() -> None:
    clips = plan_clips([Span(0.5, 30.0)], 31.0, SegmentConfig())
    assert [c.status for c in clips] == ["too_long"]


def test_hysteresis_and_min_speech() -> None:
    cfg = SegmentConfig()
    p = np.zeros(200)
    p[10:60] = 0.9
    p[30] = 0.4       # a dip above the leave threshold does not split
    p[100:104] = 0.9  # 128 ms click: ignored
    regions = speech_regions(p, FRAME_SECONDS, cfg)
    assert len(regions) == 1
    assert abs(regions[0].start - 10 * FRAME_SECONDS) < 1e-9 and abs(regions[0].end - 60 * FRAME_SECONDS) < 1e-9


def test_vad_finds_known_gaps(long_recording) -> None:
    x = load_audio(long_recording.path, VAD_SR).numpy()
    det = SpeechDetector()
    probs = det.probabilities(np.array_split(x, 7))  # arbitrary block boundaries
    regions = speech_regions(probs, FRAME_SECONDS, SegmentConfig())
    cfg = SegmentConfig()
    # every known silence >= 0.5 s is found as a gap, and every known speech interval is covered
    for a, b in long_recording.speech:  # sentences may hold short comma pauses, so several regions may cover one
        assert any(abs(r.start - a) < 0.2 for r in regions) and any(abs(r.end - b) < 0.3 for r in regions), (a, b)
        covered = sum(max(0.0, min(r.end, b) - max(r.start, a)) for r in regions)
        assert covered > 0.8 * (b - a), (a, b)
    known_gaps = [(e, s) for (_, e), (s, _) in zip(long_recording.speech, long_recording.speech[1:]) if s - e >= 1.0]
    for e, s in known_gaps:
        assert not any(r.start < s - 0.25 and r.end > e + 0.25 for r in regions), (e, s)
    # the batched sub-stream VAD agrees with one plain stream
    single = SpeechDetector(substream_windows=x.size // 512 + 1).probabilities([x])
    assert np.mean((probs >= cfg.threshold) == (single >= cfg.threshold)) > 0.98
