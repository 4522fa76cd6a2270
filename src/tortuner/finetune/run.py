"""`tortuner finetune`: a dataset folder + a dVAE + a models folder -> a fine-tuned GPT run folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortuner.audio.mel import SAMPLES_PER_TOKEN
from tortuner.checkpoints import load_dvae, load_tortoise_model, model_configs
from tortuner.files import TortunerError, write_json
from tortuner.finetune.dataset import (
    MAX_TEXT_TOKENS, MAX_WAV_SAMPLES, ExampleSource, LimitReport, attach_tokens, describe, read_dataset, sha_file,
)
from tortuner.finetune.gpt_data import COND_SAMPLES
from tortuner.finetune.trainer import TrainConfig, train_gpt


@dataclass
class FinetuneConfig(TrainConfig):
    data: str = ""
    dvae: str = ""
    models: str = ""
    out: str = ""
    gpt: str | None = None          # start from these GPT weights instead of MODELS/autoregressive.pth
    cache_dir: str | None = None    # token cache (default DATA/.tortuner-cache)
    num_cond: int = 2               # conditioning clips per example (UnifiedVoice max_conditioning_inputs)
    cond_samples: int = COND_SAMPLES
    max_wav_samples: int = MAX_WAV_SAMPLES
    max_text_tokens: int = MAX_TEXT_TOKENS


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    data = Path(cfg.data)
    gpt_cfg = model_configs(cfg.models)["gpt"]
    dvae_codes = load_dvae(cfg.dvae).cfg.num_tokens
    if dvae_codes != gpt_cfg.num_codes:
        raise TortunerError(f"{cfg.dvae}: dVAE has {dvae_codes} codes but the GPT in {cfg.models} expects "
                            f"{gpt_cfg.num_codes}")
    if cfg.num_cond > gpt_cfg.max_conditioning_inputs:
        raise TortunerError(f"--num-cond {cfg.num_cond} > the GPT's max_conditioning_inputs {gpt_cfg.max_conditioning_inputs}")
    # The GPT's position tables bound what it can see: codes + start/stop, text + start/stop.
    max_samples = min(cfg.max_wav_samples, (gpt_cfg.max_mel_tokens - 2) * SAMPLES_PER_TOKEN)
    max_text = min(cfg.max_text_tokens, gpt_cfg.max_text_tokens)
    train, val = read_dataset(data)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else data / ".tortuner-cache"
    device = "cuda" if cfg.device in ("auto", "cuda") and _cuda() else "cpu"
    report = LimitReport()
    train = attach_tokens(train, cfg.dvae, cache, device, max_samples, max_text, report)
    val = attach_tokens(val, cfg.dvae, cache, device, max_samples, max_text, report)
    out = Path(cfg.out)
    if report.count:
        print(f"finetune: {report.summary()} (limits: {max_samples} samples, {max_text} text tokens); "
              f"list in {out / 'skipped.json'}")
        write_json(out / "skipped.json", report.__dict__)
    if not val:
        print("finetune: no val.txt clips: validation loss and samples are off")
    gpt = load_tortoise_model(cfg.models, "gpt", cfg.gpt)
    meta = {"dvae_sha256": sha_file(Path(cfg.dvae), "sha256"),
            "data": {"dir": str(data.resolve()), "train": describe(train), "val": describe(val)}}
    return train_gpt(cfg, gpt, gpt_cfg, ExampleSource(train, num_cond=cfg.num_cond, cond_samples=cfg.cond_samples),
                     ExampleSource(val, cond_pool=train + val, num_cond=cfg.num_cond, cond_samples=cfg.cond_samples)
                     if val else None, out, meta)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
