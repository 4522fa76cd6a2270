"""`baseline`: a fresh VQ-VAE trained from scratch on the same real speech (the seed's "useless" claim, measured).

Scored like any tokenizer, and also after the best one-to-one relabelling of its codes onto the reference's
(Hungarian assignment on the co-occurrence matrix, scipy.optimize.linear_sum_assignment): even with that oracle
mapping, a fresh codebook should agree little, because its partition of the space is different, not just permuted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tortuner.config_args import arg
from tortuner.files import write_json
from tortuner.models.checkpoints import save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.recover.data import RealClip, load_real, mel_batch
from tortuner.recover.distill import num_codes_of
from tortuner.recover.evaluate import clip_tokens
from tortuner.training import LoopCheckpoint, ScalarLog, checkpoint_seconds_arg, optimizer_step


@dataclass
class BaselineConfig:
    speech: str = arg("", "real speech manifest (or its folder) to train on")
    models: str = arg("", "public models folder: the number of codes comes from its GPT config")
    out: str = arg("baseline.pth", "where to write the fresh dVAE")
    codebook_dim: int = arg(64, "code vector size")
    hidden_dim: int = arg(128, "hidden channels")
    num_resnet_blocks: int = arg(2, "residual blocks")
    steps: int = arg(800, "training steps")
    batch: int = arg(16, "crops per step")
    crop_frames: int = arg(128, "mel frames per crop")
    lr: float = arg(1e-3, "AdamW learning rate")
    commitment_weight: float = arg(0.25, "weight of the commitment loss")
    seed: int = arg(0, "seed")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    checkpoint_seconds: float = checkpoint_seconds_arg("run")


def train_vqvae(model: DiscreteVAE, mels: list[torch.Tensor], steps: int, batch: int, crop: int, lr: float,
                commitment_weight: float, seed: int, writer: SummaryWriter | None = None,
                ckpt: LoopCheckpoint | None = None) -> list[float]:
    """Standard VQ-VAE training on random mel crops (MSE + commitment, EMA codebook), with dead codes restarted
    every 50 steps (`EMACodebook.restart_dead_codes`); returns the loss of every step."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(list(model.encoder.parameters()) + list(model.decoder.parameters()), lr=lr)
    log = ScalarLog(writer, "baseline")
    model.train()
    hist: list[float] = []
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=model, opt=opt, rng=rng, history=hist)
    for step in tqdm(range(start, steps), desc="baseline", leave=False, initial=start, total=steps):
        x = mel_batch(mels, batch, crop, rng)
        recon, commit, _ = model(x)
        loss = F.mse_loss(recon, x) + commitment_weight * commit
        optimizer_step(opt, loss)
        if step % 50 == 0:
            with torch.no_grad():
                model.codebook.restart_dead_codes(model.encode(x).reshape(-1, model.cfg.codebook_dim))
        hist.append(loss.item())
        log(step, loss=loss.item())
        ckpt.save_if_due(step + 1)
    return hist


@torch.no_grad()
def matched_agreement(model: DiscreteVAE, reference: DiscreteVAE, clips: list[RealClip]) -> dict:
    """Raw top-1 agreement and top-1 after the best one-to-one code mapping (an oracle favouring the baseline)."""
    k = model.cfg.num_tokens
    ours = torch.cat([clip_tokens(model.eval(), c)[0] for c in clips])
    ref = torch.cat([clip_tokens(reference.eval(), c)[0] for c in clips])
    co = torch.zeros(k, reference.cfg.num_tokens)
    co.index_put_((ours, ref), torch.ones_like(ours, dtype=torch.float), accumulate=True)
    rows, cols = linear_sum_assignment(-co.numpy())
    return {"agreement_top1": float((ours == ref).float().mean()),
            "matched_agreement_top1": float(co[rows, cols].sum() / ours.numel()),
            "chance": 1.0 / reference.cfg.num_tokens}


def run_baseline(cfg: BaselineConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = DiscreteVAE(DVAEConfig(num_tokens=num_codes_of(cfg.models), codebook_dim=cfg.codebook_dim,
                                   hidden_dim=cfg.hidden_dim, num_resnet_blocks=cfg.num_resnet_blocks))
    mels = [c.mel for c in load_real(cfg.speech)]
    writer = SummaryWriter(str(Path(cfg.out).parent / "tb"))
    ckpt = LoopCheckpoint.beside(cfg.out, cfg)
    hist = train_vqvae(model, mels, cfg.steps, cfg.batch, cfg.crop_frames, cfg.lr, cfg.commitment_weight, cfg.seed,
                       writer, ckpt)
    model.eval()
    save_dvae(model, cfg.out)
    summary = {"baseline_loss_final": float(sum(hist[-50:]) / max(1, len(hist[-50:])))}
    write_json(Path(cfg.out).with_suffix(".json"), summary)
    ckpt.done()
    writer.close()
    return summary
