"""Where everything of a lab world lives (see docs/lab.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tortuner.files import read_jsonl


@dataclass(frozen=True)
class WorldPaths:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def state(self) -> Path:
        return self.root / "world.json"

    @property
    def report(self) -> Path:
        return self.root / "world_report.json"

    @property
    def tb(self) -> Path:
        return self.root / "tb"

    @property
    def public(self) -> Path:
        return self.root / "public"

    @property
    def models(self) -> Path:
        return self.public / "models"

    @property
    def public_speech(self) -> Path:
        return self.public / "speech"

    @property
    def hidden(self) -> Path:
        return self.root / "hidden"

    @property
    def teacher(self) -> Path:
        return self.hidden / "teacher_dvae.pth"

    @property
    def teacher_speech(self) -> Path:
        return self.hidden / "teacher_speech"

    @property
    def eval(self) -> Path:
        return self.hidden / "eval"

    @property
    def newvoice(self) -> Path:
        return self.hidden / "newvoice"

    @property
    def work(self) -> Path:
        """Intermediate training checkpoints (resume); not part of either half."""
        return self.root / "work"


def load_manifest(path: str | Path) -> list[dict]:
    """Rows of a `manifest.jsonl` (file or its folder) with `audio` made absolute."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.jsonl"
    rows = read_jsonl(path)
    for row in rows:
        row["audio"] = str((path.parent / row["audio"]).resolve())
    return rows
