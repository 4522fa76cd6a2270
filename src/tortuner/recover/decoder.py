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

from tortuner.files import write_json
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.recover.data import load_synth, pair_batch


@dataclass
class DecoderConfig:
    synth: str = ""
    dvae: str = "distill.pth"     # the distilled encoder + codebook
    out: str = "decoder.pth"
    steps: int = 800
    batch: int = 16
    crop_tokens: int = 32
    lr: float = 1e-3
    seed: int = 0
    threads: int = 0


def run_decoder(cfg: DecoderConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    model = load_dvae(cfg.dvae)
    pairs = load_synth(cfg.synth)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.decoder.parameters(), lr=cfg.lr)
    writer = SummaryWriter(str(Path(cfg.out).parent / "tb"))
    model.decoder.train()
    hist = []
    for step in tqdm(range(cfg.steps), desc="decoder", leave=False):
        mel, tok = pair_batch(pairs, cfg.batch, cfg.crop_tokens, rng)
        with torch.no_grad():
            mask = (tok >= 0).repeat_interleave(4, 1)[:, None, :].float()
        recon = model.decode(tok.clamp(min=0))
        loss = (F.l1_loss(recon, mel, reduction="none") * mask).sum() / (mask.sum() * 80)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * (0.1 + 0.9 * (1 - step / cfg.steps))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append(loss.item())
        if step % 25 == 0:
            writer.add_scalar("decoder/l1", loss.item(), step)
    model.eval()
    save_dvae(model, cfg.out)
    summary = {"decoder_l1_final": float(sum(hist[-50:]) / max(1, len(hist[-50:])))}
    write_json(Path(cfg.out).with_suffix(".json"), summary)
    writer.close()
    return summary
