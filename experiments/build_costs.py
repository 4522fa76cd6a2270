"""Where a lab build's time goes, and what the speed-ups in it buy, measured side by side in one run.

Backs docs/lab.md, "Where the time goes" (the table of seconds per training step at 1 / 2 threads / bf16; a 2-block
conditioning-encoder GPT step 0.77x a 6-block one; "Fused GELU": 0.83x `gelu_new`; bf16 no steady gain for the GPT;
the renderer latents, univnet mel and batched tokenizer speed-ups), docs/lab.md, "Measured" ("Without native bf16":
emulated bf16 steps 10-15x float32, the stage inputs 25.9 s / 74.2 s; the 4608 training clips loaded in 24.3 s) and
"Measured and not taken" (one conditioning clip per line: 0.89x); the comments on `models.tortoise.use_fused_gelu`
and `lab.train.gpt_latents`.

    .venv/bin/python experiments/build_costs.py worlds/small [--steps 40] [--clips 300]

On a built world (its training clips and public GPT), prints:
- the seconds the GPT and renderer stages spend preparing their inputs (clips + teacher tokens; latents + mels), and
  what the dVAE mels the teacher stage computes add to loading its clips;
- seconds per training step of the teacher dVAE, the GPT and the renderer at 1 and 2 torch threads, in float32 and
  under bfloat16 autocast as `lab build --mixed-precision bf16` trains the teacher and the renderer (the GPT, which
  the build keeps in float32, as `train_gpt(bf16=True)` would train it): is the second core or lower precision worth
  it?
- the share of the stock conditioning encoder in a GPT step (float32 and bf16), and a GPT step of the world against
  variants, the contestants alternating batch by batch: the stock 6-block conditioning encoder, the stock `gelu_new`
  activation (`models.tortoise.use_fused_gelu`), one conditioning clip per line instead of two, the step under bf16;
- renderer latents for `--clips` clips: the stock `UnifiedVoice.forward` one clip at a time vs
  `lab.train.gpt_latents` (left-padded batches), with the largest difference between the two, and the batched
  latents under bf16 autocast (time and relative difference);
- the 24 kHz univnet mel of the same clips: TorToiSe's `TacotronSTFT` vs `audio.mel.UnivNetMel`;
- teacher tokens of the clips (with the tail): one clip at a time vs `Tokenizer.tokenize_training_wavs` (batched),
  equal?

Nothing of the world is changed; the models trained here are fresh and thrown away.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from transformers.activations import NewGELUActivation

from tortuner.audio.io import resample
from tortuner.audio.mel import DVAE_SR, SAMPLES_PER_TOKEN, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.lab import train
from tortuner.lab.build import WorldBuilder, speech_clips
from tortuner.models.checkpoints import load_dvae, load_tortoise_model
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.gpt_data import collate, gpt_losses, total_loss
from tortuner.models.renderer import Renderer
from tortuner.models.tokenizer import Tokenizer
from tortuner.models.tortoise import build_gpt
from tortuner.training import autocast, set_dropout


def _per_step(fn, steps: int, bf16: bool, warmup: int) -> float:
    if warmup:
        fn(warmup, bf16)  # allocator, oneDNN kernels
    t = time.perf_counter()
    fn(steps, bf16)
    return (time.perf_counter() - t) / steps


def _gpt_split(clips: list[train.WorldClip], by_speaker: dict[str, list[train.WorldClip]], s, steps: int,
               warmup: int) -> None:
    """Share of the conditioning encoder in a GPT training step, float32 and bf16; the world's GPT against variants."""
    rng, mel = random.Random(0), DvaeMel()
    model = build_gpt(s.model_configs()["gpt"])
    set_dropout(model, s.gpt_dropout)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    batches = [collate([train.gpt_example(c, by_speaker[c.speaker], mel, s.cond_samples, rng, 2)
                        for c in rng.choices(clips, k=s.gpt_batch)], model.stop_mel_token) for _ in range(steps)]

    def clips_of(b: dict, n: int = 2) -> dict:  # the first n of a line's two conditioning clips
        return {**b, "cond_mels": b["cond_mels"][:, :n]}

    def whole(b: dict) -> torch.Tensor:
        return total_loss(*gpt_losses(model, clips_of(b)))

    def conditioning(b: dict) -> torch.Tensor:
        return model.get_conditioning(clips_of(b)["cond_mels"]).square().mean()

    def step(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def steps_of(loss_fn):
        def run(n: int, bf16: bool) -> None:
            for b in batches[:n]:
                with autocast(bf16):
                    loss = loss_fn(b)
                step(loss, opt)
        return run

    row = {(name, bf16): _per_step(steps_of(fn), steps, bf16, warmup)
           for name, fn in (("whole step", whole), ("conditioning encoder", conditioning)) for bf16 in (False, True)}
    # The world's GPT against variants: the stock 6-block conditioning encoder, transformers' `gelu_new` instead of
    # the fused GELU `build_gpt` installs, one conditioning clip per line instead of two, and the whole step under
    # bf16 autocast. Steps alternate between the contestants batch by batch, so that the machine's drifting speed
    # falls on all alike.
    def variant(blocks: int = s.gpt_cond_blocks, stock_gelu: bool = False) -> torch.nn.Module:
        m = build_gpt(dataclasses.replace(s.model_configs()["gpt"], conditioning_blocks=blocks))
        if stock_gelu:
            for block in m.gpt.h:
                block.mlp.act = NewGELUActivation()
        set_dropout(m, s.gpt_dropout)  # as the build trains it
        return m

    contestants = {"world": (variant(), False, 2), "6 blocks": (variant(6), False, 2),
                   "gelu_new": (variant(stock_gelu=True), False, 2), "1 cond clip": (variant(), False, 1),
                   "bf16": (variant(), True, 2)}
    opts = {n: torch.optim.AdamW(m.parameters(), 1e-4) for n, (m, _, _) in contestants.items()}
    spent, untimed = dict.fromkeys(contestants, 0.0), min(warmup, 1)  # alternating: one batch warms up all
    for i, b in enumerate(batches):
        for n, (m, bf16, n_clips) in contestants.items():
            t = time.perf_counter()
            with autocast(bf16):
                loss = total_loss(*gpt_losses(m, clips_of(b, n_clips)))
            step(loss, opts[n])
            if i >= untimed:
                spent[n] += time.perf_counter() - t
    per = {n: t / (len(batches) - untimed) for n, t in spent.items()}
    print(f"GPT step, contestants alternating: the world's ({s.gpt_cond_blocks} conditioning blocks, 2 conditioning "
          f"clips, fused GELU, float32) {per['world']:.4f} s; " + ", ".join(
              f"{n} {per[n]:.4f} s (world / {n} {per['world'] / per[n]:.2f}x)" for n in per if n != "world"))
    (whole, whole_bf16), (cond, cond_bf16) = ((row[name, False], row[name, True])
                                              for name in ("whole step", "conditioning encoder"))
    print(f"GPT step (2 threads, pre-collated batches): whole {whole:.4f} s, conditioning encoder alone {cond:.4f} s "
          f"({cond / whole:.0%}); under bf16 {whole_bf16:.4f} s and {cond_bf16:.4f} s")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--steps", type=int, default=40, help="steps per figure")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before each figure; the GPT contestants, "
                    "alternating, leave only their first batch untimed (none with --warmup 0)")
    ap.add_argument("--clips", type=int, default=300)
    args = ap.parse_args(argv)
    builder = WorldBuilder.open(args.world)
    s, writer = builder.size, SummaryWriter(tempfile.mkdtemp())
    t = time.perf_counter()
    clips = builder.training_clips()
    t_clips = time.perf_counter() - t
    gpt = load_tortoise_model(builder.paths.models, "gpt")
    rng = random.Random(0)
    t = time.perf_counter()
    items = builder.renderer_items(clips, gpt, rng)[:200]  # all of them timed, 200 kept for the renderer steps
    t_items = time.perf_counter() - t
    print(f"{args.world}: stage inputs (not training): {len(clips)} training clips loaded with teacher tokens "
          f"{t_clips:.1f} s (GPT stage), the renderer's inputs (GPT latents, univnet mels) {t_items:.1f} s")
    t = time.perf_counter()
    speech_clips(builder.paths.teacher_speech)
    t_plain = time.perf_counter() - t
    t = time.perf_counter()
    teacher_clips = speech_clips(builder.paths.teacher_speech, builder.mel)  # the teacher trains on mels
    t_mel = time.perf_counter() - t
    print(f"{len(teacher_clips)} teacher-speech clips loaded in {t_plain:.1f} s, with their dVAE mels {t_mel:.1f} s "
          "(only the teacher stage computes the mels)")

    def teacher(n: int, bf16: bool) -> None:
        dvae = DiscreteVAE(DVAEConfig(num_tokens=s.num_codes, codebook_dim=s.codebook_dim, hidden_dim=s.dvae_hidden,
                                      num_resnet_blocks=s.dvae_blocks))
        train.train_teacher(teacher_clips, dvae, n, s.batch, 256, writer, 0, bf16=bf16)

    def gpt_steps(n: int, bf16: bool) -> None:
        model = build_gpt(s.model_configs()["gpt"])
        set_dropout(model, s.gpt_dropout)
        train.train_gpt(clips, model, n, s.gpt_batch, s.cond_samples, writer, 0, lr=s.gpt_lr, bf16=bf16)

    def renderer(n: int, bf16: bool) -> None:
        train.train_renderer(items, Renderer(s.model_configs()["renderer"]), n, s.batch, 48, writer, 0, bf16=bf16)

    print(f"{args.world} ({builder.cfg.size}): seconds per training step")
    print(f"{'model':10s} {'1 thread':>10s} {'2 threads':>10s} {'2 thr bf16':>11s}  2 threads / 1  bf16 / fp32")
    for name, fn in (("teacher", teacher), ("GPT", gpt_steps), ("renderer", renderer)):
        row = []
        for threads, bf16 in ((1, False), (2, False), (2, True)):
            torch.set_num_threads(threads)
            try:
                row.append(_per_step(fn, args.steps, bf16, args.warmup))
            except RuntimeError as e:  # e.g. an op without a bfloat16 kernel
                print(f"  ({name} under bf16 failed: {str(e).splitlines()[0][:80]})")
                row.append(float("nan"))
        print(f"{name:10s} {row[0]:10.4f} {row[1]:10.4f} {row[2]:11.4f}  {row[1] / row[0]:13.2f}  "
              f"{row[2] / row[1]:10.2f}")

    torch.set_num_threads(2)
    by_speaker = train.group_by_speaker(clips)
    _gpt_split(clips, by_speaker, s, args.steps, args.warmup)

    sample = clips[: args.clips]
    mel = DvaeMel()
    examples = [train.gpt_example(c, by_speaker[c.speaker], mel, s.cond_samples, rng) for c in sample]
    t = time.perf_counter()
    alone = []
    with torch.no_grad():
        for ex in examples:
            codes = ex.codes[: ex.wav_length // SAMPLES_PER_TOKEN]
            alone.append(gpt(gpt.get_conditioning(ex.cond_mels[None]), ex.text[None], torch.tensor([ex.text.numel()]),
                             codes[None], torch.tensor([codes.numel() * SAMPLES_PER_TOKEN]), return_latent=True)[0])
    t_alone = time.perf_counter() - t
    t = time.perf_counter()
    batched = train.gpt_latents(gpt, examples)
    t_batched = time.perf_counter() - t
    t = time.perf_counter()
    with autocast(True):  # were a bf16 world's build to compute them so (it does not: see docs/lab.md)
        low = [lat.float() for lat in train.gpt_latents(gpt, examples)]
    t_low = time.perf_counter() - t
    diff = max(float((a - b).abs().max()) for a, b in zip(alone, batched))
    rel = float(torch.cat([a - b for a, b in zip(batched, low)]).norm() / torch.cat(batched).norm())
    print(f"\nlatents of {len(sample)} clips (2 threads): stock forward one at a time {t_alone:.1f} s, batched "
          f"{t_batched:.1f} s ({t_alone / t_batched:.1f}x); largest difference {diff:.1e}; batched under bf16 "
          f"{t_low:.1f} s ({t_low / t_batched:.2f}x float32's), relative difference {rel:.1e}")

    umel = UnivNetMel()
    wavs24 = [torch.from_numpy(resample(c.wav.numpy(), DVAE_SR, UNIVNET_SR)) for c in sample]
    t = time.perf_counter()
    stock = [umel.stft.mel_spectrogram(w[None].clamp(-1, 1)) for w in wavs24]
    t_stock = time.perf_counter() - t
    t = time.perf_counter()
    ours = [umel(w) for w in wavs24]
    t_ours = time.perf_counter() - t
    diff = max(float((a - b).abs().max()) for a, b in zip(stock, ours))
    print(f"univnet mel of {len(sample)} clips: TacotronSTFT {t_stock:.1f} s, UnivNetMel {t_ours:.1f} s "
          f"({t_stock / t_ours:.1f}x); largest difference {diff:.1e}")

    dvae = load_dvae(builder.paths.teacher)
    t = time.perf_counter()
    with torch.no_grad():
        one = [dvae.tokenize(mel(F.pad(c.wav, (0, SAMPLES_PER_TOKEN)))[None])[0] for c in sample]
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    many = Tokenizer(dvae).tokenize_training_wavs([c.wav for c in sample])
    t_many = time.perf_counter() - t
    same = all(torch.equal(a, b) for a, b in zip(one, many))
    print(f"teacher tokens of {len(sample)} clips: one at a time {t_one:.1f} s, batched {t_many:.1f} s "
          f"({t_one / t_many:.1f}x); identical: {same}")


if __name__ == "__main__":
    main()
