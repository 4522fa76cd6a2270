"""Codes -> audio -> the dVAE mel a synthetic pair stores.

Two renderers, one contract (`render(cond, latents) -> 24 kHz waveform`, latents from `sample.teacher_forced`):
* `TortoiseRenderer`: the stock diffusion decoder with TorToiSe's SpacedDiffusion sampler and conditioning-free
  guidance, then the UnivNet vocoder (real TorToiSe, or tiny random-weight stock models in tests);
* `LabRenderer`: the lab world's renderer + Griffin-Lim.
Both are followed by the same 24 kHz -> 22.05 kHz -> DvaeMel path (`to_dvae_mel`), as real TorToiSe output is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.audio.io import resample
from tortuner.audio.mel import DVAE_SR, FRAMES_PER_TOKEN, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.models.gpt_data import crop_or_pad

DIFFUSION_COND_SAMPLES = 102400  # tortoise.api pads/cuts each 24 kHz conditioning clip to this


@dataclass
class Conditioning:
    """Conditioning clips of one voice: 22.05 kHz waveforms and the GPT's (k, 80, T) mels of them."""

    wavs: list[torch.Tensor]
    mels: torch.Tensor


def make_conditioning(wavs: list[torch.Tensor], cond_samples: int, mel: DvaeMel) -> Conditioning:
    return Conditioning(wavs, mel(torch.stack([crop_or_pad(w, cond_samples) for w in wavs])))


class LabRenderer:
    def __init__(self, renderer: nn.Module, griffin_lim_iters: int = 32):
        self.renderer, self.iters = renderer.eval(), griffin_lim_iters

    @torch.no_grad()
    def render(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor:
        from tortuner.audio.griffinlim import univnet_mel_to_wav

        device = next(self.renderer.parameters()).device
        mel = self.renderer(latents[None].to(device), cond.mels[None].to(device))
        return univnet_mel_to_wav(mel[0], n_iter=self.iters)


class TortoiseRenderer:
    """Diffusion decoder + vocoder, sampled as tortoise.api's `tts()` does (steps and guidance configurable)."""

    def __init__(self, diffusion: nn.Module, vocoder: nn.Module, steps: int = 50,
                 cond_free: bool = True, cond_free_k: float = 2.0, temperature: float = 1.0):
        from tortoise.utils.diffusion import SpacedDiffusion, get_named_beta_schedule, space_timesteps

        self.diffusion, self.vocoder = diffusion.eval(), vocoder
        vocoder.eval()  # (weight norm already removed by the loader when it was; plain eval keeps it either way)
        self.temperature = temperature
        self.diffuser = SpacedDiffusion(use_timesteps=space_timesteps(4000, [steps]), model_mean_type="epsilon",
                                        model_var_type="learned_range", loss_type="mse",
                                        betas=get_named_beta_schedule("linear", 4000), conditioning_free=cond_free,
                                        conditioning_free_k=cond_free_k)
        self.umel = UnivNetMel()

    @torch.no_grad()
    def render(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor:
        from tortoise.utils.audio import denormalize_tacotron_mel

        device = next(self.diffusion.parameters()).device
        conds = []
        for w in cond.wavs:
            w24 = torch.from_numpy(resample(w.numpy(), DVAE_SR, UNIVNET_SR))
            conds.append(self.umel(crop_or_pad(w24, DIFFUSION_COND_SAMPLES)[None])[0])
        cond_latent = self.diffusion.get_conditioning(torch.stack(conds)[None].to(device))
        lat = latents[None].to(device)
        frames = lat.shape[1] * FRAMES_PER_TOKEN * UNIVNET_SR // DVAE_SR
        emb = self.diffusion.timestep_independent(lat, cond_latent, frames, False)
        noise = torch.randn(1, 100, frames, device=device) * self.temperature
        mel = self.diffuser.p_sample_loop(self.diffusion, noise.shape, noise=noise,
                                          model_kwargs={"precomputed_aligned_embeddings": emb}, progress=False)
        mel = denormalize_tacotron_mel(mel)[:, :, :frames]
        return self.vocoder.inference(mel)[0, 0].cpu()


def to_dvae_mel(wav24: torch.Tensor, n_codes: int, mel: DvaeMel) -> torch.Tensor:
    """24 kHz render -> 22.05 kHz -> dVAE mel cut/padded to exactly 4 frames per code."""
    wav = torch.from_numpy(resample(wav24.float().numpy(), UNIVNET_SR, DVAE_SR))
    m = mel(wav[None])[0]
    frames = n_codes * FRAMES_PER_TOKEN
    if m.shape[1] < frames:
        m = F.pad(m[None], (0, frames - m.shape[1]), mode="replicate")[0]
    return m[:, :frames]
