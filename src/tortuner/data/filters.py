"""One scored estimator per clip filter; `FILTERS` says which score each threshold flag applies to.

Every score is computed and recorded for every clip that passes the length rule, so thresholds can be
judged (and re-tuned) from `clips.jsonl`. Each estimator is cheap signal processing except the speaker ones
(resemblyzer's d-vector LSTM); their calibration on controlled corruptions is in `benchmarks/calibrate_filters.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.signal as ss
from scipy.ndimage import uniform_filter1d

SR = 16000  # rate of the clip most estimators read


@dataclass(frozen=True)
class Filter:
    reason: str      # why a clip is dropped, as written in clips.jsonl
    score: str       # key of the score in clips.jsonl
    flag: str        # PrepareConfig field / CLI flag holding the threshold
    keep_above: bool  # True: kept when score >= threshold; False: kept when score <= threshold
    why: str


# Order matters only for which reason is reported first when several filters fail.
FILTERS: tuple[Filter, ...] = (
    Filter("clipping", "clipped_pct", "max_clipped_pct", False, "percent of samples in flat runs at the peak"),
    Filter("narrowband", "bandwidth_hz", "min_bandwidth_hz", True, "phone / low-bitrate audio lacks highs"),
    Filter("music", "music", "max_music", False, "energy between words in held, note-like peaks"),
    Filter("noise", "snr_db", "min_snr_db", True, "speech level over the noise floor"),
    Filter("reverb", "rt60_s", "max_rt60_s", False, "room decay time read off speech offsets"),
    Filter("speakers", "speaker_change", "max_speaker_change", False, "distance between two voice clusters"),
    Filter("background", "dnsmos_bak", "min_dnsmos_bak", True, "DNSMOS P.835 background score (talkers, noise)"),
    Filter("not_reference", "reference_similarity", "min_reference_similarity", True,
           "similarity to --reference-voice"),
)


def failed(scores: dict[str, float | None], thresholds: dict[str, float | None]) -> list[str]:
    """Reasons (in `FILTERS` order) of every filter whose threshold is set and whose score fails it."""
    out = []
    for f in FILTERS:
        t, s = thresholds.get(f.flag), scores.get(f.score)
        if t is None or s is None:
            continue
        if (s < t) if f.keep_above else (s > t):
            out.append(f.reason)
    return out


def _frames(x: np.ndarray, size: int, hop: int) -> np.ndarray:
    n = 1 + max(0, len(x) - size) // hop
    idx = np.arange(size)[None, :] + hop * np.arange(n)[:, None]
    return np.pad(x, (0, max(0, size - len(x))))[idx]


def snr_db(x: np.ndarray, sr: int = SR) -> float:
    """Speech-to-noise ratio: mean power of the louder half of 20 ms frames over the quietest 10 %.

    Clips always contain pauses between words; the quietest frames are then the noise floor alone.
    Capped at 80 dB (digital silence).
    """
    e = (_frames(x, sr // 50, sr // 100) ** 2).mean(axis=1)
    e = np.sort(e)
    noise = float(e[: max(1, len(e) // 10)].mean())
    loud = float(e[len(e) // 2 :].mean())
    return float(min(80.0, 10 * np.log10(max(loud - noise, 1e-12) / max(noise, 1e-12))))


def music_score(x: np.ndarray, sr: int = SR, hold_seconds: float = 0.35) -> float:
    """Share of the energy of the quietest 30 % of frames in tonal peaks that hold one pitch >= `hold_seconds`.

    A music bed goes on between words, where speech leaves only silence or noise; and its notes keep their
    frequency, while voiced speech glides (intonation) and rarely holds a vowel that long. Reverberant tails
    and stationary noise have no held peaks.
    """
    hop = 512
    f, _, z = ss.stft(x, fs=sr, nperseg=2048, noverlap=2048 - hop, boundary=None, padded=False)
    p = np.abs(z[(f >= 80) & (f <= 4000)]) ** 2
    if p.shape[1] < 3:
        return 0.0
    db = 10 * np.log10(p + 1e-12)
    local = uniform_filter1d(db, 15, axis=0)  # the spectral floor around each bin
    peak = (db > np.roll(db, 1, 0)) & (db >= np.roll(db, -1, 0)) & (db > local + 10)
    peak &= db > db.max() - 50
    near = peak | np.roll(peak, 1, 0) | np.roll(peak, -1, 0)  # allow +-1 bin (7.8 Hz) of wobble
    hold = max(2, int(round(hold_seconds * sr / hop)))
    held = near & (_run_lengths(near) >= hold)
    energy = p.sum(axis=0)
    quiet = energy <= np.percentile(energy, 30)
    total = float(p[:, quiet].sum())
    return float((p * (peak & held))[:, quiet].sum() / total) if total > 0 else 0.0


def _run_lengths(m: np.ndarray) -> np.ndarray:
    """(rows, cols) length of the run of True along each row that each element belongs to (0 where False)."""
    def ending_here(a: np.ndarray) -> np.ndarray:  # Trues in a row up to and including each element
        c = np.cumsum(a, axis=1)
        return c - np.maximum.accumulate(np.where(a, 0, c), axis=1)

    fwd, bwd = ending_here(m), ending_here(m[:, ::-1])[:, ::-1]
    return np.where(m, fwd + bwd - 1, 0)


def bandwidth_hz(x: np.ndarray, sr: int) -> float:
    """Highest frequency whose level (loud frames, averaged) is within 50 dB of the spectrum's peak.

    Phone calls stop at ~3.4 kHz and low-bitrate codecs at a few kHz; clean wideband speech reaches 8 kHz+.
    """
    f, _, z = ss.stft(x, fs=sr, nperseg=1024, noverlap=512, boundary=None, padded=False)
    p = np.abs(z) ** 2
    if p.shape[1] == 0:
        return 0.0
    energy = p.sum(axis=0)
    psd = p[:, energy >= np.median(energy)].mean(axis=1)
    db = 10 * np.log10(np.convolve(psd, np.ones(5) / 5, mode="same") + 1e-20)
    above = np.flatnonzero(db >= db.max() - 50)
    return float(f[above[-1]]) if above.size else 0.0


def clipped_pct(x: np.ndarray, min_run: int = 3) -> float:
    """Percent of samples in runs of >= `min_run` equal samples at the clip's peak magnitude.

    Clipping (in the recorder or a later gain stage) flattens waveform tops at one value; natural peaks are
    single samples. Read at the file's own rate: resampling would smear the plateaus.
    """
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    if peak < 0.05:
        return 0.0
    top = a >= peak * (1 - 1e-4)
    d = np.diff(np.concatenate([[0], top.astype(np.int8), [0]]))
    runs = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
    return float(100.0 * runs[runs >= min_run].sum() / a.size)


def rt60_s(x: np.ndarray, sr: int = SR) -> float:
    """Reverberation time from the fastest energy decays after speech offsets (Schroeder-style free decay).

    A room cannot make sound die away faster than its own decay, so the steepest drops in the 0.5-4 kHz energy
    envelope (over 100 ms, starting >= 30 dB above the floor) give 60 dB / rate. Dry speech falls by 30+ dB
    in 100 ms (-> ~0.2 s); a reverberant room smears it to its RT60.
    """
    hop, span = sr // 200, 20  # 5 ms envelope; decay measured over 100 ms
    f, _, z = ss.stft(x, fs=sr, nperseg=512, noverlap=512 - hop, boundary=None, padded=False)
    band = (np.abs(z[(f >= 500) & (f <= 4000)]) ** 2).sum(axis=0)
    if band.size <= span + 1:
        return 0.0
    env = 10 * np.log10(band + 1e-12)
    env = np.convolve(env, np.ones(3) / 3, mode="same")
    floor = np.percentile(env, 5)
    drop = env[:-span] - env[span:]
    ok = env[:-span] >= floor + 30
    if ok.sum() < 10:
        ok = env[:-span] >= np.percentile(env, 50)
    fastest = float(np.percentile(drop[ok], 99)) if ok.any() else 0.0
    return float(min(5.0, 60.0 * (span * hop / sr) / max(fastest, 1e-3)))


class VoiceEmbedder:
    """resemblyzer d-vectors of 1.6 s windows (its own partial-utterance size), batched."""

    def __init__(self) -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device="cpu", verbose=False)

    def windows(self, x: np.ndarray, sr: int = SR, hop_seconds: float = 0.8) -> np.ndarray:
        """(N, 256) unit-norm embeddings of 1.6 s windows every `hop_seconds` (N >= 1)."""
        import torch
        from resemblyzer.audio import wav_to_mel_spectrogram

        mel = wav_to_mel_spectrogram(x.astype(np.float32))  # (frames, 40), 10 ms frames
        size, hop = 160, max(1, int(hop_seconds * 100))
        if len(mel) < size:
            mel = np.pad(mel, ((0, size - len(mel)), (0, 0)))
        starts = range(0, len(mel) - size + 1, hop)
        batch = np.stack([mel[s : s + size] for s in starts])
        with torch.inference_mode():
            emb = self.encoder(torch.from_numpy(batch).float()).numpy()
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)


def speaker_change(emb: np.ndarray, min_size: int = 2, iters: int = 10) -> float:
    """1 - cosine between the centroids of a 2-means split of window embeddings (0 when too few windows).

    One voice gives two nearby clusters; two voices taking turns give two distant ones. Each cluster must hold
    `min_size` windows so a single odd window (a cough, a laugh) cannot raise the score.
    """
    n = len(emb)
    if n < 2 * min_size:
        return 0.0
    sim = emb @ emb.T
    a, b = np.unravel_index(np.argmin(sim), sim.shape)
    c = np.stack([emb[a], emb[b]])
    for _ in range(iters):
        lab = np.argmax(emb @ c.T, axis=1)
        if min(np.sum(lab == 0), np.sum(lab == 1)) < min_size:
            return 0.0
        c = np.stack([emb[lab == k].mean(axis=0) for k in (0, 1)])
        c /= np.linalg.norm(c, axis=1, keepdims=True)
    return float(1.0 - c[0] @ c[1])


def reference_similarity(emb: np.ndarray, reference: np.ndarray) -> float:
    """Cosine between the clip's mean d-vector and the reference voice's mean d-vector."""
    m = emb.mean(axis=0)
    return float(m @ reference / (np.linalg.norm(m) * np.linalg.norm(reference) + 1e-9))


class Dnsmos:
    """DNSMOS P.835 (the ONNX model that ships with `speechmos`): (SIG, BAK, OVRL) mean opinion scores, 1-5.

    Opt-in (`--min-dnsmos-bak`): it is the only estimator here that hears a second voice talking *over* the first
    (BAK drops to ~2-3), but it costs ~0.1-0.3 s of CPU per clip even with one 9 s window per 9 s of clip (the
    package's own `run` slides a window every second), and it also marks mild steady noise (25 dB SNR -> ~2.5).
    """

    WINDOW = int(9.01 * SR)

    def __init__(self) -> None:
        import os

        import speechmos.dnsmos as dm

        models = os.path.join(os.path.dirname(dm.__file__), "dnsmos_models")
        self.model = dm.DNSMOS(os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx"))

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        while len(x) < self.WINDOW:  # the model takes exactly 9.01 s; short clips are repeated, as DNSMOS does
            x = np.concatenate([x, x])
        n = max(1, len(x) // self.WINDOW)
        starts = np.linspace(0, len(x) - self.WINDOW, n).astype(int)
        out = []
        for s in starts:
            raw = self.model.onnx_sess.run(None, {"input_1": x[s : s + self.WINDOW][None].astype(np.float32)})[0][0]
            out.append(self.model.get_polyfit_val(*raw, False))
        sig, bak, ovr = np.mean(out, axis=0)
        return float(sig), float(bak), float(ovr)
