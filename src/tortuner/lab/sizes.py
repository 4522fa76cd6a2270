"""The lab's sizes, one table: per size, how `lab build` makes the world and how `lab run` recovers its tokenizer.

A world records its build settings (`asdict(LabSize)`) in `world.json` as "config"; a run records its recovery
settings (`asdict(RecoveryPreset)`) in `report.json` as "preset". `lab run --preset auto` takes the world's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortuner.lab.speech import SpeechPlan
from tortuner.models.renderer import RendererConfig
from tortuner.models.tortoise import CLVPConfig, GPTConfig


@dataclass
class LabSize:
    """How `lab build` makes a world: its speech, the teacher dVAE and the public GPT, renderer and CLVP."""

    speech: SpeechPlan
    num_codes: int
    codebook_dim: int
    dvae_hidden: int
    dvae_blocks: int
    dvae_steps: int
    gpt_layers: int
    gpt_dim: int
    gpt_heads: int
    gpt_steps: int
    renderer_channels: int
    renderer_blocks: int
    renderer_steps: int
    clvp_dim: int
    clvp_depth: int
    clvp_steps: int
    batch: int = 16
    gpt_batch: int = 8
    gpt_lr: float = 1e-3
    # The stock GPT-2 dropout (0.1) only slowed the lab GPT (~25 % per step) without helping held-out NLL
    # (experiments/gpt_training.py); what stops it overfitting is more lines per speaker.
    gpt_dropout: float = 0.0
    # Likewise the stock CLVP's 0.1 dropouts: without them its steps took 0.80x as long and it retrieved held-out
    # lines as well (experiments/clvp_training.py: top-1 among 8 on the public speech 0.509 vs 0.475).
    clvp_dropout: float = 0.0
    # 1 s of conditioning instead of DL-Art-School's 2 s (44000): the stock conditioning encoder (6 attention blocks)
    # costs more than the lab's small GPT itself, and halving its input made GPT steps ~35 % faster at the same
    # held-out NLL (experiments/gpt_training.py --cond-samples; docs/lab.md).
    cond_samples: int = 22050
    # Attention blocks of the GPT's conditioning encoder (stock: 6). Over the lab's 1 s clips 2 blocks give the same
    # held-out NLL at 0.77x the GPT step (experiments/gpt_training.py --cond-blocks; docs/lab.md).
    gpt_cond_blocks: int = 6

    def model_configs(self) -> dict:
        """The world's public model configs, as `public/models/models.json` records them (and
        `models.checkpoints.model_configs` reads them back): {"gpt", "clvp", "renderer", "lab": {"cond_samples"}}."""
        gpt = GPTConfig(layers=self.gpt_layers, model_dim=self.gpt_dim, heads=self.gpt_heads, max_text_tokens=200,
                        max_mel_tokens=300, number_mel_codes=self.num_codes + 2, start_mel_token=self.num_codes,
                        stop_mel_token=self.num_codes + 1, conditioning_blocks=self.gpt_cond_blocks)
        clvp = CLVPConfig(dim_text=self.clvp_dim, dim_speech=self.clvp_dim, dim_latent=self.clvp_dim,
                          text_enc_depth=self.clvp_depth, text_seq_len=200, text_heads=4,
                          num_speech_tokens=self.num_codes, speech_enc_depth=self.clvp_depth, speech_heads=4,
                          speech_seq_len=300)
        renderer = RendererConfig(latent_dim=self.gpt_dim, channels=self.renderer_channels,
                                  blocks=self.renderer_blocks)
        return {"gpt": gpt, "clvp": clvp, "renderer": renderer, "lab": {"cond_samples": self.cond_samples}}


# What a world that does not record a setting was built with: the value builds used before the setting existed
# (settings not listed here were introduced with the old behaviour as their default).
UNRECORDED = {"clvp_dropout": 0.1}


@dataclass
class RecoveryPreset:
    """How `lab run` recovers a world's tokenizer: synthetic pairs, the distilled dVAE's size, each stage's steps."""

    num_pairs: int
    samples_per_text: int
    max_tokens: int
    codebook_dim: int
    hidden_dim: int
    blocks: int
    distill_steps: int
    finetune_steps: int
    decoder_steps: int
    recon_steps: int
    baseline_steps: int
    batch: int = 16
    curve_every: int = 100


@dataclass(frozen=True)
class Size:
    """One size of the lab: how its worlds are built and how `lab run` recovers their tokenizer."""

    build: LabSize
    recovery: RecoveryPreset


SIZES: dict[str, Size] = {
    # a few seconds of everything: for tests of the machinery, not of quality
    "test": Size(
        LabSize(SpeechPlan(3, 2, 2, 4, 3, 8, 1, 1, max_words=10), num_codes=32, codebook_dim=16, dvae_hidden=32,
                dvae_blocks=1, dvae_steps=60, gpt_layers=1, gpt_dim=64, gpt_heads=2, gpt_steps=30,
                renderer_channels=32, renderer_blocks=1, renderer_steps=30, clvp_dim=32, clvp_depth=1,
                clvp_steps=20, batch=8, gpt_batch=4, gpt_cond_blocks=2),
        RecoveryPreset(8, 4, 60, 16, 32, 1, 30, 10, 20, 20, 20, batch=4, curve_every=10)),
    "tiny": Size(
        LabSize(SpeechPlan(48, 16, 5, 48, 6, 40, 3, 3, max_words=14), num_codes=128, codebook_dim=32,
                dvae_hidden=64, dvae_blocks=1, dvae_steps=2000, gpt_layers=3, gpt_dim=128, gpt_heads=4,
                gpt_steps=1500, renderer_channels=96, renderer_blocks=3, renderer_steps=3000, clvp_dim=64,
                clvp_depth=1, clvp_steps=200, gpt_lr=2e-3, gpt_cond_blocks=2),
        RecoveryPreset(480, 8, 160, 32, 96, 1, 400, 100, 200, 300, 200, curve_every=50)),
    "small": Size(
        LabSize(SpeechPlan(40, 24, 8, 72, 8, 60, 8, 6, max_words=18), num_codes=256, codebook_dim=48,
                dvae_hidden=96, dvae_blocks=2, dvae_steps=3000, gpt_layers=3, gpt_dim=192, gpt_heads=4,
                gpt_steps=2000, renderer_channels=128, renderer_blocks=4, renderer_steps=3000, clvp_dim=96,
                clvp_depth=1, clvp_steps=300, gpt_cond_blocks=2),
        RecoveryPreset(1600, 8, 300, 64, 128, 2, 2500, 500, 1000, 1200, 1000, curve_every=250)),
    "base": Size(
        LabSize(SpeechPlan(120, 80, 20, 40, 10, 120, 14, 8, max_words=30), num_codes=2048, codebook_dim=128,
                dvae_hidden=256, dvae_blocks=3, dvae_steps=20000, gpt_layers=8, gpt_dim=512, gpt_heads=8,
                gpt_steps=20000, renderer_channels=256, renderer_blocks=6, renderer_steps=8000, clvp_dim=256,
                clvp_depth=4, clvp_steps=4000, batch=32, gpt_batch=32),
        RecoveryPreset(20000, 8, 400, 128, 256, 3, 20000, 4000, 6000, 8000, 6000, batch=32, curve_every=1000)),
}
