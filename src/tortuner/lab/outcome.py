"""What a user hears from a fine-tuned GPT: the lab's outcome measures for `lab finetune`.

Teacher-token NLL says how well a GPT predicts the hidden tokenizer's codes; a user judges speech. For each held-out
text of the new voice, a GPT samples codes with TorToiSe's settings (top-p 0.8, temperature 0.8, repetition penalty
2.0), the public renderer + Griffin-Lim turn them into audio (the lab's stand-in for the diffusion decoder and
vocoder), and the audio is scored against the new voice's held-out real clips:

* `wer`: word error rate of the offline recogniser `prepare` uses (pocketsphinx) on the generation, against the text
  (`jiwer`, corpus-level: all errors over all reference words);
* `speaker_sim`: cosine between the generation's resemblyzer d-vector (the speaker encoder `prepare` uses) and the
  mean d-vector of the voice's held-out real clips;
* `stop_rate`: share of generations that emit the stop token within twice the real clip's length (the rest are
  cut there: a GPT that rambles on is what users notice);
* `length_ratio`: generated codes / codes of the real clip of the same text (1 = same duration);
* `code_tv`: total-variation distance between the histogram of the generated codes and that of the hidden teacher's
  codes of the held-out real clips (0 = the voice's own code usage; the renderer turns codes into sound, so a GPT
  that uses the voice's codes sounds like it).

Every GPT is scored on the same texts, conditioning clips and sampling seeds, so differences come from the GPT.
A measure only measures the tokenizer if fine-tuning on the teacher's tokens moves it: `separation` bootstraps the
held-out texts (paired: the same resampled texts for both GPTs) for the 90 % interval of teacher - none; a measure
whose interval holds 0 does not separate them on this world, and the report says so instead of crediting it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import numpy as np
import torch

from tortuner.audio.io import resample
from tortuner.audio.mel import DVAE_SR, SAMPLES_PER_TOKEN, UNIVNET_SR, DvaeMel
from tortuner.models.gpt_data import encode_text
from tortuner.synth.render import LabRenderer, make_conditioning
from tortuner.synth.sample import SamplingConfig, sample_codes, teacher_forced

ASR_SR = 16000
MEASURES = ("wer", "speaker_sim", "stop_rate", "length_ratio", "code_tv")


@dataclass
class Utterance:
    """A held-out line of the new voice: its text, real 22.05 kHz audio and the hidden teacher's codes of it."""

    text: str
    wav: torch.Tensor
    codes: torch.Tensor  # (N,) teacher codes


@dataclass
class TextStats:
    """One held-out text's generations, as sums the measures are pooled from (so texts can be resampled)."""

    errors: int
    words: int
    sims: list[float]
    stops: list[float]
    ratios: list[float]
    histogram: np.ndarray  # (num_codes,) counts of the generated codes


def aggregate(stats: list[TextStats], reference: np.ndarray) -> dict[str, float]:
    """The measures over `stats` (corpus-level WER, pooled code histogram against the `reference` distribution)."""
    hist = np.sum([s.histogram for s in stats], 0)
    return {"wer": sum(s.errors for s in stats) / max(1, sum(s.words for s in stats)),
            "speaker_sim": float(np.mean([x for s in stats for x in s.sims])),
            "stop_rate": float(np.mean([x for s in stats for x in s.stops])),
            "length_ratio": float(np.mean([x for s in stats for x in s.ratios])),
            "code_tv": 0.5 * float(np.abs(hist / max(1, hist.sum()) - reference).sum()),
            "generations": sum(len(s.stops) for s in stats)}


def separation(none: list[TextStats], teacher: list[TextStats], reference: np.ndarray, draws: int = 1000,
               seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per measure, the 5th and 95th percentiles of teacher - none over paired bootstrap resamples of the texts."""
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[float]] = {m: [] for m in MEASURES}
    for _ in range(draws):
        idx = rng.integers(0, len(none), len(none))
        a, b = aggregate([none[i] for i in idx], reference), aggregate([teacher[i] for i in idx], reference)
        for m in MEASURES:
            diffs[m].append(b[m] - a[m])
    return {m: (float(np.percentile(d, 5)), float(np.percentile(d, 95))) for m, d in diffs.items()}


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation (what a recogniser without punctuation can be compared on)."""
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


class OutcomeScorer:
    """Holds the recogniser, the speaker encoder and the voice's reference; scores one GPT at a time."""

    def __init__(self, renderer: torch.nn.Module, held_out: list[Utterance], voice: list[torch.Tensor],
                 cond_samples: int, num_codes: int, samples_per_text: int = 3, seed: int = 0,
                 griffin_lim_iters: int = 32):
        from tortuner.data.asr import make_transcriber
        from tortuner.data.filters import VoiceEmbedder

        self.renderer = LabRenderer(renderer, griffin_lim_iters)
        self.held_out, self.samples, self.seed = held_out, samples_per_text, seed
        self.transcribe = make_transcriber("pocketsphinx")
        self.embedder = VoiceEmbedder()
        ref = np.concatenate([self.embedder.windows(_to_16k(u.wav, DVAE_SR)) for u in held_out])
        self.reference = ref.mean(0) / np.linalg.norm(ref.mean(0))
        self.num_codes = num_codes
        counts = np.bincount(torch.cat([u.codes for u in held_out]).numpy(), minlength=num_codes)[:num_codes]
        self.code_distribution = counts / max(1, counts.sum())
        rng, mel = random.Random(seed), DvaeMel()
        # the voice a user would give: two of the training clips per text, the same for every GPT
        self.conds = [make_conditioning([rng.choice(voice) for _ in range(2)], cond_samples, mel) for _ in held_out]

    @torch.no_grad()
    def score(self, gpt: torch.nn.Module) -> list[TextStats]:
        """Each held-out text's generations by `gpt`; `aggregate(stats, self.code_distribution)` gives the measures."""
        from jiwer import process_words

        gpt = gpt.eval()
        out = []
        for i, (utt, cond) in enumerate(zip(self.held_out, self.conds)):
            real = max(1, utt.wav.numel() // SAMPLES_PER_TOKEN)
            cap = min(2 * real, gpt.max_mel_tokens - 3)
            text = encode_text(utt.text)
            latent = gpt.get_conditioning(cond.mels[None])
            ref = " ".join(normalise_words(utt.text))
            torch.manual_seed(self.seed * 1000 + i)
            st = TextStats(0, 0, [], [], [], np.zeros(self.num_codes))
            for codes in sample_codes(gpt, latent, text, self.samples, SamplingConfig(max_tokens=cap)):
                st.stops.append(float(codes.numel() < cap))
                st.ratios.append(codes.numel() / real)
                st.histogram += np.bincount(codes.numpy(), minlength=self.num_codes)[: self.num_codes]
                hyp, sim = "", 0.0
                if codes.numel() >= 2:
                    lat, _ = teacher_forced(gpt, latent, text, [codes])
                    wav16 = _to_16k(self.renderer.render(cond, lat[0]), UNIVNET_SR)
                    hyp = " ".join(normalise_words(self.transcribe(wav16)))
                    emb = self.embedder.windows(wav16).mean(0)
                    sim = float(emb @ self.reference / (np.linalg.norm(emb) + 1e-9))
                words = process_words(ref, hyp)
                st.errors += words.substitutions + words.deletions + words.insertions
                st.words += len(ref.split())
                st.sims.append(sim)
            out.append(st)
        return out


def _to_16k(wav: torch.Tensor, sr: int) -> np.ndarray:
    return np.asarray(resample(wav.float().numpy(), sr, ASR_SR), dtype=np.float32)


def gain_kept(none: float, teacher: float, recovered: float) -> float | None:
    """Share of the teacher tokens' gain over no fine-tune that the recovered tokens keep (1 = all of it); None when
    the teacher's tokens gain nothing on this measure (then it does not measure the tokenizer)."""
    gain = teacher - none
    return None if abs(gain) < 1e-9 else (recovered - none) / gain
