"""GPT latents -> 24 kHz audio (and, for synthetic pairs, -> the dVAE mel a pair stores).

Two renderers, one contract (`render(cond, latents) -> 24 kHz waveform`, latents (N, model_dim) from
`sample.teacher_forced` or `speak`):
* `TortoiseRenderer`: the stock diffusion decoder with TorToiSe's SpacedDiffusion sampler and conditioning-free
  guidance, then the UnivNet vocoder (real TorToiSe, or tiny random-weight stock models in tests);
* `LabRenderer`: the lab world's renderer + Griffin-Lim.
`tortuner synth` and `tortuner speak` both render through them (`make_renderer`). Synthetic pairs then take the
same 24 kHz -> 22.05 kHz -> DvaeMel path (`to_dvae_mel`) as real TorToiSe output does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.audio.io import resample
from tortuner.audio.mel import DVAE_SR, FRAMES_PER_TOKEN, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.errors import TortunerError
from tortuner.models.checkpoints import MODEL_FILES, load_renderer, load_tortoise_model
from tortuner.models.gpt_data import crop_or_pad

DIFFUSION_COND_SAMPLES = 102400  # tortoise.api pads/cuts each 24 kHz conditioning clip to this


@dataclass
class Conditioning:
    """Conditioning clips of one voice: 22.05 kHz waveforms (what the diffusion decoder is conditioned on) and
    their (k, 80, T) dVAE mels (the lab renderer's conditioning)."""

    wavs: list[torch.Tensor]
    mels: torch.Tensor


def make_conditioning(wavs: list[torch.Tensor], cond_samples: int, mel: DvaeMel) -> Conditioning:
    """The mels of the first `cond_samples` samples of each clip (zero-padded), computed where `mel` lives."""
    return Conditioning(wavs, mel(torch.stack([crop_or_pad(w, cond_samples) for w in wavs]).to(mel.mel_norms.device)))


class LabRenderer:
    """The lab world's renderer (latents + conditioning mels -> univnet mel), then Griffin-Lim."""

    def __init__(self, renderer: nn.Module, griffin_lim_iters: int = 32):
        self.renderer, self.iters = renderer.eval(), griffin_lim_iters

    @torch.no_grad()
    def render(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor:
        from tortuner.audio.griffinlim import univnet_mel_to_wav

        device = next(self.renderer.parameters()).device
        mel = self.renderer(latents[None].to(device), cond.mels[None].to(device))
        return univnet_mel_to_wav(mel[0], n_iter=self.iters)


class TortoiseRenderer:
    """Diffusion decoder + vocoder, sampled as tortoise.api's `tts()` does (steps and guidance configurable).

    The diffusion conditioning is computed as tortoise.api's `get_conditioning_latents` does it, the reference users
    compare against: each 22.05 kHz clip resampled to 24 kHz by `torchaudio.functional.resample`, cut or padded to
    `DIFFUSION_COND_SAMPLES`, univnet mel on the decoder's device.
    """

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
        self.umel = UnivNetMel().to(next(diffusion.parameters()).device)

    @torch.no_grad()
    def render(self, cond: Conditioning, latents: torch.Tensor) -> torch.Tensor:
        import torchaudio
        from tortoise.utils.audio import denormalize_tacotron_mel

        device = next(self.diffusion.parameters()).device
        conds = []
        for w in cond.wavs:
            w24 = torchaudio.functional.resample(w, DVAE_SR, UNIVNET_SR)
            conds.append(self.umel(crop_or_pad(w24, DIFFUSION_COND_SAMPLES).to(device)[None])[0])
        cond_latent = self.diffusion.get_conditioning(torch.stack(conds)[None])
        lat = latents[None].to(device)
        frames = lat.shape[1] * FRAMES_PER_TOKEN * UNIVNET_SR // DVAE_SR
        emb = self.diffusion.timestep_independent(lat, cond_latent, frames, False)
        noise = torch.randn(1, 100, frames, device=device) * self.temperature
        mel = self.diffuser.p_sample_loop(self.diffusion, noise.shape, noise=noise,
                                          model_kwargs={"precomputed_aligned_embeddings": emb}, progress=False)
        mel = denormalize_tacotron_mel(mel)[:, :, :frames]
        return self.vocoder.inference(mel)[0, 0].cpu()


def make_renderer(models: str | Path, device: torch.device | str, kind: str = "auto", *, diffusion_steps: int = 50,
                  cond_free: bool = True, cond_free_k: float = 2.0, temperature: float = 1.0,
                  griffin_lim_iters: int = 32) -> TortoiseRenderer | LabRenderer:
    """The renderer of a models folder. `auto`: the stock diffusion decoder + vocoder when the folder has them
    (TorToiSe's models), else the lab renderer (a lab world's `public/models`). Loading builds models, which draws
    from the global RNG: callers that seed load it where they always did."""
    models = Path(models)
    if kind == "auto":
        if (models / MODEL_FILES["diffusion"]).is_file():
            kind = "tortoise"
        elif (models / "renderer.pth").is_file():
            kind = "lab"
        else:
            raise TortunerError(f"{models}: no {MODEL_FILES['diffusion']} (nor a lab renderer.pth)")
    if kind == "lab":
        return LabRenderer(load_renderer(models).to(device), griffin_lim_iters)
    if kind == "tortoise":
        return TortoiseRenderer(load_tortoise_model(models, "diffusion").to(device),
                                load_tortoise_model(models, "vocoder").to(device), diffusion_steps, cond_free,
                                cond_free_k, temperature)
    raise TortunerError(f"--renderer {kind!r}: one of auto, lab, tortoise")


def to_dvae_mel(wav24: torch.Tensor, n_codes: int, mel: DvaeMel) -> torch.Tensor:
    """24 kHz render -> 22.05 kHz (soxr) -> (80, 4 * n_codes) dVAE mel, cut or edge-padded to 4 frames per code."""
    wav = torch.from_numpy(resample(wav24.float().numpy(), UNIVNET_SR, DVAE_SR))
    m = mel(wav[None])[0]
    frames = n_codes * FRAMES_PER_TOKEN
    if m.shape[1] < frames:
        m = F.pad(m[None], (0, frames - m.shape[1]), mode="replicate")[0]
    return m[:, :frames]
