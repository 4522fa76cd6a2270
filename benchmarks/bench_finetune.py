"""One full-size UnifiedVoice (TorToiSe's GPT, random weights) training step on CPU: time and peak memory,
with and without gradient checkpointing, side by side.

Each setting runs in its own subprocess (peak RSS is per process). A step is what `tortuner finetune` does per
optimizer step with --grad-accum 1: conditioning + teacher-forced forward, 0.01 text CE + mel CE, backward, grad clip,
AdamW. The batch is the longest DL-Art-School allows: 255995-sample clips (250 codes) with ~200 BPE text tokens.
The first step also allocates AdamW's state, so the second step's time is the one reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def one_setting(batch: int, checkpointing: bool, threads: int, steps: int) -> dict:
    from tortuner.models.gpt_data import GPTExample, collate, gpt_losses, total_loss
    from tortuner.models.tortoise import GPTConfig, build_gpt
    from tortuner.training import param_groups

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = GPTConfig()
    gpt = build_gpt(cfg).train()
    if checkpointing:
        gpt.gpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        gpt.gpt.config.use_cache = False
    opt = torch.optim.AdamW(param_groups(gpt, 0.01), lr=1e-5, betas=(0.9, 0.96))
    wav = 255995
    ex = [GPTExample(text=torch.randint(1, 255, (200,)), codes=torch.randint(0, 8192, (wav // 1024 + 1,)),
                     wav_length=wav, cond_mels=torch.randn(2, 80, 44000 // 256 + 1)) for _ in range(batch)]
    b = collate(ex, cfg.stop_mel_token)
    base = rss_mb()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        lt, lm = gpt_losses(gpt, b)
        total_loss(lt, lm).backward()
        torch.nn.utils.clip_grad_norm_(gpt.parameters(), 4.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"batch": batch, "checkpointing": checkpointing, "params_M": sum(p.numel() for p in gpt.parameters()) / 1e6,
            "step_s": times[-1], "first_step_s": times[0], "peak_rss_gb": peak / 1024,
            "step_peak_over_model_gb": (peak - base) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one_setting(args.batch, args.child == "on", args.threads, args.steps)))
        return
    rows = []
    for mode in ("off", "on"):
        out = subprocess.run([sys.executable, __file__, "--child", mode, "--batch", str(args.batch), "--threads",
                              str(args.threads), "--steps", str(args.steps)], capture_output=True, text=True)
        if out.returncode != 0:
            sys.exit(f"benchmark child ({mode}) failed: {out.stderr.strip().splitlines()[-1:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    off, on = rows
    print(f"full-size UnifiedVoice ({off['params_M']:.0f}M params), batch {args.batch}, 250 codes + 200 text tokens, "
          f"{args.threads} CPU threads, AdamW")
    print(f"{'':34s}{'no checkpointing':>18s}{'checkpointing':>16s}{'ratio':>8s}")
    for key, label in (("step_s", "step time (s, 2nd step)"), ("first_step_s", "first step (s, allocates AdamW)"),
                       ("peak_rss_gb", "peak RSS (GB)"), ("step_peak_over_model_gb", "peak above model+batch (GB)")):
        print(f"{label:34s}{off[key]:18.2f}{on[key]:16.2f}{on[key] / off[key]:8.2f}")


if __name__ == "__main__":
    main()
