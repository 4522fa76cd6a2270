"""The two mel spectrograms of TorToiSe.

* `DvaeMel`: the 22.05 kHz, 80-band log mel that the dVAE, the GPT's conditioning encoder and CLVP's speech side
  consume: `log(clamp(mel_power, 1e-5)) / mel_norms`, torchaudio `MelSpectrogram` (n_fft 1024, hop 256, f_max 8 kHz,
  slaney-normalised filters on the HTK scale). One mel frame = 256 samples; one dVAE token = 4 frames = 1024 samples.
* `UnivNetMel`: the 24 kHz, 100-band log mel of the diffusion decoder and the UnivNet vocoder (the filterbank and
  log compression of TorToiSe's own `TacotronSTFT`, reused from the `tortoise` package, over `torch.stft`).
"""

from __future__ import annotations

import importlib.resources

import torch
import torchaudio
from torch import nn

DVAE_SR = 22050
HOP = 256
N_MELS = 80
FRAMES_PER_TOKEN = 4
SAMPLES_PER_TOKEN = HOP * FRAMES_PER_TOKEN  # UnifiedVoice's mel_length_compression
UNIVNET_SR = 24000
UNIVNET_N_MELS = 100


def tortoise_mel_norms() -> torch.Tensor:
    """The 80 per-band divisors TorToiSe ships as `tortoise/data/mel_norms.pth` (DLAS: `clips_mel_norms.pth`)."""
    with importlib.resources.as_file(importlib.resources.files("tortoise") / "data" / "mel_norms.pth") as p:
        return torch.load(p, map_location="cpu", weights_only=True).float()


class DvaeMel(nn.Module):
    """(B, samples) or (samples,) float audio at 22.05 kHz -> (B, 80, ceil((samples+1)/256)) normalised log mel."""

    def __init__(self, mel_norms: torch.Tensor | None = None):
        super().__init__()
        self.spec = torchaudio.transforms.MelSpectrogram(
            sample_rate=DVAE_SR, n_fft=1024, win_length=1024, hop_length=HOP, power=2, f_min=0, f_max=8000,
            n_mels=N_MELS, norm="slaney", mel_scale="htk",
        )
        norms = tortoise_mel_norms() if mel_norms is None else mel_norms.float()
        self.register_buffer("mel_norms", norms, persistent=False)

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        squeeze = wav.dim() == 1
        if squeeze:
            wav = wav[None]
        if wav.dim() == 3:
            wav = wav.squeeze(1)
        mel = torch.log(torch.clamp(self.spec(wav.float()), min=1e-5)) / self.mel_norms[:, None]
        return mel[0] if squeeze else mel


def num_frames(samples: int) -> int:
    """Mel frames produced for `samples` samples (center=True STFT)."""
    return samples // HOP + 1


def num_tokens(frames: int) -> int:
    """dVAE tokens produced for a mel of `frames` frames (two stride-2 convolutions: ceil(T/4))."""
    return -(-frames // FRAMES_PER_TOKEN)


class UnivNetMel(nn.Module):
    """(B, samples) float audio at 24 kHz -> (B, 100, frames) log mel, as TorToiSe's `wav_to_univnet_mel`.

    TorToiSe's `TacotronSTFT` filterbank and log compression, with its STFT (a 1024-tap convolution per frequency)
    replaced by `torch.stft` with the same periodic Hann window and reflect padding: the same mel to ~1e-3 in log
    (the test compares), 3-5x faster (a third of the lab renderer stage went to this mel).
    """

    def __init__(self):
        super().__init__()
        from tortoise.utils.audio import TacotronSTFT

        self.stft = TacotronSTFT(1024, 256, 1024, UNIVNET_N_MELS, UNIVNET_SR, 0, 12000)
        self.register_buffer("window", torch.hann_window(1024, periodic=True), persistent=False)

    @torch.no_grad()
    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.dim() == 1:
            wav = wav[None]
        spec = torch.stft(wav.float().clamp(-1, 1), 1024, 256, 1024, self.window, center=True, pad_mode="reflect",
                          return_complex=True).abs()
        return self.stft.spectral_normalize(torch.matmul(self.stft.mel_basis, spec))
