"""Where a lab teacher's training step goes on this CPU, and what oneDNN's convolutions are worth to it.

Backs docs/lab.md, "Measured" ("Without native bf16", "What bounds the teacher stage"): 84 % of a small teacher
step's CPU time is convolution forward and backward, and without oneDNN's convolutions a step takes 5.47x as long.

    .venv/bin/python experiments/teacher_step.py [--size small] [--steps 20]

Needs no world: builds the size's teacher dVAE and trains it on random mels of the build's batch shape (batch x 80
bands x 256 frames; a convolution costs the same whatever the values), with the build's loss and optimiser. Prints
the share of the step's CPU time in convolution forward and backward (torch.profiler), then the seconds per step
with PyTorch's oneDNN convolutions on and off, the two alternating step by step so the machine's drift hits both.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from tortuner.lab.sizes import SIZES
from tortuner.models.dvae import DiscreteVAE, DVAEConfig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args(argv)
    s = SIZES[args.size].build
    torch.manual_seed(0)
    model = DiscreteVAE(DVAEConfig(num_tokens=s.num_codes, codebook_dim=s.codebook_dim, hidden_dim=s.dvae_hidden,
                                   num_resnet_blocks=s.dvae_blocks))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    mel = torch.randn(s.batch, 80, 256)

    def step() -> None:
        recon, commit, _ = model(mel)
        loss = F.mse_loss(recon, mel) + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps // 2):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    print(f"{args.size} teacher step ({torch.get_num_threads()} threads): convolution forward + backward "
          f"{conv / total:.0%} of its CPU time")

    seconds = {True: 0.0, False: 0.0}
    for i in range(2 * args.steps):
        onednn = i % 2 == 0
        torch.backends.mkldnn.enabled = onednn
        t0 = time.perf_counter()
        step()
        seconds[onednn] += time.perf_counter() - t0
    torch.backends.mkldnn.enabled = True
    on, off = seconds[True] / args.steps, seconds[False] / args.steps
    print(f"seconds per step, alternating: oneDNN {on:.4f}, without {off:.4f} (without / with {off / on:.2f}x)")


if __name__ == "__main__":
    main()
