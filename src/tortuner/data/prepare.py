"""One input of `tortuner prepare`: a long recording -> scored candidate clips, the good ones transcribed and written.

(1) Stream the file once to get silero-vad speech probabilities at 16 kHz, (2) cut the speech into utterances on
silences and utterances into window-long pieces at their inner pauses, (3) stream it again, scoring every piece
with every filter and joining alike neighbours into clips, each then scored as a whole (`pieces`), (4) transcribe
the clips that pass and write them as 22.05 kHz wavs, (5) write the input's result record (see `jobs`). Running
over many inputs (resume, workers, progress) is `prepare_run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from tortuner.audio.io import AUDIO_EXTENSIONS, AudioError, load_audio, save_wav
from tortuner.data import filters, pieces
from tortuner.data.asr import make_transcriber, read_transcripts
from tortuner.data.jobs import Job, result_path
from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.segment import Candidate, SegmentConfig, Span, pad, speech_regions, utterances, windows
from tortuner.data.stream import AudioInfo, StreamResampler, Tape, probe, read_blocks
from tortuner.data.text import normalize, token_count
from tortuner.data.vad import FRAME_SECONDS, VAD_SR, SpeechDetector
from tortuner.errors import TortunerError
from tortuner.files import write_json

Progress = Callable[[float], None]  # called with seconds of the input just processed


class PrepareModels:
    """The models `prepare` runs (VAD, voice embedder, DNSMOS, ASR), each loaded once per process on first use."""

    def __init__(self, cfg: PrepareConfig) -> None:
        self.cfg = cfg
        self._vad: SpeechDetector | None = None
        self._emb: filters.VoiceEmbedder | None = None
        self._dnsmos: filters.Dnsmos | None = None
        self._asr: Callable | None = None
        self._asr_ready = False
        self._reference: np.ndarray | None = None
        self.transcripts = read_transcripts(cfg.transcripts) if cfg.transcripts else None

    def preload(self) -> None:
        """Load what can fail for the whole run now (ASR backend or model, reference voice), not after hours of VAD.

        (--transcripts was read by the constructor: a bad file fails before any work too.)
        """
        if self.cfg.transcripts is None:
            self.asr
        if self.cfg.reference_voice:
            self.reference

    @property
    def vad(self) -> SpeechDetector:
        if self._vad is None:
            self._vad = SpeechDetector()
        return self._vad

    @property
    def embedder(self) -> filters.VoiceEmbedder:
        if self._emb is None:
            self._emb = filters.VoiceEmbedder()
        return self._emb

    @property
    def dnsmos(self) -> filters.Dnsmos:
        if self._dnsmos is None:
            self._dnsmos = filters.Dnsmos()
        return self._dnsmos

    @property
    def asr(self) -> Callable | None:
        """The transcriber; None with --transcripts (no ASR needed) or --asr none (clips are kept without text)."""
        if not self._asr_ready:
            self._asr = None if self.transcripts is not None else make_transcriber(
                self.cfg.asr, self.cfg.asr_model, self.cfg.language)
            self._asr_ready = True
        return self._asr

    @property
    def reference(self) -> np.ndarray | None:
        """(256,) unit-norm mean d-vector of --reference-voice, or None without one."""
        if self.cfg.reference_voice and self._reference is None:
            self._reference = reference_embedding(self.cfg.reference_voice, self.embedder)
        return self._reference


def reference_embedding(paths: list[str], embedder: filters.VoiceEmbedder) -> np.ndarray:
    """(256,) unit-norm mean d-vector of the reference clips (files or folders)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else [p]
    if not files:
        raise TortunerError(f"{', '.join(paths)}: no reference audio found")
    embs = [embedder.windows(load_audio(f, filters.SR).numpy()) for f in files]  # AudioError names a bad file
    m = np.concatenate(embs).mean(axis=0)
    return m / np.linalg.norm(m)


def process(job: Job, cfg: PrepareConfig, models: PrepareModels, out: Path, progress: Progress | None = None) -> dict:
    """Segment, score, transcribe and write one input; returns its result record (also written to .work/).

    `progress` gets half of the input's seconds from the VAD pass and the other half from scoring and the rest.
    """
    t0 = time.perf_counter()
    info = probe(job.path)
    for old in (out / "wavs").glob(f"{job.prefix}_*.wav"):  # leftovers of an interrupted or outdated run
        old.unlink()
    half = (lambda s: progress(0.5 * s)) if progress else None
    probs, total = _speech_probabilities(info, models.vad, half)
    seg = cfg.segment_config()
    plan = _plan(speech_regions(probs, FRAME_SECONDS, seg), total, seg, cfg.window_seconds)
    done = [0.0]  # seconds reported by the scoring pass

    def scored(s: float) -> None:
        done[0] += s
        if half:
            half(s)

    rows = _score_and_write(job, info, plan, cfg, models, out, scored)
    if progress:
        progress(max(0.0, 0.5 * (total - done[0])))
    result = {"source": str(job.path), "speaker": job.speaker, "seconds": round(total, 3),
              "speech_seconds": round(float((probs >= cfg.vad_threshold).sum() * FRAME_SECONDS), 3),
              "fingerprint": cfg.fingerprint(), "elapsed": round(time.perf_counter() - t0, 3), "clips": rows}
    write_json(result_path(out, job), result)
    return result


def _plan(regions: list[Span], total: float, seg: SegmentConfig, window: float) -> list[list[Candidate]]:
    """Per utterance, its pieces of about `window` seconds, each padded (see `segment`)."""
    parts = [windows(u, window) for u in utterances(regions, seg)]
    padded = iter(pad([w for ws in parts for w in ws], total, seg))
    return [[next(padded) for _ in ws] for ws in parts]


def _speech_probabilities(info: AudioInfo, vad: SpeechDetector, progress: Progress | None) -> tuple[np.ndarray, float]:
    """First pass over the file: (frames,) speech probabilities (one per FRAME_SECONDS) and the seconds read.

    Seconds are counted from the samples actually decoded, since a header can claim more than the file holds.
    """
    seconds_read = 0.0
    peak = 0.0

    def blocks16() -> Iterator[np.ndarray]:
        nonlocal seconds_read, peak
        rs = StreamResampler(info.sr, VAD_SR)
        for b in read_blocks(info, 60.0):
            seconds_read += b.size / info.sr
            peak = max(peak, float(np.abs(b).max()))
            yield rs(b)
        yield rs(np.zeros(0, dtype=np.float32), last=True)

    probs = vad.probabilities(blocks16(), progress=progress)
    if peak < 1e-4:
        raise AudioError(f"{info.path}: audio is silent")
    return probs, seconds_read


def _score_and_write(job: Job, info: AudioInfo, plan: list[list[Candidate]], cfg: PrepareConfig,
                     models: PrepareModels, out: Path, progress: Progress | None) -> list[dict]:
    """Second pass: score the pieces, join alike ones into clips, score those (see `pieces`); transcribe and write
    each clip that passed every filter as soon as it is found, so memory stays flat however long the input (a
    3-hour recording held every passed clip's audio until the end before). Returns every clip's row (scores,
    failed filters, reason, transcript, audio)."""
    thresholds = cfg.thresholds()
    voices = cfg.max_speaker_change is not None or bool(cfg.reference_voice)
    rows: list[dict] = []
    passed: list[dict] = []
    untranscribed = models.transcripts is None and models.asr is None  # --asr none: keep without text
    found = pieces.clips(Tape(info), plan, cfg.segment_config(), cfg.sample_rate, cfg.window_seconds, thresholds,
                         cfg.max_voice_change if cfg.max_speaker_change is not None else None,
                         models.embedder if voices else None, models.reference, progress)
    for clip in found:
        row = _row(job, len(rows), clip.cand)
        rows.append(row)
        if clip.scores is None:
            continue
        if cfg.min_dnsmos_bak is not None:
            _, bak, ovrl = models.dnsmos(clip.x16)
            clip.scores |= {"dnsmos_bak": round(bak, 4), "dnsmos_ovrl": round(ovrl, 4)}
        row["scores"] = clip.scores
        row["failed"] = filters.failed(row["scores"], thresholds)
        if row["failed"]:
            row["reason"] = row["failed"][0]
            continue
        passed.append(row)
        text = "" if untranscribed else _transcript(row["name"], clip.x16, models)
        if text is None:  # only a whole-file transcript, which fits only a source that yields one clip: decided below
            row["audio"] = f"wavs/{row['name']}.wav"
            save_wav(out / row["audio"], clip.xo, cfg.sample_rate)
            continue
        _keep_if_text(row, text, untranscribed, cfg)
        if row["kept"]:
            save_wav(out / row["audio"], clip.xo, cfg.sample_rate)
    whole = _whole_file_transcript(job, models)
    for row in [r for r in passed if r["audio"] and not r["kept"]]:
        _keep_if_text(row, whole if len(passed) == 1 else "", False, cfg)
        if not row["kept"]:
            (out / f"wavs/{row['name']}.wav").unlink(missing_ok=True)
            row["audio"] = None
    return rows


def _keep_if_text(row: dict, text: str | None, untranscribed: bool, cfg: PrepareConfig) -> None:
    """Keep a clip that passed the filters unless its text is missing or too long (sets transcript/reason/audio)."""
    text = normalize(text or "")
    row["transcript"] = text or None
    row["audio"] = None
    if not text and not untranscribed:
        row["reason"] = "no_transcript"
    elif text and token_count(text) > cfg.max_text_tokens:
        row["reason"] = "text_too_long"
    else:
        row["kept"], row["reason"], row["audio"] = True, None, f"wavs/{row['name']}.wav"


def _transcript(name: str, x16: np.ndarray, models: PrepareModels) -> str | None:
    """The clip's own transcript (`--transcripts` by clip name, or the ASR's); None when only a whole-file
    transcript could give it one."""
    if models.transcripts is not None:
        return models.transcripts.get(name)
    return models.asr(x16) if models.asr else ""


def _whole_file_transcript(job: Job, models: PrepareModels) -> str:
    if models.transcripts is None:
        return ""
    return models.transcripts.get(job.path.name, models.transcripts.get(job.path.stem)) or ""


def _row(job: Job, i: int, c: Candidate) -> dict:
    """The clips.jsonl record of candidate `i`, before scoring."""
    return {"name": f"{job.prefix}_{i:04d}", "source": str(job.path), "speaker": job.speaker,
            "start": c.start, "end": c.end, "seconds": round(c.seconds, 3), "scores": {},
            "kept": False, "reason": None if c.status == "ok" else c.status, "failed": [], "transcript": None,
            "audio": None}
