"""Config dataclasses <-> command-line flags, 1:1: one `--flag` per field (`--max-steps` <-> `max_steps`), so every
verb's defaults live in its dataclass and nowhere else."""

from __future__ import annotations

import argparse
import dataclasses
import typing


def add_config_args(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = (),
                    positional: tuple[str, ...] = (), help: dict[str, str] | None = None,
                    choices: dict[str, list[str]] | None = None) -> None:
    """Flags typed from the field annotations (Optional[X] -> X); bools as --x / --no-x."""
    help, choices = help or {}, choices or {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = hints[f.name]
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        if f.name in positional:
            parser.add_argument(f.name, help=help.get(f.name))
            continue
        flag = "--" + f.name.replace("_", "-")
        h = help.get(f.name, "") + (f" (default: {default})" if default not in (None, "") else "")
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=h)
        else:
            parser.add_argument(flag, dest=f.name, type=base, default=default, required=f.name in required, help=h,
                                choices=choices.get(f.name))


def config_from_args(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
