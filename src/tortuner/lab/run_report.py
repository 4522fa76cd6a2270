"""report.md + PNGs of a lab run (agreement vs training step and vs pairs; spectrogram with both token streams)."""

from __future__ import annotations

from pathlib import Path

import torch

from tortuner.files import write_text
from tortuner.models.dvae import DiscreteVAE
from tortuner.plots import figure
from tortuner.recover.data import RealClip


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


@torch.no_grad()
def write_report(out: Path, rep: dict, clip: RealClip, teacher: DiscreteVAE, recovered: DiscreteVAE) -> None:
    with figure(out / "agreement_vs_step.png", figsize=(6, 3.5)) as (fig, ax):
        if rep["curve"]:
            xs, ys = zip(*rep["curve"])
            ax.plot(xs, ys, marker="o", label="distill (held-out top-1)")
        ax.axhline(rep["agreement_top1"], color="g", ls="--", label="final top-1")
        ax.axhline(rep["baseline_matched_agreement_top1"], color="r", ls=":", label="baseline (matched)")
        if "oracle_agreement_top1" in rep:
            ax.axhline(rep["oracle_agreement_top1"], color="k", ls="-.", label="oracle student (teacher labels)")
        ax.set_xlabel("distill step"), ax.set_ylabel("agreement with teacher"), ax.legend(), ax.set_ylim(0, 1)

    pairs = rep.get("ablation", {}).get("pairs", [])
    with figure(out / "agreement_vs_pairs.png", figsize=(6, 3.5)) as (fig, ax):
        if pairs:
            ax.plot([p["pairs"] for p in pairs], [p["agreement_top1"] for p in pairs], marker="o")
            ax.set_xscale("log")
        else:
            ax.plot([rep["synth_pairs"]], [rep["stages"]["distill"]["agreement_top1"]], marker="o")
        ax.set_xlabel("synthetic pairs"), ax.set_ylabel("distill top-1 (held-out)"), ax.set_ylim(0, 1)

    n = min(clip.mel.shape[1] // 4, 60)
    mel = clip.mel[:, : 4 * n]
    t = teacher.tokenize(mel[None])[0]
    r = recovered.tokenize(mel[None])[0]
    with figure(out / "example_tokens.png", 2, 1, figsize=(12, 5), gridspec_kw={"height_ratios": [3, 1]},
                sharex=True) as (fig, axes):
        axes[0].imshow(mel.numpy(), origin="lower", aspect="auto", extent=(0, n, 0, 80))
        axes[0].set_title(f"held-out clip: {clip.text[:80]}")
        axes[1].set_xlim(0, n), axes[1].set_ylim(0, 2), axes[1].set_yticks([0.5, 1.5], ["recovered", "teacher"])
        for i in range(n):
            c = "black" if t[i] == r[i] else "red"
            axes[1].text(i + 0.5, 1.5, str(int(t[i])), ha="center", va="center", fontsize=6, rotation=90)
            axes[1].text(i + 0.5, 0.5, str(int(r[i])), ha="center", va="center", fontsize=6, rotation=90, color=c)
        axes[1].set_xlabel("token index (red = disagreement)")

    s = rep["stages"]
    lines = [
        "# Lab run: tokenizer recovery", "",
        f"World `{rep['world']}`, {rep['eval_clips']} held-out clips (unseen speakers), {rep['synth_pairs']} "
        "synthetic pairs.", "",
        "| tokenizer | top-1 | top-5 | NLL/token | NLL ratio | recon L1 |", "|---|---|---|---|---|---|",
        f"| hidden teacher | 1 | 1 | {rep['nll_teacher']:.3f} | 1 | {rep['recon_l1_teacher']:.3f} |",
    ]
    for name, label in (("distill", "distill"), ("decoder", "+ decoder pre-train"), ("recon", "+ recon (the proposal)"),
                        ("improved", "decoder + self-training on GPT-guided labels (tortuner)")):
        m = s[name]
        lines.append(f"| {label} | {m['agreement_top1']:.3f} | {m['agreement_top5']:.3f} | {m['nll']:.3f} | "
                     f"{m['nll_ratio']:.3f} | {m['recon_l1']:.3f} |")
    lines += [
        f"| **final** (`dvae.pth`, selected by the public GPT gain: {rep['selected']}) | "
        f"**{rep['agreement_top1']:.3f}** | {rep['agreement_top5']:.3f} | {rep['nll_recovered']:.3f} | "
        f"**{rep['nll_ratio']:.3f}** | {rep['recon_l1_recovered']:.3f} |",
        f"| fresh VQ-VAE baseline | {rep['baseline_agreement_top1']:.3f} (matched: "
        f"{rep['baseline_matched_agreement_top1']:.3f}) | – | – | {rep['baseline_nll_ratio']:.3f} | – |",
        f"| oracle student (the same student on real speech with the teacher's labels; hidden, a ceiling) | "
        f"{_num(rep.get('oracle_agreement_top1'))} | {_num(rep.get('oracle_agreement_top5'))} | – | – | – |", "",
        f"Chance top-1: {rep['chance_top1']:.4f}. Drift of recon: {_num(s['recon'].get('drift'))}, improved: "
        f"{_num(s['improved'].get('drift'))}.", "",
        "![agreement vs step](agreement_vs_step.png)", "", "![agreement vs pairs](agreement_vs_pairs.png)", "",
        "![tokens](example_tokens.png)", "",
    ]
    if "ablation" in rep:
        a = rep["ablation"]
        lines += ["## Ablation", "", "| pairs | distill top-1 | NLL ratio |", "|---|---|---|"]
        lines += [f"| {p['pairs']} | {p['agreement_top1']:.3f} | {p['nll_ratio']:.3f} |" for p in a["pairs"]]
        lines += ["", f"- CLVP filtering: with {a['with_clvp_filter_top1']:.3f}, without "
                      f"{a['without_clvp_filter_top1']:.3f}",
                  f"- decoder pre-training before recon: with {a['recon_with_decoder_pretrain_top1']:.3f}, without "
                  f"{a['recon_without_decoder_pretrain_top1']:.3f}; no recon at all: {a['without_recon_top1']:.3f}", ""]
    lines += ["Stage seconds: " + ", ".join(f"{k} {v}" for k, v in rep["stage_seconds"].items()), ""]
    write_text(out / "report.md", "\n".join(lines))
