"""`tortuner prepare`: long recordings -> clean, transcribed 5-20 s clips (TorToiSe's own recipe).

Per input: (1) stream it once to get silero-vad speech probabilities at 16 kHz, (2) plan candidate clips on
silences, (3) stream it again, cutting each candidate at the file's own rate and scoring it with every filter,
(4) transcribe kept clips and write them as 22.05 kHz wavs. Each input's result is one JSON file under
`DATASET_DIR/.work/`, written last and atomically: an input with a result is finished and is skipped on rerun.
The manifests and the report are rebuilt from those results at the end of every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from tortuner.audio.io import AUDIO_EXTENSIONS, AudioError, load_audio, resample, save_wav
from tortuner.data import filters as F
from tortuner.data.asr import make_transcriber, read_transcripts
from tortuner.data.segment import Candidate, SegmentConfig, plan_clips, speech_regions
from tortuner.data.stream import StreamResampler, probe, read_blocks
from tortuner.data.text import normalize, token_count
from tortuner.data.vad import FRAME_SECONDS, VAD_SR, SpeechDetector
from tortuner.errors import TortunerError
from tortuner.files import read_json, write_json, write_jsonl, write_text


@dataclass
class PrepareConfig:
    """Every field is a `tortuner prepare` flag of the same name. A threshold of None turns that filter off."""

    inputs: list[str] = field(default_factory=list)
    out: str = "dataset"
    speaker: str | None = None           # default: the folder each file sits in
    workers: int = 1
    # segmentation
    vad_threshold: float = 0.5
    min_silence: float = 0.5
    min_seconds: float = 5.0
    max_seconds: float = 20.0
    max_pause: float = 2.0
    pad: float = 0.2
    # filters (see filters.FILTERS and docs/prepare.md for the calibration)
    max_clipped_pct: float | None = 0.02
    min_bandwidth_hz: float | None = 6000.0
    max_music: float | None = 0.14
    min_snr_db: float | None = 15.0
    max_rt60_s: float | None = 0.35
    max_speaker_change: float | None = 0.22
    min_dnsmos_bak: float | None = None  # opt-in: slow; catches a second voice talking over the first
    reference_voice: list[str] = field(default_factory=list)
    min_reference_similarity: float | None = 0.75
    # transcription
    asr: str = "pocketsphinx"
    asr_model: str | None = None
    language: str = "en"
    transcripts: str | None = None
    max_text_tokens: int = 300
    # output
    sample_rate: int = 22050
    val_fraction: float = 0.05

    def segment_config(self) -> SegmentConfig:
        return SegmentConfig(threshold=self.vad_threshold, min_silence=self.min_silence, min_speech=0.25,
                             min_seconds=self.min_seconds, max_seconds=self.max_seconds, max_pause=self.max_pause,
                             pad=self.pad)

    def thresholds(self) -> dict[str, float | None]:
        t = {f.flag: getattr(self, f.flag) for f in F.FILTERS}
        if not self.reference_voice:
            t["min_reference_similarity"] = None
        return t

    def fingerprint(self) -> str:
        """Hash of every setting that changes an input's result (so changed settings redo finished inputs)."""
        d = dataclasses.asdict(self)
        for k in ("inputs", "out", "workers"):
            d.pop(k)
        d["transcripts_mtime"] = Path(self.transcripts).stat().st_mtime_ns if self.transcripts else None
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Job:
    path: Path
    speaker: str

    @property
    def source_id(self) -> str:
        return hashlib.sha1(str(self.path.resolve()).encode()).hexdigest()[:8]

    @property
    def prefix(self) -> str:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", self.path.stem)[:40] or "audio"
        return f"{stem}_{self.source_id}"


def collect_jobs(cfg: PrepareConfig) -> tuple[list[Job], list[str]]:
    """Expand inputs into files with a speaker label; missing inputs become messages, not a stop."""
    jobs: list[Job] = []
    problems: list[str] = []
    for item in cfg.inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file() and x.suffix.lower() in AUDIO_EXTENSIONS):
                rel = f.relative_to(p).parts
                folder = rel[0] if len(rel) > 1 else p.resolve().name
                jobs.append(Job(f, cfg.speaker or folder))
        elif p.is_file():
            jobs.append(Job(p, cfg.speaker or p.resolve().parent.name))
        else:
            problems.append(f"{p}: no such file or folder")
    seen: set[Path] = set()
    unique = [j for j in jobs if not (j.path.resolve() in seen or seen.add(j.path.resolve()))]
    return unique, problems


class Models:
    """Models loaded once per process, on first use."""

    def __init__(self, cfg: PrepareConfig) -> None:
        self.cfg = cfg
        self._vad: SpeechDetector | None = None
        self._emb: F.VoiceEmbedder | None = None
        self._dnsmos: F.Dnsmos | None = None
        self._asr: Callable | None = None
        self._asr_ready = False
        self._reference: np.ndarray | None = None
        self.transcripts = read_transcripts(cfg.transcripts) if cfg.transcripts else None

    @property
    def vad(self) -> SpeechDetector:
        if self._vad is None:
            self._vad = SpeechDetector()
        return self._vad

    @property
    def embedder(self) -> F.VoiceEmbedder:
        if self._emb is None:
            self._emb = F.VoiceEmbedder()
        return self._emb

    @property
    def dnsmos(self) -> F.Dnsmos:
        if self._dnsmos is None:
            self._dnsmos = F.Dnsmos()
        return self._dnsmos

    @property
    def asr(self) -> Callable | None:
        if not self._asr_ready:
            self._asr = None if self.transcripts is not None else make_transcriber(
                self.cfg.asr, self.cfg.asr_model, self.cfg.language)
            self._asr_ready = True
        return self._asr

    @property
    def reference(self) -> np.ndarray | None:
        if self.cfg.reference_voice and self._reference is None:
            self._reference = reference_embedding(self.cfg.reference_voice, self.embedder)
        return self._reference


def reference_embedding(paths: list[str], embedder: F.VoiceEmbedder) -> np.ndarray:
    """Mean d-vector of the reference clips (files or folders)."""
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS) if p.is_dir() else [p]
    if not files:
        raise TortunerError(f"{', '.join(paths)}: no reference audio found")
    embs = [embedder.windows(load_audio(f, F.SR).numpy()) for f in files]  # AudioError names a bad file
    m = np.concatenate(embs).mean(axis=0)
    return m / np.linalg.norm(m)


def score_clip(native: np.ndarray, sr: int, models: Models, cfg: PrepareConfig,
               speech: list[tuple[float, float]] | None = None) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every filter score of one clip, plus the clip at 16 kHz (for ASR) and at the output rate.

    `speech` are the VAD speech spans (s, relative to the clip): voice embeddings are taken on speech only,
    since windows of silence embed as an odd "voice" of their own.
    """
    x16 = resample(native, sr, F.SR)
    xo = resample(native, sr, cfg.sample_rate)
    scores: dict[str, float | None] = {
        "clipped_pct": F.clipped_pct(native),
        "bandwidth_hz": F.bandwidth_hz(xo, cfg.sample_rate),
        "music": F.music_score(x16),
        "snr_db": F.snr_db(x16),
        "rt60_s": F.rt60_s(x16),
    }
    if cfg.max_speaker_change is not None or cfg.reference_voice:
        voiced = np.concatenate([x16[int(a * F.SR) : int(b * F.SR)] for a, b in speech]) if speech else x16
        emb = models.embedder.windows(voiced if voiced.size >= F.SR else x16)
        scores["speaker_change"] = F.speaker_change(emb)
        ref = models.reference
        scores["reference_similarity"] = F.reference_similarity(emb, ref) if ref is not None else None
    if cfg.min_dnsmos_bak is not None:
        _, scores["dnsmos_bak"], scores["dnsmos_ovrl"] = models.dnsmos(x16)
    return {k: (None if v is None else round(float(v), 4)) for k, v in scores.items()}, x16, xo


def _transcript(job: Job, name: str, x16: np.ndarray, n_ok: int, models: Models) -> str | None:
    if models.transcripts is not None:
        t = models.transcripts.get(name)
        if t is None and n_ok == 1:  # a whole-file transcript fits a source that yields one clip
            t = models.transcripts.get(job.path.name, models.transcripts.get(job.path.stem))
        return t
    return models.asr(x16) if models.asr else ""


def process(job: Job, cfg: PrepareConfig, models: Models, out: Path,
            progress: Callable[[float], None] | None = None) -> dict:
    """Segment, score, transcribe and write one input; returns its result record (also written to .work/)."""
    t0 = time.perf_counter()
    info = probe(job.path)
    for old in (out / "wavs").glob(f"{job.prefix}_*.wav"):  # leftovers of an interrupted or outdated run
        old.unlink()
    seconds_read = 0.0
    peak = 0.0

    def blocks16():
        nonlocal seconds_read, peak
        rs = StreamResampler(info.sr, VAD_SR)
        for b in read_blocks(info, 60.0):
            seconds_read += b.size / info.sr
            peak = max(peak, float(np.abs(b).max()))
            yield rs(b)
        yield rs(np.zeros(0, dtype=np.float32), last=True)

    probs = models.vad.probabilities(blocks16(), progress=(lambda s: progress(0.5 * s)) if progress else None)
    if peak < 1e-4:
        raise AudioError(f"{job.path}: audio is silent")
    total = seconds_read
    seg = cfg.segment_config()
    candidates = plan_clips(speech_regions(probs, FRAME_SECONDS, seg), total, seg)
    rows = [_row(job, i, c) for i, c in enumerate(candidates)]
    todo = [(r, c) for r, c in zip(rows, candidates) if c.status == "ok"]
    thresholds = cfg.thresholds()
    passed: list[tuple[dict, np.ndarray, np.ndarray]] = []
    for (row, c), native in _cut(info, [c for _, c in todo], todo):
        spans = [(max(0.0, s.start - c.start), s.end - c.start) for s in c.speech]
        row["scores"], x16, xo = score_clip(native, info.sr, models, cfg, spans)
        row["failed"] = F.failed(row["scores"], thresholds)
        if row["failed"]:
            row["reason"] = row["failed"][0]
        else:
            passed.append((row, x16, xo))
        if progress:
            progress(0.5 * row["seconds"])
    for row, _ in todo:
        if not row["scores"]:
            row["reason"] = "truncated"  # the file ended before this clip (header longer than the data)
    for row, x16, xo in passed:
        untranscribed = models.transcripts is None and models.asr is None  # --asr none: keep without text
        text = "" if untranscribed else normalize(_transcript(job, row["name"], x16, len(passed), models) or "")
        row["transcript"] = text or None
        if not text and not untranscribed:
            row["reason"] = "no_transcript"
        elif text and token_count(text) > cfg.max_text_tokens:
            row["reason"] = "text_too_long"
        else:
            row["kept"], row["reason"], row["audio"] = True, None, f"wavs/{row['name']}.wav"
            save_wav(out / row["audio"], xo, cfg.sample_rate)
    if progress:
        progress(max(0.0, total - 0.5 * total - 0.5 * sum(c.seconds for _, c in todo)))
    result = {"source": str(job.path), "speaker": job.speaker, "seconds": round(total, 3),
              "speech_seconds": round(float((probs >= cfg.vad_threshold).sum() * FRAME_SECONDS), 3),
              "fingerprint": cfg.fingerprint(), "elapsed": round(time.perf_counter() - t0, 3), "clips": rows}
    write_json(out / ".work" / f"{job.source_id}.json", result)
    return result


def _row(job: Job, i: int, c: Candidate) -> dict:
    return {"name": f"{job.prefix}_{i:04d}", "source": str(job.path), "speaker": job.speaker,
            "start": c.start, "end": c.end, "seconds": round(c.seconds, 3), "scores": {},
            "kept": False, "reason": None if c.status == "ok" else c.status, "failed": [], "transcript": None,
            "audio": None}


def _cut(info, candidates: list[Candidate], rows: list):
    """Stream the file again and yield (row, native-rate samples) for each candidate, holding only what is needed."""
    if not candidates:
        return
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0]
    k = 0
    for block in read_blocks(info, 30.0):
        buf = np.concatenate([buf, block])
        while k < len(candidates):
            s, e = int(candidates[k].start * info.sr), int(candidates[k].end * info.sr)
            if buf_start + buf.size < e:
                break
            yield rows[k], buf[s - buf_start : e - buf_start].copy()
            k += 1
        keep_from = int(candidates[k].start * info.sr) if k < len(candidates) else buf_start + buf.size
        drop = min(buf.size, max(0, keep_from - buf_start))  # never skip ahead of what has been read
        buf, buf_start = buf[drop:], buf_start + drop
    for j in range(k, len(candidates)):  # file shorter than its header said
        s, e = int(candidates[j].start * info.sr), int(candidates[j].end * info.sr)
        if e - s > 0 and s - buf_start < buf.size:
            yield rows[j], buf[max(0, s - buf_start) : e - buf_start].copy()


# ---------------------------------------------------------------- running over many inputs

_WORKER: dict = {}


def _init_worker(cfg: PrepareConfig) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["models"] = Models(cfg)
    _WORKER["cfg"] = cfg


def _input_error(job: Job, e: Exception) -> str:
    """One line naming the input: bad audio is reported and skipped, never a stop for the whole run."""
    if isinstance(e, AudioError):
        return str(e)
    first = (str(e).strip().splitlines() or [""])[0][:150]
    return f"{job.path}: failed ({type(e).__name__}: {first})"


def _work(job: Job, out: str) -> tuple[Job, dict | None, str | None]:
    try:
        return job, process(job, _WORKER["cfg"], _WORKER["models"], Path(out)), None
    except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
        return job, None, _input_error(job, e)


def run(cfg: PrepareConfig, show_progress: bool = True) -> dict:
    """Prepare a dataset from `cfg.inputs` into `cfg.out`; returns the report (also written to report.json)."""
    from tqdm import tqdm

    if not cfg.inputs:
        raise TortunerError("no inputs given")
    if cfg.min_seconds >= cfg.max_seconds:
        raise TortunerError(f"--min-seconds ({cfg.min_seconds}) must be below --max-seconds ({cfg.max_seconds})")
    out = Path(cfg.out)
    jobs, problems = collect_jobs(cfg)
    models = Models(cfg)  # reads --transcripts now: a bad file fails before any work
    if cfg.transcripts is None:
        models.asr  # a missing ASR backend/model fails now, not after hours of VAD
    if cfg.reference_voice:
        models.reference
    fp = cfg.fingerprint()
    results: dict[Job, dict] = {}
    todo: list[Job] = []
    for job in jobs:
        done = out / ".work" / f"{job.source_id}.json"
        prev = read_json(done) if done.is_file() else None
        if prev and prev.get("fingerprint") == fp:
            results[job] = prev
        else:
            todo.append(job)
    skipped = [{"source": p.split(":")[0], "error": p} for p in problems]
    for p in problems:
        print(f"skipped: {p}", file=sys.stderr)
    sizes = {j: j.path.stat().st_size for j in todo}
    bar = tqdm(total=sum(sizes.values()) / 1e6, unit="MB", desc="prepare", disable=not show_progress,
               file=sys.stderr, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} MB [{elapsed}<{remaining}]")

    def failed(job: Job, msg: str) -> None:
        skipped.append({"source": str(job.path), "error": msg})
        tqdm.write(f"skipped: {msg}", file=sys.stderr)

    if cfg.workers <= 1 or len(todo) <= 1:
        for job in todo:
            done_mb = 0.0
            secs = [1.0]

            def tick(s: float, job=job) -> None:
                nonlocal done_mb
                step = min(sizes[job] / 1e6 - done_mb, s / secs[0] * sizes[job] / 1e6)
                done_mb += step
                bar.update(step)

            try:
                seconds = probe(job.path).seconds
                secs[0] = seconds if np.isfinite(seconds) and seconds > 0 else float("inf")
                results[job] = process(job, cfg, models, out, progress=tick)
            except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
                failed(job, _input_error(job, e))
            bar.update(sizes[job] / 1e6 - done_mb)
    else:
        with ProcessPoolExecutor(cfg.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(cfg,)) as pool:
            futures = [pool.submit(_work, job, str(out)) for job in todo]
            for fut in as_completed(futures):
                job, result, err = fut.result()
                if err:
                    failed(job, err)
                else:
                    results[job] = result
                bar.update(sizes[job] / 1e6)
    bar.close()
    # The dataset is every input finished into this folder with these settings (earlier runs' inputs included).
    for w in sorted((out / ".work").glob("*.json")):
        res = read_json(w)
        if res.get("fingerprint") == fp and res["source"] not in {r["source"] for r in results.values()}:
            results[Job(Path(res["source"]), res["speaker"])] = res
    ordered = sorted(results.values(), key=lambda r: r["source"])
    return write_outputs(cfg, out, ordered, skipped)


def _is_val(name: str, fraction: float) -> bool:
    return int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def write_outputs(cfg: PrepareConfig, out: Path, results: list[dict], skipped: list[dict]) -> dict:
    """clips.jsonl, train.txt / val.txt (LJSpeech `wavs/NAME.wav|text`), report.json and report.png."""
    from tortuner.data.report import build_report, plot_report

    rows = [r for res in results for r in res["clips"]]
    kept = [r for r in rows if r["kept"]]
    val = [r for r in kept if _is_val(r["name"], cfg.val_fraction)]
    if not val and len(kept) >= 2 and cfg.val_fraction > 0:
        val = [min(kept, key=lambda r: hashlib.sha1(r["name"].encode()).hexdigest())]
    val_names = {r["name"] for r in val}
    write_jsonl(out / "clips.jsonl", rows)
    write_text(out / "train.txt", "".join(f"{r['audio']}|{r['transcript'] or ''}\n" for r in kept if r["name"] not in val_names))
    write_text(out / "val.txt", "".join(f"{r['audio']}|{r['transcript'] or ''}\n" for r in val))
    report = build_report(cfg, results, rows, skipped)
    write_json(out / "report.json", report)
    plot_report(report, rows, cfg, out / "report.png")
    return report
