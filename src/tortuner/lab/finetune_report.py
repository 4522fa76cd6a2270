"""The fine-tune section of a lab run's report.md, and its plot: one row per fine-tuned GPT, the NLL of the hidden
teacher's tokens and what a user hears (`lab.outcome`), then the share of the teacher's gain the recovered tokens keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tortuner.files import write_text
from tortuner.plots import figure

MD_START, MD_END = "<!-- finetune:start -->", "<!-- finetune:end -->"
ROWS = (("base", "none", "no fine-tune"), ("oracle", "teacher", "fine-tuned on the teacher's tokens (oracle)"),
        ("recovered", "recovered", "fine-tuned on recovered tokens"))
OUTCOME_COLUMNS = (("wer", "WER", "{:.3f}"), ("speaker_sim", "speaker sim.", "{:.3f}"),
                   ("stop_rate", "stops", "{:.2f}"), ("length_ratio", "length / real", "{:.2f}"),
                   ("code_tv", "code TV", "{:.3f}"))


def _rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(nll key suffix, outcome key suffix, label) of every GPT the report has, levers included."""
    extra = [(k[len("finetune_nll_"):],) * 2 for k in r if k.startswith("finetune_nll_recovered_")]
    return list(ROWS) + [(n, o, f"fine-tuned on recovered tokens, {n.removeprefix('recovered_')}") for n, o in extra]


def _cell(r: dict[str, Any], key: str, fmt: str) -> str:
    v = r.get(key)
    return "–" if v is None else fmt.format(v)


def _yes_no(v: bool | None) -> str:
    return "–" if v is None else ("yes" if v else "**no**")


def section(r: dict[str, Any]) -> str:
    """The markdown between MD_START and MD_END; `r` holds the `finetune*` (and `outcome_*`) keys."""
    f = r["finetune"]
    outcome = "outcome_wer_none" in r
    head = "| GPT | NLL (nats/token) |" + ("".join(f" {label} |" for _, label, _ in OUTCOME_COLUMNS) if outcome else "")
    lines = [MD_START, "## Fine-tune experiment (new voice)", "",
             f"The public GPT fine-tuned on {f['train_clips']} clips of an unseen voice; scored on {f['val_clips']} "
             f"held-out clips ({f['val_codes']} codes) by the NLL of the hidden teacher's tokens"
             + (", and by its own generations of the held-out texts rendered through the public renderer (word error "
                "rate of pocketsphinx, speaker similarity to the real clips, share that stop by themselves, length "
                "against the real clip, total-variation distance of the generated codes' histogram to the voice's "
                "teacher codes). A measure the teacher's fine-tune does not move is no outcome measure on this world: "
                "no share is credited on it." if outcome else "."), "",
             head, "|---|---|" + ("---|" * len(OUTCOME_COLUMNS) if outcome else "")]
    for nll_key, out_key, label in _rows(r):
        row = f"| {label} | {_cell(r, f'finetune_nll_{nll_key}', '{:.4f}')} |"
        if outcome:
            row += "".join(f" {_cell(r, f'outcome_{m}_{out_key}', fmt)} |" for m, _, fmt in OUTCOME_COLUMNS)
        lines.append(row)
    if outcome:
        lines.append("| does the teacher's fine-tune move it? (90 % bootstrap over texts) | – |"
                     + "".join(f" {_yes_no(r.get(f'outcome_separates_{m}'))} |" for m, _, _ in OUTCOME_COLUMNS))
        lines.append("| share of the teacher's gain kept by recovered tokens | "
                     f"{_cell(r, 'finetune_kept', '{:.2f}')} |"
                     + "".join(f" {_cell(r, f'outcome_kept_{m}', '{:.2f}')} |" for m, _, _ in OUTCOME_COLUMNS))
    ratios = ", ".join(f"{k.removeprefix('finetune_ratio_')} {v:.4f}" for k, v in r.items()
                       if k.startswith("finetune_ratio_"))
    levers = f"; with levers: {ratios}" if ratios else ""
    lines += ["", f"**finetune_ratio** (recovered / oracle) = **{r['finetune_ratio']:.4f}** (target <= "
              f"{f['target_ratio']}: {'pass' if f['pass'] else 'FAIL'}){levers}"
              + f". Training-token agreement with the teacher {f['train_token_agreement']:.3f}.", "",
              "![fine-tune](finetune/finetune.png)", MD_END, ""]
    return "\n".join(lines)


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    """Put (or replace) the fine-tune section of a run's report.md."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    new = section(r)
    if MD_START in text and MD_END in text:
        text = text[: text.index(MD_START)] + new.rstrip("\n") + text[text.index(MD_END) + len(MD_END):]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + new
    write_text(path, text)


def write_plot(r: dict[str, Any], path: Path) -> None:
    """Bars of the teacher-token NLL of every GPT (and its WER and speaker similarity when measured)."""
    rows = _rows(r)
    panels = [("finetune_nll_{}", 0, "NLL of teacher tokens")]
    if "outcome_wer_none" in r:
        panels += [("outcome_wer_{}", 1, "word error rate"), ("outcome_speaker_sim_{}", 1, "speaker similarity")]
    colors = ["#999999", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    with figure(path, 1, len(panels), figsize=(4.5 * len(panels), 3.4), squeeze=False) as (fig, axes):
        for ax, (key, which, title) in zip(axes[0], panels):
            names = [row[which] for row in rows]
            values = [r.get(key.format(n)) or 0.0 for n in names]
            ax.bar(range(len(rows)), values, color=colors[: len(rows)])
            ax.set_xticks(range(len(rows)), [row[1] for row in rows], rotation=20, fontsize=8)
            ax.set_title(title)
            for i, v in enumerate(values):
                ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=8)
