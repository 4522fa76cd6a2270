"""Unsupervised domain-adaptation losses on the public real speech during distillation: none of them helps.

Backs docs/recovery.md, "Closing the synthetic -> real gap", the domain-adaptation row: on the tiny world (480 pairs,
500 steps, no CLVP phase, mean top-1 of seeds 0 and 1 on hidden/eval) plain distillation 0.471; + consistency of the
encoder's code distribution under noise on real mels (KL, weight 1) 0.472; + FixMatch-style confident labels of
clean real mels taught to noisy ones (threshold 0.5) 0.467; + a domain-adversarial frame classifier through a
gradient reversal (weight 0.1) 0.471; + entropy minimisation on real mels (weight 0.1) 0.472. The seed spread is
0.02: the encoder's real-speech errors are not ones these losses see.

    .venv/bin/python experiments/domain_adaptation.py --world worlds/tiny --run runs/tiny --mode dann --weight 0.1

Reads `RUN/synth` (`lab run`'s pairs) and the world's public speech; the hidden teacher only scores.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
import torch.nn.functional as F

from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import load_dvae
from tortuner.recover.data import Augment, load_real, load_synth, pair_batch
from tortuner.recover.distill import CodeTrainer, DistillConfig, init_codebook_from_classes, new_dvae, train_on_pairs
from tortuner.recover.evaluate import score_tokenizer


class GradReverse(torch.autograd.Function):
    """Identity forward, -lam x gradient backward (the encoder learns to fool the domain classifier)."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


def real_batch(mels: list[torch.Tensor], batch: int, frames: int, rng: random.Random) -> torch.Tensor:
    """(B, 80, frames) random crops of real mels, short ones padded with their minimum."""
    out = torch.zeros(batch, 80, frames)
    for i in range(batch):
        m = rng.choice(mels)
        n = min(frames, m.shape[1])
        s = rng.randint(0, m.shape[1] - n)
        out[i, :, :n] = m[:, s:s + n]
        out[i, :, n:] = m.min()
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--mode", default="none", choices=("none", "consist", "fixmatch", "dann", "entmin"))
    ap.add_argument("--weight", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    w = WorldPaths(args.world)
    teacher = load_dvae(w.teacher).eval()
    pairs = load_synth(f"{args.run}/synth")
    real = [c.mel for c in load_real(w.public_speech) if c.mel.shape[1] >= 32]
    ev = load_real(w.eval)
    student = load_dvae(f"{args.run}/distill.pth").cfg if (Path(args.run) / "distill.pth").is_file() else None
    cfg = DistillConfig(codebook_dim=student.codebook_dim if student else 32,
                        hidden_dim=student.hidden_dim if student else 96,
                        num_resnet_blocks=student.num_resnet_blocks if student else 1)
    res = []
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = new_dvae(cfg, teacher.cfg.num_tokens)
        init_codebook_from_classes(model, pairs)
        tr = CodeTrainer(model, 1e-3)
        rng, g = random.Random(seed + 100), torch.Generator().manual_seed(seed + 100)
        disc = torch.nn.Sequential(torch.nn.Linear(cfg.codebook_dim, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
        dopt = torch.optim.Adam(disc.parameters(), 1e-3)
        prng = random.Random(seed + 200)
        state = {"i": 0}

        def extra():
            state["i"] += 1
            ramp = min(1.0, state["i"] / (0.3 * args.steps))
            mel = real_batch(real, 16, 128, rng)
            if args.mode == "consist":
                with torch.no_grad():
                    p = tr.logits(mel).softmax(-1)
                q = tr.logits(mel + args.noise * torch.randn(mel.shape, generator=g)).log_softmax(-1)
                return args.weight * ramp * F.kl_div(q, p, reduction="batchmean") / q.shape[1]
            if args.mode == "fixmatch":
                with torch.no_grad():
                    p = tr.logits(mel).softmax(-1)
                    conf, lab = p.max(-1)
                    lab[conf < args.threshold] = -100
                q = tr.logits(mel + args.noise * torch.randn(mel.shape, generator=g))
                return args.weight * ramp * F.cross_entropy(q.reshape(-1, q.shape[-1]), lab.reshape(-1),
                                                            ignore_index=-100)
            if args.mode == "entmin":
                p = tr.logits(mel).log_softmax(-1)
                return args.weight * ramp * -(p.exp() * p).sum(-1).mean()
            if args.mode == "dann":
                smel, _ = pair_batch(pairs, 16, 32, prng)
                zr, zs = tr.model.encode(mel), tr.model.encode(smel)
                z = torch.cat([zr.reshape(-1, zr.shape[-1]), zs.reshape(-1, zs.shape[-1])])
                y = torch.cat([torch.ones(zr.shape[0] * zr.shape[1]), torch.zeros(zs.shape[0] * zs.shape[1])])
                # discriminator step on detached features
                dl = F.binary_cross_entropy_with_logits(disc(z.detach())[:, 0], y)
                dopt.zero_grad()
                dl.backward()
                dopt.step()
                adv = F.binary_cross_entropy_with_logits(disc(GradReverse.apply(z, 1.0))[:, 0], y)
                return args.weight * ramp * adv
            return torch.zeros(())

        train_on_pairs(tr, pairs, args.steps, 16, 32, seed, Augment(), tag=args.mode,
                       extra=None if args.mode == "none" else extra)
        m = score_tokenizer(tr.commit(), ev, teacher)
        res.append(m["agreement_top1"])
        print(f"mode {args.mode} w {args.weight} seed {seed}: top-1 {m['agreement_top1']:.3f} "
              f"top-5 {m['agreement_top5']:.3f}", flush=True)
    print(f"mode {args.mode} w {args.weight}: mean top-1 {sum(res) / len(res):.4f}")


if __name__ == "__main__":
    main()
