"""The GPT fine-tuning loop: DL-Art-School's recipe, Accelerate for devices, exact resume after a kill.

Exact resume rests on three facts: (1) micro-batch j is a pure function of (seed, j) (`dataset.MicroBatches`), so
the data position is `step * grad_accum`; (2) a checkpoint holds model, optimizer, scheduler and every RNG state of
every process; (3) checkpoints appear atomically (written into a hidden temp folder, then renamed), so a kill at
any moment leaves the last complete one. Validation and sample generation run under a forked RNG so they never
shift the training stream. Multi-GPU/multi-node: run the same command under `accelerate launch`.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import (
    load_safetensors,
    read_json,
    read_jsonl,
    save_safetensors,
    torch_load,
    write_json,
    write_jsonl,
)
from tortuner.finetune.dataset import ExampleSource, MicroBatches, fixed_batches
from tortuner.models.gpt_data import code_nll, gpt_losses, total_loss
from tortuner.models.tortoise import GPTConfig, build_gpt
from tortuner.plots import figure

DLAS_MILESTONES = "500,1000,1400,1800"  # DL-Art-School's GPT fine-tune MultiStepLR milestones (gamma 0.5)
# Fields that may change on --resume without breaking exactness.
RESUMABLE_CHANGES = {"max_steps", "save_every", "val_every", "resume", "device", "num_workers", "samples",
                     "keep_checkpoints", "log_every", "out"}


@dataclass
class TrainConfig:
    """Loop knobs; defaults are DL-Art-School's GPT fine-tune recipe sized for one 24 GB GPU."""

    max_steps: int = arg(2000, "optimizer steps to train to")
    batch_size: int = arg(16, "clips per micro-batch per process")
    grad_accum: int = arg(4, "micro-batches per optimizer step")
    lr: float = arg(1e-5, "peak AdamW learning rate (DL-Art-School fine-tune: 1e-5)")
    weight_decay: float = arg(0.01, "AdamW weight decay on weight matrices only")
    beta1: float = arg(0.9)
    beta2: float = arg(0.96)
    warmup_steps: int = arg(0, "linear warmup steps")
    schedule: str = arg("multistep", "multistep | cosine | constant", choices=("multistep", "cosine", "constant"))
    milestones: str = arg(DLAS_MILESTONES, "multistep schedule: steps at which the lr is multiplied by --gamma")
    gamma: float = arg(0.5)
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
    log_every: int = arg(10)
    seed: int = arg(0)
    num_workers: int = arg(2, "DataLoader worker processes")
    device: str = arg("auto", "auto | cpu | cuda")
    resume: bool = arg(False, "continue the run in --out exactly where its last checkpoint left it")


# ---------------------------------------------------------------------------------------------- pieces
class GPTWithLoss(nn.Module):
    """One forward call from batch to (text CE, mel CE): what DDP must wrap (conditioning encoder included)."""

    def __init__(self, gpt: nn.Module):
        super().__init__()
        self.gpt = gpt

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gpt_losses(self.gpt, batch)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weight matrices only (biases, norms and embeddings excluded, as DL-Art-School)."""
    exempt = {id(p) for m in model.modules() if isinstance(m, (nn.Embedding, nn.LayerNorm, nn.GroupNorm))
              for p in m.parameters(recurse=False)}
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or id(p) in exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lr_factor(step: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    if cfg.schedule == "constant":
        return warm
    if cfg.schedule == "multistep":
        marks = [int(m) for m in cfg.milestones.split(",") if m.strip()]
        return warm * cfg.gamma ** sum(step >= m for m in marks)
    if cfg.schedule == "cosine":
        return warm * 0.5 * (1 + math.cos(math.pi * min(step, cfg.max_steps) / max(1, cfg.max_steps)))
    raise TortunerError(f"unknown --schedule {cfg.schedule!r} (multistep, cosine, constant)")


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


# ---------------------------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints, oldest first (temp folders of interrupted saves are ignored)."""
    d = run / "checkpoints"
    return sorted(p for p in d.glob("step_*") if p.is_dir() and (p / "state.json").is_file()) if d.is_dir() else []


def find_checkpoint(run: str | Path, step: int | None = None) -> Path:
    cks = checkpoint_dirs(Path(run))
    if not cks:
        raise TortunerError(f"{run}: no checkpoints (run `tortuner finetune --out {run}` first)")
    if step is None:
        return cks[-1]
    for c in cks:
        if int(c.name.split("_")[1]) == step:
            return c
    raise TortunerError(f"{run}: no checkpoint for step {step} (have {', '.join(c.name for c in cks)})")


def _rng_state() -> dict[str, Any]:
    import random

    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any]) -> None:
    import random

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])


def save_checkpoint(accelerator, run: Path, step: int, gpt: nn.Module, optimizer, scheduler, state: dict,
                    keep: int) -> None:
    """Atomic: every file goes into `.step_N.tmp/`, renamed to `step_N/` only when all processes are done."""
    final = run / "checkpoints" / f"step_{step:07d}"
    tmp = run / "checkpoints" / f".step_{step:07d}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        save_safetensors({k: v.float() for k, v in gpt.state_dict().items()}, tmp / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "trainer.pt")
        write_json(tmp / "state.json", state)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in checkpoint_dirs(run)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


# ---------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(gpt: nn.Module, batches: list[dict], device: torch.device, autocast) -> dict[str, float]:
    """Mean text/mel CE over validation batches and the per-token NLL of the clips' codes (nats)."""
    was = gpt.training
    gpt.eval()
    lt = lm = 0.0
    n = 0
    nll, count = 0.0, 0
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        with autocast():
            t, m = gpt_losses(gpt, b)
            s, c = code_nll(gpt, b)
        k = b["text"].shape[0]
        lt, lm, n = lt + float(t) * k, lm + float(m) * k, n + k
        nll, count = nll + s, count + c
    gpt.train(was)
    if n == 0:
        return {}
    return {"loss_text": lt / n, "loss_mel": lm / n, "loss": total_loss(torch.tensor(lt / n), torch.tensor(lm / n)).item(),
            "code_nll": nll / max(count, 1)}


@torch.no_grad()
def generate_samples(gpt: nn.Module, gpt_config: GPTConfig, batch: dict, count: int, seed: int) -> list[dict]:
    """Sample codes for the first `count` texts of a batch with TorToiSe's sampling settings (on a copy of the GPT,
    because `post_init_gpt2_config` grafts an inference wrapper onto the model)."""
    gen = build_gpt(gpt_config).to(next(gpt.parameters()).device)
    gen.load_state_dict(gpt.state_dict())
    gen.eval().post_init_gpt2_config(kv_cache=True)
    out = []
    device = next(gen.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for i in range(min(count, batch["text"].shape[0])):
            text = batch["text"][i, : batch["text_lengths"][i]][None].to(device)
            conds = gen.get_conditioning(batch["cond_mels"][i : i + 1].to(device))
            ref = int(batch["wav_lengths"][i]) // gpt_config.mel_length_compression
            codes = gen.inference_speech(conds, text, do_sample=True, top_p=0.8, temperature=0.8,
                                         repetition_penalty=2.0, length_penalty=1.0,
                                         max_generate_length=min(2 * ref + 10, gpt_config.max_mel_tokens - 1))[0]
            stop = (codes == gpt_config.stop_mel_token).nonzero()
            n = int(stop[0]) if len(stop) else codes.numel()
            out.append({"index": i, "reference_codes": ref, "generated_codes": n, "stopped": bool(len(stop)),
                        "codes": codes[:n].tolist()})
    del gen
    return out


def plot_losses(rows: list[dict], path: Path) -> None:
    tr = [(r["step"], r["loss"]) for r in rows if r.get("split") == "train"]
    va = [(r["step"], r["loss"]) for r in rows if r.get("split") == "val"]
    with figure(path, figsize=(7, 4)) as (fig, ax):
        if tr:
            ax.plot(*zip(*tr), label="train (0.01 text + mel CE)", lw=1)
        if va:
            ax.plot(*zip(*va), "o-", label="validation", lw=1.5)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("loss")
        ax.legend()
        ax.grid(alpha=0.3)


# ---------------------------------------------------------------------------------------------- the loop
def check_resume(run: Path, meta: dict) -> None:
    """Refuse to resume into a run whose data, model or recipe differ: that would not be a continuation."""
    old = read_json(run / "run.json")
    diffs = [k for k in set(old.get("config", {})) | set(meta["config"])
             if k not in RESUMABLE_CHANGES and old.get("config", {}).get(k) != meta["config"].get(k)]
    for k in ("gpt_config", "dvae_sha256", "data"):
        if old.get(k) != meta.get(k):
            diffs.append(k)
    if diffs:
        raise TortunerError(f"{run}: --resume with changed settings {sorted(diffs)}; use the original ones or a new --out")


def train_gpt(cfg: TrainConfig, gpt: nn.Module, gpt_config: GPTConfig, train_src: ExampleSource,
              val_src: ExampleSource | None, run: str | Path, meta: dict | None = None) -> dict[str, Any]:
    """Fine-tune `gpt` (a stock UnifiedVoice, weights loaded) and return the final metrics.

    Writes `run/run.json`, `run/checkpoints/step_N/`, `run/log.jsonl`, `run/samples.jsonl`, `run/loss.png`, `run/tb/`.
    """
    from torch.utils.tensorboard import SummaryWriter

    run = Path(run)
    meta = {"config": asdict(cfg), "gpt_config": asdict(gpt_config), **(meta or {})}
    if len(train_src) == 0:
        raise TortunerError("no training clips left (see the skipped-clips summary above)")
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    existing = checkpoint_dirs(run)
    if existing and not cfg.resume:
        raise TortunerError(f"{run}: already has checkpoints; pass --resume to continue or choose a new --out")
    if cfg.resume and existing:
        check_resume(run, meta)
    elif main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "run.json", meta)

    if cfg.grad_checkpointing:
        gpt.gpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        gpt.gpt.config.use_cache = False  # a kv cache is useless in teacher-forced training
    else:
        gpt.gpt.gradient_checkpointing_disable()
    frozen = freeze(gpt, cfg.freeze)
    step = 0
    ck = existing[-1] if (cfg.resume and existing) else None
    if ck is not None:
        gpt.load_state_dict(load_safetensors(ck / "model.safetensors"), strict=True)
        step = int(read_json(ck / "state.json")["step"])
    model = GPTWithLoss(gpt)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    model, optimizer = accelerator.prepare(model, optimizer)
    if ck is not None:
        state = torch_load(ck / "trainer.pt", "trainer state")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng_file = ck / f"rng_{accelerator.process_index}.pt"
        if not rng_file.is_file():  # more processes than the run had: exactness is impossible anyway
            rng_file = ck / "rng_0.pt"
        _set_rng_state(torch_load(rng_file, "RNG state"))
    else:
        torch.manual_seed(cfg.seed + accelerator.process_index)
    device = accelerator.device
    unwrapped = accelerator.unwrap_model(model).gpt
    stop = gpt_config.stop_mel_token
    micro = MicroBatches(train_src, cfg.batch_size, cfg.seed, stop, accelerator.process_index,
                         accelerator.num_processes)
    # The data position: micro-batches step*grad_accum onwards. Own generator: keep off the global RNG.
    loader = torch.utils.data.DataLoader(micro, batch_size=None, num_workers=cfg.num_workers,
                                         sampler=range(step * cfg.grad_accum, cfg.max_steps * cfg.grad_accum),
                                         generator=torch.Generator().manual_seed(cfg.seed))
    has_val = val_src is not None and len(val_src) > 0 and main
    val_batches = fixed_batches(val_src, cfg.batch_size, stop, cfg.seed) if has_val else []

    def kept_rows(path: Path) -> list[dict]:  # a resumed run forgets what happened after its checkpoint
        return [r for r in read_jsonl(path) if r["step"] <= step] if path.is_file() else []

    log_rows, sample_rows = kept_rows(run / "log.jsonl"), kept_rows(run / "samples.jsonl")
    writer = SummaryWriter(str(run / "tb"), purge_step=step if step else None) if main else None
    if main and step == 0:
        n_train = sum(p.numel() for p in unwrapped.parameters() if p.requires_grad)
        print(f"finetune: {len(train_src)} train / {len(val_src) if val_src else 0} val clips; "
              f"{n_train / 1e6:.1f}M trainable parameters ({frozen} tensors frozen); device {device}, "
              f"{accelerator.num_processes} process(es), precision {accelerator.mixed_precision}")

    def validate_and_sample(at: int) -> dict:
        if not main or not val_batches:
            return {}
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            metrics = evaluate(unwrapped, val_batches, device, accelerator.autocast)
            samples = generate_samples(unwrapped, gpt_config, val_batches[0], cfg.samples, cfg.seed) if cfg.samples else []
        log_rows.append({"step": at, "split": "val", **metrics})
        for k, v in metrics.items():
            writer.add_scalar(f"val/{k}", v, at)
        for s in samples:
            sample_rows.append({"step": at, **s})
            writer.add_text(f"samples/{s['index']}", f"{s['generated_codes']} codes (reference {s['reference_codes']}), "
                            f"stopped={s['stopped']}: {s['codes'][:64]}", at)
        write_jsonl(run / "samples.jsonl", sample_rows)
        write_jsonl(run / "log.jsonl", log_rows)
        plot_losses(log_rows, run / "loss.png")
        return metrics

    model.train()
    it = iter(loader)
    pbar = tqdm(total=cfg.max_steps, initial=step, desc="finetune", unit="step", disable=not main, dynamic_ncols=True)
    params = [p for p in model.parameters() if p.requires_grad]
    last: dict[str, float] = {}
    t0 = time.time()
    while step < cfg.max_steps:
        acc_t = acc_m = 0.0
        for a in range(cfg.grad_accum):
            batch = {k: v.to(device) for k, v in next(it).items()}
            sync = contextlib.nullcontext() if a == cfg.grad_accum - 1 else accelerator.no_sync(model)
            with sync:
                with accelerator.autocast():
                    lt, lm = model(**batch)
                    loss = total_loss(lt, lm) / cfg.grad_accum
                accelerator.backward(loss)
            acc_t += float(lt.detach()) / cfg.grad_accum
            acc_m += float(lm.detach()) / cfg.grad_accum
        grad_norm = accelerator.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        last = {"loss_text": acc_t, "loss_mel": acc_m, "loss": 0.01 * acc_t + acc_m}
        if main:
            pbar.update(1)
            pbar.set_postfix(loss=f"{last['loss']:.3f}", mel=f"{acc_m:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                row = {"step": step, "split": "train", **last, "lr": scheduler.get_last_lr()[0],
                       "grad_norm": float(grad_norm), "sec_per_step": (time.time() - t0) / max(1, step)}
                log_rows.append(row)
                for k in ("loss", "loss_text", "loss_mel", "lr", "grad_norm"):
                    writer.add_scalar(f"train/{k}", row[k], step)
                write_jsonl(run / "log.jsonl", log_rows)
        if cfg.val_every > 0 and step % cfg.val_every == 0:
            validate_and_sample(step)
        if (cfg.save_every > 0 and step % cfg.save_every == 0) or step == cfg.max_steps:
            save_checkpoint(accelerator, run, step, unwrapped, optimizer, scheduler,
                            {"step": step, "micro_batches": step * cfg.grad_accum, "train": last}, cfg.keep_checkpoints)
    pbar.close()
    final = {"step": step, "train": last}
    if main:
        vals = [r for r in log_rows if r.get("split") == "val" and r["step"] == step]
        final["val"] = {k: v for k, v in vals[-1].items() if k not in ("step", "split")} if vals else validate_and_sample(step)
        if log_rows:
            plot_losses(log_rows, run / "loss.png")
        writer.close()
    accelerator.wait_for_everyone()
    return final
