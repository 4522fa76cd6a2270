"""`tortuner finetune`: a dataset folder + a dVAE + a models folder -> a fine-tuned GPT run folder."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortuner.audio.mel import SAMPLES_PER_TOKEN
from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import sha_file, write_json
from tortuner.finetune.dataset import (
    MAX_TEXT_TOKENS,
    MAX_WAV_SAMPLES,
    ExampleSource,
    LimitReport,
    attach_tokens,
    describe,
    read_dataset,
)
from tortuner.finetune.guide import Guide
from tortuner.finetune.trainer import TrainConfig, train_gpt
from tortuner.models.checkpoints import MODEL_FILES, load_dvae, load_tortoise_model, model_configs
from tortuner.models.gpt_data import COND_SAMPLES


@dataclass
class FinetuneConfig(TrainConfig):
    data: str = arg(
        "", "dataset folder with train.txt / val.txt (`wavs/NAME.wav|text`) and optional clips.jsonl (speakers)")
    dvae: str = arg("", "dVAE state dict (TorToiSe's dvae.pth or a recovered one)")
    models: str = arg(
        "", "TorToiSe models folder (autoregressive.pth, ...; optional models.json) or a lab world's public/models")
    out: str = arg("", "run folder (checkpoints, log.jsonl, TensorBoard, loss.png)")
    gpt: str | None = arg(None, "GPT weights to start from instead of MODELS/autoregressive.pth")
    cache_dir: str | None = arg(None, "token cache folder (default: DATA/.tortuner-cache)")
    num_cond: int = arg(2, "conditioning clips of the same speaker per example")
    cond_samples: int = arg(COND_SAMPLES, "conditioning window in samples at 22.05 kHz")
    max_wav_samples: int = arg(MAX_WAV_SAMPLES, "skip longer clips (DL-Art-School: 255995)")
    max_text_tokens: int = arg(MAX_TEXT_TOKENS, "skip clips with longer BPE text (DL-Art-School: 200)")
    guided_tokens: bool = arg(False, "read each clip's tokens with the GPT as a prior: a beam search over the dVAE's "
                                     "top-k codes by dVAE + GPT log-probability (for a recovered dVAE; "
                                     "docs/finetune.md)")
    guide_k: int = arg(5, "--guided-tokens: candidate codes per position (the dVAE's top-k)")
    guide_beams: int = arg(4, "--guided-tokens: beam width")
    guide_lambda: float = arg(1.0, "--guided-tokens: weight of the GPT's log-probability against the dVAE's")
    soft_targets: int = arg(0, "train on the dVAE's belief over its top-K codes at each position instead of its one "
                               "code (K, e.g. 20; 0 = off): the inputs stay the codes, the export a stock GPT")
    soft_temperature: float = arg(1.0, "--soft-targets: softmax temperature of the dVAE's code log-probabilities")


def run_finetune(cfg: FinetuneConfig) -> dict[str, Any]:
    data = Path(cfg.data)
    gpt_cfg = model_configs(cfg.models)["gpt"]
    dvae_codes = load_dvae(cfg.dvae).cfg.num_tokens
    if dvae_codes != gpt_cfg.num_codes:
        raise TortunerError(f"{cfg.dvae}: dVAE has {dvae_codes} codes but the GPT in {cfg.models} expects "
                            f"{gpt_cfg.num_codes}")
    if cfg.num_cond > gpt_cfg.max_conditioning_inputs:
        raise TortunerError(f"--num-cond {cfg.num_cond} > the GPT's max_conditioning_inputs "
                            f"{gpt_cfg.max_conditioning_inputs}")
    # The GPT's position tables bound what it can see: codes + start/stop, text + start/stop.
    max_samples = min(cfg.max_wav_samples, (gpt_cfg.max_mel_tokens - 2) * SAMPLES_PER_TOKEN)
    max_text = min(cfg.max_text_tokens, gpt_cfg.max_text_tokens)
    report = LimitReport()
    train, val = read_dataset(data, report)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else data / ".tortuner-cache"
    device = "cuda" if cfg.device in ("auto", "cuda") and _cuda() else "cpu"
    gpt_file = Path(cfg.gpt) if cfg.gpt else Path(cfg.models) / MODEL_FILES["gpt"]
    gpt = load_tortoise_model(cfg.models, "gpt", cfg.gpt)
    guide = Guide(gpt.to(device).eval(), sha_file(gpt_file, "sha256")[:12], cfg.cond_samples, cfg.num_cond,
                  cfg.guide_k, cfg.guide_beams, cfg.guide_lambda) if cfg.guided_tokens else None
    train = attach_tokens(train, cfg.dvae, cache, device, max_samples, max_text, report, guide, cfg.soft_targets)
    val = attach_tokens(val, cfg.dvae, cache, device, max_samples, max_text, report, guide)
    gpt = gpt.cpu()
    out = Path(cfg.out)
    if report.count:
        for msg in report.messages():
            print(f"skipped: {msg}", file=sys.stderr)
        print(f"finetune: {report.summary()} (limits: {max_samples} samples, {max_text} text tokens); "
              f"list in {out / 'skipped.json'}")
        write_json(out / "skipped.json", report.__dict__)
    if not val:
        print("finetune: no val.txt clips: validation loss and samples are off")
    meta = {"dvae_sha256": sha_file(Path(cfg.dvae), "sha256"),
            "data": {"dir": str(data.resolve()), "train": describe(train), "val": describe(val)}}
    soft_t = cfg.soft_temperature if cfg.soft_targets else 0.0
    return train_gpt(cfg, gpt, gpt_cfg, ExampleSource(train, num_cond=cfg.num_cond, cond_samples=cfg.cond_samples,
                                                      soft_temperature=soft_t),
                     ExampleSource(val, cond_pool=train + val, num_cond=cfg.num_cond, cond_samples=cfg.cond_samples)
                     if val else None, out, meta)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
