"""Filter calibration: each filter's decisions on clean speech and on its own controlled corruption.

Used by `benchmarks/calibrate_filters.py` (the table in docs/prepare.md) and by the tests (a smaller run).
Clean material is espeak-ng speech in several voices; corruptions are known: noise at a given SNR, a synthetic
music bed, a phone channel, a 16 kbit/s MP3, hard clipping, synthetic room reverb, two voices taking turns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from support import corrupt
from tortuner.audio.espeak import synthesize
from tortuner.audio.io import load_audio, resample
from tortuner.data import filters

SR = filters.SR
VOICES = ("en-us", "en+f3", "en-us+m3", "en+f2", "en-gb", "en-us+f4", "en+m7", "en-gb+f1")


@dataclass(frozen=True)
class Case:
    name: str
    filter: str                                   # reason of the filter meant to catch it ("" = must pass all)
    make: Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (speech, other voice's speech, seed) -> audio


CASES: tuple[Case, ...] = (
    Case("clean", "", lambda x, o, s: x),
    Case("white noise 5 dB", "noise", lambda x, o, s: corrupt.add_at_snr(x, corrupt.white_noise(len(x), s), 5)),
    Case("pink noise 5 dB", "noise",
         lambda x, o, s: corrupt.add_at_snr(x, corrupt.babble_free_noise(len(x), SR, s), 5)),
    Case("white noise 25 dB (keep)", "", lambda x, o, s: corrupt.add_at_snr(x, corrupt.white_noise(len(x), s), 25)),
    Case("music bed 5 dB", "music", lambda x, o, s: corrupt.add_at_snr(x, corrupt.music(len(x), SR, s), 5)),
    Case("music bed 10 dB", "music", lambda x, o, s: corrupt.add_at_snr(x, corrupt.music(len(x), SR, s), 10)),
    Case("phone channel", "narrowband", lambda x, o, s: corrupt.phone_band(x, SR)),
    Case("mp3 16 kbit/s", "narrowband", lambda x, o, s: corrupt.low_bitrate(x, SR, 16)),
    Case("clipped 0.5 %", "clipping", lambda x, o, s: corrupt.clip(x, 0.005)),
    Case("reverb RT60 0.8 s", "reverb", lambda x, o, s: corrupt.reverb(x, SR, 0.8, s)),
    Case("reverb RT60 1.5 s", "reverb", lambda x, o, s: corrupt.reverb(x, SR, 1.5, s)),
    Case("two voices, turns", "speakers", lambda x, o, s: np.concatenate([x[: len(x) // 2], o[: len(o) // 2]])),
)

# For the opt-in DNSMOS filter (`--min-dnsmos-bak`): a second voice talking over the first.
OVERLAP_CASES: tuple[Case, ...] = (
    Case("clean", "", lambda x, o, s: x),
    Case("talker over speech 5 dB", "background", lambda x, o, s: corrupt.add_at_snr(x, o, 5)),
    Case("talker over speech 10 dB", "background", lambda x, o, s: corrupt.add_at_snr(x, o, 10)),
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


def clip_scores(x: np.ndarray, embedder: filters.VoiceEmbedder,
                dnsmos: filters.Dnsmos | None = None) -> dict[str, float]:
    """The same scores `prepare` records for a (samples,) 16 kHz clip (bandwidth read at 22.05 kHz, as on the
    written clips)."""
    extra = {"dnsmos_bak": dnsmos(x)[1]} if dnsmos is not None else {}
    return extra | {
        "clipped_pct": filters.clipped_pct(x),
        "bandwidth_hz": filters.bandwidth_hz(resample(x, SR, 22050), 22050),
        "music": filters.music_score(x),
        "snr_db": filters.snr_db(x),
        "rt60_s": filters.rt60_s(x),
        "speaker_change": filters.speaker_change(embedder.windows(_speech_only(x))),
    }


def _speech_only(x: np.ndarray) -> np.ndarray:
    """Drop digital-silence pauses (prepare embeds VAD speech spans only; espeak pauses are exact zeros)."""
    e = np.convolve(np.abs(x), np.ones(320) / 320, mode="same")
    return x[e > 1e-4] if np.sum(e > 1e-4) > SR else x


def filter_accuracy(thresholds: dict[str, float | None], n: int = 8, seed: int = 0,
                    cases: tuple[Case, ...] = CASES) -> list[dict]:
    """Per case: share of clips whose decision is right (the target filter fails it / nothing fails a clean one),
    and the share caught by any filter. Returns one row per case."""
    emb = filters.VoiceEmbedder()
    dnsmos = filters.Dnsmos() if thresholds.get("min_dnsmos_bak") is not None else None
    pairs = speech_set(n, seed)
    target = {f.reason: f.score for f in filters.FILTERS}
    rows = []
    for case in cases:
        right = any_fail = 0
        values = []
        for i, (a, b) in enumerate(pairs):
            sc = clip_scores(case.make(a, b, seed * 100 + i), emb, dnsmos)
            failed = filters.failed(sc, thresholds)
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
    emb = filters.VoiceEmbedder()
    clips = []
    for sp in sorted(p for p in Path(voices_dir).iterdir() if p.is_dir()):
        files = sorted(sp.glob("*.wav"))[:3]
        if files:
            x = np.concatenate([load_audio(f, SR).numpy() for f in files])[: int(seconds * SR)]
            if len(x) >= seconds * SR * 0.9:
                clips.append(x)
    hits = n = 0
    for a, b in zip(clips[0::2], clips[1::2]):
        sc = {"speaker_change": filters.speaker_change(emb.windows(np.concatenate([a, b])))}
        hits += "speakers" in filters.failed(sc, thresholds)
        n += 1
    return hits / max(n, 1), n


def real_speech_pass_rate(thresholds: dict[str, float | None], voices_dir, seconds: float = 12.0,
                          limit: int | None = None) -> tuple[float, list[str]]:
    """Share of the `tortoise` package's real voice clips (speech only, per speaker) that pass every filter."""
    emb = filters.VoiceEmbedder()
    dnsmos = filters.Dnsmos() if thresholds.get("min_dnsmos_bak") is not None else None
    failures = []
    speakers = sorted(p for p in Path(voices_dir).iterdir() if p.is_dir() and list(p.glob("*.wav")))[:limit]
    n = 0
    for sp in speakers:
        x = np.concatenate([load_audio(f, SR).numpy() for f in sorted(sp.glob("*.wav"))[:3]])[: int(seconds * SR)]
        if len(x) < 5 * SR:
            continue
        n += 1
        failed = filters.failed(clip_scores(x, emb, dnsmos), thresholds)
        if failed:
            failures.append(f"{sp.name}: {','.join(failed)}")
    return 1 - len(failures) / max(n, 1), failures


# --- concatenated conditions: one long recording whose clean and damaged stretches alternate -----------------------

MIX_SR = 22050  # espeak-ng's own rate: the recording is written, then read by `prepare` like any input


def _damage(kind: str, x: np.ndarray, seed: int) -> np.ndarray:
    """Stretch `x` (MIX_SR) with damage `kind` (the names of `CASES`); reverb keeps its tail (longer output)."""
    sr = MIX_SR
    if kind.startswith("reverb"):
        rt = 0.8 if "0.8" in kind else 1.5
        y = corrupt.reverb(np.concatenate([x, np.zeros(int(rt * sr), np.float32)]), sr, rt, seed)
        return y * (np.abs(x).max() / 0.9)
    makers = {
        "white noise 5 dB": lambda: corrupt.add_at_snr(x, corrupt.white_noise(len(x), seed), 5),
        "pink noise 5 dB": lambda: corrupt.add_at_snr(x, corrupt.babble_free_noise(len(x), sr, seed), 5),
        "music bed 5 dB": lambda: corrupt.add_at_snr(x, corrupt.music(len(x), sr, seed), 5),
        "music bed 10 dB": lambda: corrupt.add_at_snr(x, corrupt.music(len(x), sr, seed), 10),
        "phone channel": lambda: corrupt.phone_band(x, sr),
        "mp3 16 kbit/s": lambda: corrupt.low_bitrate(x, sr, 16),
        "clipped 0.5 %": lambda: corrupt.clip(x, 0.005),
    }
    return makers[kind]()


MIX_DAMAGES = tuple(c.name for c in CASES if c.filter)  # every damage kind of the single-condition table


@dataclass(frozen=True)
class Stretch:
    start: float  # s, in the recording
    end: float
    kind: str     # "clean" or a damage of MIX_DAMAGES


def mixed_recording(path: Path, seed: int, damages: tuple[str, ...] = MIX_DAMAGES,
                    clean_seconds: tuple[float, float] = (6.0, 16.0),
                    damaged_seconds: tuple[float, float] = (3.0, 14.0),
                    pauses: tuple[float, float] = (0.5, 2.0)) -> list[Stretch]:
    """Write a recording of clean stretches alternating with damaged ones (each damage once, in a random order),
    separated by `pauses` s of silence; returns the stretches.

    A stretch is sentences of one espeak-ng voice joined by 0.1-0.35 s pauses (one utterance for the VAD, so only
    per-window detection can split it), of a random length in `clean_seconds` / `damaged_seconds`. The two-voices
    damage alternates a second voice with the first, starting and ending with the second (a quick exchange).
    """
    import soundfile as sf

    from tortuner.synth.sentences import text_lines

    rng = np.random.default_rng(seed)
    main, other = VOICES[seed % len(VOICES)], VOICES[(seed + 3) % len(VOICES)]
    texts = iter(text_lines(400, seed=1000 + seed, min_words=5, max_words=12))

    def sentence(voice: str, pitch: int = 50) -> np.ndarray:
        x = synthesize(next(texts), MIX_SR, voice=voice, pitch=pitch)
        nz = np.flatnonzero(np.abs(x) > 1e-3)
        return x[nz[0] : nz[-1] + 1]

    def stretch(seconds: float, two_voices: bool) -> np.ndarray:
        parts: list[np.ndarray] = []
        n = 0
        while not parts or sum(map(len, parts)) < seconds * MIX_SR or (two_voices and n % 2 == 0):
            if parts:
                parts.append(np.zeros(int(rng.uniform(0.1, 0.35) * MIX_SR), np.float32))
            parts.append(sentence(other, 70 if seed % 2 else 30) if two_voices and n % 2 == 0 else sentence(main))
            n += 1
        return np.concatenate(parts)

    order = [damages[i] for i in rng.permutation(len(damages))]
    kinds = ["clean"] + [k for d in order for k in (d, "clean")]
    audio: list[np.ndarray] = [np.zeros(int(0.7 * MIX_SR), np.float32)]
    stretches: list[Stretch] = []
    t = len(audio[0])
    for i, kind in enumerate(kinds):
        lo, hi = clean_seconds if kind == "clean" else damaged_seconds
        x = stretch(rng.uniform(lo, hi), kind == "two voices, turns")
        stretches.append(Stretch(round(t / MIX_SR, 3), round((t + len(x)) / MIX_SR, 3), kind))
        y = x if kind in ("clean", "two voices, turns") else _damage(kind, x, seed * 100 + i)
        gap = int(rng.uniform(*pauses) * MIX_SR)
        if len(y) > len(x):  # a reverb tail runs on into the pause
            gap = max(gap, len(y) - len(x))
        audio.append(np.pad(y, (0, len(x) + gap - len(y))).astype(np.float32))
        t += len(x) + gap
    audio.append(np.zeros(int(0.7 * MIX_SR), np.float32))
    sf.write(str(path), np.concatenate(audio), MIX_SR, subtype="PCM_16")
    return stretches


def kept_seconds(rows: list[dict], stretches: list[Stretch]) -> dict[str, tuple[float, float]]:
    """Per kind: (seconds of its stretches inside kept clips of one recording's `clips.jsonl` rows, its seconds)."""
    kept = [(r["start"], r["end"]) for r in rows if r["kept"]]
    out: dict[str, tuple[float, float]] = {}
    for s in stretches:
        inside = sum(max(0.0, min(b, s.end) - max(a, s.start)) for a, b in kept)
        k, n = out.get(s.kind, (0.0, 0.0))
        out[s.kind] = (k + inside, n + s.end - s.start)
    return out


# --- transcripts: word error rate of an ASR backend on speech with known text ----------------------------------------

def _words(text: str, punctuation: bool) -> str:
    """Lower-case words (apostrophes kept); with `punctuation`, each of .,;:?! also counts as a word."""
    import re

    return " ".join(re.findall(r"[a-z']+|[.,;:?!]" if punctuation else r"[a-z']+", text.lower())) or "<empty>"


def asr_quality(backend: str, model: str | None = None, n: int = 24, seed: int = 0) -> dict[str, float]:
    """Word error rate (jiwer) of `backend` on `n` espeak-ng renderings (8 voices) of the lab's sentences, after the
    text normalisation `prepare` applies to both; also the rate with punctuation marks counted as words (a
    transcript without punctuation misses every one) and the seconds of CPU per second of audio."""
    import time

    import jiwer

    from tortuner.data.asr import make_transcriber
    from tortuner.data.text import normalize
    from tortuner.synth.sentences import text_lines

    transcribe = make_transcriber(backend, model)
    refs, hyps, audio, spent = [], [], 0.0, 0.0
    for i, text in enumerate(text_lines(n, seed=500 + seed, min_words=8, max_words=30)):
        x = synthesize(text, SR, voice=VOICES[i % len(VOICES)])
        t0 = time.process_time()
        hyps.append(normalize(transcribe(x)))
        spent += time.process_time() - t0
        refs.append(normalize(text))
        audio += len(x) / SR
    return {"n": n, "wer": jiwer.wer([_words(r, False) for r in refs], [_words(h, False) for h in hyps]),
            "wer_punct": jiwer.wer([_words(r, True) for r in refs], [_words(h, True) for h in hyps]),
            "cpu_per_audio_s": spent / audio, "example": f"{refs[0]} -> {hyps[0]}"}


def mixed_case(seeds: list[int], workdir: Path, **settings) -> dict[str, tuple[float, float]]:
    """`prepare` (default settings, no ASR) on one `mixed_recording` per seed; per kind, (seconds inside kept
    clips, seconds) summed over the recordings."""
    import json

    from tortuner.data.prepare_config import PrepareConfig
    from tortuner.data.prepare_run import run

    total: dict[str, tuple[float, float]] = {}
    for seed in seeds:
        wav = workdir / f"mixed_{seed}.wav"
        stretches = mixed_recording(wav, seed)
        out = workdir / f"mixed_{seed}"
        run(PrepareConfig(inputs=[str(wav)], out=str(out), asr="none", **settings), show_progress=False)
        rows = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
        for kind, (k, n) in kept_seconds(rows, stretches).items():
            a, b = total.get(kind, (0.0, 0.0))
            total[kind] = (a + k, b + n)
    return total


def real_turns(voices_dir, threshold: float) -> tuple[int, int, int, int]:
    """The voice-change cut of `prepare` (`pieces.voice_changes`) on real voices (the `tortoise` clips) joined by
    0.3 s pauses into one utterance: (turns cut, turns) for two speakers alternating A B A, and (joins cut, joins)
    for one speaker's own clips in a row (each clip is another recording: a cut there is at worst a lost merge)."""
    from tortuner.data.pieces import voice_changes
    from tortuner.data.scoring import voice_windows
    from tortuner.data.segment import Span

    emb = filters.VoiceEmbedder()
    clips = {}
    for sp in sorted(p for p in Path(voices_dir).iterdir() if p.is_dir()):
        files = sorted(sp.glob("*.wav"))[:3]
        if files:
            clips[sp.name] = [load_audio(f, SR).numpy() for f in files]

    def cuts(parts: list[np.ndarray]) -> int:
        x, spans, t = [], [], 0.0
        for p in parts:
            x += [p, np.zeros(int(0.3 * SR), np.float32)]
            spans.append(Span(t, t + len(p) / SR))
            t += len(p) / SR + 0.3
        voice = voice_windows(np.concatenate(x), [(s.start, s.end) for s in spans], emb)
        return len(voice_changes(voice, spans, threshold))

    names = [n for n in clips if len(clips[n]) >= 2]
    pairs = list(zip(names[0::2], names[1::2]))
    turns = sum(cuts([clips[a][0], clips[b][0], clips[a][1]]) for a, b in pairs)
    same = sum(cuts(c) for c in clips.values())
    return turns, 2 * len(pairs), same, sum(len(c) - 1 for c in clips.values())
