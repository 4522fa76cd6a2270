"""Builders for TorToiSe's public models, using the stock classes of the `tortoise` package.

The `*Config` dataclasses hold the constructor arguments; their defaults are exactly the ones `tortoise.api`
uses at inference, so a model built with the defaults loads TorToiSe's released `.pth` files strictly. Small
configurations (`tiny_*_config`) build the very same classes for the tests (the lab sizes its own from its
settings). Nothing here touches files; see `tortuner.models.checkpoints` for loading weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

# TorToiSe's dVAE vocabulary: 8192 codes plus start (8192) and stop (8193) tokens in the GPT.
NUM_CODES = 8192
SILENCE_TOKEN = 83  # what tortoise.api pads generated codes with after the stop token


@dataclass
class GPTConfig:
    """`UnifiedVoice` arguments (the GPT). number_mel_codes = dVAE codes + 2 (start, stop)."""

    layers: int = 30
    model_dim: int = 1024
    heads: int = 16
    max_text_tokens: int = 402
    max_mel_tokens: int = 604
    max_conditioning_inputs: int = 2
    mel_length_compression: int = 1024
    number_text_tokens: int = 255
    start_text_token: int = 255
    number_mel_codes: int = NUM_CODES + 2
    start_mel_token: int = NUM_CODES
    stop_mel_token: int = NUM_CODES + 1
    train_solo_embeddings: bool = False
    use_mel_codes_as_input: bool = True
    checkpointing: bool = False
    # Attention blocks of the conditioning encoder. Not a `UnifiedVoice` argument (the stock class always builds
    # 6, as TorToiSe's released GPT has); a smaller world can keep fewer, which `build_gpt` cuts off.
    conditioning_blocks: int = 6

    @property
    def num_codes(self) -> int:
        return self.number_mel_codes - 2


@dataclass
class CLVPConfig:
    dim_text: int = 768
    dim_speech: int = 768
    dim_latent: int = 768
    num_text_tokens: int = 256
    text_enc_depth: int = 20
    text_seq_len: int = 350
    text_heads: int = 12
    num_speech_tokens: int = NUM_CODES
    speech_enc_depth: int = 20
    speech_heads: int = 12
    speech_seq_len: int = 430
    use_xformers: bool = True


@dataclass
class DiffusionConfig:
    model_channels: int = 1024
    num_layers: int = 10
    in_channels: int = 100
    out_channels: int = 200
    in_latent_channels: int = 1024
    in_tokens: int = NUM_CODES + 1
    dropout: float = 0.0
    use_fp16: bool = False
    num_heads: int = 16
    layer_drop: float = 0.0
    unconditioned_percentage: float = 0.0


@dataclass
class VocoderConfig:
    noise_dim: int = 64
    channel_size: int = 32


def tiny_gpt_config(num_codes: int = 64, checkpointing: bool = False) -> GPTConfig:
    return GPTConfig(layers=2, model_dim=64, heads=2, max_text_tokens=120, max_mel_tokens=250,
                     number_mel_codes=num_codes + 2, start_mel_token=num_codes, stop_mel_token=num_codes + 1,
                     checkpointing=checkpointing)


def tiny_clvp_config(num_codes: int = 64) -> CLVPConfig:
    return CLVPConfig(dim_text=32, dim_speech=32, dim_latent=32, text_enc_depth=1, text_seq_len=120, text_heads=2,
                      num_speech_tokens=num_codes, speech_enc_depth=1, speech_heads=2, speech_seq_len=250)


def tiny_diffusion_config(num_codes: int = 64) -> DiffusionConfig:
    return DiffusionConfig(model_channels=32, num_layers=1, in_latent_channels=64, in_tokens=num_codes + 1, num_heads=2)


def tiny_vocoder_config() -> VocoderConfig:
    return VocoderConfig(noise_dim=8, channel_size=4)


def build_gpt(cfg: GPTConfig = GPTConfig()) -> nn.Module:
    from tortoise.models.autoregressive import UnifiedVoice

    args = asdict(cfg)
    blocks = args.pop("conditioning_blocks")
    gpt = UnifiedVoice(**args)
    encoder = gpt.conditioning_encoder
    if not 1 <= blocks <= len(encoder.attn):
        raise ValueError(f"conditioning_blocks={blocks}: between 1 and {len(encoder.attn)}")
    encoder.attn = encoder.attn[:blocks]
    use_fused_gelu(gpt.gpt)
    return gpt


def use_fused_gelu(transformer: nn.Module) -> None:
    """Give GPT-2 blocks PyTorch's fused tanh-GELU in place of transformers' `gelu_new`.

    Both compute 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (equal to float32 rounding),
    but `gelu_new` runs it as six elementwise ops, each saved for backward: the fused op made a lab GPT training
    step 0.83x as long (`experiments/build_costs.py`, steps alternating). The activation has no weights, so
    checkpoints are unchanged.
    """
    from transformers.activations import ACT2FN

    for block in transformer.h:
        block.mlp.act = ACT2FN["gelu_pytorch_tanh"]
    transformer.config.activation_function = "gelu_pytorch_tanh"


def build_clvp(cfg: CLVPConfig = CLVPConfig()) -> nn.Module:
    from tortoise.models.clvp import CLVP

    return CLVP(**asdict(cfg))


def build_diffusion(cfg: DiffusionConfig = DiffusionConfig()) -> nn.Module:
    from tortoise.models.diffusion_decoder import DiffusionTts

    return DiffusionTts(**asdict(cfg))


def build_vocoder(cfg: VocoderConfig = VocoderConfig()) -> nn.Module:
    from tortoise.models.vocoder import UnivNetGenerator

    return UnivNetGenerator(noise_dim=cfg.noise_dim, channel_size=cfg.channel_size)
