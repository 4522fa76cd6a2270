"""Every filter score of a stretch of audio (a piece of an utterance, or a clip), as `prepare` records it.

Two parts, since they cost differently: the signal scores (clipping, band, music, SNR, reverb: cheap) are computed
on each stretch's own samples; the voice scores need resemblyzer d-vectors (~70 % of the scoring time), which are
computed once per utterance on its speech and shared by the pieces and the clip that contain each window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tortuner.audio.io import resample
from tortuner.data import filters


@dataclass
class Voice:
    """Speaker windows: (N, 256) unit-norm d-vectors and the (N,) source time (s) of each window's centre."""

    emb: np.ndarray
    centers: np.ndarray

    def within(self, start: float, end: float) -> Voice:
        keep = (self.centers >= start) & (self.centers < end)
        return Voice(self.emb[keep], self.centers[keep])

    @staticmethod
    def concat(voices: list[Voice]) -> Voice:
        return Voice(np.concatenate([v.emb for v in voices]), np.concatenate([v.centers for v in voices]))


def signal_scores(native: np.ndarray, sr: int, out_sr: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The cheap scores of a (samples,) stretch at the file's rate `sr`, plus the stretch at 16 kHz and at `out_sr`.

    Clipping is read at the file's own rate (resampling smears plateaus), the band on the output-rate audio.
    """
    x16 = resample(native, sr, filters.SR)
    xo = resample(native, sr, out_sr)
    scores = {
        "clipped_pct": filters.clipped_pct(native),
        "bandwidth_hz": filters.bandwidth_hz(xo, out_sr),
        "music": filters.music_score(x16),
        "snr_db": filters.snr_db(x16),
        "rt60_s": filters.rt60_s(x16),
    }
    return scores, x16, xo


def voice_windows(x16: np.ndarray, speech: list[tuple[float, float]], embedder: filters.VoiceEmbedder,
                  offset: float = 0.0) -> Voice:
    """d-vectors of 1.6 s windows (every 0.8 s) of the speech spans (s, relative to `x16`) joined end to end, each
    placed at the source time (`offset` + s) of its centre. Windows of silence embed as an odd "voice" of their
    own, hence speech only; with under 1 s of speech the whole stretch is used."""
    sr = filters.SR
    spans = [(int(a * sr), int(b * sr)) for a, b in speech]
    voiced = np.concatenate([x16[a:b] for a, b in spans]) if spans else x16
    if voiced.size < sr:
        voiced, spans = x16, [(0, x16.size)]
    emb = embedder.windows(voiced)
    mid = (np.arange(len(emb)) * 0.8 + 0.8) * sr  # sample of each window's centre in `voiced`
    ends = np.cumsum([b - a for a, b in spans])
    k = np.minimum(np.searchsorted(ends, mid, side="right"), len(spans) - 1)
    starts = np.array([a for a, _ in spans])
    before = ends[k] - np.array([b - a for a, b in spans])[k]  # voiced samples before span k
    return Voice(emb, offset + (starts[k] + np.minimum(mid - before, ends[k] - before)) / sr)


def voice_scores(voice: Voice, reference: np.ndarray | None) -> dict[str, float | None]:
    return {"speaker_change": filters.speaker_change(voice.emb),
            "reference_similarity": filters.reference_similarity(voice.emb, reference) if reference is not None
            else None}


def voice_distance(a: Voice, b: Voice) -> float:
    """1 - cosine between the mean d-vectors of two stretches (0 when either has no window)."""
    return mean_distance(a.emb, b.emb)


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine between the means of two (N, 256) sets of d-vectors (0 when either is empty)."""
    if not len(a) or not len(b):
        return 0.0
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    return float(1.0 - ma @ mb / (np.linalg.norm(ma) * np.linalg.norm(mb) + 1e-9))


def rounded(scores: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (None if v is None else round(float(v), 4)) for k, v in scores.items()}
