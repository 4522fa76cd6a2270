import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from tortuner.audio.io import AudioError, find_audio, load_audio, save_wav


def _tone(sr: int, seconds: float = 1.0, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _peak_hz(wav: torch.Tensor, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wav.numpy()))
    return float(np.fft.rfftfreq(wav.numel(), 1 / sr)[spec.argmax()])


def test_stereo_44k_becomes_mono_22k_with_the_same_pitch(tmp_path):
    left, right = _tone(44100, hz=440), _tone(44100, hz=440)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 44100)
    wav = load_audio(path, 22050)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert abs(wav.numel() - 22050) <= 2
    assert abs(_peak_hz(wav, 22050) - 440) < 2
    assert abs(float(wav.abs().max()) - 0.5) < 0.02


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_compressed_formats(tmp_path, ext):
    src = tmp_path / "tone.wav"
    sf.write(src, _tone(16000, 2.0, 300), 16000)
    dst = tmp_path / f"tone.{ext}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), str(dst)], check=True)
    wav = load_audio(dst, 24000)
    assert abs(wav.numel() / 24000 - 2.0) < 0.1
    assert abs(_peak_hz(wav, 24000) - 300) < 3


def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(np.random.default_rng(0).bytes(5000))
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 50)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050, np.float32), 22050)
    for path in (tmp_path / "missing.wav", empty, junk, text, silent):
        with pytest.raises(AudioError) as e:
            load_audio(path, 22050)
        msg = str(e.value)
        assert str(path) in msg and "\n" not in msg
    assert load_audio(silent, 22050, allow_silent=True).abs().max() == 0


def test_save_wav_roundtrip_and_find_audio(tmp_path):
    wav = torch.from_numpy(_tone(22050))
    save_wav(tmp_path / "a" / "x.wav", wav, 22050)
    info = sf.info(tmp_path / "a" / "x.wav")
    assert info.samplerate == 22050 and info.channels == 1 and info.subtype == "PCM_16"
    back = load_audio(tmp_path / "a" / "x.wav", 22050)
    assert torch.allclose(back, wav, atol=1e-4)
    (tmp_path / "a" / "readme.txt").write_text("x")
    assert find_audio([tmp_path]) == [tmp_path / "a" / "x.wav"]
    assert not list(tmp_path.glob("a/.*.tmp"))  # atomic write left no temp file
    with pytest.raises(AudioError):
        find_audio([tmp_path / "nope"])
