"""Score first, merge second: clips are built from scored pieces and never straddle a change of condition.

Each utterance (speech between >= 500 ms silences) is cut at its inner pauses into pieces of about
`--window-seconds`, and every piece is scored with every filter before anything is merged. Consecutive pieces are
joined into one clip only while they are alike: every filter decides the same on both (both clean, or both failing
the same way), and their voices are close. So a noisy, musical, narrow-band, clipped or reverberant stretch, or a
second voice, ends the clip at the pause before it: the clean speech around it keeps its own clips (when they are
long enough) instead of being dropped with it, and a damaged stretch is never diluted into a passing clip.
A clip of several pieces is then scored as a whole, with the same filters, for its keep/drop decision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tortuner.audio.io import resample
from tortuner.data import filters
from tortuner.data.scoring import (
    Voice,
    mean_distance,
    rounded,
    signal_scores,
    voice_distance,
    voice_scores,
    voice_windows,
)
from tortuner.data.segment import Candidate, SegmentConfig, Span, join, joins, pad, windows
from tortuner.data.stream import Tape

# Half-width of the band around each signal threshold within which a piece's decision is unsure (its score is
# noisier than a clip's: a 3 s piece has few pauses); only sure decisions split a clip. From the calibration ranges
# in docs/prepare.md: clean and damaged clips lie well outside these bands, except a few clean music scores.
MARGINS = {"clipped_pct": 0.01, "bandwidth_hz": 300.0, "music": 0.03, "snr_db": 3.0, "rt60_s": 0.06}
SIGNAL = tuple(f for f in filters.FILTERS if f.score in MARGINS)


@dataclass
class Piece:
    cand: Candidate              # padded bounds and speech regions
    scores: dict[str, float]     # signal scores
    voice: Voice | None          # its speaker windows (None when no speaker filter is on)
    x16: np.ndarray              # the piece at 16 kHz and at the output rate (a one-piece clip is the piece)
    xo: np.ndarray


@dataclass
class Clip:
    cand: Candidate
    scores: dict[str, float | None] | None  # None: not scored (length rule, or the file ended before it)
    x16: np.ndarray | None = None
    xo: np.ndarray | None = None


def _sure(f: filters.Filter, score: float, threshold: float) -> int:
    """+1: surely fails filter `f`, -1: surely passes, 0: within its margin of the threshold."""
    m = MARGINS[f.score]
    lo, hi = threshold - m, threshold + m
    if f.keep_above:
        return 1 if score < lo else -1 if score > hi else 0
    return 1 if score > hi else -1 if score < lo else 0


def change(clip: list[Piece], nxt: Piece, thresholds: dict[str, float | None],
           max_voice_change: float | None) -> str | None:
    """Why `nxt` may not go on the clip made of `clip` (a filter's reason, or "speakers"), or None when alike.

    A filter changes when it surely fails `nxt` and surely passes a piece of the clip, or the other way round; the
    voice, when the mean d-vector of `nxt` is further than `max_voice_change` (1 - cosine) from the clip's.
    """
    for f in SIGNAL:
        t = thresholds.get(f.flag)
        if t is None:
            continue
        b = _sure(f, nxt.scores[f.score], t)
        if b and any(_sure(f, p.scores[f.score], t) == -b for p in clip):
            return f.reason
    if max_voice_change is not None and clip[-1].voice is not None and nxt.voice is not None:
        if voice_distance(Voice.concat([p.voice for p in clip]), nxt.voice) > max_voice_change:
            return "speakers"
    return None


def voice_changes(voice: Voice, regions: list[Span], threshold: float, k: int = 3) -> list[float]:
    """Inner pauses of an utterance (times, s) where its voice changes: the mean of the last `k` speaker windows
    before the pause and of the first `k` after it (at least 2 each, none straddling the pause) are further apart
    than `threshold` (1 - cosine). Of changes closer than 1 s, the larger is kept.

    This is what finds a second voice answering quickly: turns are rarely separated by a >= 500 ms silence, and
    pieces cut by length alone would mix both voices and dilute the difference.
    """
    found: list[tuple[float, float]] = []
    for a, b in zip(regions, regions[1:]):
        lt, rt = voice.centers <= a.end - 0.8, voice.centers >= b.start + 0.8
        left, right = voice.emb[lt][-k:], voice.emb[rt][:k]
        if len(left) < 2 or len(right) < 2:
            continue
        d = mean_distance(left, right)
        if d > threshold:
            found.append((d, (a.end + b.start) / 2))
    cuts: list[float] = []
    for _, t in sorted(found, reverse=True):
        if all(abs(t - c) >= 1.0 for c in cuts):
            cuts.append(t)
    return sorted(cuts)


def _recut(utt: list[Candidate], cuts: list[float], window: float, seg: SegmentConfig) -> list[Candidate]:
    """The utterance's pieces again, cut also at `cuts` (its outer bounds as planned)."""
    regions = [s for c in utt for s in c.speech]
    parts: list[list[Span]] = [[]]
    for r in regions:
        if parts[-1] and any(parts[-1][-1].end < t < r.start for t in cuts):
            parts.append([])
        parts[-1].append(r)
    out = pad([w for p in parts for w in windows(p, window)], np.inf, seg)
    out[0].start, out[-1].end = utt[0].start, utt[-1].end
    return out


def clips(tape: Tape, plan: list[list[Candidate]], seg: SegmentConfig, out_sr: int, window: float,
          thresholds: dict[str, float | None], max_voice_change: float | None, embedder: filters.VoiceEmbedder | None,
          reference: np.ndarray | None, progress=None) -> Iterator[Clip]:
    """The clips of one file, in order, from `plan` (per utterance, its padded pieces), read off `tape`.

    Holds at most the open clip and the current utterance. `embedder` None skips the voice scores; `progress` is
    called with each utterance's seconds.
    """
    sr = tape.sr
    group: list[Piece] = []
    for utt in plan:
        if len(utt) == 1 and utt[0].seconds > seg.max_seconds:  # no inner pause to cut it at
            yield from _finish(group, tape, seg, out_sr, reference)
            group = []
            yield Clip(join(utt, seg), None)
            continue
        start = utt[0].start
        native = tape.get(start, utt[-1].end)
        voice = None
        if embedder is not None:
            x16 = resample(native, sr, filters.SR)
            speech = [(max(0.0, s.start - start), s.end - start) for c in utt for s in c.speech]
            voice = voice_windows(x16, speech, embedder, offset=start)
            cuts = voice_changes(voice, [s for c in utt for s in c.speech], max_voice_change) \
                if max_voice_change is not None else []
            if cuts:
                utt = _recut(utt, cuts, window, seg)
        for c in utt:
            part = native[int((c.start - start) * sr) : int((c.end - start) * sr)]
            if part.size == 0:  # the file ended before this piece (its header promised more)
                yield from _finish(group, tape, seg, out_sr, reference)
                group = []
                yield Clip(Candidate(c.start, c.end, c.speech, "truncated"), None)
                continue
            scores, p16, po = signal_scores(part, sr, out_sr)
            piece = Piece(c, scores, voice.within(c.start, c.end) if voice is not None else None, p16, po)
            if group and joins(join([p.cand for p in group], seg), c, seg) and \
                    change(group, piece, thresholds, max_voice_change) is None:
                group.append(piece)
            else:
                yield from _finish(group, tape, seg, out_sr, reference)
                group = [piece]
        tape.release(group[0].cand.start if group else utt[-1].end)
        if progress:
            progress(utt[-1].end - utt[0].start)
    yield from _finish(group, tape, seg, out_sr, reference)


def _finish(group: list[Piece], tape: Tape, seg: SegmentConfig, out_sr: int,
            reference: np.ndarray | None) -> Iterator[Clip]:
    """The clip made of `group`, scored as a whole (a one-piece clip has its piece's scores)."""
    if not group:
        return
    c = join([p.cand for p in group], seg)
    if c.status != "ok":
        yield Clip(c, None)
        return
    if len(group) == 1:
        scores, x16, xo = dict(group[0].scores), group[0].x16, group[0].xo
    else:
        scores, x16, xo = signal_scores(tape.get(c.start, c.end), tape.sr, out_sr)
    if group[0].voice is not None:
        scores |= voice_scores(Voice.concat([p.voice for p in group]), reference)
    yield Clip(c, rounded(scores), x16, xo)
