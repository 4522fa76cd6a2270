"""Can the public renderer pick the right code among the encoder's top-k? (measured: no, kept as a negative result)

Backs docs/recovery.md, "Why top-1 stays near 0.5", "Analysis by synthesis barely helps": on the tiny world
(8 clips, 794 tokens) re-picking each position among the encoder's top-5 lowers top-1 from 0.531 to 0.432; with the
encoder's log-probability added (alpha 0.2) 0.544, within noise; the teacher's code is in the top-5 91 % of the time.

    .venv/bin/python experiments/analysis_by_synthesis.py --world worlds/tiny --dvae runs/tiny/dvae.pth

For held-out clips: start from a recovered encoder's argmax codes; for every 4th position (4 interleaved phases,
other positions fixed) try each of the encoder's top-k codes, render all k sequences (teacher-forced GPT latents
-> renderer) and keep, per position, the code whose rendering is closest (L1, +-4 frames) to the real clip's
univnet mel, minus alpha x encoder log-probability. Top-1 agreement with the hidden teacher before and after.
"""

from __future__ import annotations

import argparse
import random

import torch

from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.lab.report import manifest_examples
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_renderer, load_tortoise_model, model_configs
from tortuner.models.gpt_data import GPTExample, collate
from tortuner.models.renderer import output_frames


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", required=True)
    ap.add_argument("--dvae", required=True)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    w = WorldPaths(args.world)
    gpt, ren = load_tortoise_model(w.models, "gpt").eval(), load_renderer(w.models).eval()
    dvae = load_dvae(args.dvae).eval()
    mel, umel = DvaeMel(), UnivNetMel()
    cs = cond_samples_of(model_configs(w.models))
    rows = [r for r in load_manifest(w.eval) if r["text"]][: args.clips]
    examples = manifest_examples(rows, mel, cs, random.Random(0))

    def render(ex: GPTExample, codes: torch.Tensor) -> torch.Tensor:
        b = collate([GPTExample(ex.text, c, c.numel() * 1024, ex.cond_mels) for c in codes], gpt.stop_mel_token)
        lat = gpt(gpt.get_conditioning(b["cond_mels"]), b["text"], b["text_lengths"], b["codes"], b["wav_lengths"],
                  return_latent=True)
        return ren(lat, ex.cond_mels[None].expand(codes.shape[0], *ex.cond_mels.shape))

    k = args.k
    hits = {"encoder argmax": 0, **{f"renderer-picked, alpha {a}": 0 for a in args.alphas}, f"teacher in top-{k}": 0}
    n = 0
    with torch.no_grad():
        for r, ex in zip(rows, examples):
            wav = load_audio(r["audio"], DVAE_SR)
            m = mel(wav[None])
            real = torch.tensor(r["tokens"])[: m.shape[-1] // 4]
            N = real.numel()
            target = umel(torch.from_numpy(resample(wav.numpy(), DVAE_SR, UNIVNET_SR))[None])[0]
            top = dvae.logits(m[:, :, : 4 * N])[0].log_softmax(-1).topk(k, -1)
            hits["encoder argmax"] += int((top.indices[:, 0] == real).sum())
            hits[f"teacher in top-{k}"] += int((top.indices == real[:, None]).any(-1).sum())
            n += N
            edges = [output_frames(t) for t in range(N + 1)]
            nf = min(edges[-1], target.shape[1])
            for a in args.alphas:
                cur = top.indices[:, 0].clone()
                for _ in range(args.iters):
                    for phase in range(4):
                        pos = torch.arange(phase, N, 4)
                        cands = cur[None].repeat(k, 1)
                        cands[:, pos] = top.indices[pos].t()
                        err = (render(ex, cands)[:, :, :nf] - target[None, :, :nf]).abs().mean(1)
                        e = torch.stack([err[:, max(0, edges[t] - 4) : min(nf, edges[t + 1] + 4)].mean(1)
                                         if edges[t] < nf else torch.zeros(k) for t in pos.tolist()], 1)
                        pick = (e - a * top.values[pos].t()).argmin(0)
                        cur[pos] = top.indices[pos].gather(1, pick[:, None])[:, 0]
                hits[f"renderer-picked, alpha {a}"] += int((cur == real).sum())
    print(f"{w.root} {args.dvae}: top-1 agreement with the hidden teacher on {n} held-out tokens")
    for name, h in hits.items():
        print(f"  {name:28s} {h / n:.3f}")


if __name__ == "__main__":
    main()
