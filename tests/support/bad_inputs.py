"""A bad-input corpus made on the fly (nothing binary is committed) and a runner that says how a verb met it.

Issue 27, part 2: every verb that reads user files must answer a bad file with one line naming the file and the
problem, keep processing the good items, and never show a traceback. `benchmarks/bad_input.py` runs the whole
verb x fault table (docs/reliability.md); `tests/reliability/test_bad_input.py` runs the fast
subset. The corpus itself is `support.bad_corpus`.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from support.bad_corpus import LONG, SEARCHED, USABLE


@dataclass
class Outcome:
    """How one CLI call went: exit status (None when an exception escaped `main`), its stderr, the traceback."""

    status: int | None
    stderr: str
    traceback: str = ""
    lines: list[str] = field(default_factory=list)  # stderr lines that are tortuner's own messages

    def names(self, path: Path) -> list[str]:
        """The message lines that name `path` (by its file name)."""
        return [ln for ln in self.lines if path.name in ln]


def run_cli(argv: list[str]) -> Outcome:
    """Run `tortuner ARGV` in this process, capturing stderr; an exception escaping `main` is a traceback."""
    from tortuner.cli import main

    err, out = io.StringIO(), io.StringIO()
    tb = ""
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status: int | None = main(argv)
        except SystemExit as e:
            status = int(e.code or 0)
        except BaseException:  # noqa: BLE001 - exactly what we are looking for
            status, tb = None, traceback.format_exc()
    text = err.getvalue() + out.getvalue()  # some verbs report on stdout (finetune's progress, eval's JSON)
    lines = []
    for ln in text.replace("\r", "\n").splitlines():
        at = [i for i in (ln.find("tortuner: error:"), ln.find("skipped: ")) if i >= 0]
        if at:  # the message, without a progress bar that shared its line
            lines.append(ln[min(at):].strip())
        elif ": " in ln and "it/s" not in ln and "%|" not in ln:
            lines.append(ln.strip())
    if "Traceback (most recent call last)" in text:
        tb = tb or text
    return Outcome(status, text, tb, lines)


# ------------------------------------------------------------------------------------------------ the verbs
@dataclass
class Kit:
    """What the verbs need besides the fault: good clips, a tiny dVAE, tiny stock models."""

    good: list[Path]   # real speech clips (22.05 kHz wavs)
    texts: list[str]   # their transcripts
    dvae: Path
    models: Path


@dataclass
class Verdict:
    ok: bool
    cell: str  # what the table shows: the message, or what went wrong


def judge(out: Outcome, bad: Path, good_kept: bool, must_name: bool, want_status: int = 0) -> Verdict:
    """The rule of issue 27: no traceback; the bad file named on one line (unless it is usable audio); the good
    items still processed; exit status as wanted."""
    if out.traceback:
        last = out.traceback.strip().splitlines()[-1]
        return Verdict(False, f"TRACEBACK: {last[:90]}")
    named = out.names(bad)
    if must_name and not named:
        return Verdict(False, f"not named (exit {out.status})")
    if out.status != want_status:
        return Verdict(False, f"exit {out.status}, wanted {want_status}: {(named or out.lines or [''])[-1][:90]}")
    if not good_kept:
        return Verdict(False, "good items lost")
    msg = named[0] if named else "accepted"
    return Verdict(True, msg.replace(str(bad.parent) + "/", "").removeprefix("tortuner: error: ")[:110])


def _folder(d: Path, kit: Kit, bad_source: Path | None) -> tuple[Path, Path | None]:
    """`d/in` with the good clips and the bad file (moved in under its own name)."""
    import shutil

    folder = d / "in"
    folder.mkdir(parents=True)
    for i, g in enumerate(kit.good):
        shutil.copy(g, folder / f"good_{i}.wav")
    if bad_source is None:
        return folder, None
    bad = folder / bad_source.name
    shutil.move(str(bad_source), bad)
    return folder, bad


def tokenize_case(kit: Kit, d: Path, bad_source: Path, fault: str) -> Verdict:
    import json

    folder, bad = _folder(d, kit, bad_source)
    out = run_cli(["tokenize", "--dvae", str(kit.dvae), "--out", str(d / "tokens.jsonl"), str(folder)])
    tokens = d / "tokens.jsonl"
    rows = [json.loads(x) for x in tokens.read_text().splitlines()] if tokens.is_file() else []
    good = {str(folder / f"good_{i}.wav") for i in range(len(kit.good))} <= {r["audio"] for r in rows}
    return judge(out, bad, good, fault not in USABLE | SEARCHED)


def prepare_case(kit: Kit, d: Path, bad_source: Path, fault: str) -> Verdict:
    import json

    folder, bad = _folder(d, kit, bad_source)
    out = run_cli(["prepare", str(folder), "--out", str(d / "ds"), "--min-seconds", "3", "--max-speaker-change", "off",
                   "--workers", "1"])
    clips = [json.loads(x) for x in (d / "ds" / "clips.jsonl").read_text().splitlines()] \
        if (d / "ds" / "clips.jsonl").is_file() else []
    good = any("good_" in c.get("source", c.get("audio", "")) and c.get("kept") for c in clips)
    return judge(out, bad, good, fault not in USABLE | SEARCHED | {LONG})


def speak_case(kit: Kit, d: Path, bad_source: Path, fault: str) -> Verdict:
    folder, bad = _folder(d, kit, bad_source)
    wav = d / "said.wav"
    out = run_cli(["speak", "--models", str(kit.models), "--voice", str(folder), "--text", "Testing.", "--out",
                   str(wav), "--preset", "ultra_fast", "--num-samples", "1", "--autoregressive-batch-size", "1",
                   "--max-mel-tokens", "8", "--diffusion-iterations", "2", "--device", "cpu"])
    return judge(out, bad, wav.is_file(), fault not in USABLE | SEARCHED)


def _dataset(d: Path, kit: Kit, extra_lines: list[bytes]) -> Path:
    """An LJSpeech-style dataset of the good clips plus `extra_lines` (raw bytes) in train.txt."""
    import shutil

    ds = d / "ds"
    (ds / "wavs").mkdir(parents=True)
    lines = []
    for i, (g, text) in enumerate(zip(kit.good, kit.texts)):
        shutil.copy(g, ds / "wavs" / f"good_{i}.wav")
        lines.append(f"wavs/good_{i}.wav|{text}\n".encode())
    (ds / "train.txt").write_bytes(b"".join(lines[:-1] + extra_lines))
    (ds / "val.txt").write_bytes(lines[-1])
    return ds


def finetune_args(kit: Kit, ds: Path, out: Path, dvae: Path | None = None, models: Path | None = None) -> list[str]:
    """A one-step, CPU `finetune` on the tiny models; flags appended after these override them (argparse)."""
    return ["finetune", "--data", str(ds), "--dvae", str(dvae or kit.dvae), "--models", str(models or kit.models),
            "--out", str(out), "--batch-size", "1", "--grad-accum", "1", "--max-steps", "1", "--save-every", "1",
            "--val-every", "0", "--samples", "0", "--device", "cpu", "--num-workers", "0"]


def finetune_case(kit: Kit, d: Path, bad_source: Path, fault: str) -> Verdict:
    import shutil

    ds = _dataset(d, kit, [])
    bad = ds / "wavs" / bad_source.name
    shutil.move(str(bad_source), bad)
    with open(ds / "train.txt", "ab") as fh:
        fh.write(f"wavs/{bad.name}|Some words here.\n".encode())
    out = run_cli(finetune_args(kit, ds, d / "run"))
    done = any((d / "run" / "checkpoints").glob("step_*")) if (d / "run" / "checkpoints").is_dir() else False
    return judge(out, bad, done, fault not in USABLE)


def eval_case(kit: Kit, d: Path, bad_source: Path, fault: str) -> Verdict:
    import json

    folder, bad = _folder(d, kit, bad_source)
    rows = [{"audio": f"good_{i}.wav", "text": t} for i, t in enumerate(kit.texts)] + [{"audio": bad.name, "text": "x"}]
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_cli(["eval", "tokenizer", "--speech", str(folder), "--dvae", str(kit.dvae), "--out",
                   str(d / "eval.json")])
    return judge(out, bad, (d / "eval.json").is_file(), fault not in USABLE)


AUDIO_VERBS: dict[str, Callable[[Kit, Path, Path, str], Verdict]] = {
    "tokenize": tokenize_case, "prepare": prepare_case, "finetune": finetune_case, "speak --voice": speak_case,
    "eval tokenizer": eval_case,
}

# dataset-list faults: name -> (the train.txt line, the file name its message must name); the rest must still train
LIST_FAULTS: dict[str, tuple[bytes, str]] = {
    "non-UTF-8 transcript": ("wavs/good_0.wav|caf\xe9 au lait\n".encode("latin-1"), "train.txt"),
    "empty transcript": (b"wavs/good_0.wav|\n", "train.txt"),
    "no transcript field": (b"wavs/good_0.wav\n", "train.txt"),
    "missing audio file": (b"wavs/nowhere.wav|Some words here.\n", "nowhere.wav"),
    "audio outside the dataset": (b"../../outside.wav|Some words here.\n", "train.txt"),
    "a folder as audio": (b"wavs|Some words here.\n", "wavs"),
}


def list_case(kit: Kit, d: Path, fault: str) -> Verdict:
    line, named = LIST_FAULTS[fault]
    ds = _dataset(d, kit, [line])
    if fault == "audio outside the dataset":
        import shutil

        shutil.copy(kit.good[0], d / "outside.wav")
    out = run_cli(finetune_args(kit, ds, d / "run"))
    done = any((d / "run" / "checkpoints").glob("step_*")) if (d / "run" / "checkpoints").is_dir() else False
    return judge(out, ds / named, done, True)


def make_kit(root: Path) -> Kit:
    """Two real voice clips shipped with `tortoise`, a tiny dVAE (64 codes) and tiny stock models beside it."""
    import importlib.resources
    import shutil

    from support.tiny_models import make_tiny_models
    from tortuner.models.checkpoints import save_dvae
    from tortuner.models.dvae import DiscreteVAE, DVAEConfig

    voices = Path(str(importlib.resources.files("tortoise") / "voices"))
    root.mkdir(parents=True, exist_ok=True)
    good = []
    for i, src in enumerate([voices / "lj" / "1.wav", voices / "lj" / "2.wav"]):
        good.append(root / f"clip_{i}.wav")
        shutil.copy(src, good[-1])
    torch.manual_seed(1)
    save_dvae(DiscreteVAE(DVAEConfig(num_tokens=64, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)),
              root / "dvae.pth")
    models = make_tiny_models(root / "models", 64)
    return Kit(good, ["Printing, in the only sense with which we are at present concerned.",
                      "It differs from most if not from all the arts and crafts."], root / "dvae.pth", models)


# ------------------------------------------------------------------------------------------------ model files
def _copy_models(kit: Kit, d: Path, bad: Path) -> Path:
    """A models folder like the kit's, its autoregressive.pth replaced by `bad`."""
    import shutil

    models = d / "models"
    shutil.copytree(kit.models, models)
    (models / "autoregressive.pth").unlink()
    shutil.move(str(bad), models / "autoregressive.pth")
    return models


def model_case(verb: str, kit: Kit, d: Path, bad: Path) -> Verdict:
    """Run `verb` with the broken model file `bad`: exit 2 with one line naming it, and no code run (PWNED)."""
    folder, _ = _folder(d, kit, None)
    if verb == "tokenize --dvae":
        out = run_cli(["tokenize", "--dvae", str(bad), "--out", str(d / "t.jsonl"), str(folder)])
    elif verb == "finetune --dvae":
        out = run_cli(finetune_args(kit, _dataset(d, kit, []), d / "run", dvae=bad))
    elif verb == "speak --gpt":
        out = run_cli(["speak", "--models", str(kit.models), "--gpt", str(bad), "--voice", str(folder), "--text",
                       "Testing.", "--out", str(d / "o.wav"), "--device", "cpu"])
    elif verb == "finetune --models":
        models = _copy_models(kit, d, bad)
        bad = models / "autoregressive.pth"
        out = run_cli(finetune_args(kit, _dataset(d, kit, []), d / "run", models=models))
    else:
        raise ValueError(verb)
    pwned = any(d.rglob("PWNED")) or (bad.parent / "PWNED").exists()
    v = judge(out, bad, not pwned, True, want_status=2)
    return Verdict(False, "RAN CODE FROM THE FILE") if pwned else v


MODEL_VERBS = ("tokenize --dvae", "finetune --dvae", "finetune --models", "speak --gpt")


# ------------------------------------------------------------------------------------------------ outputs
class CannotMount(Exception):
    """This machine does not let the harness mount a tmpfs (not root, or no privilege in the container)."""


@contextlib.contextmanager
def tmpfs(path: Path, readonly: bool = False, full: bool = False):
    """A 1 MiB tmpfs at `path`: read-only, or filled to the last byte (the next write gets ENOSPC)."""
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m" + (",ro" if readonly else ""), "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise CannotMount(r.stderr.strip() or "mount failed")
    try:
        if full:
            import os

            fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
            with contextlib.suppress(OSError):
                for size in (65536, 4096, 1):
                    while True:
                        os.write(fd, b"\0" * size)
            os.close(fd)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def output_case(verb: str, fault: str, kit: Kit, d: Path) -> Verdict:
    """`verb` writing into a read-only or full file system: exit 2 with one line naming the output, and no
    temporary file left behind."""
    folder, _ = _folder(d, kit, None)
    ds = _dataset(d, kit, []) if verb == "finetune" else None
    with tmpfs(d / "mnt", readonly=fault == "read-only output", full=fault == "full disk") as mnt:
        target = mnt / "out"
        if verb == "tokenize":
            out = run_cli(["tokenize", "--dvae", str(kit.dvae), "--out", str(target), str(folder)])
        elif verb == "prepare":
            out = run_cli(["prepare", str(folder), "--out", str(target), "--min-seconds", "3",
                           "--max-speaker-change", "off"])
        elif verb == "finetune":
            out = run_cli(finetune_args(kit, ds, target))
        else:
            raise ValueError(verb)
        leftovers = [p.name for p in mnt.rglob("*.tmp")]
    v = judge(out, mnt, not leftovers, True, want_status=2)
    return Verdict(False, f"left {leftovers[0]}") if leftovers else v


OUTPUT_VERBS = ("tokenize", "prepare", "finetune")
OUTPUT_FAULTS = ("read-only output", "full disk")
