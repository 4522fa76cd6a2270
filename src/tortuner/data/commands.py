"""CLI verbs of the data stage: `tokenize` and `prepare`."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from tortuner.data.tokenize import TokenizeConfig, tokenize_files
from tortuner.models.checkpoints import load_dvae


def _tokenize(args: argparse.Namespace) -> int:
    cfg = TokenizeConfig(dvae=args.dvae, inputs=args.inputs, out=args.out, device=args.device, batch_files=args.batch_files)
    dvae = load_dvae(cfg.dvae)  # a missing or wrong file is a one-line TortunerError
    n, skipped = tokenize_files(cfg, dvae)
    for msg in skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    print(f"tokenized {n} files" + (f", skipped {len(skipped)}" if skipped else "") + (f" -> {cfg.out}" if cfg.out else ""),
          file=sys.stderr)
    return 0 if n or not skipped else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="audio files/folders -> dVAE tokens (JSONL)",
                       description="Tokenize audio with a dVAE file (TorToiSe's dvae.pth or a recovered one). "
                                   'Writes one JSON line per file: {"audio": PATH, "tokens": [...]}.')
    p.add_argument("inputs", nargs="+", metavar="AUDIO_OR_DIR")
    p.add_argument("--dvae", required=True, help="dVAE state dict (DL-Art-School layout), e.g. dvae.pth")
    p.add_argument("--out", default=None, help="output JSONL (default: stdout); an existing one is resumed")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-files", type=int, default=TokenizeConfig.batch_files)
    p.set_defaults(func=_tokenize)
    if importlib.util.find_spec("tortuner.data.prepare_cli"):
        from tortuner.data import prepare_cli

        prepare_cli.register(sub)  # `prepare`
