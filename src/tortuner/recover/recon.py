"""`recover recon`: fine-tune the whole dVAE by reconstruction on real speech, keeping token agreement.

Objective per step: MSE(decoder(quantised encoder(real mel)), real mel) + 0.25 commitment (straight-through,
codebook frozen: the tokens keep their meaning) + `anchor_weight` x CE on synthetic pairs (the distillation loss,
so the encoder cannot drift to whatever reconstructs best) + optionally `pseudo_weight` x CE on GPT-guided
pseudo-labels of the real speech (tortuner's improvement, see recover/pseudo.py). Drift = fraction of tokens of
the real speech that changed during the stage.
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
from tortuner.errors import TortunerError
from tortuner.files import write_json
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs, save_dvae
from tortuner.recover.data import Augment, load_real, load_synth, mel_batch, pair_batch
from tortuner.recover.distill import CodeTrainer
from tortuner.recover.pseudo import labelled_pairs, pseudo_pairs
from tortuner.training import LoopCheckpoint, ScalarLog, checkpoint_seconds_arg


@dataclass
class ReconConfig:
    speech: str = arg("", "real speech manifest (public)")
    synth: str = arg("", "synth folder: synthetic pairs for the anchor loss")
    dvae: str = arg("decoder.pth", "the dVAE to fine-tune (`recover decoder`)")
    out: str = arg("dvae.pth", "where to write the fine-tuned dVAE")
    steps: int = arg(600, "training steps (split evenly over the pseudo-label rounds)")
    batch: int = arg(16, "crops per step")
    crop_frames: int = arg(128, "mel frames per crop")
    lr: float = arg(3e-4, "peak AdamW learning rate")
    recon_weight: float = arg(1.0, "weight of the reconstruction MSE (+ commitment) on real speech")
    # measured: 1.0 let 71 % of tokens drift on the tiny world, 10.0 39 %
    anchor_weight: float = arg(10.0, "weight of the distillation loss on synthetic pairs (keeps the tokens' meaning)")
    commitment_weight: float = arg(0.25, "weight of the commitment loss")
    pseudo_weight: float = arg(0.0, "> 0: add GPT-guided pseudo-labels of the real speech (needs --models)")
    models: str = arg("", "public models folder (the GPT of the pseudo-labels)")
    pseudo_lambda: float = arg(1.0, "weight of the GPT's log-probability against the encoder's")
    pseudo_k: int = arg(5, "candidate codes per position (the encoder's top k)")
    pseudo_beams: int = arg(4, "beam width of the pseudo-label search")
    pseudo_rounds: int = arg(1, "relabel with the improved encoder this many times (steps split evenly)")
    match_bands: bool = arg(False, "moment-match the anchor's synthetic mels to the real speech (see recover.data)")
    anchor_decay: float = arg(1.0, "anchor weight x this after every round (synthetic labels are noisy: trust fades)")
    seed: int = arg(0, "seed")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    checkpoint_seconds: float = checkpoint_seconds_arg("run")


@torch.no_grad()
def tokens_of(model, mels: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each mel's (80, T) tokens (ceil(T/4),)."""
    return [model.tokenize(m[None])[0] for m in mels]


def run_recon(cfg: ReconConfig) -> dict:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.recon_weight <= 0 and cfg.anchor_weight <= 0 and cfg.pseudo_weight <= 0:
        raise TortunerError("recover recon: --recon-weight, --anchor-weight and --pseudo-weight are all 0: nothing "
                            "to train")
    torch.manual_seed(cfg.seed)
    model = load_dvae(cfg.dvae)
    real = load_real(cfg.speech)
    mels = [c.mel for c in real]
    pairs = load_synth(cfg.synth, match_speech=cfg.speech if cfg.match_bands else "") if cfg.anchor_weight > 0 else []
    before = tokens_of(model.eval(), mels)
    rng, g, aug = random.Random(cfg.seed), torch.Generator().manual_seed(cfg.seed), Augment()
    tr = CodeTrainer(model, cfg.lr, train_codebook=False)
    tr.opt = torch.optim.AdamW(list(model.encoder.parameters()) + list(model.decoder.parameters()), lr=cfg.lr)
    writer = SummaryWriter(str(Path(cfg.out).parent / "tb"))
    gpt = None
    if cfg.pseudo_weight > 0:
        gpt = load_tortoise_model(cfg.models, "gpt").eval()
        cond_samples = cond_samples_of(model_configs(cfg.models))
    rounds = max(1, cfg.pseudo_rounds) if gpt is not None else 1
    steps = cfg.steps // rounds
    summary: dict = {"real_clips": len(real)}
    # beyond the models and generators, a resumed run needs the current round's labels and the last recon MSE
    # (and, while a round is being labelled, the labels found so far: `partial`, of round `partial_round`)
    extra: dict = {"round": -1, "labels": [], "rec": 0.0, "changed": {}, "partial_round": -1, "partial": {}}
    ckpt = LoopCheckpoint.beside(cfg.out, cfg)
    start = ckpt.resume(model=model, opt=tr.opt, rng=rng, gen=g, extra=extra)
    pseudo: list = []
    log = ScalarLog(writer, "recon")
    for gstep in tqdm(range(start, steps * rounds), desc="recon", leave=False, initial=start, total=steps * rounds):
        rnd, step = divmod(gstep, steps)
        if step == 0 or gstep == start:  # a round starts (or resumes): its labels, its log offset
            if gpt is not None and extra["round"] != rnd:
                def keep(found: dict, rnd: int = rnd, at: int = gstep) -> None:  # a kill mid-labelling keeps these
                    extra.update(partial_round=rnd, partial=found)
                    ckpt.save_if_due(at)

                pseudo, changed = pseudo_pairs(model.eval(), gpt, real, cond_samples, cfg.pseudo_lambda,
                                               cfg.pseudo_k, cfg.pseudo_beams, cfg.seed + rnd,
                                               labelled=extra["partial"] if extra["partial_round"] == rnd else None,
                                               on_batch=keep)
                extra.update(round=rnd, labels=[p.tokens for p in pseudo], partial_round=-1, partial={})
                extra["changed"][str(rnd)] = changed
                ckpt.save(gstep)  # labelling a round takes a while: do not redo it after a kill
            elif gpt is not None:
                pseudo = labelled_pairs(real, extra["labels"])
            log = ScalarLog(writer, "recon", offset=rnd * steps)
            model.train()
        loss = torch.zeros(())
        if cfg.recon_weight > 0:  # 0: pure self-training, the decoder stays as it is
            x = mel_batch(mels, cfg.batch, cfg.crop_frames, rng)
            recon, commit, _ = model(x, update_codebook=False)
            rec_loss = F.mse_loss(recon, x) + cfg.commitment_weight * commit
            extra["rec"] = rec_loss.item()
            loss = cfg.recon_weight * rec_loss
        if pairs:
            m, t = pair_batch(pairs, cfg.batch, cfg.crop_frames // 4, rng)
            loss = loss + cfg.anchor_weight * cfg.anchor_decay**rnd * tr.loss(aug(m, g), t)[0]
        if pseudo:
            m, t = pair_batch(pseudo, cfg.batch, cfg.crop_frames // 4, rng)
            loss = loss + cfg.pseudo_weight * tr.loss(m, t)[0]
        tr.step(loss, step / max(1, steps))
        log(step, loss=loss.item(), **({"mse": extra["rec"]} if cfg.recon_weight > 0 else {}))
        ckpt.save_if_due(gstep + 1)
    summary.update({f"pseudo_changed_round{r}": c for r, c in extra["changed"].items()})
    model.eval()
    after = tokens_of(model, mels)
    total = sum(b.numel() for b in before)
    summary["drift"] = float(sum(int((a != b).sum()) for a, b in zip(after, before)) / max(1, total))
    if cfg.recon_weight > 0:
        summary["recon_mse_final"] = extra["rec"]
    save_dvae(model, cfg.out)
    write_json(Path(cfg.out).with_suffix(".json"), summary)
    ckpt.done()
    writer.close()
    return summary
