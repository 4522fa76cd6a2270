"""From speech probabilities to candidate clips: utterances split on long silences (long ones cut at their widest
pauses), pieces of about a window cut at inner pauses, and consecutive pieces joined into min..max-second clips.

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


def utterances(regions: list[Span], cfg: SegmentConfig) -> list[list[Span]]:
    """Regions joined across silences shorter than `min_silence`; one longer than a clip is cut at its widest
    pauses (recursively) into pieces of at most `max_seconds` with padding."""
    if not regions:
        return []
    out: list[list[Span]] = [[regions[0]]]
    for r in regions[1:]:
        if r.start - out[-1][-1].end < cfg.min_silence:
            out[-1].append(r)
        else:
            out.append([r])
    limit = cfg.max_seconds - 2 * cfg.pad
    return [p for u in out for p in _split_long(u, limit)]


def windows(utterance: list[Span], seconds: float) -> list[list[Span]]:
    """The utterance cut at its inner pauses into runs of about `seconds` (each >= `seconds`, or >= half of it for
    the last one when it cannot join the previous one): the pieces that are scored on their own, so that a change
    of condition inside an utterance (a second voice answering quickly, music starting) is found.

    `seconds` <= 0 keeps the utterance whole.
    """
    if seconds <= 0:
        return [utterance]
    runs: list[list[Span]] = [[]]
    for r in utterance:
        if runs[-1] and runs[-1][-1].end - runs[-1][0].start >= seconds:
            runs.append([])
        runs[-1].append(r)
    if len(runs) > 1 and runs[-1][-1].end - runs[-1][0].start < seconds / 2:
        tail = runs.pop()
        runs[-1] += tail
    return runs


def pad(groups: list[list[Span]], total: float, cfg: SegmentConfig) -> list[Candidate]:
    """A candidate per group of speech regions: `pad` of silence each side, never reaching halfway into the
    silence to the neighbouring group, and its status by the length rule."""
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


def joins(a: Candidate, b: Candidate, cfg: SegmentConfig) -> bool:
    """Whether the clip ending with `a` may go on with `b` (the next piece): the pause between them is at most
    `max_pause` and the clip's speech stays within `max_seconds` with padding. (`a` is the clip so far.)"""
    limit = cfg.max_seconds - 2 * cfg.pad
    return b.speech[0].start - a.speech[-1].end <= cfg.max_pause and b.speech[-1].end - a.speech[0].start <= limit


def join(parts: list[Candidate], cfg: SegmentConfig) -> Candidate:
    """One candidate spanning consecutive padded pieces (their padding is the clip's), status by the length rule."""
    c = Candidate(parts[0].start, parts[-1].end, [s for p in parts for s in p.speech])
    if c.seconds < cfg.min_seconds:
        c.status = "too_short"
    elif c.seconds > cfg.max_seconds:
        c.status = "too_long"
    return c


def plan_clips(regions: list[Span], total: float, cfg: SegmentConfig) -> list[Candidate]:
    """Candidate clips when nothing is known of the audio but its speech regions: neighbouring utterances merged
    while `joins` allows. (`prepare` scores pieces first and merges only alike ones; see `data/prepare.py`.)"""
    pieces = pad(utterances(regions, cfg), total, cfg)
    groups: list[list[Candidate]] = []
    for p in pieces:
        if groups and joins(join(groups[-1], cfg), p, cfg):
            groups[-1].append(p)
        else:
            groups.append([p])
    return [join(g, cfg) for g in groups]
