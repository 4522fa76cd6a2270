"""Filter calibration: each filter's decisions on clean speech and on its own controlled corruption.

Used by `benchmarks/calibrate_filters.py` (the table in docs/prepare.md) and by the tests (a smaller run).
Clean material is espeak-ng speech in several voices; corruptions are known: noise at a given SNR, a synthetic
music bed, a phone channel, a 16 kbit/s MP3, hard clipping, synthetic room reverb, two voices taking turns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from support import corrupt as C
from tortuner.audio.espeak import synthesize
from tortuner.data import filters as F

SR = F.SR
VOICES = ("en-us", "en+f3", "en-us+m3", "en+f2", "en-gb", "en-us+f4", "en+m7", "en-gb+f1")


@dataclass(frozen=True)
class Case:
    name: str
    filter: str                                   # reason of the filter meant to catch it ("" = must pass all)
    make: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (speech, other voice's speech, seed) -> audio


CASES: tuple[Case, ...] = (
    Case("clean", "", lambda x, o, s: x),
    Case("white noise 5 dB", "noise", lambda x, o, s: C.add_at_snr(x, C.white_noise(len(x), s), 5)),
    Case("pink noise 5 dB", "noise", lambda x, o, s: C.add_at_snr(x, C.babble_free_noise(len(x), SR, s), 5)),
    Case("white noise 25 dB (keep)", "", lambda x, o, s: C.add_at_snr(x, C.white_noise(len(x), s), 25)),
    Case("music bed 5 dB", "music", lambda x, o, s: C.add_at_snr(x, C.music(len(x), SR, s), 5)),
    Case("music bed 10 dB", "music", lambda x, o, s: C.add_at_snr(x, C.music(len(x), SR, s), 10)),
    Case("phone channel", "narrowband", lambda x, o, s: C.phone_band(x, SR)),
    Case("mp3 16 kbit/s", "narrowband", lambda x, o, s: C.low_bitrate(x, SR, 16)),
    Case("clipped 0.5 %", "clipping", lambda x, o, s: C.clip(x, 0.005)),
    Case("reverb RT60 0.8 s", "reverb", lambda x, o, s: C.reverb(x, SR, 0.8, s)),
    Case("reverb RT60 1.5 s", "reverb", lambda x, o, s: C.reverb(x, SR, 1.5, s)),
    Case("two voices, turns", "speakers", lambda x, o, s: np.concatenate([x[: len(x) // 2], o[: len(o) // 2]])),
)

# For the opt-in DNSMOS filter (`--min-dnsmos-bak`): a second voice talking over the first.
OVERLAP_CASES: tuple[Case, ...] = (
    Case("clean", "", lambda x, o, s: x),
    Case("talker over speech 5 dB", "background", lambda x, o, s: C.add_at_snr(x, o, 5)),
    Case("talker over speech 10 dB", "background", lambda x, o, s: C.add_at_snr(x, o, 10)),
)


def speech_set(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """n (speech, other-voice speech) pairs of ~8-14 s espeak-ng speech at 16 kHz."""
    from tortuner.synth.sentences import text_lines

    texts = text_lines(2 * n, seed=seed, min_words=22, max_words=34)
    out = []
    for i in range(n):
        a = synthesize(texts[2 * i], SR, voice=VOICES[i % len(VOICES)])
        b = synthesize(texts[2 * i + 1], SR, voice=VOICES[(i + 3) % len(VOICES)], pitch=70 if i % 2 else 30)
        out.append((a, b))
    return out


def scores(x: np.ndarray, embedder: F.VoiceEmbedder, dnsmos: F.Dnsmos | None = None) -> dict[str, float]:
    """The same scores `prepare` records (bandwidth read at 22.05 kHz, as on the written clips)."""
    extra = {"dnsmos_bak": dnsmos(x)[1]} if dnsmos is not None else {}
    return extra | {
        "clipped_pct": F.clipped_pct(x),
        "bandwidth_hz": F.bandwidth_hz(C.resample(x, SR, 22050), 22050),
        "music": F.music_score(x),
        "snr_db": F.snr_db(x),
        "rt60_s": F.rt60_s(x),
        "speaker_change": F.speaker_change(embedder.windows(_speech_only(x))),
    }


def _speech_only(x: np.ndarray) -> np.ndarray:
    """Drop digital-silence pauses (prepare embeds VAD speech spans only; espeak pauses are exact zeros)."""
    e = np.convolve(np.abs(x), np.ones(320) / 320, mode="same")
    return x[e > 1e-4] if np.sum(e > 1e-4) > SR else x


def evaluate(thresholds: dict[str, float | None], n: int = 8, seed: int = 0,
             cases: tuple[Case, ...] = CASES) -> list[dict]:
    """Per case: share of clips whose decision is right (the target filter fails it / nothing fails a clean one),
    and the share caught by any filter. Returns one row per case."""
    emb = F.VoiceEmbedder()
    dnsmos = F.Dnsmos() if thresholds.get("min_dnsmos_bak") is not None else None
    pairs = speech_set(n, seed)
    target = {f.reason: f.score for f in F.FILTERS}
    rows = []
    for case in cases:
        right = any_fail = 0
        values = []
        for i, (a, b) in enumerate(pairs):
            sc = scores(case.make(a, b, seed * 100 + i), emb, dnsmos)
            failed = F.failed(sc, thresholds)
            ok = (case.filter in failed) if case.filter else not failed
            right += ok
            any_fail += bool(failed)
            values.append(sc)
        keys = [target[case.filter]] if case.filter else list(values[0])  # clean cases: every score's range
        rng = "; ".join(f"{k} {min(v[k] for v in values):.3g}..{max(v[k] for v in values):.3g}" for k in keys)
        rows.append({"case": case.name, "filter": case.filter or "(none: keep)", "n": n,
                     "accuracy": right / n, "dropped": any_fail / n, "score": rng})
    return rows


def real_two_speakers(thresholds: dict[str, float | None], voices_dir, seconds: float = 6.0) -> tuple[float, int]:
    """Share of clips made of two different real speakers (the `tortoise` voices, `seconds` each, taking turns)
    that the speakers filter drops; and how many such clips were tried."""
    from pathlib import Path

    from tortuner.audio.io import load_audio

    emb = F.VoiceEmbedder()
    clips = []
    for sp in sorted(p for p in Path(voices_dir).iterdir() if p.is_dir()):
        files = sorted(sp.glob("*.wav"))[:3]
        if files:
            x = np.concatenate([load_audio(f, SR).numpy() for f in files])[: int(seconds * SR)]
            if len(x) >= seconds * SR * 0.9:
                clips.append(x)
    hits = n = 0
    for a, b in zip(clips[0::2], clips[1::2]):
        sc = {"speaker_change": F.speaker_change(emb.windows(np.concatenate([a, b])))}
        hits += "speakers" in F.failed(sc, thresholds)
        n += 1
    return hits / max(n, 1), n


def real_speech_pass_rate(thresholds: dict[str, float | None], voices_dir, seconds: float = 12.0,
                          limit: int | None = None) -> tuple[float, list[str]]:
    """Share of the `tortoise` package's real voice clips (speech only, per speaker) that pass every filter."""
    from pathlib import Path

    from tortuner.audio.io import load_audio

    emb = F.VoiceEmbedder()
    dnsmos = F.Dnsmos() if thresholds.get("min_dnsmos_bak") is not None else None
    failures = []
    speakers = sorted(p for p in Path(voices_dir).iterdir() if p.is_dir() and list(p.glob("*.wav")))[:limit]
    n = 0
    for sp in speakers:
        x = np.concatenate([load_audio(f, SR).numpy() for f in sorted(sp.glob("*.wav"))[:3]])[: int(seconds * SR)]
        if len(x) < 5 * SR:
            continue
        n += 1
        failed = F.failed(scores(x, emb, dnsmos), thresholds)
        if failed:
            failures.append(f"{sp.name}: {','.join(failed)}")
    return 1 - len(failures) / max(n, 1), failures
