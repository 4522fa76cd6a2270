"""`tortuner lab finetune`: is a recovered tokenizer as good as the hidden one for what users want, fine-tuning?

The world's public GPT is fine-tuned on the new voice's training clips twice, identically except for the tokens:
(a) from the recovered dVAE (`RUN/dvae.pth`), (b) from the hidden teacher (the oracle); (c) is no fine-tune. Each is
scored on the held-out new-voice clips by the per-token NLL of the **teacher's** tokens (what the public models
understand). `finetune_ratio` = recovered / oracle; 1.0 means the recovered tokenizer costs nothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import load_safetensors, read_json, sha_file, write_json, write_text
from tortuner.finetune.checkpoint import find_checkpoint
from tortuner.finetune.dataset import ExampleSource, LimitReport, attach_tokens, fixed_batches, read_dataset
from tortuner.finetune.trainer import TrainConfig, train_gpt
from tortuner.finetune.validate import validate
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import cond_samples_of, load_tortoise_model, model_configs
from tortuner.plots import figure

TARGET_RATIO = 1.03
MD_START, MD_END = "<!-- finetune:start -->", "<!-- finetune:end -->"


@dataclass
class LabFinetuneConfig:
    world: str = arg("", "lab world folder (`tortuner lab build`)")
    run: str = arg("", "run folder of `tortuner lab run --out` (holds dvae.pth; results are added to its report)")
    steps: int = arg(120, "fine-tune steps per arm")
    batch_size: int = arg(8, "clips per micro-batch per process")
    lr: float = arg(1e-4, "peak AdamW learning rate")
    warmup_steps: int = arg(10, "linear warmup steps")
    seed: int = arg(0, "training seed (both arms)")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    device: str = arg("cpu", "cpu | cuda")


def _clips(world: WorldPaths, dvae: Path, cache: Path, max_samples: int, max_text: int):
    """(train, val) new-voice clips tokenized by `dvae` (fresh clip objects per tokenizer)."""
    train, val = read_dataset(world.newvoice)
    report = LimitReport()
    train = attach_tokens(train, dvae, cache, "cpu", max_samples, max_text, report)
    val = attach_tokens(val, dvae, cache, "cpu", max_samples, max_text, report)
    if report.count:
        print(f"lab finetune: {report.summary()}")
    return train, val


def _score(gpt: torch.nn.Module, batches: list[dict]) -> float:
    return validate(gpt, batches, torch.device("cpu"), contextlib.nullcontext)["code_nll"]


def run_experiment(cfg: LabFinetuneConfig) -> dict[str, Any]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world, run = WorldPaths(cfg.world), Path(cfg.run)
    state = read_json(world.state)
    stages = state.get("stages", {})

    def done(name: str) -> bool:  # worlds record {"done": true, ...}; "done" alone is accepted too
        return stages.get(name) == "done" or (isinstance(stages.get(name), dict) and bool(stages[name].get("done")))

    missing = [s for s in ("speech", "teacher", "gpt") if not done(s)]
    if missing:
        raise TortunerError(f"{world.root}: world not built (stages {missing} not done); run `tortuner lab build`")
    recovered = run / "dvae.pth"
    if not recovered.is_file():
        raise TortunerError(f"{recovered}: no recovered dVAE (run `tortuner lab run --world {world.root} --out {run}`)")
    configs = model_configs(world.models)
    gcfg = configs["gpt"]
    cond = cond_samples_of(configs)
    max_samples, max_text = (gcfg.max_mel_tokens - 2) * gcfg.mel_length_compression, gcfg.max_text_tokens
    out = run / "finetune"
    cache = out / "token-cache"

    # Validation is always on the teacher's tokens: that is what is scored.
    teacher_train, teacher_val = _clips(world, world.teacher, cache, max_samples, max_text)
    recovered_train, _ = _clips(world, recovered, cache, max_samples, max_text)
    if not teacher_val:
        raise TortunerError(f"{world.newvoice}: no held-out clips in val.txt")
    pool = teacher_train + teacher_val
    val_src = ExampleSource(teacher_val, cond_pool=pool, cond_samples=cond)
    batches = fixed_batches(val_src, cfg.batch_size, gcfg.stop_mel_token, cfg.seed)
    agree = [float((a.tokens == b.tokens).float().mean()) for a, b in zip(teacher_train, recovered_train)
             if a.tokens.numel() == b.tokens.numel()]

    tcfg = TrainConfig(max_steps=cfg.steps, batch_size=cfg.batch_size, grad_accum=1, lr=cfg.lr,
                       warmup_steps=cfg.warmup_steps, schedule="cosine", grad_checkpointing=False,
                       save_every=max(1, cfg.steps // 2), keep_checkpoints=1, val_every=max(1, cfg.steps // 2),
                       samples=0, log_every=5, seed=cfg.seed, num_workers=0, device=cfg.device, resume=True)
    scores = {"base": _score(load_tortoise_model(world.models, "gpt"), batches)}
    arms = {"oracle": (world.teacher, teacher_train), "recovered": (recovered, recovered_train)}
    train_loss = {}
    for arm, (dvae, clips) in arms.items():
        print(f"lab finetune: {arm} tokens, {len(clips)} clips, {cfg.steps} steps")
        # Conditioning comes from the same audio in both arms; only the training tokens differ.
        src = ExampleSource(clips, cond_pool=pool, cond_samples=cond)
        final = train_gpt(tcfg, load_tortoise_model(world.models, "gpt"), gcfg, src, val_src, out / arm,
                          {"dvae_sha256": sha_file(dvae, "sha256"),
                           "data": {"dir": str(world.newvoice), "clips": len(clips)}})
        train_loss[arm] = final["train"].get("loss")
        gpt = load_tortoise_model(world.models, "gpt")
        gpt.load_state_dict(load_safetensors(find_checkpoint(out / arm) / "model.safetensors"))
        scores[arm] = _score(gpt, batches)

    val_codes = sum(int(b["wav_lengths"].div(gcfg.mel_length_compression, rounding_mode="floor").sum())
                    for b in batches)
    result = {
        "finetune_nll_base": round(scores["base"], 5),
        "finetune_nll_oracle": round(scores["oracle"], 5),
        "finetune_nll_recovered": round(scores["recovered"], 5),
        "finetune_ratio": round(scores["recovered"] / scores["oracle"], 5),
        "finetune": {"target_ratio": TARGET_RATIO, "pass": scores["recovered"] / scores["oracle"] <= TARGET_RATIO,
                     "train_clips": len(teacher_train), "val_clips": len(teacher_val),
                     "val_codes": val_codes,
                     "train_token_agreement": round(sum(agree) / max(1, len(agree)), 4),
                     "dvae_sha256": sha_file(recovered, "sha256"),  # `lab run` re-scoring keeps this only if unchanged
                     "final_train_loss": train_loss, "config": asdict(cfg)},
    }
    report_path = run / "report.json"
    report = read_json(report_path) if report_path.is_file() else {}
    report.update(result)
    write_json(report_path, report)
    _plot(scores, out)
    write_markdown(run / "report.md", result)
    return result


def _plot(scores: dict[str, float], out: Path) -> None:
    names = ["base", "oracle", "recovered"]
    with figure(out / "finetune.png", figsize=(5, 3.2)) as (fig, ax):
        ax.bar(names, [scores[n] for n in names], color=["#999999", "#4c72b0", "#dd8452"])
        ax.set_ylabel("NLL of teacher tokens (nats/token)")
        ax.set_title("held-out new voice")
        for i, n in enumerate(names):
            ax.text(i, scores[n], f"{scores[n]:.3f}", ha="center", va="bottom")


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    """Put (or replace) the fine-tune section of a run's report.md; `r` holds the `finetune*` keys."""
    f = r["finetune"]
    section = "\n".join([
        MD_START,
        "## Fine-tune experiment (new voice)",
        "",
        f"The public GPT fine-tuned on {f['train_clips']} clips of an unseen voice with recovered vs. hidden-teacher "
        f"tokens; scored on {f['val_clips']} held-out clips ({f['val_codes']} codes) by the NLL of the teacher's "
        "tokens.",
        "",
        "| GPT | NLL (nats/token) |",
        "|---|---|",
        f"| no fine-tune | {r['finetune_nll_base']:.4f} |",
        f"| fine-tuned, teacher tokens (oracle) | {r['finetune_nll_oracle']:.4f} |",
        f"| fine-tuned, recovered tokens | {r['finetune_nll_recovered']:.4f} |",
        "",
        f"**finetune_ratio** (recovered / oracle) = **{r['finetune_ratio']:.4f}** (target <= {f['target_ratio']}: "
        f"{'pass' if f['pass'] else 'FAIL'}); training-token agreement with the teacher "
        f"{f['train_token_agreement']:.3f}.",
        "",
        "![fine-tune](finetune/finetune.png)",
        MD_END,
        "",
    ])
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if MD_START in text and MD_END in text:
        text = text[: text.index(MD_START)] + section.rstrip("\n") + text[text.index(MD_END) + len(MD_END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    write_text(path, text)
