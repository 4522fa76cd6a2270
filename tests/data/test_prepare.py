"""End to end: `tortuner prepare` on generated recordings with known layout, corruptions and bad inputs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support import corrupt
from support.calibrate import kept_seconds, mixed_recording
from tortuner.cli import main
from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.prepare_run import run
from tortuner.data.text import token_count


def _is_silent_at(t: float, path: Path) -> bool:
    """The source is (espeak-ng) digital silence within 10 ms of `t`: a cut there is not inside a word."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    a, b = max(0, int((t - 0.01) * sr)), int((t + 0.01) * sr)
    return b >= len(x) or float(np.abs(x[a:b]).max(initial=0)) < 2e-3


def test_clip_boundaries_and_outputs(tmp_path, long_recording) -> None:
    out = tmp_path / "ds"
    report = run(PrepareConfig(inputs=[str(long_recording.path)], out=str(out), asr="none", speaker="narrator"),
                 show_progress=False)
    rows = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
    ok = [r for r in rows if r["reason"] not in ("too_short", "too_long")]
    assert len(ok) >= 3 and report["kept"] == len([r for r in rows if r["kept"]])
    for r in rows:  # never cut inside speech, and the 5-20 s rule
        assert _is_silent_at(r["start"], long_recording.path) and _is_silent_at(r["end"], long_recording.path), r
        assert (5.0 <= r["seconds"] <= 20.0) == (r["reason"] not in ("too_short", "too_long")), r
        assert r["speaker"] == "narrator" and r["source"] == str(long_recording.path)
    assert any(r["reason"] == "too_short" for r in rows)  # the lone 2 s sentence
    # all speech except the lone short sentence lies in a 5-20 s candidate
    lone = long_recording.speech[-1]
    for a, b in long_recording.speech[:-1]:  # (a sentence may be split at an inner pause)
        covered = sum(max(0.0, min(r["end"], b) - max(r["start"], a)) for r in ok)
        assert covered > b - a - 0.02, (a, b)
    assert not any(r["start"] <= lone[0] and lone[1] <= r["end"] for r in ok)
    # clips: scored, kept (clean speech), written as 22.05 kHz mono 16-bit
    for r in ok:
        assert r["kept"], r
        assert set(r["scores"]) >= {"snr_db", "music", "bandwidth_hz", "clipped_pct", "rt60_s", "speaker_change"}
        info = sf.info(str(out / r["audio"]))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert abs(info.duration - r["seconds"]) < 0.01
    lines = (out / "train.txt").read_text().splitlines() + (out / "val.txt").read_text().splitlines()
    assert sorted(line.split("|")[0] for line in lines) == sorted(r["audio"] for r in ok)
    assert (out / "report.png").stat().st_size > 10_000
    assert json.loads((out / "report.json").read_text())["dropped"]["too_short"]["clips"] >= 1


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sentences, make_recording) -> Path:
    """Two speaker folders: clean, noisy, music and phone recordings, plus bad files."""
    root = tmp_path_factory.mktemp("corpus")
    s, build_recording = sentences, make_recording
    (root / "alice").mkdir()
    (root / "bob").mkdir()

    def speech(idx):
        return np.concatenate([np.concatenate([s[i], np.zeros(5000, np.float32)]) for i in idx])

    build_recording(root / "alice" / "clean.wav", [0.5, speech([0, 1, 2]), 0.6])
    x = speech([3, 4, 5])
    build_recording(root / "alice" / "noisy.wav", [0.5, corrupt.add_at_snr(x, corrupt.white_noise(len(x), 0), 3), 0.6])
    x = speech([6, 7, 8])
    build_recording(root / "bob" / "music.wav", [0.5, corrupt.add_at_snr(x, corrupt.music(len(x), 22050, 0), 3), 0.6])
    x = speech([9, 10, 11])
    build_recording(root / "bob" / "phone.wav", [0.5, corrupt.phone_band(x, 22050), 0.6], sr=22050)
    build_recording(root / "bob" / "silent.wav", [3.0])
    (root / "bob" / "empty.wav").write_bytes(b"")
    (root / "bob" / "corrupt.flac").write_bytes(os.urandom(4000))
    return root


def test_filters_bad_inputs_speakers_and_resume(tmp_path, corpus) -> None:
    out = tmp_path / "ds"
    transcripts = tmp_path / "t.txt"
    transcripts.write_text("clean.wav|“Hello” & welcome: it's 42% done…\nnoisy|Noisy text.\n", encoding="utf-8")
    cfg = PrepareConfig(inputs=[str(corpus)], out=str(out), transcripts=str(transcripts), workers=2,
                        max_speaker_change=None)
    report = run(cfg, show_progress=False)
    skipped = {Path(s["source"]).name: s["error"] for s in report["inputs_skipped"]}
    assert set(skipped) == {"silent.wav", "empty.wav", "corrupt.flac"}, skipped
    assert all(name in msg for name, msg in skipped.items())  # messages name the file
    rows = {Path(r["source"]).stem: r for r in map(json.loads, (out / "clips.jsonl").read_text().splitlines())}
    assert rows["clean"]["kept"] and rows["clean"]["speaker"] == "alice"
    assert rows["clean"]["transcript"] == "Hello and welcome: it's forty-two percent done..."
    assert rows["noisy"]["reason"] == "noise" and rows["noisy"]["scores"]["snr_db"] < 10
    assert rows["music"]["reason"] == "music" and rows["music"]["speaker"] == "bob"
    assert rows["phone"]["reason"] == "narrowband"
    manifest = (out / "train.txt").read_text() + (out / "val.txt").read_text()
    assert manifest == f"{rows['clean']['audio']}|{rows['clean']['transcript']}\n"

    # resume: finished inputs are skipped; an interrupted input (no result, stray clip) is redone cleanly
    work = sorted((out / ".work").glob("*.json"))
    assert len(work) == 4
    noisy_work = next(w for w in work if "noisy" in w.read_text())
    stamps = {w: w.stat().st_mtime_ns for w in work}
    noisy_work.unlink()
    stray = out / "wavs" / (rows["noisy"]["name"] + ".wav")
    shutil.copy(out / rows["clean"]["audio"], stray)
    run(cfg, show_progress=False)
    assert not stray.exists()
    for w, t in stamps.items():
        assert (w.stat().st_mtime_ns == t) == (w != noisy_work)
    assert len((out / "clips.jsonl").read_text().splitlines()) == len(rows)


def test_cli_pocketsphinx_and_errors(tmp_path, real_clip, capsys) -> None:
    out = tmp_path / "ds"
    code = main(["prepare", str(real_clip), "--out", str(out), "--min-seconds", "3", "--max-speaker-change", "off"])
    assert code == 0
    row = json.loads((out / "clips.jsonl").read_text().splitlines()[0])
    assert row["kept"] and row["transcript"] and row["transcript"][0].isupper() and row["transcript"][-1] == "."
    assert 0 < token_count(row["transcript"]) < 300
    assert "note: pocketsphinx transcripts are rough" in capsys.readouterr().err  # says so, on the console
    quality = json.loads((out / "report.json").read_text())["transcripts"]  # and in the report
    assert quality["source"] == "pocketsphinx" and quality["wer"] > 0.5 and "Whisper" in quality["note"]
    assert main(["prepare", str(real_clip), "--out", str(out), "--asr", "whisper"]) == 2
    assert "needs" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "nope.wav"), "--out", str(out)]) == 1
    assert "nope.wav: no such file" in capsys.readouterr().err


def test_alternating_clean_and_damaged_stretches(tmp_path) -> None:
    """Score first, merge second: clean stretches alternating with damaged ones 0.5-2 s apart (the VAD cannot always
    split a 0.5 s pause) keep their clean speech and lose the damaged speech; no clip straddles a change."""
    damages = ("white noise 5 dB", "music bed 5 dB", "phone channel", "reverb RT60 1.5 s", "clipped 0.5 %")
    wav = tmp_path / "mixed.wav"
    stretches = mixed_recording(wav, seed=1, damages=damages, clean_seconds=(6.0, 9.0), damaged_seconds=(4.0, 8.0))
    out = tmp_path / "ds"
    run(PrepareConfig(inputs=[str(wav)], out=str(out), asr="none"), show_progress=False)
    rows = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
    kept = kept_seconds(rows, stretches)
    clean, lost = kept.pop("clean"), {k: a / b for k, (a, b) in kept.items() if a > 0}
    assert clean[0] / clean[1] >= 0.95 and not lost, (clean, lost)
    for r in rows:
        if r["kept"]:  # inside one clean stretch
            assert sum(s.kind == "clean" and s.start < r["end"] and r["start"] < s.end for s in stretches) == 1, r


def test_pocketsphinx_transcript_does_not_depend_on_earlier_clips(tortoise_voices) -> None:
    """pocketsphinx carried its cepstral mean over from one utterance to the next, so a resumed `prepare` (whose
    process had heard other clips first) wrote other transcripts than an uninterrupted run. This pair differed."""
    import soundfile as sf

    from tortuner.audio.io import resample
    from tortuner.data.asr import make_transcriber

    def first_4s(path):
        wav, sr = sf.read(str(path), dtype="float32")
        return resample(wav if wav.ndim == 1 else wav.mean(1), sr, 16000)[: 16000 * 4]

    first, second = sorted(tortoise_voices.rglob("*.wav"))[0], tortoise_voices / "halle" / "3.wav"
    fresh = make_transcriber("pocketsphinx")(first_4s(second))
    transcribe = make_transcriber("pocketsphinx")
    transcribe(first_4s(first))
    assert transcribe(first_4s(second)) == fresh


def test_a_whole_file_transcript_does_not_label_a_source_of_many_clips(tmp_path, long_recording) -> None:
    """Clips are written as soon as they pass (memory stays flat on long inputs); a clip waiting for a whole-file
    transcript is dropped, with its wav, when the source turns out to yield several clips."""
    (tmp_path / "t.txt").write_text(f"{long_recording.path.name}|One text for the whole book.\n")
    out = tmp_path / "ds"
    assert main(["prepare", str(long_recording.path), "--out", str(out), "--transcripts", str(tmp_path / "t.txt"),
                 "--max-speaker-change", "off"]) == 0  # the input is done, nothing kept
    rows = [json.loads(x) for x in (out / "clips.jsonl").read_text().splitlines()]
    passed = [r for r in rows if r["scores"] and not r["failed"]]
    assert len(passed) > 1 and all(r["reason"] == "no_transcript" and not r["kept"] for r in passed)
    assert not list((out / "wavs").glob("*.wav"))
