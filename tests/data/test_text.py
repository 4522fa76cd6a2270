"""Transcript normalisation for TorToiSe's tokenizer, pause-based punctuation, transcript files, ASR errors."""

from __future__ import annotations

import pytest

from tortuner.data.asr import make_transcriber, read_transcripts
from tortuner.data.text import normalize, punctuate, token_count
from tortuner.errors import TortunerError


def test_normalize_keeps_case_and_punctuation_and_has_no_unknown_tokens() -> None:
    from tortoise.utils.tokenizer import VoiceBpeTokenizer

    tok = VoiceBpeTokenizer()
    unk = tok.tokenizer.token_to_id("[UNK]")
    raw = "“Café” — it’s 3 AM… Dr. Smith paid $12 & 50% [sic] {ok} <b>ñ</b> 😀"
    text = normalize(raw)
    assert text.startswith("Cafe - it's three AM... Dr. Smith paid twelve dollars and fifty percent (sic) (ok)")
    assert unk not in tok.encode(text)
    assert normalize("  ...  ") == "" and normalize("🎵") == ""
    assert token_count("Hello there.") == len(tok.encode("Hello there."))


def test_punctuate_from_pauses() -> None:
    words = [("hello", 0.0, 0.4), ("i", 0.45, 0.5), ("think", 0.9, 1.2), ("so", 1.25, 1.4), ("yes", 2.3, 2.6)]
    assert punctuate(words) == "Hello I, think so. Yes."
    assert punctuate([]) == ""


def test_read_transcripts(tmp_path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("# comment\nwavs/book_1a2b3c4d_0001.wav|First line.\nshort.flac|Second|second normalised\n")
    t = read_transcripts(f)
    assert t["book_1a2b3c4d_0001"] == "First line." and t["short"] == "Second" and t["short.flac"] == "Second"
    f.write_text("no separator\n")
    with pytest.raises(TortunerError, match="t.txt:1"):
        read_transcripts(f)


def test_whisper_backends_fail_clearly() -> None:
    for backend in ("faster-whisper", "whisper"):
        with pytest.raises(TortunerError, match=backend):
            make_transcriber(backend, None)
