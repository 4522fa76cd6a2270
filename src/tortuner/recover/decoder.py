"""`recover decoder`: pre-train the dVAE decoder (codebook vectors -> mel) on the synthetic pairs.

The encoder and codebook stay fixed: only `decoder.*` learns, so the tokenizer's agreement cannot move.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tortuner.config_args import arg
from tortuner.files import write_json
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.recover.data import load_synth, pair_batch
from tortuner.training import LoopCheckpoint, ScalarLog, checkpoint_seconds_arg, linear_decay, optimizer_step


@dataclass
class DecoderConfig:
    synth: str = arg("", "synth folder (shards + index, `tortuner synth`)")
    dvae: str = arg("distill.pth", "the distilled encoder + codebook (`recover distill`)")
    out: str = arg("decoder.pth", "where to write the dVAE with its trained decoder")
    steps: int = arg(800, "training steps")
    batch: int = arg(16, "crops per step")
    crop_tokens: int = arg(32, "tokens per crop")
    lr: float = arg(1e-3, "peak AdamW learning rate (decays linearly to a tenth)")
    seed: int = arg(0, "seed")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    checkpoint_seconds: float = checkpoint_seconds_arg("run")


def run_decoder(cfg: DecoderConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = load_dvae(cfg.dvae)
    pairs = load_synth(cfg.synth)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.decoder.parameters(), lr=cfg.lr)
    writer = SummaryWriter(str(Path(cfg.out).parent / "tb"))
    log = ScalarLog(writer, "decoder")
    model.decoder.train()
    hist: list[float] = []
    ckpt = LoopCheckpoint.beside(cfg.out, cfg)
    start = ckpt.resume(model=model, opt=opt, rng=rng, history=hist)
    for step in tqdm(range(start, cfg.steps), desc="decoder", leave=False, initial=start, total=cfg.steps):
        mel, tok = pair_batch(pairs, cfg.batch, cfg.crop_tokens, rng)
        with torch.no_grad():
            mask = (tok >= 0).repeat_interleave(4, 1)[:, None, :].float()
        recon = model.decode(tok.clamp(min=0))
        loss = (F.l1_loss(recon, mel, reduction="none") * mask).sum() / (mask.sum() * 80)
        optimizer_step(opt, loss, linear_decay(step, cfg.steps, cfg.lr))
        hist.append(loss.item())
        log(step, l1=loss.item())
        ckpt.save_if_due(step + 1)
    model.eval()
    save_dvae(model, cfg.out)
    summary = {"decoder_l1_final": float(sum(hist[-50:]) / max(1, len(hist[-50:])))}
    write_json(Path(cfg.out).with_suffix(".json"), summary)
    ckpt.done()
    writer.close()
    return summary
