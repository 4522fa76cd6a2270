"""Pluggable transcription: pocketsphinx (offline, ships its model), faster-whisper / openai-whisper (local
models), or a user's own transcripts file. Every backend takes a 16 kHz mono float32 clip and returns text."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tortuner.data.text import punctuate
from tortuner.errors import TortunerError

BACKENDS = ("pocketsphinx", "faster-whisper", "whisper", "none")
Transcriber = Callable[[np.ndarray], str]

# Word error rate on espeak-ng speech of the lab's sentences (24 sentences, 8 voices), words only and with
# punctuation marks counted as words: `benchmarks/calibrate_filters.py --asr pocketsphinx` (docs/prepare.md).
# The Whisper backends need a local model, so they are measured wherever one is given (--asr-model).
MEASURED_WER = {"pocketsphinx": (0.935, 0.894)}
POCKETSPHINX_NOTE = ("pocketsphinx transcripts are rough (word error rate {wer} on clear synthetic speech) and "
                     "their punctuation is guessed from pauses: for training-grade text use a Whisper-family model "
                     "(--asr faster-whisper --asr-model PATH), or correct train.txt and feed it back (--transcripts)")


def transcript_quality(backend: str, own_transcripts: bool) -> dict:
    """What report.json says of the transcripts: their source, the measured word error rates, and a note when they
    are not training-grade (the pocketsphinx fallback)."""
    if own_transcripts:
        return {"source": "--transcripts", "wer": None, "wer_with_punctuation": None, "note": None}
    if backend == "none":
        return {"source": "none", "wer": None, "wer_with_punctuation": None, "note": "no transcripts (--asr none)"}
    wer, wer_punct = MEASURED_WER.get(backend, (None, None))
    note = POCKETSPHINX_NOTE.format(wer="unmeasured" if wer is None else f"{wer:.0%}") \
        if backend == "pocketsphinx" else None
    return {"source": backend, "wer": wer, "wer_with_punctuation": wer_punct, "note": note}


def make_transcriber(backend: str, model: str | None = None, language: str = "en") -> Transcriber | None:
    """The backend's transcribe function (None for "none"); a one-line `TortunerError` if it cannot run here."""
    if backend == "none":
        return None
    if backend == "pocketsphinx":
        return _pocketsphinx()
    if backend == "faster-whisper":
        return _faster_whisper(model, language)
    if backend == "whisper":
        return _openai_whisper(model, language)
    raise TortunerError(f"unknown ASR backend {backend!r} (choose from {', '.join(BACKENDS)})")


def _pocketsphinx() -> Transcriber:
    """CMU pocketsphinx with its bundled US-English model: rough, no punctuation (added from pauses)."""
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, loglevel="FATAL")
    frame_rate = 100.0

    def transcribe(wav: np.ndarray) -> str:
        pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16).tobytes()
        # pocketsphinx's front end carries state (cepstral mean, noise estimate) from one utterance to the next, so
        # a transcript depended on the clips this process heard before and a resumed `prepare` wrote other text
        # than an uninterrupted one; a fresh front end per clip costs ~0.1 ms
        decoder.reinit_feat()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        words = []
        for seg in decoder.seg():
            w = seg.word.split("(")[0]
            if w.startswith("<") or w.startswith("[") or w in ("<sil>",):
                continue
            words.append((w, seg.start_frame / frame_rate, seg.end_frame / frame_rate))
        return punctuate(words)

    return transcribe


def _need(module: str, backend: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise TortunerError(f"--asr {backend} needs the '{module}' package: pip install {backend}")


def _faster_whisper(model: str | None, language: str) -> Transcriber:
    _need("faster_whisper", "faster-whisper")
    if not model:
        raise TortunerError("--asr faster-whisper needs --asr-model: a local CTranslate2 model folder "
                            "(or the name of one already in the Hugging Face cache)")
    from faster_whisper import WhisperModel

    try:
        m = WhisperModel(model, device="cpu", compute_type="int8", local_files_only=True)
    except Exception as e:  # missing folder, not in cache, bad files
        raise TortunerError(f"{model}: cannot load faster-whisper model ({str(e).splitlines()[0][:150]})") from None

    def transcribe(wav: np.ndarray) -> str:
        segments, _ = m.transcribe(wav.astype(np.float32), language=language or None, beam_size=5,
                                   condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()

    return transcribe


def _openai_whisper(model: str | None, language: str) -> Transcriber:
    _need("whisper", "openai-whisper")
    if not model:
        raise TortunerError("--asr whisper needs --asr-model: a local .pt checkpoint (e.g. ~/.cache/whisper/small.pt)")
    path = Path(os.path.expanduser(model))
    if not path.is_file():
        cached = Path.home() / ".cache" / "whisper" / f"{model}.pt"
        if not cached.is_file():
            raise TortunerError(f"{model}: whisper model file not found (give the path of a downloaded .pt file)")
        path = cached
    import whisper

    try:
        m = whisper.load_model(str(path), device="cpu")
    except Exception as e:
        raise TortunerError(f"{path}: cannot load whisper model ({str(e).splitlines()[0][:150]})") from None

    def transcribe(wav: np.ndarray) -> str:
        return m.transcribe(wav.astype(np.float32), language=language or None, fp16=False)["text"].strip()

    return transcribe


def read_transcripts(path: str | os.PathLike) -> dict[str, str]:
    """`KEY|text` lines (LJSpeech style); KEY is a clip name, `wavs/NAME.wav`, or a source file name/stem."""
    path = Path(path)
    if not path.is_file():
        raise TortunerError(f"{path}: transcripts file not found")
    table: dict[str, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "|" not in line:
            raise TortunerError(f"{path}:{i}: expected 'NAME|transcript'")
        key, text = line.split("|", 1)
        key = Path(key.strip()).name
        table[key] = text.split("|")[0].strip()  # ignore extra LJSpeech columns
        table.setdefault(Path(key).stem, table[key])
    return table
