"""A procedural generator of varied English sentences with punctuation.

Used to prompt the GPT with random text lines (`tortuner synth`) and, in the lab, to script espeak-ng speech.
Our own small grammar and word lists: statements, questions, exclamations, lists, quotes, numbers and clauses of
varied length, so that prosody and punctuation vary the way real read speech does.
"""

from __future__ import annotations

import random

NAMES = ["Mara", "Tobias", "Ines", "Oskar", "Priya", "Declan", "Yuki", "Lenore", "Bram", "Amara", "Felix", "Sunniva",
         "Rafael", "Hedda", "Kwame", "Elodie", "Ivo", "Nadia", "Caspar", "Rosalind"]
PLACES = ["the harbour", "the old mill", "the library", "a quiet village", "the station", "the market square",
          "the northern ridge", "the river bank", "the greenhouse", "the lecture hall", "the lighthouse", "the bakery",
          "the orchard", "the workshop", "the museum", "a crowded ferry", "the garden", "the city wall"]
NOUNS = ["lantern", "letter", "bicycle", "kettle", "violin", "map", "notebook", "window", "ladder", "compass",
         "blanket", "teapot", "clock", "basket", "painting", "telescope", "umbrella", "parcel", "candle", "bridge",
         "engine", "garden", "forest", "storm", "river", "mountain", "question", "promise", "rumour", "melody"]
ADJS = ["quiet", "bright", "heavy", "curious", "ancient", "fragile", "golden", "restless", "narrow", "gentle",
        "peculiar", "shiny", "muddy", "enormous", "tiny", "crooked", "warm", "bitter", "patient", "clever"]
VERBS_PAST = ["found", "carried", "repaired", "painted", "forgot", "borrowed", "described", "noticed", "opened",
              "followed", "measured", "hid", "sold", "built", "wrapped", "studied", "dropped", "cleaned", "admired"]
VERBS_INTR = ["laughed", "waited", "hesitated", "whispered", "wandered off", "fell asleep", "sighed", "listened",
              "shouted", "agreed", "changed course", "kept walking", "stood still", "smiled"]
ADVERBS = ["slowly", "carefully", "suddenly", "quietly", "eagerly", "reluctantly", "happily", "almost at once",
           "without a word", "twice", "at dawn", "after supper", "in the rain", "before noon"]
CONNECT = ["because", "although", "while", "until", "after", "before", "since", "as soon as"]
EXCLAIM = ["Goodness", "Oh no", "Look", "Wonderful", "Careful", "Well", "Hurry", "Listen"]
NUMBERS = ["two", "three", "seven", "eleven", "twenty", "forty-two", "a hundred", "ninety-nine", "sixteen", "five"]
TIMES = ["on Monday", "last winter", "in nineteen eighty-four", "at half past six", "every morning", "yesterday",
         "next spring", "on the twelfth of May", "long ago", "this evening"]


def _np(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return rng.choice(NAMES)
    noun = rng.choice(NOUNS)
    if r < 0.55:
        return f"the {rng.choice(ADJS)} {noun}"
    if r < 0.7:
        return f"{rng.choice(NUMBERS)} {noun}s"
    return f"the {noun}"


def _clause(rng: random.Random) -> str:
    subj = rng.choice(NAMES) if rng.random() < 0.6 else f"the {rng.choice(ADJS)} stranger"
    if rng.random() < 0.6:
        core = f"{subj} {rng.choice(VERBS_PAST)} {_np(rng)}"
    else:
        core = f"{subj} {rng.choice(VERBS_INTR)}"
    if rng.random() < 0.5:
        core += f" {rng.choice(ADVERBS)}"
    if rng.random() < 0.4:
        core += f" near {rng.choice(PLACES)}"
    if rng.random() < 0.25:
        core += f" {rng.choice(TIMES)}"
    return core


def sentence(rng: random.Random) -> str:
    """One sentence, capitalised and punctuated."""
    kind = rng.random()
    if kind < 0.45:
        s = _clause(rng)
        if rng.random() < 0.45:
            s += f", {rng.choice(CONNECT)} {_clause(rng)}"
        end = "."
    elif kind < 0.6:
        s = (f"{rng.choice(['did', 'why did', 'where did', 'when did'])} {rng.choice(NAMES)} leave {_np(rng)} "
             f"at {rng.choice(PLACES)}")
        end = "?"
    elif kind < 0.7:
        s = f"{rng.choice(EXCLAIM)}, {_clause(rng)}"
        end = "!"
    elif kind < 0.8:
        items = rng.sample(NOUNS, 3)
        s = f"{rng.choice(NAMES)} packed a {items[0]}, a {items[1]}, and a {items[2]}"
        end = "."
    elif kind < 0.9:
        c = _clause(rng)
        s = f'"{c[0].upper() + c[1:]}," said {rng.choice(NAMES)}; nobody answered'
        end = "."
    else:
        s = f"{_clause(rng)}; then, {rng.choice(ADVERBS)}, {_clause(rng)}"
        end = "."
    return s[0].upper() + s[1:] + end


def text_line(rng: random.Random, min_words: int = 4, max_words: int = 40) -> str:
    """One to three sentences whose total word count lies in [min_words, max_words] when possible."""
    target = rng.randint(min_words, max_words)
    parts: list[str] = []
    words = 0
    for _ in range(6):
        s = sentence(rng)
        n = len(s.split())
        if parts and words + n > max_words:
            break
        parts.append(s)
        words += n
        if words >= target:
            break
    return " ".join(parts)


def text_lines(n: int, seed: int, min_words: int = 4, max_words: int = 40) -> list[str]:
    rng = random.Random(seed)
    return [text_line(rng, min_words, max_words) for _ in range(n)]
