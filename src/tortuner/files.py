"""Atomic writes and safe checkpoint loading, shared by every stage.

Every artifact tortuner writes goes through `atomic_path`, so an interrupted job never leaves a half-written
file behind, and every torch checkpoint is read with `weights_only=True`, so a file cannot run code.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file

from tortuner.errors import TortunerError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:  # read-only or full file system: name the output, not the temporary
        raise OSError(e.errno, e.strerror, str(path)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o644)  # mkstemp makes owner-only files; outputs are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as e:
        if e.filename is None or Path(e.filename) == tmp_path:
            raise OSError(e.errno, e.strerror, str(path)) from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise TortunerError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TortunerError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise TortunerError(f"{path}: file not found")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise TortunerError(f"{path}:{i}: not valid JSON ({e.msg})") from None
    return rows


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Atomic `torch.save`. Serialised through a buffer so the bytes do not depend on the (temporary) file name:
    the same tensors always give the same file."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def torch_load(path: str | os.PathLike, what: str = "checkpoint", hint: str = "") -> Any:
    """`torch.load(weights_only=True)` on CPU with a one-line error naming the file when it is missing or corrupt."""
    path = Path(path)
    if path.is_dir():
        raise TortunerError(f"{path}: is a folder, not a {what} file")
    if not path.is_file():
        raise TortunerError(f"{path}: {what} not found" + (f" ({hint})" if hint else ""))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/corrupt/unsafe files
        raise TortunerError(f"{path}: cannot read {what}: {_load_problem(e)}") from None


def _load_problem(e: Exception) -> str:
    """torch.load's exception as the one thing a user needs to know (its messages run to paragraphs)."""
    text = str(e)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe:
        return (f"refused: loading it would call `{unsafe.group(1)}` (a pickle that runs code; tortuner loads only "
                "plain tensors, weights_only=True)")
    if "Weights only load failed" in text:
        return "not a PyTorch weights file (its pickle is not plain data; refused with weights_only=True)"
    if isinstance(e, EOFError) or "failed finding central directory" in text:
        return "empty or truncated file"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:200]


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise TortunerError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except Exception as e:
        raise TortunerError(f"{path}: cannot read safetensors file: {str(e)[:200]}") from None


def sha_file(path: str | os.PathLike, algo: str = "sha1") -> str:
    """Hex digest of a file's bytes, read in 1 MiB blocks (token caches and reports name dVAEs by it)."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
