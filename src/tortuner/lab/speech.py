"""The lab's speech sets: espeak-ng speakers split disjointly, plus the human clips shipped with `tortoise`."""

from __future__ import annotations

import importlib.resources
import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tortuner.audio.io import load_audio, save_wav
from tortuner.audio.mel import DVAE_SR
from tortuner.files import read_jsonl, write_jsonl
from tortuner.lab.espeak import VARIANTS, VOICES, Speaker, speak
from tortuner.synth.sentences import text_line


@dataclass
class SpeechPlan:
    teacher_speakers: int
    public_speakers: int
    eval_speakers: int
    utts_per_speaker: int
    eval_utts_per_speaker: int
    newvoice_utts: int
    human_teacher_voices: int
    human_eval_voices: int
    min_words: int = 4
    max_words: int = 24


def _speakers(rng: random.Random, n: int, voices: list[str], variants: list[str], taken: set) -> list[Speaker]:
    out: list[Speaker] = []
    while len(out) < n:
        s = Speaker(rng.choice(voices), rng.choice(variants), rng.randint(25, 80), rng.randint(135, 195))
        if (s.voice, s.variant) not in taken:
            taken.add((s.voice, s.variant))
            out.append(s)
    return out


def human_voices() -> list[Path]:
    root = Path(str(importlib.resources.files("tortoise") / "voices"))
    return sorted(p for p in root.iterdir() if p.is_dir() and list(p.glob("*.wav")))


def _speak_to(path: Path, text: str, speaker: Speaker) -> float:
    """Synthesize one line into `path`; its duration in seconds."""
    wav = speak(text, speaker)
    save_wav(path, wav, DVAE_SR)
    return round(wav.numel() / DVAE_SR, 3)


def build_speech(plan: SpeechPlan, seed: int, sets: dict[str, Path]) -> None:
    """Write the four sets (`teacher`, `public`, `eval`, `newvoice`) as wavs + manifest.jsonl.

    Speakers are disjoint across sets: a voice/variant pair belongs to one set only, the eval set also uses the
    Caribbean English voice (`en-029`) nobody else speaks with, and human voices are split between the teacher's
    training speech and the eval set. Texts are drawn from one generator, so no two sets share a line.
    """
    rng = random.Random(seed)
    variants = VARIANTS[:]
    rng.shuffle(variants)
    n_eval_var = max(3, len(variants) // 5)
    eval_variants, train_variants = variants[:n_eval_var], variants[n_eval_var:]
    voices = [v for v in VOICES if v != "en-029"]
    taken: set = set()
    groups = {
        "teacher": _speakers(rng, plan.teacher_speakers, voices, train_variants, taken),
        "public": _speakers(rng, plan.public_speakers, voices, train_variants, taken),
        "eval": _speakers(rng, plan.eval_speakers, ["en-029", *voices], eval_variants, taken),
        "newvoice": _speakers(rng, 1, voices, eval_variants, taken),
    }
    humans = human_voices()
    rng.shuffle(humans)
    human_sets = {"teacher": humans[: plan.human_teacher_voices],
                  "eval": humans[plan.human_teacher_voices: plan.human_teacher_voices + plan.human_eval_voices]}
    workers = os.cpu_count() or 1
    for name, speakers in groups.items():
        folder = sets[name]
        n_utts = {"eval": plan.eval_utts_per_speaker, "newvoice": plan.newvoice_utts}.get(name, plan.utts_per_speaker)
        jobs = [(s, text_line(rng, plan.min_words, plan.max_words)) for s in speakers for _ in range(n_utts)]
        names = [f"wavs/{name}_{i:05d}.wav" for i in range(len(jobs))]
        # espeak-ng runs as a subprocess, so threads synthesize in parallel; results keep the job order.
        with ThreadPoolExecutor(workers) as pool:
            durations = list(tqdm(pool.map(lambda j: _speak_to(folder / names[j], jobs[j][1], jobs[j][0]),
                                           range(len(jobs))), total=len(jobs), desc=f"speech/{name}", leave=False))
        rows = [{"audio": a, "text": text, "speaker": spk.name, "duration": d, "espeak": spk.as_dict()}
                for a, (spk, text), d in zip(names, jobs, durations)]
        for voice in human_sets.get(name, []):
            for j, clip in enumerate(sorted(voice.glob("*.wav"))):
                wav = load_audio(clip, DVAE_SR)[: DVAE_SR * 12]  # human clips are untranscribed (text "")
                rows.append({"audio": f"wavs/human_{voice.name}_{j}.wav", "text": "", "speaker": f"human:{voice.name}",
                             "duration": round(wav.numel() / DVAE_SR, 3)})
                save_wav(folder / rows[-1]["audio"], wav, DVAE_SR)
        write_jsonl(folder / "manifest.jsonl", rows)
    ljs = read_jsonl(sets["newvoice"] / "manifest.jsonl")
    n_val = max(4, len(ljs) // 5)
    (sets["newvoice"] / "val.txt").write_text("".join(f"{r['audio']}|{r['text']}\n" for r in ljs[:n_val]))
    (sets["newvoice"] / "train.txt").write_text("".join(f"{r['audio']}|{r['text']}\n" for r in ljs[n_val:]))

