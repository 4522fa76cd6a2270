"""Phase reconstruction from TorToiSe's 24 kHz univnet mel: the lab's stand-in for the UnivNet vocoder."""

from __future__ import annotations

import torch
import torchaudio

from tortuner.audio.mel import UNIVNET_N_MELS, UNIVNET_SR

_CACHE: dict[str, torch.Tensor] = {}


def _inverse_basis() -> torch.Tensor:
    if "pinv" not in _CACHE:
        # the librosa slaney mel basis TorToiSe's TacotronSTFT uses (fmin 0, fmax 12 kHz), without importing librosa
        fb = torchaudio.functional.melscale_fbanks(513, 0.0, 12000.0, UNIVNET_N_MELS, UNIVNET_SR, norm="slaney",
                                                   mel_scale="slaney").T
        _CACHE["pinv"] = fb.pinverse()  # (513, 100)
    return _CACHE["pinv"]


@torch.no_grad()
def univnet_mel_to_wav(mel: torch.Tensor, n_iter: int = 32) -> torch.Tensor:
    """(B, 100, frames) or (100, frames) log mel -> (B, samples) or (samples,) 24 kHz waveform via Griffin-Lim."""
    squeeze = mel.dim() == 2
    mel = mel[None] if squeeze else mel
    mag = (_inverse_basis().to(mel.device) @ mel.float().exp()).clamp(min=1e-5)
    gl = torchaudio.transforms.GriffinLim(n_fft=1024, hop_length=256, win_length=1024, power=1.0, n_iter=n_iter,
                                          momentum=0.99, rand_init=False).to(mel.device)
    wav = gl(mag)
    wav = wav / wav.abs().amax(-1, keepdim=True).clamp(min=1.0)  # keep the mel's level; only avoid clipping
    return wav[0] if squeeze else wav
