"""Ceiling of the distillation recipe: the same student trained on *real* speech with the hidden teacher's own
tokens (oracle labels no recovery has), next to the same student trained on the run's synthetic pairs.

Backs docs/recovery.md, "Why top-1 stays near 0.5", "The student and budget cap it too": on the tiny world, 500
steps, oracle labels reach top-1 0.700 / top-5 0.986 on held-out speech, the 480 synthetic pairs 0.506 / 0.900.

    .venv/bin/python experiments/oracle_labels.py --world worlds/tiny --run runs/tiny [--steps 500]

`lab run` trains the same oracle at its preset's size and budget in every scoring (`oracle_agreement_top1` in
report.json, tortuner.lab.oracle); this script puts it beside the synthetic-pairs student at equal steps.

Separates the two things that can hold agreement down: the student/data budget (oracle low too) and the
synthetic -> real gap with its noisy labels (oracle high, synthetic low). Scored on hidden/eval, top-1 agreement.
Reads `RUN/synth` (`lab run`'s pairs).
"""

from __future__ import annotations

import argparse

import torch

from tortuner.lab.oracle import teacher_labelled_speech
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import load_dvae
from tortuner.recover.data import Augment, load_real, load_synth
from tortuner.recover.distill import CodeTrainer, DistillConfig, init_codebook_from_classes, new_dvae, train_on_pairs
from tortuner.recover.evaluate import score_tokenizer


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    teacher = load_dvae(w.teacher).eval()
    real = teacher_labelled_speech(w, teacher)
    synth = load_synth(f"{args.run}/synth")
    ev = load_real(w.eval)
    cfg = DistillConfig(codebook_dim=32, hidden_dim=96, num_resnet_blocks=1)
    print(f"{w.root}: {len(real)} real clips with teacher tokens ({sum(p.tokens.numel() for p in real)} tokens), "
          f"{len(synth)} synthetic pairs ({sum(p.tokens.numel() for p in synth)} tokens), {args.steps} steps each")
    for name, pairs in (("oracle: real speech + teacher tokens", real), ("synthetic pairs (the recipe)", synth)):
        torch.manual_seed(0)
        model = new_dvae(cfg, teacher.cfg.num_tokens)
        init_codebook_from_classes(model, pairs)
        tr = CodeTrainer(model, 1e-3)
        accs = train_on_pairs(tr, pairs, args.steps, 16, 32, 0, Augment(), tag=name[:10])
        m = score_tokenizer(tr.commit(), ev, teacher)
        last = accs[-50:]
        print(f"  {name:40s} train acc {sum(last) / len(last):.3f}   held-out top-1 {m['agreement_top1']:.3f}  "
              f"top-5 {m['agreement_top5']:.3f}")


if __name__ == "__main__":
    main()
