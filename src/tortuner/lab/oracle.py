"""The oracle student: the recovery's student trained on real speech with the hidden teacher's own tokens.

No recovery can have these labels; the oracle says how far the student's shape and budget alone let agreement go, so
a recovered tokenizer's top-1 is read against it (`oracle_agreement_top1` in report.json) rather than against 1.0.
It is made in the scoring phase from hidden material (the teacher and its training speech) and never feeds the
public-only recovery: `lab run` trains it after every recovery stage, in `score`, and caches it as RUN/oracle.pth.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tortuner.lab.sizes import RecoveryPreset
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.models.dvae import DiscreteVAE
from tortuner.recover.data import Augment, load_real
from tortuner.recover.distill import CodeTrainer, DistillConfig, init_codebook_from_classes, new_dvae, train_on_pairs
from tortuner.synth.shards import Pair
from tortuner.training import CHECKPOINT_SECONDS, LoopCheckpoint, kept


def teacher_labelled_speech(world: WorldPaths, teacher: DiscreteVAE) -> list[Pair]:
    """Every clip of the teacher's training speech (when the world has it) and of the public speech, (80, 4N) mel with
    its teacher tokens."""
    out = []
    speech = [world.teacher_speech] if (world.teacher_speech / "manifest.jsonl").is_file() else []
    with torch.no_grad():
        for c in [c for folder in [*speech, world.public_speech] for c in load_real(folder)]:
            n = c.mel.shape[1] // 4
            if n >= 8:
                mel = c.mel[:, : 4 * n]
                out.append(Pair(mel, teacher.tokenize(mel[None])[0], {}))
    return out


def train_oracle(world: WorldPaths, preset: RecoveryPreset, out: Path, steps: int = 0, seed: int = 0,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS) -> DiscreteVAE:
    """The student of `preset` (the distilled dVAE's shape) trained on teacher-labelled real speech for `steps`
    (0 = the preset's distillation budget, pre-training + fine-tuning), with the distillation's optimiser, crops and
    augmentation; read from `out` when it exists (it depends only on the world, the preset and the seed)."""
    out = Path(out)
    if out.is_file():
        return load_dvae(out)
    teacher = load_dvae(world.teacher).eval()
    # kept beside the checkpoint until the oracle is trained: the labelled speech is most of a rerun's start-up
    pairs = [Pair(m, t, {}) for m, t in kept(out.with_suffix(".pairs.pt"), world.teacher, lambda: [
        (p.mel, p.tokens) for p in teacher_labelled_speech(world, teacher)])]
    cfg = DistillConfig(codebook_dim=preset.codebook_dim, hidden_dim=preset.hidden_dim,
                        num_resnet_blocks=preset.blocks, batch=preset.batch, seed=seed)
    torch.manual_seed(seed)
    model = new_dvae(cfg, teacher.cfg.num_tokens)
    init_codebook_from_classes(model, pairs)
    trainer = CodeTrainer(model, cfg.lr)
    steps = steps or preset.distill_steps + preset.finetune_steps
    ckpt = LoopCheckpoint(out.with_suffix(".loop.pt"), checkpoint_seconds, f"oracle {steps} {seed} {preset}")
    train_on_pairs(trainer, pairs, steps, cfg.batch, cfg.crop_tokens, seed, Augment(), tag="oracle", ckpt=ckpt)
    model = trainer.commit()
    save_dvae(model, out)
    ckpt.done()
    out.with_suffix(".pairs.pt").unlink(missing_ok=True)
    return model
