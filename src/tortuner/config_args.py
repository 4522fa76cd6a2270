"""Config dataclasses <-> command-line flags, 1:1: one `--flag` per field (`--max-steps` <-> `max_steps`), so every
verb's defaults, help and choices live in its dataclass and nowhere else.

    @dataclass
    class ExportConfig:
        out: str = arg("autoregressive.pth", "where to write the exported GPT")
        half: bool = arg(False, "store fp16 weights")
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any


def arg(default: Any = dataclasses.MISSING, help: str = "", choices: Sequence[str] | None = None,
        factory: Callable[[], Any] | None = None, parse: Callable[[str], Any] | None = None,
        metavar: str | None = None, bare: Any = None) -> Any:
    """A dataclass field carrying its flag's help text and choices (`factory` for mutable defaults).

    `parse` turns the flag's text into the value when the annotation's type cannot (e.g. `float_or_off`);
    `metavar` names the value in --help; `bare` is the value of the flag given without one (`--ray` = `--ray local`).
    """
    metadata = {"help": help, "choices": list(choices) if choices else None, "parse": parse, "metavar": metavar,
                "bare": bare}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def float_or_off(text: str) -> float | None:
    """A number, or `off` / `none` for None (a threshold flag that turns its check off)."""
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_args(parser: argparse.ArgumentParser, cls: type, required: tuple[str, ...] = (),
                    positional: tuple[str, ...] = ()) -> None:
    """Flags typed from the field annotations (Optional[X] -> X, list[X] -> several values); bools as --x / --no-x.

    `positional` fields become positional arguments (a list field takes one or more), `required` flags must be given.
    A field's `parse` (see `arg`) replaces its annotated type as the converter of the flag's text.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = _default(f)
        kind = hints[f.name]
        optional = typing.get_origin(kind) in (typing.Union, types.UnionType)  # X | None -> X (not list[X] -> X)
        base = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if optional else kind
        many = typing.get_origin(base) is list
        if many:
            base = typing.get_args(base)[0]
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse %-formats help strings
        choices = f.metadata.get("choices")
        parse = f.metadata.get("parse") or base
        metavar = f.metadata.get("metavar")
        if f.name in positional:
            parser.add_argument(f.name, help=help_text, type=parse, nargs="+" if many else None, choices=choices,
                                metavar=metavar)
            continue
        flag = "--" + f.name.replace("_", "-")
        h = help_text + (f" (default: {default})" if default not in (None, "", []) else "")
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=h)
        else:
            bare = f.metadata.get("bare")
            nargs = "+" if many else "?" if bare is not None else None
            parser.add_argument(flag, dest=f.name, type=parse, default=default, required=f.name in required, help=h,
                                choices=choices, nargs=nargs, metavar=metavar, **({"const": bare} if bare else {}))


def config_from_args(cls: type, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
