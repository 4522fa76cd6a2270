"""From speech probabilities to candidate clips: split on long silences, then merge/split into min..max seconds.

Cuts are only ever placed in frames the VAD marked as non-speech, so no clip starts or ends inside a word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SegmentConfig:
    threshold: float = 0.5         # speech probability that starts speech
    min_silence: float = 0.5       # silences at least this long (s) split utterances
    min_speech: float = 0.25       # speech bursts shorter than this (s) are ignored
    min_seconds: float = 5.0       # shortest kept clip (s, padding included)
    max_seconds: float = 20.0      # longest kept clip (s, padding included)
    max_pause: float = 2.0         # utterances separated by at most this much silence may share a clip
    pad: float = 0.2               # silence kept before/after the speech of a clip (s)


@dataclass
class Span:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Candidate:
    start: float          # clip start in the source (s), padding included
    end: float
    speech: list[Span]    # VAD speech regions inside the clip
    status: str = "ok"    # "ok", "too_short" or "too_long"

    @property
    def seconds(self) -> float:
        return self.end - self.start


def speech_regions(probs: np.ndarray, frame: float, cfg: SegmentConfig) -> list[Span]:
    """Speech regions with hysteresis (enter at `threshold`, leave below `threshold - 0.15`), short bursts dropped."""
    neg = max(cfg.threshold - 0.15, 0.01)
    regions: list[Span] = []
    in_speech, start = False, 0
    for i, p in enumerate(probs):
        if not in_speech and p >= cfg.threshold:
            in_speech, start = True, i
        elif in_speech and p < neg:
            in_speech = False
            regions.append(Span(start * frame, i * frame))
    if in_speech:
        regions.append(Span(start * frame, len(probs) * frame))
    # close sub-frame gaps the hysteresis leaves (a single dip below `neg`), then drop clicks
    merged: list[Span] = []
    for r in regions:
        if merged and r.start - merged[-1].end < 0.1:
            merged[-1].end = r.end
        else:
            merged.append(r)
    return [r for r in merged if r.seconds >= cfg.min_speech]


def _split_long(regions: list[Span], limit: float) -> list[list[Span]]:
    """Split a run of regions at its widest internal gaps until each piece spans <= `limit` (or cannot be split)."""
    if regions[-1].end - regions[0].start <= limit or len(regions) == 1:
        return [regions]
    gaps = [regions[i + 1].start - regions[i].end for i in range(len(regions) - 1)]
    mid = (regions[0].start + regions[-1].end) / 2
    best = max(range(len(gaps)), key=lambda i: (round(gaps[i], 2), -abs(regions[i].end - mid)))
    return _split_long(regions[: best + 1], limit) + _split_long(regions[best + 1 :], limit)


def plan_clips(regions: list[Span], total: float, cfg: SegmentConfig) -> list[Candidate]:
    """Group speech regions into candidate clips; every candidate is recorded, kept or not."""
    if not regions:
        return []
    # 1. utterances: regions joined across silences shorter than `min_silence`
    utterances: list[list[Span]] = [[regions[0]]]
    for r in regions[1:]:
        if r.start - utterances[-1][-1].end < cfg.min_silence:
            utterances[-1].append(r)
        else:
            utterances.append([r])
    # 2. utterances longer than a clip are cut at their widest pauses
    limit = cfg.max_seconds - 2 * cfg.pad
    pieces = [p for u in utterances for p in _split_long(u, limit)]
    # 3. neighbours merged while the clip stays under the limit and the pause between them is short
    groups: list[list[Span]] = [pieces[0]]
    for p in pieces[1:]:
        last = groups[-1]
        if p[0].start - last[-1].end <= cfg.max_pause and p[-1].end - last[0].start <= limit:
            last.extend(p)
        else:
            groups.append(list(p))
    # 4. padding that never reaches halfway into the neighbouring silence
    out: list[Candidate] = []
    for i, g in enumerate(groups):
        prev_end = groups[i - 1][-1].end if i else -np.inf
        next_start = groups[i + 1][0].start if i + 1 < len(groups) else np.inf
        start = max(0.0, g[0].start - cfg.pad, (prev_end + g[0].start) / 2)
        end = min(total, g[-1].end + cfg.pad, (g[-1].end + next_start) / 2)
        c = Candidate(round(start, 3), round(end, 3), g)
        if c.seconds < cfg.min_seconds:
            c.status = "too_short"
        elif c.seconds > cfg.max_seconds:
            c.status = "too_long"
        out.append(c)
    return out
