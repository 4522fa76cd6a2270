"""Fine-tuning data: LJSpeech-style lists -> clips with cached dVAE tokens -> deterministic GPT examples.

Reads what users already have: our `tortuner prepare` output (`train.txt`/`val.txt` + `clips.jsonl` with speakers),
DL-Art-School / ai-voice-cloning lists (`wavs/NAME.wav|text`) and LJSpeech's `metadata.csv` (`ID|text|normalized`).
Tokens are computed once per clip and cached per dVAE (keyed by the dVAE file's sha256 and each clip's sha1), so
epochs cost no dVAE passes and a changed clip or tokenizer is re-tokenized. Every example is a pure function of
(seed, epoch, index): resuming a run, or building it in a DataLoader worker, gives the very same batch.
"""

from __future__ import annotations

import functools
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from tortuner.audio.io import AudioError, check_audio_file, load_audio
from tortuner.audio.mel import DVAE_SR, DvaeMel
from tortuner.errors import TortunerError
from tortuner.files import read_jsonl, sha_file, write_jsonl
from tortuner.finetune.guide import Guide
from tortuner.models.gpt_data import COND_SAMPLES, GPTExample, crop_or_pad, encode_text

MAX_WAV_SAMPLES = 255995  # DL-Art-School's max_wav_length (~11.6 s at 22.05 kHz)
MAX_TEXT_TOKENS = 200     # DL-Art-School's max_text_length (BPE tokens)


@dataclass
class DatasetClip:
    """One line of a dataset list: the audio file, its transcript and speaker, and (once `attach_tokens` ran) its
    cached dVAE tokens."""

    audio: Path
    text: str
    speaker: str = "default"
    tokens: torch.Tensor | None = None  # (N,) dVAE codes of the clip + one frame-block of trailing silence
    soft: tuple[torch.Tensor, torch.Tensor] | None = None  # (N, K) the dVAE's top-K codes, (N, K) their log-probs
    samples: int = 0                     # length at 22.05 kHz


@dataclass
class LimitReport:
    """Clips `attach_tokens` left out, by reason (their paths, or the reader's message)."""

    too_long_audio: list[str] = field(default_factory=list)
    too_long_text: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)  # list lines that name no usable clip

    @property
    def count(self) -> int:
        return len(self.too_long_audio) + len(self.too_long_text) + len(self.unreadable) + len(self.bad_lines)

    def summary(self) -> str:
        return (f"skipped {self.count} clips: {len(self.too_long_audio)} audio too long, "
                f"{len(self.too_long_text)} text too long, {len(self.unreadable)} unreadable, "
                f"{len(self.bad_lines)} bad list lines")

    def messages(self, limit: int = 20) -> list[str]:
        """One line per unreadable clip and bad list line (the first `limit` of each): what to fix."""
        out = []
        for items in (self.bad_lines, self.unreadable):
            out += items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])
        return out


# ------------------------------------------------------------------------------------------------ reading lists
def _resolve(base: Path, name: str) -> Path:
    p = Path(name)
    if not p.is_absolute():
        p = base / p
    if p.suffix == "" and not p.exists():  # LJSpeech metadata.csv names clips by id
        p = base / "wavs" / f"{name}.wav"
    return p


def read_list(path: Path, speakers: dict[str, str] | None = None,
              report: LimitReport | None = None) -> list[DatasetClip]:
    """`AUDIO|text` lines (extra `|` fields: LJSpeech's third, normalised, field is used); paths relative to the
    list, and never outside its folder. A line that cannot be used (not UTF-8, no transcript, audio outside the
    dataset) raises, or with a `report` is left out and named in `report.bad_lines`, so one bad line does not cost
    the rest of the dataset."""
    clips = []
    for i, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            problem = f"not UTF-8 text (byte {raw[e.start]:#x} at column {e.start + 1})"
        else:
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 2 or not parts[1].strip():
                problem = f"expected `wavs/NAME.wav|transcript`, got {line[:80]!r}"
            else:
                text = parts[2] if len(parts) >= 3 and parts[2].strip() else parts[1]
                name = parts[0].strip()
                if not Path(name).is_absolute() and os.path.normpath(name).split(os.sep)[0] == "..":
                    problem = f"{name!r} is outside the dataset folder {path.parent}"  # symlinks inside are fine
                else:
                    audio = _resolve(path.parent, name)
                    speaker = (speakers or {}).get(str(audio.resolve()), "default")
                    clips.append(DatasetClip(audio=audio, text=text.strip(), speaker=speaker))
                    continue
        if report is None:
            raise TortunerError(f"{path}:{i}: {problem}")
        report.bad_lines.append(f"{path}:{i}: {problem}")
    return clips


def read_speakers(data_dir: Path) -> dict[str, str]:
    """Absolute audio path -> speaker, from `clips.jsonl` (`tortuner prepare`) when present."""
    path = data_dir / "clips.jsonl"
    if not path.is_file():
        return {}
    return {str(_resolve(data_dir, r["audio"]).resolve()): str(r.get("speaker", "default")) for r in read_jsonl(path)
            if "audio" in r}


def read_dataset(data_dir: str | Path,
                 report: LimitReport | None = None) -> tuple[list[DatasetClip], list[DatasetClip]]:
    """(train, val) clips of a dataset folder. Without `val.txt`, val is empty (a warning is the caller's job).
    Unusable list lines raise, or are counted in `report` (`read_list`)."""
    data_dir = Path(data_dir)
    speakers = read_speakers(data_dir)
    for name in ("train.txt", "metadata.csv"):
        if (data_dir / name).is_file():
            train = read_list(data_dir / name, speakers, report)
            break
    else:
        raise TortunerError(f"{data_dir}: no train.txt (LJSpeech-style `wavs/NAME.wav|text` lines; "
                            "make one with `tortuner prepare`)")
    val = read_list(data_dir / "val.txt", speakers, report) if (data_dir / "val.txt").is_file() else []
    return train, val


# ------------------------------------------------------------------------------------------------ token cache
def attach_tokens(clips: list[DatasetClip], dvae_path: str | Path, cache_dir: str | Path, device: str = "cpu",
                  max_samples: int = MAX_WAV_SAMPLES, max_text_tokens: int = MAX_TEXT_TOKENS,
                  report: LimitReport | None = None, guide: Guide | None = None,
                  soft_k: int = 0) -> list[DatasetClip]:
    """Give every clip its cached tokens (tokenizing what is missing or changed); returns the clips within limits.

    The cache is `cache_dir/tokens-<dvae sha256[:16]>[-<guide key>].jsonl` with rows {audio, sha1, samples, tokens};
    it is rewritten atomically at least every 30 s while tokenizing, so an interrupted run keeps most of what it did.
    With a `guide`, tokens are read with the GPT as a prior (`finetune.guide`), conditioned on other clips of the
    same speaker among `clips`. With `soft_k`, every clip also gets the dVAE's top-`soft_k` codes and log-probabilities
    at each position (`DatasetClip.soft`: soft targets), cached alongside.
    """
    from tortuner.models.checkpoints import load_dvae
    from tortuner.models.tokenizer import Tokenizer

    report = report if report is not None else LimitReport()
    suffix = (f"-{guide.key()}" if guide is not None else "") + (f"-soft{soft_k}" if soft_k else "")
    cache_path = Path(cache_dir) / f"tokens-{sha_file(Path(dvae_path), 'sha256')[:16]}{suffix}.jsonl"
    cache = {r["audio"]: r for r in read_jsonl(cache_path)} if cache_path.is_file() else {}
    kept, todo = [], []
    for c in clips:
        if len(encode_text(c.text)) > max_text_tokens:
            report.too_long_text.append(str(c.audio))
            continue
        try:
            check_audio_file(c.audio)
        except AudioError as e:
            report.unreadable.append(str(e))
            continue
        key, digest = str(c.audio.resolve()), sha_file(c.audio)
        row = cache.get(key)
        if row is not None and row["sha1"] == digest:
            c.tokens, c.samples = torch.tensor(row["tokens"], dtype=torch.long), int(row["samples"])
            if soft_k:
                c.soft = torch.tensor(row["soft_codes"], dtype=torch.long), torch.tensor(row["soft_logp"])
        else:
            todo.append((c, key, digest))
        kept.append(c)
    if todo:
        tokenizer = Tokenizer(load_dvae(dvae_path), device)
        voices = _voices(kept) if guide is not None else {}
        step, last_write = 32, time.monotonic()
        for start in tqdm(range(0, len(todo), step), desc="tokenize (cached)", unit="batch",
                          disable=len(todo) <= step):
            batch, wavs = [], []
            for c, key, digest in todo[start : start + step]:
                try:
                    wav = load_audio(c.audio, DVAE_SR)
                except AudioError as e:
                    report.unreadable.append(str(e))
                    cache.pop(key, None)
                    continue
                batch.append((c, key, digest))
                wavs.append(wav)
            logprobs = tokenizer.training_logprobs(wavs) if wavs and (guide or soft_k) else []
            if not wavs:
                tokens = []
            elif guide is None:
                tokens = tokenizer.tokenize_training_wavs(wavs)
            else:
                cs = [c for c, _, _ in batch]
                tokens = guide.tokens([c.audio for c in cs], [c.text for c in cs], [c.speaker for c in cs],
                                      logprobs, voices)
            for j, ((c, key, digest), wav, tok) in enumerate(zip(batch, wavs, tokens)):
                c.tokens, c.samples = tok, wav.numel()
                cache[key] = {"audio": key, "sha1": digest, "samples": wav.numel(), "tokens": tok.tolist()}
                if soft_k:
                    top = logprobs[j].topk(min(soft_k, logprobs[j].shape[1]), -1)
                    c.soft = top.indices, top.values.round(decimals=4)
                    cache[key].update(soft_codes=c.soft[0].tolist(), soft_logp=c.soft[1].tolist())
            if time.monotonic() - last_write > 30 or start + step >= len(todo):  # bounded rewrite cost
                write_jsonl(cache_path, list(cache.values()))
                last_write = time.monotonic()
    out = []
    for c in kept:
        if c.tokens is None:
            continue  # unreadable
        if c.samples > max_samples:
            report.too_long_audio.append(str(c.audio))
            continue
        out.append(c)
    return out


def _voices(clips: list[DatasetClip], per_speaker: int = 32) -> dict[str, list[torch.Tensor]]:
    """Up to `per_speaker` readable clips of each speaker (what guided tokenization conditions on)."""
    out: dict[str, list[torch.Tensor]] = {}
    for c in sorted(clips, key=lambda c: str(c.audio)):
        if len(out.setdefault(c.speaker, [])) < per_speaker:
            try:
                out[c.speaker].append(_load(str(c.audio)))
            except AudioError:
                continue
    return out


# ------------------------------------------------------------------------------------------------ examples
@functools.lru_cache(maxsize=512)
def _load(path: str) -> torch.Tensor:
    return load_audio(path, DVAE_SR)


def load_clip_audio(clip: DatasetClip) -> torch.Tensor:
    """A clip's 22.05 kHz waveform (cached: examples re-read the same clips every epoch)."""
    return _load(str(clip.audio))


class ExampleSource:
    """Clips with tokens -> `GPTExample`s, conditioning on other clips of the same speaker.

    `cond_pool` holds the clips conditioning may be drawn from (defaults to `clips`); validation passes the training
    clips too, so a held-out clip is conditioned on the speaker's other recordings, as at inference.
    """

    def __init__(self, clips: list[DatasetClip], cond_pool: list[DatasetClip] | None = None, num_cond: int = 2,
                 cond_samples: int = COND_SAMPLES, soft_temperature: float = 0.0):
        if any(c.tokens is None for c in clips):
            raise ValueError("every clip needs tokens")
        self.clips = clips
        self.num_cond = num_cond
        self.cond_samples = cond_samples
        self.by_speaker: dict[str, list[Path]] = {}
        for c in (cond_pool if cond_pool is not None else clips):
            self.by_speaker.setdefault(c.speaker, [])
            if c.audio not in self.by_speaker[c.speaker]:
                self.by_speaker[c.speaker].append(c.audio)
        self.mel = DvaeMel()
        self.soft_temperature = soft_temperature  # > 0: examples carry the clips' soft targets at this temperature

    def __len__(self) -> int:
        return len(self.clips)

    def example(self, index: int, rng: random.Random) -> GPTExample:
        c = self.clips[index]
        others = [p for p in self.by_speaker.get(c.speaker, []) if p != c.audio] or [c.audio]
        picks = [others[rng.randrange(len(others))] for _ in range(self.num_cond)] if len(others) < self.num_cond \
            else rng.sample(others, self.num_cond)
        conds = torch.stack([crop_or_pad(_load(str(p)), self.cond_samples, rng) for p in picks])
        soft = None
        if self.soft_temperature > 0 and c.soft is not None:
            soft = c.soft[0], (c.soft[1] / self.soft_temperature).softmax(-1)
        return GPTExample(text=encode_text(c.text), codes=c.tokens, wav_length=c.samples, cond_mels=self.mel(conds),
                          soft=soft)


def example_rng(seed: int, epoch: int, index: int) -> random.Random:
    """The RNG of one example: the same (seed, epoch, index) always builds the same example."""
    return random.Random(f"{seed}:{epoch}:{index}")


def stream_index(seed: int, n: int, k: int) -> tuple[int, int]:
    """Position `k` of the endless stream of per-epoch shuffles of `n` items -> (epoch, item index)."""
    epoch = k // n
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return epoch, int(torch.randperm(n, generator=g)[k % n])


class MicroBatches(torch.utils.data.Dataset):
    """Micro-batch `j` of process `rank`: a pure function of j, so the data position is just a counter."""

    def __init__(self, source: ExampleSource, batch_size: int, seed: int, stop_token: int, rank: int = 0,
                 world: int = 1):
        self.source, self.batch_size, self.seed, self.stop_token = source, batch_size, seed, stop_token
        self.rank, self.world = rank, world

    def __len__(self) -> int:  # effectively endless; the sampler picks the range
        return 1 << 40

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        from tortuner.models.gpt_data import collate

        first = (j * self.world + self.rank) * self.batch_size
        examples = []
        for k in range(first, first + self.batch_size):
            epoch, idx = stream_index(self.seed, len(self.source), k)
            examples.append(self.source.example(idx, example_rng(self.seed, epoch, idx)))
        return collate(examples, self.stop_token)


def fixed_batches(source: ExampleSource, batch_size: int, stop_token: int, seed: int = 0) -> list[dict]:
    """All of a (validation) set in order, with fixed conditioning crops: comparable across steps and runs."""
    from tortuner.models.gpt_data import collate

    out = []
    for start in range(0, len(source), batch_size):
        idx = range(start, min(start + batch_size, len(source)))
        out.append(collate([source.example(i, example_rng(seed, -1, i)) for i in idx], stop_token))
    return out


def describe(clips: list[DatasetClip]) -> dict:
    """Clip, speaker and hour counts: what `run.json` records about the data (and `--resume` checks)."""
    return {"clips": len(clips), "speakers": len({c.speaker for c in clips}),
            "hours": round(sum(c.samples for c in clips) / DVAE_SR / 3600, 4)}

