"""`tortuner` command line: the verbs of every stage, from data preparation to the lab.

Each stage package registers its verbs from its `commands.py` (`register(subparsers)`, listed in VERB_MODULES);
a verb's flags are the fields of its config dataclass (`config_args`). Errors meant for users are
`TortunerError`s: printed on one line, exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tortuner.errors import TortunerError

# Stage modules that register verbs, in the order `tortuner --help` lists them.
VERB_MODULES = (
    "tortuner.data.commands",      # tokenize, prepare
    "tortuner.lab.commands",       # lab build, lab run, lab finetune
    "tortuner.synth.commands",     # synth
    "tortuner.recover.commands",   # recover distill|decoder|recon, eval tokenizer, baseline
    "tortuner.finetune.commands",  # finetune, export, speak
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tortuner", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and (name == e.name or name.startswith(e.name + ".")):  # stage not present in this install
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except TortunerError as e:
        print(f"tortuner: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only or missing output folder: the file and the problem, one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"tortuner: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tortuner: interrupted (finished outputs are kept; rerun to resume)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
