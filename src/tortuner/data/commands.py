"""CLI verbs of the data stage: `tokenize` and `prepare`, one flag per field of their config dataclass."""

from __future__ import annotations

import argparse
import sys

from tortuner.config_args import add_config_args, config_from_args
from tortuner.data.prepare_config import PrepareConfig
from tortuner.data.prepare_run import run
from tortuner.data.tokenize import TokenizeConfig, tokenize_files
from tortuner.models.checkpoints import load_dvae


def _tokenize(args: argparse.Namespace) -> int:
    """Exit status 1 only when every file failed (nothing tokenized, something skipped)."""
    cfg = config_from_args(TokenizeConfig, args)
    dvae = load_dvae(cfg.dvae)  # a missing or wrong file is a one-line TortunerError
    n, skipped = tokenize_files(cfg, dvae)
    for msg in skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    print(f"tokenized {n} files" + (f", skipped {len(skipped)}" if skipped else "")
          + (f" -> {cfg.out}" if cfg.out else ""), file=sys.stderr)
    return 0 if n or not skipped else 1


def _prepare(args: argparse.Namespace) -> int:
    """Exit status 1 only when every input failed (none finished, some skipped)."""
    cfg = config_from_args(PrepareConfig, args)
    report = run(cfg)
    dropped = ", ".join(f"{k} {v['clips']}" for k, v in report["dropped"].items()) or "none"
    print(f"kept {report['kept']}/{report['candidates']} clips ({report['hours_kept'] * 60:.1f} of "
          f"{report['hours_input'] * 60:.1f} min); dropped: {dropped}; skipped inputs: {len(report['inputs_skipped'])}"
          f" -> {cfg.out}", file=sys.stderr)
    return 0 if report["inputs_done"] or not report["inputs_skipped"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="audio files/folders -> dVAE tokens (JSONL)",
                       description="Tokenize audio with a dVAE file (TorToiSe's dvae.pth or a recovered one). "
                                   'Writes one JSON line per file: {"audio": PATH, "tokens": [...]}.')
    add_config_args(p, TokenizeConfig, required=("dvae",), positional=("inputs",))
    p.set_defaults(func=_tokenize)
    p = sub.add_parser("prepare", help="long recordings -> clean, transcribed 5-20 s clips (LJSpeech layout)",
                       description="Split recordings on silences with silero-vad, keep 5-20 s clips, drop noisy, "
                                   "music, narrow-band, clipped, reverberant and multi-speaker clips (every score is "
                                   "kept in clips.jsonl), transcribe, and write an LJSpeech-style dataset. "
                                   "Rerunning resumes: finished inputs are skipped.")
    add_config_args(p, PrepareConfig, required=("out",), positional=("inputs",))
    p.set_defaults(func=_prepare)
