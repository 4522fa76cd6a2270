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
* `length_ratio`: generated codes / codes of the real clip of the same text (1 = same duration).

Every GPT is scored on the same texts, conditioning clips and sampling seeds, so differences come from the GPT.
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
MEASURES = ("wer", "speaker_sim", "stop_rate", "length_ratio")


@dataclass
class Utterance:
    """A held-out line of the new voice: its text and real 22.05 kHz audio."""

    text: str
    wav: torch.Tensor


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation (what a recogniser without punctuation can be compared on)."""
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


class OutcomeScorer:
    """Holds the recogniser, the speaker encoder and the voice's reference; scores one GPT at a time."""

    def __init__(self, renderer: torch.nn.Module, held_out: list[Utterance], voice: list[torch.Tensor],
                 cond_samples: int, samples_per_text: int = 3, seed: int = 0, griffin_lim_iters: int = 32):
        from tortuner.data.asr import make_transcriber
        from tortuner.data.filters import VoiceEmbedder

        self.renderer = LabRenderer(renderer, griffin_lim_iters)
        self.held_out, self.samples, self.seed = held_out, samples_per_text, seed
        self.transcribe = make_transcriber("pocketsphinx")
        self.embedder = VoiceEmbedder()
        ref = np.concatenate([self.embedder.windows(_to_16k(u.wav, DVAE_SR)) for u in held_out])
        self.reference = ref.mean(0) / np.linalg.norm(ref.mean(0))
        rng, mel = random.Random(seed), DvaeMel()
        # the voice a user would give: two of the training clips per text, the same for every GPT
        self.conds = [make_conditioning([rng.choice(voice) for _ in range(2)], cond_samples, mel) for _ in held_out]

    @torch.no_grad()
    def score(self, gpt: torch.nn.Module) -> dict[str, float]:
        from jiwer import process_words

        gpt = gpt.eval()
        refs, hyps, sims, stops, ratios = [], [], [], [], []
        for i, (utt, cond) in enumerate(zip(self.held_out, self.conds)):
            real = max(1, utt.wav.numel() // SAMPLES_PER_TOKEN)
            cap = min(2 * real, gpt.max_mel_tokens - 3)
            cfg = SamplingConfig(max_tokens=cap)
            text = encode_text(utt.text)
            latent = gpt.get_conditioning(cond.mels[None])
            torch.manual_seed(self.seed * 1000 + i)
            for codes in sample_codes(gpt, latent, text, self.samples, cfg):
                stops.append(float(codes.numel() < cap))
                ratios.append(codes.numel() / real)
                if codes.numel() < 2:
                    hyps.append("")
                    refs.append(" ".join(normalise_words(utt.text)))
                    sims.append(0.0)
                    continue
                lat, _ = teacher_forced(gpt, latent, text, [codes])
                wav16 = _to_16k(self.renderer.render(cond, lat[0]), UNIVNET_SR)
                hyps.append(" ".join(normalise_words(self.transcribe(wav16))))
                refs.append(" ".join(normalise_words(utt.text)))
                emb = self.embedder.windows(wav16).mean(0)
                sims.append(float(emb @ self.reference / (np.linalg.norm(emb) + 1e-9)))
        words = process_words(refs, hyps)
        errors = words.substitutions + words.deletions + words.insertions
        total = sum(len(r.split()) for r in refs)
        return {"wer": errors / max(1, total), "speaker_sim": float(np.mean(sims)), "stop_rate": float(np.mean(stops)),
                "length_ratio": float(np.mean(ratios)), "generations": len(stops)}


def _to_16k(wav: torch.Tensor, sr: int) -> np.ndarray:
    return np.asarray(resample(wav.float().numpy(), sr, ASR_SR), dtype=np.float32)


def gain_kept(none: float, teacher: float, recovered: float) -> float | None:
    """Share of the teacher tokens' gain over no fine-tune that the recovered tokens keep (1 = all of it); None when
    the teacher's tokens gain nothing on this measure (then it does not measure the tokenizer)."""
    gain = teacher - none
    return None if abs(gain) < 1e-9 else (recovered - none) / gain
