"""`tortuner speak`: TorToiSe's stock inference pipeline with a (fine-tuned) GPT, no model hub involved.

GPT sampling (kv cache, nucleus sampling, repetition penalty) -> stop-token fix-up -> CLVP ranking -> teacher-forced
GPT latents of the best candidates -> diffusion decoder (SpacedDiffusion, conditioning-free guidance) -> UnivNet,
as `tortoise.api.TextToSpeech.tts` does, but loading every model strictly from a models folder (so tiny test models
and lab worlds run through the same code). A lab world has no diffusion decoder/vocoder; its `renderer.pth` plus
Griffin-Lim stand in for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tortuner.audio.io import AudioError, find_audio, load_audio, save_wav
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.models.checkpoints import MODEL_FILES, cond_samples_of, load_tortoise_model, model_configs
from tortuner.models.gpt_data import encode_text
from tortuner.models.tortoise import NUM_CODES, SILENCE_TOKEN

# TorToiSe's presets (tortoise/api.py `tts_with_preset`): (autoregressive samples, diffusion steps, cond-free).
PRESETS = {"ultra_fast": (16, 30, False), "fast": (96, 80, True), "standard": (256, 200, True),
           "high_quality": (256, 400, True)}
GPT_COND_SAMPLES = 132300        # tortoise.api format_conditioning: 6 s at 22.05 kHz
DIFFUSION_COND_SAMPLES = 102400  # tortoise.api get_conditioning_latents: at 24 kHz
CALM_RUN = 8                     # latents are cut after this many consecutive silence codes


@dataclass
class SpeakConfig:
    models: str = arg(
        "", "TorToiSe models folder (autoregressive.pth, ...; optional models.json) or a lab world's public/models")
    voice: str = arg("", "folder (or file) of reference clips of the voice")
    text: str = arg("", "what to say")
    out: str = arg("out.wav", "output wav (24 kHz)")
    gpt: str | None = arg(None, "GPT weights to speak with instead of MODELS/autoregressive.pth (e.g. `tortuner export` output)")
    preset: str = arg(
        "fast", "TorToiSe's speed/quality presets", choices=("ultra_fast", "fast", "standard", "high_quality"))
    num_samples: int | None = arg(None, "GPT candidates ranked by CLVP (default: the preset's)")
    diffusion_iterations: int | None = arg(None, "diffusion steps (default: the preset's)")
    cond_free: bool | None = arg(None, "conditioning-free diffusion guidance (default: the preset's)")
    cond_free_k: float = arg(2.0)
    autoregressive_batch_size: int = arg(16, "GPT candidates sampled per call")
    temperature: float = arg(0.8)
    top_p: float = arg(0.8)
    repetition_penalty: float = arg(2.0)
    length_penalty: float = arg(1.0)
    max_mel_tokens: int = arg(500, "longest generation in codes")
    diffusion_temperature: float = arg(1.0)
    max_voice_clips: int = arg(16, "reference clips used from --voice")
    seed: int | None = arg(0)
    device: str = arg("auto")


def fix_codes(codes: torch.Tensor, stop: int, num_codes: int, silence: int) -> torch.Tensor:
    """Replace the stop token and everything after it by silence, as `fix_autoregressive_output` does; the
    (45, 45, 248) tail it appends is specific to TorToiSe's 8192-code dVAE, so it is only added for that one."""
    codes = codes.clone()
    at = (codes == stop).nonzero()
    codes[codes >= num_codes] = silence  # a sampled start token would index past CLVP's/diffusion's tables
    if len(at) == 0:
        return codes
    first = int(at.min())
    codes[first:] = silence
    if num_codes == NUM_CODES and codes.shape[0] >= 3:
        codes[-3:] = torch.tensor([45, 45, 248])
    return codes


def trim_latents(codes: torch.Tensor, latents: torch.Tensor, silence: int) -> torch.Tensor:
    """Cut the latents where the codes have been silent for more than CALM_RUN steps (tortoise.api's rule)."""
    run = 0
    for k in range(codes.shape[-1]):
        run = run + 1 if int(codes[k]) == silence else 0
        if run > CALM_RUN:
            return latents[:k]
    return latents


def load_voice(voice: str, limit: int) -> list[torch.Tensor]:
    clips = []
    for f in find_audio([voice])[:limit]:
        try:
            clips.append(load_audio(f, DVAE_SR))
        except AudioError as e:
            print(f"speak: skipping {e}")
    if not clips:
        raise TortunerError(f"{voice}: no readable reference clips")
    return clips


def _pad_or_truncate(wav: torch.Tensor, n: int) -> torch.Tensor:
    return F.pad(wav, (0, n - wav.shape[-1])) if wav.shape[-1] < n else wav[..., :n]


@torch.no_grad()
def speak(cfg: SpeakConfig) -> dict[str, Any]:
    import torchaudio

    if cfg.preset not in PRESETS:
        raise TortunerError(f"--preset {cfg.preset!r}: one of {', '.join(PRESETS)}")
    n_samples, steps, cond_free = PRESETS[cfg.preset]
    n_samples = cfg.num_samples or n_samples
    steps = cfg.diffusion_iterations or steps
    cond_free = cond_free if cfg.cond_free is None else cfg.cond_free
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)
    models = Path(cfg.models)
    configs = model_configs(models)
    gcfg = configs["gpt"]
    silence = int(configs.get("lab", {}).get("silence_token", SILENCE_TOKEN if gcfg.num_codes > SILENCE_TOKEN else 0))
    gpt = load_tortoise_model(models, "gpt", cfg.gpt).to(device)
    gpt.post_init_gpt2_config(kv_cache=True)
    clvp = load_tortoise_model(models, "clvp").to(device)

    clips = load_voice(cfg.voice, cfg.max_voice_clips)
    mel = DvaeMel().to(device)
    auto_mels = torch.stack([mel(_pad_or_truncate(c, GPT_COND_SAMPLES).to(device)) for c in clips])[None]  # (1,k,80,T)
    auto_latent = gpt.get_conditioning(auto_mels)
    text = encode_text(cfg.text)
    if text.numel() + 1 > gcfg.max_text_tokens:
        raise TortunerError(f"text is {text.numel()} tokens; the GPT takes {gcfg.max_text_tokens - 1}: split it")
    text = F.pad(text[None].to(device), (0, 1))  # as tortoise.api

    max_len = min(cfg.max_mel_tokens, gcfg.max_mel_tokens - 1)
    candidates, scores = [], []
    for start in range(0, n_samples, cfg.autoregressive_batch_size):
        b = min(cfg.autoregressive_batch_size, n_samples - start)
        codes = gpt.inference_speech(auto_latent, text, do_sample=True, top_p=cfg.top_p, temperature=cfg.temperature,
                                     num_return_sequences=b, length_penalty=cfg.length_penalty,
                                     repetition_penalty=cfg.repetition_penalty, max_generate_length=max_len)
        codes = F.pad(codes, (0, max_len - codes.shape[1]), value=gcfg.stop_mel_token)
        codes = torch.stack([fix_codes(c, gcfg.stop_mel_token, gcfg.num_codes, silence) for c in codes])
        scores.append(clvp(text.repeat(b, 1), codes, return_loss=False))
        candidates.append(codes)
    candidates, scores = torch.cat(candidates), torch.cat(scores)
    best = candidates[scores.argmax()][None]
    latents = gpt(auto_latent, text, torch.tensor([text.shape[-1]], device=device), best,
                  torch.tensor([best.shape[-1] * gcfg.mel_length_compression], device=device),
                  return_latent=True, clip_inputs=False)
    latents = trim_latents(best[0], latents[0], silence)[None]

    if (models / MODEL_FILES["diffusion"]).is_file():
        from tortoise.api import do_spectrogram_diffusion, load_discrete_vocoder_diffuser

        diffusion = load_tortoise_model(models, "diffusion").to(device)
        vocoder = load_tortoise_model(models, "vocoder").to(device)
        univnet = UnivNetMel().to(device)
        dconds = torch.stack([univnet(_pad_or_truncate(torchaudio.functional.resample(c, DVAE_SR, UNIVNET_SR),
                                                       DIFFUSION_COND_SAMPLES).to(device)[None])[0] for c in clips])[None]
        diffuser = load_discrete_vocoder_diffuser(desired_diffusion_steps=steps, cond_free=cond_free,
                                                  cond_free_k=cfg.cond_free_k)
        mel_out = do_spectrogram_diffusion(diffusion, diffuser, latents, diffusion.get_conditioning(dconds),
                                           temperature=cfg.diffusion_temperature, verbose=False)
        wav = vocoder.inference(mel_out).flatten()
    elif (models / "renderer.pth").is_file():  # a lab world: the renderer + Griffin-Lim stand in
        from tortuner.audio.griffinlim import univnet_mel_to_wav
        from tortuner.models.checkpoints import load_renderer

        renderer = load_renderer(models).to(device)
        cond = cond_samples_of(configs)
        rconds = torch.stack([mel(_pad_or_truncate(c, cond).to(device)) for c in clips])[None]
        wav = univnet_mel_to_wav(renderer(latents, rconds)).flatten()
    else:
        raise TortunerError(f"{models}: no {MODEL_FILES['diffusion']} (nor a lab renderer.pth)")
    save_wav(cfg.out, wav.cpu(), UNIVNET_SR)
    return {"out": cfg.out, "sample_rate": UNIVNET_SR, "samples": wav.numel(), "seconds": wav.numel() / UNIVNET_SR,
            "codes": int(latents.shape[1]), "candidates": int(candidates.shape[0]),
            "clvp_best": float(scores.max())}
