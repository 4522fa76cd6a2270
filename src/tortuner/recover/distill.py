"""`recover distill`: an encoder + codebook whose nearest code of each 4-frame group is the GPT's token.

Logits are the negative squared distances to the codebook columns, so the trained network *is* a VQ encoder
(`DiscreteVAE.tokenize` reproduces its argmax). The codebook is trained as a parameter by the cross-entropy and
written back into the EMA buffers; it starts from per-class means of the untrained encoder's outputs.
Pre-train on all pairs, then fine-tune on the CLVP-filtered view.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import write_json
from tortuner.models.checkpoints import load_dvae, model_configs, save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig, code_distances
from tortuner.recover.data import Augment, load_synth, pair_batch
from tortuner.synth.shards import Pair
from tortuner.training import LoopCheckpoint, ScalarLog, checkpoint_seconds_arg, optimizer_step, warmup_linear_decay


@dataclass
class DistillConfig:
    synth: str = arg("", "synth folder (shards + index, `tortuner synth`)")
    out: str = arg("distill.pth", "where to write the distilled dVAE")
    models: str = arg("", "public models folder: the number of codes comes from its GPT config")
    init: str = arg("", "start from this dVAE instead of a fresh one")
    codebook_dim: int = arg(64, "code vector size of a fresh dVAE")
    hidden_dim: int = arg(128, "hidden channels of a fresh dVAE")
    num_resnet_blocks: int = arg(2, "residual blocks of a fresh dVAE")
    steps: int = arg(1500, "pre-training steps on all pairs")
    finetune_steps: int = arg(300, "then fine-tuning steps on the CLVP-filtered view")
    clvp_top: float = arg(0.5, "fraction of pairs the CLVP-filtered view keeps (best CLVP scores)")
    max_pairs: int = arg(0, "use at most this many pairs (0 = all)")
    batch: int = arg(16, "crops per step")
    crop_tokens: int = arg(32, "tokens per crop")
    lr: float = arg(1e-3, "peak AdamW learning rate (x 0.3 for the fine-tuning)")
    augment: bool = arg(True, "add noise to the synthetic mels (see recover.data.Augment)")
    match_speech: str = arg("", "real speech manifest: moment-match the synthetic mels to it per band (default: off)")
    seed: int = arg(0, "seed")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    checkpoint_seconds: float = checkpoint_seconds_arg("run")


def num_codes_of(models: str) -> int:
    if not models:
        raise TortunerError("--models is required (the GPT config gives the number of codes)")
    return model_configs(models)["gpt"].num_codes


class CodeTrainer:
    """Cross-entropy of tokens against -distance logits, with the codebook as a trainable parameter."""

    def __init__(self, model: DiscreteVAE, lr: float, train_codebook: bool = True):
        self.model = model
        self.embed = torch.nn.Parameter(model.codebook.embed.clone(), requires_grad=train_codebook)
        params = list(model.encoder.parameters()) + ([self.embed] if train_codebook else [])
        self.opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        self.lr = lr

    def logits(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, 80, T) -> (B, ceil(T/4), n) negative squared distances to the trainable codebook."""
        return -code_distances(self.model.encode(mel), self.embed)

    def loss(self, mel: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, float]:
        lg = self.logits(mel)[:, : tokens.shape[1]]
        mask = tokens >= 0
        acc = float((lg.argmax(-1) == tokens)[mask].float().mean()) if mask.any() else 0.0
        return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tokens.reshape(-1), ignore_index=-100), acc

    def step(self, loss: torch.Tensor, frac: float) -> None:
        """One optimiser step at `frac` (= step / steps) of the schedule, the encoder's gradient norm clipped to 2."""
        optimizer_step(self.opt, loss, warmup_linear_decay(frac, self.lr), clip=2.0,
                       params=self.model.encoder.parameters())

    @torch.no_grad()
    def commit(self) -> DiscreteVAE:
        """Write the learned codebook into the VQ buffers (EMA state consistent with it)."""
        cb = self.model.codebook
        cb.embed.copy_(self.embed.detach())
        cb.cluster_size.fill_(1.0)
        cb.embed_avg.copy_(cb.embed)
        return self.model


@torch.no_grad()
def init_codebook_from_classes(model: DiscreteVAE, pairs: list[Pair], max_items: int = 200) -> None:
    """Each code starts at the mean encoder output of the frames labelled with it (random frames for unseen)."""
    k = model.cfg.num_tokens
    sums, counts, pool = torch.zeros(k, model.cfg.codebook_dim), torch.zeros(k), []
    for p in pairs[:max_items]:
        z = model.encode(p.mel[None])[0, : p.tokens.numel()]
        sums.index_add_(0, p.tokens, z)
        counts.index_add_(0, p.tokens, torch.ones(p.tokens.numel()))
        pool.append(z)
    pool_t = torch.cat(pool)
    emb = pool_t[torch.randint(0, pool_t.shape[0], (k,))] + 0.01 * torch.randn(k, pool_t.shape[1])
    seen = counts > 0
    emb[seen] = sums[seen] / counts[seen, None]
    model.codebook.embed.copy_(emb.t())


def train_on_pairs(trainer: CodeTrainer, pairs: list[Pair], steps: int, batch: int, crop_tokens: int, seed: int,
                   augment: Augment | None, writer: SummaryWriter | None = None, tag: str = "distill",
                   callback: Callable[[int, DiscreteVAE], None] | None = None, every: int = 100,
                   extra: Callable[[], torch.Tensor] | None = None,
                   ckpt: LoopCheckpoint | None = None) -> list[float]:
    """`steps` steps of `trainer` on random crops of `pairs` (augmented when `augment`); returns the batch accuracy
    of each step. `callback(step, model)` every `every` steps (the lab's distillation curve)."""
    rng, g = random.Random(seed), torch.Generator().manual_seed(seed)
    log = ScalarLog(writer, tag)
    trainer.model.train()
    accs: list[float] = []
    ckpt = ckpt or LoopCheckpoint(None)
    start = ckpt.resume(model=trainer.model, embed=trainer.embed, opt=trainer.opt, rng=rng, gen=g, accs=accs)
    for step in tqdm(range(start, steps), desc=tag, leave=False, initial=start, total=steps):
        mel, tok = pair_batch(pairs, batch, crop_tokens, rng)
        if augment is not None:
            mel = augment(mel, g)
        loss, acc = trainer.loss(mel, tok)
        if extra is not None:
            loss = loss + extra()
        trainer.step(loss, step / max(1, steps))
        accs.append(acc)
        log(step, ce=loss.item(), acc=acc)
        if callback is not None and (step + 1) % every == 0:
            trainer.commit().eval()
            callback(step + 1, trainer.model)
            trainer.model.train()
        ckpt.save_if_due(step + 1)
    trainer.model.eval()
    return accs


def new_dvae(cfg: DistillConfig, num_codes: int) -> DiscreteVAE:
    return DiscreteVAE(DVAEConfig(num_tokens=num_codes, codebook_dim=cfg.codebook_dim, hidden_dim=cfg.hidden_dim,
                                  num_resnet_blocks=cfg.num_resnet_blocks))


def run_distill(cfg: DistillConfig, callback: Callable[[int, DiscreteVAE], None] | None = None,
                every: int = 100) -> dict:
    """Pre-train on all pairs then fine-tune on the CLVP view; resumable per phase (`<out>.phase1.pth`)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(out.parent / "tb"))
    pairs = load_synth(cfg.synth, max_items=cfg.max_pairs, match_speech=cfg.match_speech)
    aug = Augment() if cfg.augment else None
    phase1 = out.with_suffix(".phase1.pth")
    summary: dict = {"pairs": len(pairs)}
    ckpt2 = LoopCheckpoint.beside(out, cfg, "loop")  # of the fine-tuning phase
    if phase1.is_file():
        model = load_dvae(phase1)
    else:
        model = load_dvae(cfg.init) if cfg.init else new_dvae(cfg, num_codes_of(cfg.models))
        if not cfg.init:
            init_codebook_from_classes(model, pairs)
        tr = CodeTrainer(model, cfg.lr)
        ckpt = LoopCheckpoint.beside(out, cfg, "phase1.loop")
        accs = train_on_pairs(tr, pairs, cfg.steps, cfg.batch, cfg.crop_tokens, cfg.seed, aug, writer,
                              "distill", callback, every, ckpt=ckpt)
        save_dvae(tr.commit(), phase1)
        ckpt.done()
        summary["pretrain_train_acc"] = float(sum(accs[-50:]) / max(1, len(accs[-50:])))
    if cfg.finetune_steps > 0 and cfg.clvp_top < 1.0:
        view = load_synth(cfg.synth, clvp_top=cfg.clvp_top, max_items=cfg.max_pairs, match_speech=cfg.match_speech)
        tr = CodeTrainer(model, cfg.lr * 0.3)
        accs = train_on_pairs(tr, view, cfg.finetune_steps, cfg.batch, cfg.crop_tokens, cfg.seed + 1, aug, writer,
                              "distill_clvp", ckpt=ckpt2)
        model = tr.commit()
        summary.update(filtered_pairs=len(view), finetune_train_acc=float(sum(accs[-50:]) / max(1, len(accs[-50:]))))
    save_dvae(model, out)
    write_json(out.with_suffix(".json"), summary)
    ckpt2.done()
    writer.close()
    return summary
