import random

from tortuner.models.gpt_data import encode_text
from tortuner.synth.sentences import text_line, text_lines


def test_text_lines_are_deterministic_varied_and_punctuated():
    lines = text_lines(300, seed=7)
    assert lines == text_lines(300, seed=7) and lines != text_lines(300, seed=8)
    assert len(set(lines)) > 290
    words = [len(line.split()) for line in lines]
    assert min(words) >= 3 and max(words) <= 40 and max(words) - min(words) > 20
    assert all(line.lstrip('"')[0].isupper() and line[-1] in ".?!" for line in lines)
    for mark in (",", "?", "!", ";", '"'):
        assert any(mark in line for line in lines), mark


def test_lines_fit_the_gpt_text_limit():
    rng = random.Random(0)
    assert max(len(encode_text(text_line(rng))) for _ in range(200)) < 200  # DL-Art-School's max_text_length
