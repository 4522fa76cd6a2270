"""The mels are checked against an independent NumPy/librosa computation written from the specification."""

import importlib.resources

import librosa
import numpy as np
import torch

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel, UnivNetMel, num_frames, num_tokens


def _stft_mag(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
    frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.abs(np.fft.rfft(x[idx] * window, axis=1)).T  # (bins, frames)


def test_dvae_mel_matches_the_spec(real_clip):
    wav = load_audio(real_clip, DVAE_SR)[: DVAE_SR * 3]
    ours = DvaeMel()(wav).numpy()
    fb = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000, htk=True, norm="slaney")
    power = _stft_mag(wav.numpy().astype(np.float64), 1024, 256) ** 2
    with importlib.resources.as_file(importlib.resources.files("tortoise") / "data" / "mel_norms.pth") as p:
        norms = torch.load(p, weights_only=True).numpy()
    ref = np.log(np.maximum(fb @ power, 1e-5)) / norms[:, None]
    assert ours.shape == ref.shape == (80, num_frames(wav.numel()))
    assert np.abs(ours - ref).max() < 2e-3


def test_dvae_mel_batched_equals_single(real_clip):
    wav = load_audio(real_clip, DVAE_SR)[: DVAE_SR * 2]
    mel = DvaeMel()
    batch = mel(torch.stack([wav, wav.flip(0)]))
    assert torch.allclose(batch[0], mel(wav), atol=1e-5)
    assert batch.shape == (2, 80, num_frames(wav.numel()))


def test_univnet_mel_matches_the_spec(real_clip):
    wav = load_audio(real_clip, 24000)[:48000]
    univnet = UnivNetMel()
    ours = univnet(wav)[0].numpy()
    stock = univnet.stft.mel_spectrogram(wav[None])[0].numpy()  # TorToiSe's own convolutional STFT
    assert ours.shape == stock.shape and np.abs(ours - stock).max() < 1e-3
    fb = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=100, fmin=0, fmax=12000)  # slaney scale and norm
    ref = np.log(np.maximum(fb @ _stft_mag(wav.numpy().astype(np.float64), 1024, 256), 1e-5))
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 2e-3


def test_token_rate():
    frames = num_frames(DVAE_SR * 100)
    assert frames == 8614
    assert abs(num_tokens(frames) / 100 - 21.53) < 0.02  # ~21.5 tokens/s
    assert num_tokens(4) == 1 and num_tokens(5) == 2
