"""Transcript normalisation for TorToiSe's `VoiceBpeTokenizer`.

The tokenizer's English cleaners transliterate to ASCII, lowercase, expand numbers/abbreviations and drop `"`;
its vocabulary only has `a-z`, space and `!'(),-./:;?`. Anything else becomes `[UNK]`, which the GPT never learns
to speak. We keep casing (readable files; the tokenizer lowercases anyway), expand numbers and symbols it would
not, map typographic punctuation to ASCII, and drop the rest, so every line encodes without `[UNK]`.
"""

from __future__ import annotations

import re
from functools import lru_cache

from unidecode import unidecode

ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ !'(),-./:;?")
_SYMBOLS = {"&": " and ", "%": " percent", "+": " plus ", "@": " at ", "=": " equals ", "#": " number ",
            "\u2026": "...", "\u2013": " - ", "\u2014": " - ", "\u2018": "'", "\u2019": "'", "\u201c": "", "\u201d": "",
            '"': "", "[": "(", "]": ")", "{": "(", "}": ")", "!?": "?", "_": " ", "/": " ", "*": " ", "~": " "}


def normalize(text: str) -> str:
    """Text the tokenizer encodes without unknown tokens, with casing and punctuation kept."""
    from tortoise.utils.tokenizer import normalize_numbers

    for k, v in _SYMBOLS.items():
        text = text.replace(k, v)
    text = unidecode(text)
    for k, v in _SYMBOLS.items():  # again: unidecode can produce some of them
        text = text.replace(k, v)
    text = normalize_numbers(text)
    text = "".join(c if c in ALLOWED else " " for c in text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;:!?)])", r"\1", text)  # no space before closing punctuation
    text = re.sub(r"([,;:])(?=[^\s])", r"\1 ", text)
    return "" if not any(c.isalpha() for c in text) else text


def punctuate(words: list[tuple[str, float, float]], comma_pause: float = 0.25, stop_pause: float = 0.6) -> str:
    """Casing and punctuation for ASR output that has neither (pocketsphinx), from the pauses between words.

    `words` are (word, start_s, end_s). Pauses >= `stop_pause` end a sentence, >= `comma_pause` get a comma.
    """
    out: list[str] = []
    new_sentence = True
    for i, (w, _, end) in enumerate(words):
        w = w.lower()
        if w == "i" or w.startswith("i'"):
            w = "I" + w[1:]
        if new_sentence:
            w = w[:1].upper() + w[1:]
        pause = words[i + 1][1] - end if i + 1 < len(words) else None
        new_sentence = pause is None or pause >= stop_pause
        out.append(w + ("." if new_sentence else "," if pause >= comma_pause else ""))
    return " ".join(out)


@lru_cache(maxsize=1)
def _tokenizer():
    from tortoise.utils.tokenizer import VoiceBpeTokenizer

    return VoiceBpeTokenizer()


def token_count(text: str) -> int:
    """Number of TorToiSe text tokens (the GPT's text side is limited to 402, minus start/stop)."""
    return len(_tokenizer().encode(text))
