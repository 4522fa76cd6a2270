"""`tortuner speak`: TorToiSe's stock inference pipeline with a (fine-tuned) GPT, no model hub involved.

GPT candidates (kv cache, nucleus sampling, repetition penalty; stop-token fix-up) -> CLVP picks the best ->
teacher-forced GPT latents of it -> a renderer (`synth.render`): the diffusion decoder (SpacedDiffusion,
conditioning-free guidance) + UnivNet, as `tortoise.api.TextToSpeech.tts` does, or, in a lab world, which has no
diffusion decoder/vocoder, its `renderer.pth` + Griffin-Lim. Every model is loaded strictly from a models folder,
so tiny test models and lab worlds run through the same code.

The diffusion conditioning follows tortoise.api exactly, as users compare against stock TorToiSe: each reference clip
is resampled 22.05 -> 24 kHz with `torchaudio.functional.resample` (not the soxr resampler tortuner uses elsewhere)
and cut or padded to 102400 samples (`TortoiseRenderer`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tortuner.audio.io import AudioError, find_audio, load_audio, save_wav
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel
from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.models.checkpoints import cond_samples_of, load_tortoise_model, model_configs
from tortuner.models.gpt_data import crop_or_pad, encode_text
from tortuner.models.tortoise import NUM_CODES, SILENCE_TOKEN, GPTConfig
from tortuner.synth.render import make_conditioning, make_renderer
from tortuner.synth.sample import inference_speech, prepare_for_sampling

# TorToiSe's presets (tortoise/api.py `tts_with_preset`): (autoregressive samples, diffusion steps, cond-free).
PRESETS = {"ultra_fast": (16, 30, False), "fast": (96, 80, True), "standard": (256, 200, True),
           "high_quality": (256, 400, True)}
GPT_COND_SAMPLES = 132300        # tortoise.api format_conditioning: 6 s at 22.05 kHz
CALM_RUN = 8                     # latents are cut after this many consecutive silence codes


@dataclass
class SpeakConfig:
    models: str = arg(
        "", "TorToiSe models folder (autoregressive.pth, ...; optional models.json) or a lab world's public/models")
    voice: str = arg("", "folder (or file) of reference clips of the voice")
    text: str = arg("", "what to say")
    out: str = arg("out.wav", "output wav (24 kHz)")
    gpt: str | None = arg(
        None, "GPT weights to speak with instead of MODELS/autoregressive.pth (e.g. `tortuner export` output)")
    preset: str = arg(
        "fast", "TorToiSe's speed/quality presets", choices=("ultra_fast", "fast", "standard", "high_quality"))
    num_samples: int | None = arg(None, "GPT candidates ranked by CLVP (default: the preset's)")
    diffusion_iterations: int | None = arg(None, "diffusion steps (default: the preset's)")
    cond_free: bool | None = arg(None, "conditioning-free diffusion guidance (default: the preset's)")
    cond_free_k: float = arg(2.0, "conditioning-free guidance strength")
    autoregressive_batch_size: int = arg(16, "GPT candidates sampled per call")
    temperature: float = arg(0.8, "GPT sampling temperature")
    top_p: float = arg(0.8, "GPT nucleus-sampling mass")
    repetition_penalty: float = arg(2.0, "GPT sampling repetition penalty")
    length_penalty: float = arg(1.0, "GPT sampling length penalty")
    max_mel_tokens: int = arg(500, "longest generation in codes")
    diffusion_temperature: float = arg(1.0, "scale of the diffusion decoder's initial noise")
    max_voice_clips: int = arg(16, "reference clips used from --voice")
    seed: int | None = arg(0, "torch seed (none: unseeded)")
    device: str = arg("auto", "auto (CUDA when available) | cpu | cuda")


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
    """Up to `limit` reference clips at 22.05 kHz (unreadable ones are skipped with a note)."""
    clips = []
    for f in find_audio([voice])[:limit]:
        try:
            clips.append(load_audio(f, DVAE_SR))
        except AudioError as e:
            print(f"skipped: {e}", file=sys.stderr)
    if not clips:
        raise TortunerError(f"{voice}: no readable reference clips")
    return clips


def prompt_tokens(text: str, gcfg: GPTConfig) -> torch.Tensor:
    """(1, Lt + 1) BPE tokens with one trailing 0, as tortoise.api prompts its GPT."""
    tokens = encode_text(text)
    if tokens.numel() + 1 > gcfg.max_text_tokens:
        raise TortunerError(f"text is {tokens.numel()} tokens; the GPT takes {gcfg.max_text_tokens - 1}: split it")
    return F.pad(tokens[None], (0, 1))


def sample_candidates(gpt: nn.Module, clvp: nn.Module, voice: torch.Tensor, text: torch.Tensor, n: int,
                      gcfg: GPTConfig, cfg: SpeakConfig, silence: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` GPT code sequences (n, max_len), stop-fixed, and their CLVP scores (n,), sampled and scored in batches
    of --autoregressive-batch-size as tortoise.api does. `voice` is the GPT's (1, model_dim) conditioning latent."""
    max_len = min(cfg.max_mel_tokens, gcfg.max_mel_tokens - 1)
    candidates, scores = [], []
    for start in range(0, n, cfg.autoregressive_batch_size):
        b = min(cfg.autoregressive_batch_size, n - start)
        codes = inference_speech(gpt, voice, text, do_sample=True, top_p=cfg.top_p, temperature=cfg.temperature,
                                 num_return_sequences=b, length_penalty=cfg.length_penalty,
                                 repetition_penalty=cfg.repetition_penalty, max_generate_length=max_len)
        codes = F.pad(codes, (0, max_len - codes.shape[1]), value=gcfg.stop_mel_token)
        codes = torch.stack([fix_codes(c, gcfg.stop_mel_token, gcfg.num_codes, silence) for c in codes])
        scores.append(clvp(text.repeat(b, 1), codes, return_loss=False))
        candidates.append(codes)
    return torch.cat(candidates), torch.cat(scores)


def speech_latents(gpt: nn.Module, voice: torch.Tensor, text: torch.Tensor, codes: torch.Tensor, gcfg: GPTConfig,
                   silence: int) -> torch.Tensor:
    """(N, model_dim) teacher-forced GPT latents of one candidate (N,), cut after a long silence: what TorToiSe's
    diffusion decoder renders."""
    codes = codes[None]
    latents = gpt(voice, text, torch.tensor([text.shape[-1]], device=text.device), codes,
                  torch.tensor([codes.shape[-1] * gcfg.mel_length_compression], device=text.device),
                  return_latent=True, clip_inputs=False)
    return trim_latents(codes[0], latents[0], silence)


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


@torch.no_grad()
def speak(cfg: SpeakConfig) -> dict[str, Any]:
    """Say `cfg.text` in the voice of `cfg.voice`; writes `cfg.out` (24 kHz) and returns what was made."""
    if cfg.preset not in PRESETS:
        raise TortunerError(f"--preset {cfg.preset!r}: one of {', '.join(PRESETS)}")
    n_samples, steps, cond_free = PRESETS[cfg.preset]
    device = _device(cfg.device)
    if cfg.seed is not None:
        torch.manual_seed(cfg.seed)  # (model building below draws from it too: the order of what follows matters)
    models = Path(cfg.models)
    configs = model_configs(models)
    gcfg = configs["gpt"]
    silence = int(configs.get("lab", {}).get("silence_token", SILENCE_TOKEN if gcfg.num_codes > SILENCE_TOKEN else 0))
    gpt = prepare_for_sampling(load_tortoise_model(models, "gpt", cfg.gpt).to(device))
    clvp = load_tortoise_model(models, "clvp").to(device)
    clips = load_voice(cfg.voice, cfg.max_voice_clips)
    mel = DvaeMel().to(device)
    voice = gpt.get_conditioning(mel(torch.stack([crop_or_pad(c, GPT_COND_SAMPLES) for c in clips]).to(device))[None])
    text = prompt_tokens(cfg.text, gcfg).to(device)

    # GPT candidates -> CLVP's pick -> its latents -> audio. The renderer is loaded only now because building it
    # draws from the seeded RNG: loaded earlier, it would change the samples.
    candidates, scores = sample_candidates(gpt, clvp, voice, text, cfg.num_samples or n_samples, gcfg, cfg, silence)
    latents = speech_latents(gpt, voice, text, candidates[scores.argmax()], gcfg, silence)
    renderer = make_renderer(models, device, diffusion_steps=cfg.diffusion_iterations or steps,
                             cond_free=cond_free if cfg.cond_free is None else cfg.cond_free,
                             cond_free_k=cfg.cond_free_k, temperature=cfg.diffusion_temperature)
    wav = renderer.render(make_conditioning(clips, cond_samples_of(configs), mel), latents)

    save_wav(cfg.out, wav.cpu(), UNIVNET_SR)
    return {"out": cfg.out, "sample_rate": UNIVNET_SR, "samples": wav.numel(), "seconds": wav.numel() / UNIVNET_SR,
            "codes": int(latents.shape[0]), "candidates": int(candidates.shape[0]), "clvp_best": float(scores.max())}
