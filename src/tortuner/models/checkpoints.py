"""Reading and writing model files: DL-Art-School dVAEs and TorToiSe's released checkpoints.

A *models directory* holds TorToiSe's files under their released names (`autoregressive.pth`, `clvp2.pth`,
`diffusion_decoder.pth`, `vocoder.pth`). Optionally a `models.json` beside them overrides the constructor
arguments (`{"gpt": {...}, "clvp": {...}, "diffusion": {...}, "vocoder": {...}}`); the lab's worlds use it for
their small models, so real TorToiSe and a lab world load through the same code. Nothing is ever downloaded.
"""

from __future__ import annotations

import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from tortuner.errors import TortunerError
from tortuner.files import read_json, torch_load, torch_save
from tortuner.models.dvae import DiscreteVAE, config_from_state_dict
from tortuner.models.renderer import Renderer, RendererConfig
from tortuner.models.tortoise import (
    CLVPConfig,
    DiffusionConfig,
    GPTConfig,
    VocoderConfig,
    build_clvp,
    build_diffusion,
    build_gpt,
    build_vocoder,
)

WHERE_TO_GET = ("TorToiSe's released weights, e.g. the `.models/` folder of the jbetker/tortoise-tts-v2 repository "
                "on the HuggingFace hub; download them yourself and pass the folder")
DVAE_HINT = ("the original TorToiSe dVAE is `.models/dvae.pth` of jbetker/tortoise-tts-v2 (revision 3704aea6...); "
             "or recover one with `tortuner recover`")
MODEL_FILES = {"gpt": "autoregressive.pth", "clvp": "clvp2.pth", "diffusion": "diffusion_decoder.pth",
               "vocoder": "vocoder.pth"}
CONFIG_TYPES = {"gpt": GPTConfig, "clvp": CLVPConfig, "diffusion": DiffusionConfig, "vocoder": VocoderConfig}
BUILDERS = {"gpt": build_gpt, "clvp": build_clvp, "diffusion": build_diffusion, "vocoder": build_vocoder}
# Buffers of old transformers versions present in the released autoregressive.pth; nothing else may be dropped.
_STALE_GPT_KEYS = re.compile(r"^gpt\.h\.\d+\.attn\.(bias|masked_bias)$")
_IGNORED_DVAE_KEYS = re.compile(r"^discrete_loss\.")  # coqui's copy of the dVAE carries these

C = TypeVar("C")


def _rng_untouched():
    """Build a model whose random initial weights a state dict replaces, without drawing from the global RNG.

    A loader that drew from it made a job's random stream depend on what it had loaded before: a `lab build`
    resumed at the renderer stage loaded the teacher (an init) that the uninterrupted run had cached, and trained
    another renderer (`benchmarks/chaos.py`)."""
    return torch.random.fork_rng(devices=[])


def _strict_load(model: nn.Module, sd: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    wrong = sorted(k for k in set(own) & set(sd) if tuple(own[k].shape) != tuple(sd[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {tuple(sd[k].shape)} vs model "
                         f"{tuple(own[k].shape)})")
        raise TortunerError(f"{path}: does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


# ---------------------------------------------------------------------------------------------------- dVAE
def load_dvae(path: str | Path) -> DiscreteVAE:
    """Load a DL-Art-School-layout dVAE state dict (TorToiSe's `dvae.pth` or a tortuner one), any size."""
    path = Path(path)
    sd = torch_load(path, "dVAE", DVAE_HINT)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "codebook.embed" not in sd or "encoder.0.0.weight" not in sd:
        raise TortunerError(f"{path}: not a dVAE state dict (no codebook.embed / encoder.0.0.weight)")
    sd = {k: v for k, v in sd.items() if not _IGNORED_DVAE_KEYS.match(k)}
    try:
        with _rng_untouched():
            model = DiscreteVAE(config_from_state_dict(sd))
    except (KeyError, IndexError, AttributeError, ValueError, RuntimeError) as e:
        shape = tuple(getattr(sd.get("encoder.0.0.weight"), "shape", ()))
        why = f"encoder.0.0.weight has shape {shape}, not (hidden, channels, kernel)" if len(shape) != 3 else str(e)
        raise TortunerError(f"{path}: not a dVAE state dict ({why})") from None
    _strict_load(model, {k: v.float() for k, v in sd.items()}, path)
    return model.eval()


def save_dvae(model: DiscreteVAE, path: str | Path) -> None:
    """Save as DL-Art-School does: a plain fp32 state dict, so any tool that reads `dvae.pth` reads ours."""
    torch_save({k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}, path)


# ----------------------------------------------------------------------------------------- TorToiSe models
def _config(cls: type[C], overrides: dict[str, Any] | None) -> C:
    overrides = overrides or {}
    known = {f.name for f in fields(cls)}
    unknown = set(overrides) - known
    if unknown:
        raise TortunerError(f"models.json: unknown {cls.__name__} fields {sorted(unknown)}")
    return cls(**overrides)


def model_configs(models_dir: str | Path) -> dict[str, Any]:
    """The configs for a models directory: TorToiSe's defaults, overridden by `models.json` when present."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise TortunerError(f"{models_dir}: models directory not found (expected {WHERE_TO_GET})")
    meta = read_json(models_dir / "models.json") if (models_dir / "models.json").is_file() else {}
    return {name: _config(cls, meta.get(name)) for name, cls in CONFIG_TYPES.items()} | {
        k: v for k, v in meta.items() if k not in CONFIG_TYPES
    }


def cond_samples_of(configs: dict[str, Any]) -> int:
    """The GPT's conditioning window in 22.05 kHz samples: DL-Art-School's 44000 for TorToiSe, a lab world's own."""
    from tortuner.models.gpt_data import COND_SAMPLES

    return int(configs.get("lab", {}).get("cond_samples", COND_SAMPLES))


def read_model_state(path: Path, name: str) -> dict[str, torch.Tensor]:
    sd = torch_load(path, f"TorToiSe {name} weights", f"get it from {WHERE_TO_GET}")
    if name == "vocoder" and isinstance(sd, dict) and "model_g" in sd:
        sd = sd["model_g"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise TortunerError(f"{path}: not a state dict of tensors")
    if name == "gpt":
        sd = {k: v for k, v in sd.items() if not _STALE_GPT_KEYS.match(k)}
    return sd


def load_tortoise_model(models_dir: str | Path, name: str, path: str | Path | None = None) -> nn.Module:
    """Build the stock class for `name` (gpt, clvp, diffusion, vocoder) and load its weights strictly.

    `path` overrides the file (e.g. a fine-tuned `autoregressive.pth`); the config still comes from `models_dir`.
    """
    if name not in MODEL_FILES:
        raise ValueError(f"unknown model {name!r}; one of {sorted(MODEL_FILES)}")
    cfg = model_configs(models_dir)[name]
    path = Path(path) if path is not None else Path(models_dir) / MODEL_FILES[name]
    sd = read_model_state(path, name)
    with _rng_untouched():
        model = BUILDERS[name](cfg)
    _strict_load(model, sd, path)
    if name == "vocoder":
        model.eval(inference=True)  # UnivNet's eval folds weight norm away (returns None), as tortoise.api does
    else:
        model.eval()
    return model


def save_model_config(models_dir: str | Path, configs: dict[str, Any]) -> None:
    """Write `models.json` (dataclass configs or plain dicts) for a models directory of non-default models."""
    from tortuner.files import write_json

    write_json(Path(models_dir) / "models.json",
               {k: asdict(v) if hasattr(v, "__dataclass_fields__") else v for k, v in configs.items()})


def load_renderer(models_dir: str | Path) -> Renderer:
    """The lab renderer of a world's `public/models` (config in models.json["renderer"])."""
    models_dir = Path(models_dir)
    cfg = model_configs(models_dir).get("renderer")
    if cfg is None:
        raise TortunerError(f"{models_dir / 'models.json'}: no 'renderer' section (not a lab world's models folder)")
    with _rng_untouched():
        model = Renderer(RendererConfig(**cfg))
    sd = torch_load(models_dir / "renderer.pth", "lab renderer")
    model.load_state_dict(sd, strict=True)
    return model.eval()
