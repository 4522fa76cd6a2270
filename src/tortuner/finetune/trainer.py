"""The GPT fine-tuning loop: DL-Art-School's recipe, Accelerate for devices, exact resume after a kill.

Exact resume rests on three facts: (1) micro-batch j is a pure function of (seed, j) (`dataset.MicroBatches`), so
the data position is `step * grad_accum`; (2) a checkpoint holds model, optimizer, scheduler and every RNG state of
every process (`checkpoint.py`); (3) checkpoints appear atomically, so a kill at any moment leaves the last complete
one. Validation and sample generation run under a forked RNG so they never shift the training stream.
Multi-GPU/multi-node: run the same command under `accelerate launch`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import read_json
from tortuner.finetune.checkpoint import load_weights, open_run, restore_training_state, save_checkpoint
from tortuner.finetune.dataset import ExampleSource, MicroBatches, fixed_batches
from tortuner.finetune.runlog import RunLog
from tortuner.finetune.validate import generate_samples, validate
from tortuner.models.gpt_data import gpt_losses, total_loss
from tortuner.models.tortoise import GPTConfig
from tortuner.training import lr_factor, param_groups

DLAS_MILESTONES = "500,1000,1400,1800"  # DL-Art-School's GPT fine-tune MultiStepLR milestones (gamma 0.5)


@dataclass
class TrainConfig:
    """Loop knobs; defaults are DL-Art-School's GPT fine-tune recipe sized for one 24 GB GPU."""

    max_steps: int = arg(2000, "optimizer steps to train to")
    batch_size: int = arg(16, "clips per micro-batch per process")
    grad_accum: int = arg(4, "micro-batches per optimizer step")
    lr: float = arg(1e-5, "peak AdamW learning rate (DL-Art-School fine-tune: 1e-5)")
    weight_decay: float = arg(0.01, "AdamW weight decay on weight matrices only")
    beta1: float = arg(0.9, "AdamW beta1")
    beta2: float = arg(0.96, "AdamW beta2 (DL-Art-School: 0.96)")
    warmup_steps: int = arg(0, "linear warmup steps")
    schedule: str = arg("multistep", "learning-rate schedule after warmup", choices=("multistep", "cosine", "constant"))
    milestones: str = arg(DLAS_MILESTONES, "multistep schedule: steps at which the lr is multiplied by --gamma")
    gamma: float = arg(0.5, "multistep schedule: lr factor at each milestone")
    grad_clip: float = arg(4.0, "gradient-norm clip")
    mixed_precision: str = arg(
        "auto",
        "autocast precision (auto = bf16 on GPUs that support it, else fp32)", choices=("auto", "no", "bf16", "fp16"))
    grad_checkpointing: bool = arg(True, "recompute activations in backward (less memory, ~30% slower)")
    freeze: str = arg(
        "", "comma-separated parameter-name prefixes to freeze (e.g. conditioning_encoder,text_embedding)")
    save_every: int = arg(500, "checkpoint every N steps (and at the end)")
    keep_checkpoints: int = arg(2, "checkpoints kept (0 = all)")
    val_every: int = arg(100, "validation loss + sample generation every N steps (0 = only at the end)")
    samples: int = arg(1, "validation texts generated at each validation")
    log_every: int = arg(10, "log a train row (log.jsonl, TensorBoard) every N steps")
    seed: int = arg(0, "seed of the data order, conditioning crops and initial RNG state")
    num_workers: int = arg(2, "DataLoader worker processes")
    device: str = arg("auto", "auto (CUDA when available) | cpu | cuda")
    resume: bool = arg(False, "continue the run in --out exactly where its last checkpoint left it")


# ---------------------------------------------------------------------------------------------- set-up
class GPTWithLoss(nn.Module):
    """One forward call from batch to (text CE, mel CE): what DDP must wrap (conditioning encoder included)."""

    def __init__(self, gpt: nn.Module):
        super().__init__()
        self.gpt = gpt

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gpt_losses(self.gpt, batch)


def freeze(gpt: nn.Module, prefixes: str) -> int:
    """Freeze parameters whose names start with any of the comma-separated prefixes; returns how many."""
    wanted = [p.strip() for p in prefixes.split(",") if p.strip()]
    n = 0
    for name, p in gpt.named_parameters():
        if any(name.startswith(w) for w in wanted):
            p.requires_grad_(False)
            n += 1
    if wanted and n == 0:
        raise TortunerError(f"--freeze {prefixes!r} matches no parameter (e.g. conditioning_encoder, text_embedding, "
                            "gpt.h.0, mel_head)")
    return n


def prepare_gpt(gpt: nn.Module, cfg: TrainConfig) -> int:
    """Gradient checkpointing on or off, frozen parameters frozen; returns how many tensors are frozen."""
    if cfg.grad_checkpointing:
        gpt.gpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        gpt.gpt.config.use_cache = False  # a kv cache is useless in teacher-forced training
    else:
        gpt.gpt.gradient_checkpointing_disable()
    return freeze(gpt, cfg.freeze)


def lr_schedule(cfg: TrainConfig) -> Callable[[int], float]:
    """The `LambdaLR` factor of step s: linear warmup, then --schedule (DL-Art-School: multistep, gamma 0.5)."""
    marks = [int(m) for m in cfg.milestones.split(",") if m.strip()]
    return lambda s: lr_factor(s, cfg.schedule, cfg.warmup_steps, cfg.max_steps, marks, cfg.gamma)


def make_accelerator(cfg: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    if os.environ.get("WORLD_SIZE", "1") == "1" and PartialState._shared_state:  # several runs in one process
        AcceleratorState._reset_state(reset_partial_state=True)
    cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    mp = cfg.mixed_precision
    if mp == "auto":
        mp = "bf16" if (not cpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()) else "no"
    if mp not in ("no", "bf16", "fp16"):
        raise TortunerError(f"--mixed-precision {mp!r}: one of auto, no, bf16, fp16")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise TortunerError("--device cuda: no CUDA device here (use --device cpu for tiny models)")
    return Accelerator(cpu=cpu, mixed_precision=mp)


def train_batches(cfg: TrainConfig, source: ExampleSource, stop_token: int, step: int, accelerator) -> Iterator[dict]:
    """This process's micro-batches from the data position of `step` (micro-batch step*grad_accum) to the end.
    The DataLoader has its own generator: it keeps off the global RNG."""
    micro = MicroBatches(source, cfg.batch_size, cfg.seed, stop_token, accelerator.process_index,
                         accelerator.num_processes)
    return iter(torch.utils.data.DataLoader(micro, batch_size=None, num_workers=cfg.num_workers,
                                            sampler=range(step * cfg.grad_accum, cfg.max_steps * cfg.grad_accum),
                                            generator=torch.Generator().manual_seed(cfg.seed)))


# ---------------------------------------------------------------------------------------------- one step
def accumulate_gradients(accelerator, model: nn.Module, batches: Iterator[dict],
                         grad_accum: int) -> tuple[float, float]:
    """Forward and backward `grad_accum` micro-batches (gradients synchronised across processes on the last one
    only); returns their mean (text CE, mel CE)."""
    acc_t = acc_m = 0.0
    for a in range(grad_accum):
        batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
        sync = contextlib.nullcontext() if a == grad_accum - 1 else accelerator.no_sync(model)
        with sync:
            with accelerator.autocast():
                lt, lm = model(**batch)
                loss = total_loss(lt, lm) / grad_accum
            accelerator.backward(loss)
        acc_t += float(lt.detach()) / grad_accum
        acc_m += float(lm.detach()) / grad_accum
    return acc_t, acc_m


# ---------------------------------------------------------------------------------------------- the loop
def train_gpt(cfg: TrainConfig, gpt: nn.Module, gpt_config: GPTConfig, train_src: ExampleSource,
              val_src: ExampleSource | None, run: str | Path, meta: dict | None = None) -> dict[str, Any]:
    """Fine-tune `gpt` (a stock UnifiedVoice, weights loaded) and return the final metrics.

    Writes `run/run.json`, `run/checkpoints/step_N/`, `run/log.jsonl`, `run/samples.jsonl`, `run/loss.png`, `run/tb/`.
    """
    run = Path(run)
    meta = {"config": asdict(cfg), "gpt_config": asdict(gpt_config), **(meta or {})}
    if len(train_src) == 0:
        raise TortunerError("no training clips left (see the skipped-clips summary above)")
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    ck = open_run(run, meta, cfg.resume, main)
    frozen = prepare_gpt(gpt, cfg)
    step = load_weights(gpt, ck) if ck is not None else 0
    model = GPTWithLoss(gpt)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(cfg))
    model, optimizer = accelerator.prepare(model, optimizer)
    if ck is not None:
        restore_training_state(ck, optimizer, scheduler, accelerator.process_index)
    else:
        torch.manual_seed(cfg.seed + accelerator.process_index)
    device = accelerator.device
    unwrapped = accelerator.unwrap_model(model).gpt
    stop = gpt_config.stop_mel_token
    has_val = val_src is not None and len(val_src) > 0 and main
    val_batches = fixed_batches(val_src, cfg.batch_size, stop, cfg.seed) if has_val else []
    log = RunLog(run, step, main)
    if main and step == 0:
        n_train = sum(p.numel() for p in unwrapped.parameters() if p.requires_grad)
        print(f"finetune: {len(train_src)} train / {len(val_src) if val_src else 0} val clips; "
              f"{n_train / 1e6:.1f}M trainable parameters ({frozen} tensors frozen); device {device}, "
              f"{accelerator.num_processes} process(es), precision {accelerator.mixed_precision}")

    def validate_and_sample(at: int) -> dict[str, float]:
        if not val_batches:  # (only the main process has them)
            return {}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics = validate(unwrapped, val_batches, device, accelerator.autocast)
            samples = generate_samples(unwrapped, gpt_config, val_batches[0], cfg.samples, cfg.seed) \
                if cfg.samples else []
        log.validation(at, metrics, samples)
        return metrics

    model.train()
    batches = train_batches(cfg, train_src, stop, step, accelerator)
    pbar = tqdm(total=cfg.max_steps, initial=step, desc="finetune", unit="step", disable=not main, dynamic_ncols=True)
    params = [p for p in model.parameters() if p.requires_grad]
    # a run resumed at (or near) its end reports the losses its checkpoint recorded, not none (benchmarks/chaos.py)
    last: dict[str, float] = read_json(ck / "state.json").get("train", {}) if ck is not None else {}
    t0 = time.time()
    while step < cfg.max_steps:
        loss_text, loss_mel = accumulate_gradients(accelerator, model, batches, cfg.grad_accum)
        grad_norm = accelerator.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last = {"loss_text": loss_text, "loss_mel": loss_mel, "loss": total_loss(loss_text, loss_mel)}
        lr = scheduler.get_last_lr()[0]
        pbar.update(1)
        pbar.set_postfix(loss=f"{last['loss']:.3f}", mel=f"{loss_mel:.3f}", lr=f"{lr:.2e}")
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            log.train(step, {**last, "lr": lr, "grad_norm": float(grad_norm),
                             "sec_per_step": (time.time() - t0) / max(1, step)})
        if cfg.val_every > 0 and step % cfg.val_every == 0:
            validate_and_sample(step)
        if (cfg.save_every > 0 and step % cfg.save_every == 0) or step == cfg.max_steps:
            save_checkpoint(accelerator, run, step, unwrapped, optimizer, scheduler,
                            {"step": step, "micro_batches": step * cfg.grad_accum, "train": last}, cfg.keep_checkpoints)
    pbar.close()
    final = {"step": step, "train": last}
    if main:
        logged = log.validation_at(step)
        final["val"] = logged if logged is not None else validate_and_sample(step)
    log.close()
    accelerator.wait_for_everyone()
    return final
