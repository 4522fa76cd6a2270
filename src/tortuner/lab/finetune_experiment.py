"""`tortuner lab finetune`: is a recovered tokenizer as good as the hidden one for what users want, fine-tuning?

The world's public GPT is fine-tuned on the new voice's training clips, identically except for the tokens: from the
hidden teacher (the oracle), from the recovered dVAE (`RUN/dvae.pth`), and from the recovered dVAE with each lever
of `--levers` (e.g. `guided`: tokens read with the GPT as a prior, `finetune --guided-tokens`); no fine-tune is the
baseline. Each GPT is scored on the held-out new-voice clips by

* the per-token NLL of the **teacher's** tokens (what the public models understand): `finetune_ratio` = recovered /
  oracle, 1.0 means the recovered tokenizer costs nothing;
* what a user hears (`lab.outcome`): word error rate, speaker similarity, stop rate and length of its generations
  rendered through the public renderer, with the share of the teacher tokens' gain the recovered tokens keep.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import load_safetensors, read_json, sha_file, write_json
from tortuner.finetune.checkpoint import find_checkpoint
from tortuner.finetune.dataset import (
    DatasetClip,
    ExampleSource,
    LimitReport,
    attach_tokens,
    fixed_batches,
    load_clip_audio,
    read_dataset,
)
from tortuner.finetune.guide import Guide
from tortuner.finetune.trainer import TrainConfig, train_gpt
from tortuner.finetune.validate import validate
from tortuner.lab.finetune_report import write_markdown, write_plot
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import (
    MODEL_FILES,
    cond_samples_of,
    load_dvae,
    load_renderer,
    load_tortoise_model,
    model_configs,
)

TARGET_RATIO = 1.03
LEVERS = ("guided", "soft")
SOFT_K = 20  # the soft-target lever's candidates per position


@dataclass
class LabFinetuneConfig:
    world: str = arg("", "lab world folder (`tortuner lab build`)")
    run: str = arg("", "run folder of `tortuner lab run --out` (holds dvae.pth; results are added to its report)")
    steps: int = arg(120, "fine-tune steps per arm")
    batch_size: int = arg(8, "clips per micro-batch per process")
    lr: float = arg(1e-4, "peak AdamW learning rate")
    warmup_steps: int = arg(10, "linear warmup steps")
    levers: str = arg("guided,soft", "comma-separated levers, each fine-tuned as one more recovered-token arm: "
                                     "guided (GPT-guided tokens, `finetune --guided-tokens`), soft (soft targets over "
                                     "the dVAE's top-20 codes, `finetune --soft-targets 20`, at the temperature that "
                                     "fits the run's synthetic pairs); '' = none")
    outcome_samples: int = arg(3, "generations per held-out text for the outcome measures (0 = skip them)")
    seed: int = arg(0, "training seed (every arm)")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    device: str = arg("cpu", "cpu | cuda")


@dataclass
class Arm:
    """One fine-tuned GPT: which tokens it learns from."""

    name: str              # report keys: finetune_nll_<name>, outcome_<measure>_<name>
    dvae: Path
    guide: Guide | None = None
    soft_temperature: float = 0.0  # > 0: soft targets over the dVAE's top-SOFT_K codes at this temperature


def _score(gpt: torch.nn.Module, batches: list[dict]) -> float:
    return validate(gpt, batches, torch.device("cpu"), contextlib.nullcontext)["code_nll"]


def _check_world(world: WorldPaths, run: Path) -> None:
    stages = read_json(world.state).get("stages", {})

    def done(name: str) -> bool:  # worlds record {"done": true, ...}; "done" alone is accepted too
        return stages.get(name) == "done" or (isinstance(stages.get(name), dict) and bool(stages[name].get("done")))

    missing = [s for s in ("speech", "teacher", "gpt") if not done(s)]
    if missing:
        raise TortunerError(f"{world.root}: world not built (stages {missing} not done); run `tortuner lab build`")
    if not (run / "dvae.pth").is_file():
        raise TortunerError(f"{run / 'dvae.pth'}: no recovered dVAE (run `tortuner lab run --world {world.root} "
                            f"--out {run}`)")


def _arms(cfg: LabFinetuneConfig, world: WorldPaths, run: Path, cond: int) -> list[Arm]:
    levers = [x.strip() for x in cfg.levers.split(",") if x.strip()]
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise TortunerError(f"--levers: unknown {sorted(unknown)} (choose from {', '.join(LEVERS)})")
    arms = [Arm("oracle", world.teacher), Arm("recovered", run / "dvae.pth")]
    if "guided" in levers:
        gpt = load_tortoise_model(world.models, "gpt").eval()
        name = sha_file(world.models / MODEL_FILES["gpt"], "sha256")[:12]
        arms.append(Arm("recovered_guided", run / "dvae.pth", Guide(gpt, name, cond)))
    if "soft" in levers:
        from tortuner.recover.data import load_synth
        from tortuner.recover.evaluate import fit_temperature

        # fitted on the run's synthetic pairs (public data); 1 when the run has none (a hand-made run folder)
        synth = run / "synth"
        temperature = fit_temperature(load_dvae(run / "dvae.pth"), load_synth(synth)) if synth.is_dir() else 1.0
        arms.append(Arm("recovered_soft", run / "dvae.pth", soft_temperature=temperature))
    return arms


def run_experiment(cfg: LabFinetuneConfig) -> dict[str, Any]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    world, run = WorldPaths(cfg.world), Path(cfg.run)
    _check_world(world, run)
    configs = model_configs(world.models)
    gcfg, cond = configs["gpt"], cond_samples_of(configs)
    max_samples, max_text = (gcfg.max_mel_tokens - 2) * gcfg.mel_length_compression, gcfg.max_text_tokens
    out = run / "finetune"
    cache = out / "token-cache"
    limits = LimitReport()
    train_clips, val_clips = read_dataset(world.newvoice)

    def tokens(clips: list[DatasetClip], arm: Arm) -> list[DatasetClip]:  # fresh clip objects per tokenizer
        fresh = [DatasetClip(c.audio, c.text, c.speaker) for c in clips]
        return attach_tokens(fresh, arm.dvae, cache, "cpu", max_samples, max_text, limits, arm.guide,
                             SOFT_K if arm.soft_temperature else 0)

    arms = _arms(cfg, world, run, cond)
    # Validation is always on the teacher's tokens: that is what is scored.
    teacher_val = tokens(val_clips, arms[0])
    if not teacher_val:
        raise TortunerError(f"{world.newvoice}: no held-out clips in val.txt")
    train = {arm.name: tokens(train_clips, arm) for arm in arms}
    if limits.count:
        print(f"lab finetune: {limits.summary()}")
    pool = train["oracle"] + teacher_val
    val_src = ExampleSource(teacher_val, cond_pool=pool, cond_samples=cond)
    batches = fixed_batches(val_src, cfg.batch_size, gcfg.stop_mel_token, cfg.seed)
    tcfg = TrainConfig(max_steps=cfg.steps, batch_size=cfg.batch_size, grad_accum=1, lr=cfg.lr,
                       warmup_steps=cfg.warmup_steps, schedule="cosine", grad_checkpointing=False,
                       save_every=max(1, cfg.steps // 4), keep_checkpoints=1, val_every=max(1, cfg.steps // 2),
                       samples=0, log_every=5, seed=cfg.seed, num_workers=0, device=cfg.device, resume=True)
    gpts = {"base": load_tortoise_model(world.models, "gpt")}
    train_loss = {}
    for arm in arms:
        clips = train[arm.name]
        print(f"lab finetune: {arm.name} tokens, {len(clips)} clips, {cfg.steps} steps")
        # Conditioning comes from the same audio in every arm; only the training tokens differ.
        src = ExampleSource(clips, cond_pool=pool, cond_samples=cond, soft_temperature=arm.soft_temperature)
        final = train_gpt(tcfg, load_tortoise_model(world.models, "gpt"), gcfg, src, val_src, out / arm.name,
                          {"dvae_sha256": sha_file(arm.dvae, "sha256"), "guide": arm.guide.key() if arm.guide else None,
                           "data": {"dir": str(world.newvoice), "clips": len(clips)}})
        train_loss[arm.name] = final["train"].get("loss")
        gpt = load_tortoise_model(world.models, "gpt")
        gpt.load_state_dict(load_safetensors(find_checkpoint(out / arm.name) / "model.safetensors"))
        gpts[arm.name] = gpt
    nll = {name: _score(gpt, batches) for name, gpt in gpts.items()}

    def agreement(name: str) -> float:
        pairs = [(a.tokens, b.tokens) for a, b in zip(train["oracle"], train[name])
                 if a.tokens.numel() == b.tokens.numel()]
        return round(sum(float((a == b).float().mean()) for a, b in pairs) / max(1, len(pairs)), 4)

    val_codes = sum(int(b["wav_lengths"].div(gcfg.mel_length_compression, rounding_mode="floor").sum())
                    for b in batches)
    result: dict[str, Any] = {f"finetune_nll_{name}": round(v, 5) for name, v in nll.items()}
    result["finetune_ratio"] = round(nll["recovered"] / nll["oracle"], 5)
    result["finetune_kept"] = round((nll["base"] - nll["recovered"]) / (nll["base"] - nll["oracle"]), 4) \
        if nll["base"] != nll["oracle"] else None
    for arm in arms[2:]:
        result[f"finetune_ratio_{arm.name.removeprefix('recovered_')}"] = round(nll[arm.name] / nll["oracle"], 5)
    result["finetune"] = {
        "target_ratio": TARGET_RATIO, "pass": nll["recovered"] / nll["oracle"] <= TARGET_RATIO,
        "train_clips": len(train["oracle"]), "val_clips": len(teacher_val), "val_codes": val_codes,
        "train_token_agreement": agreement("recovered"),
        "arms": {arm.name: {"train_token_agreement": agreement(arm.name), "final_train_loss": train_loss[arm.name],
                            "guide": arm.guide.key() if arm.guide else None,
                            "soft_temperature": arm.soft_temperature or None} for arm in arms},
        "dvae_sha256": sha_file(run / "dvae.pth", "sha256"),  # `lab run` re-scoring keeps this only if unchanged
        "config": asdict(cfg)}
    if cfg.outcome_samples > 0:
        result.update(_outcomes(world, gpts, teacher_val, train_clips, cond, gcfg.num_codes, cfg))
    report_path = run / "report.json"
    report = read_json(report_path) if report_path.is_file() else {}
    report = {k: v for k, v in report.items() if not k.startswith(("finetune", "outcome_"))}  # no stale figures
    report.update(result)
    write_json(report_path, report)
    write_plot(result, out / "finetune.png")
    write_markdown(run / "report.md", result)
    return result


def _outcomes(world: WorldPaths, gpts: dict[str, torch.nn.Module], val: list[DatasetClip],
              train: list[DatasetClip], cond: int, num_codes: int, cfg: LabFinetuneConfig) -> dict[str, Any]:
    """outcome_<measure>_<none|teacher|recovered|...>; per measure, whether fine-tuning on the teacher's tokens moves
    it at all (outcome_separates_<measure>, with the bootstrap interval under finetune.outcome_interval) and, where it
    does, outcome_kept_<measure>: the share of the teacher's gain the recovered tokens keep. `val` carries the
    teacher's tokens."""
    from tortuner.lab.outcome import MEASURES, OutcomeScorer, Utterance, aggregate, gain_kept, separation

    held_out = [Utterance(c.text, load_clip_audio(c), c.tokens) for c in val]
    scorer = OutcomeScorer(load_renderer(world.models), held_out, [load_clip_audio(c) for c in train], cond,
                           num_codes, cfg.outcome_samples, cfg.seed)
    names = {"base": "none", "oracle": "teacher"}
    out: dict[str, Any] = {}
    stats = {}
    for name, gpt in gpts.items():
        print(f"lab finetune: outcome of {names.get(name, name)}")
        stats[names.get(name, name)] = scorer.score(gpt)
        for measure, value in aggregate(stats[names.get(name, name)], scorer.code_distribution).items():
            out[f"outcome_{measure}_{names.get(name, name)}"] = round(value, 4)
    interval = separation(stats["none"], stats["teacher"], scorer.code_distribution, seed=cfg.seed)
    for measure in MEASURES:
        lo, hi = interval[measure]
        out[f"outcome_separates_{measure}"] = bool(lo > 0 or hi < 0)
        kept = gain_kept(out[f"outcome_{measure}_none"], out[f"outcome_{measure}_teacher"],
                         out[f"outcome_{measure}_recovered"])
        out[f"outcome_kept_{measure}"] = round(kept, 3) if kept is not None and (lo > 0 or hi < 0) else None
    out["outcome_interval"] = {m: [round(lo, 4), round(hi, 4)] for m, (lo, hi) in interval.items()}
    return out
