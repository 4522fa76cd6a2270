"""TorToiSe's stock classes, built small, saved under their released names and loaded back through tortuner."""

import dataclasses

import pytest
import torch
import transformers
from packaging.version import Version

from support.tiny_models import make_tiny_models
from tortuner.errors import TortunerError
from tortuner.models.checkpoints import load_tortoise_model, model_configs, save_model_config
from tortuner.models.gpt_data import encode_text, total_loss
from tortuner.models.tortoise import GPTConfig, build_gpt, tiny_gpt_config


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return make_tiny_models(tmp_path_factory.mktemp("models"), 64, released_gpt_keys=True)


def test_all_four_models_load_strictly(models_dir):
    for name in ("gpt", "clvp", "diffusion", "vocoder"):
        model = load_tortoise_model(models_dir, name)
        assert not model.training
    assert model_configs(models_dir)["gpt"].num_codes == 64


def test_default_config_is_tortoise_api_inference_config():
    cfg = GPTConfig()
    assert (cfg.layers, cfg.model_dim, cfg.heads, cfg.max_text_tokens, cfg.max_mel_tokens) == (30, 1024, 16, 402, 604)
    assert (cfg.number_text_tokens, cfg.start_text_token, cfg.number_mel_codes) == (255, 255, 8194)
    with torch.device("meta"):
        n = sum(p.numel() for p in build_gpt(cfg).parameters())
    assert 400e6 < n < 450e6  # ~421.5 M parameters, as the released autoregressive.pth


def test_fewer_conditioning_blocks_cut_the_stock_encoder_and_round_trip(tmp_path):
    stock = build_gpt(tiny_gpt_config(64))
    cfg = dataclasses.replace(tiny_gpt_config(64), conditioning_blocks=2)
    torch.manual_seed(0)
    small = build_gpt(cfg)
    assert len(stock.conditioning_encoder.attn) == 6 and len(small.conditioning_encoder.attn) == 2
    cut = {k for k in stock.state_dict() if k.startswith("conditioning_encoder.attn.") and int(k.split(".")[2]) >= 2}
    assert set(small.state_dict()) == set(stock.state_dict()) - cut
    torch.save(small.state_dict(), tmp_path / "autoregressive.pth")
    save_model_config(tmp_path, {"gpt": cfg})
    loaded = load_tortoise_model(tmp_path, "gpt")
    mel = torch.randn(1, 80, 40)
    assert torch.equal(loaded.get_conditioning(mel), small.eval().get_conditioning(mel))
    for bad in (0, 7):
        with pytest.raises(ValueError, match="conditioning_blocks"):
            build_gpt(dataclasses.replace(cfg, conditioning_blocks=bad))


def test_fused_gelu_gives_the_stock_gpt_losses_and_gradients():
    from tortoise.models.autoregressive import UnifiedVoice
    from transformers.activations import NewGELUActivation, PytorchGELUTanh

    cfg = tiny_gpt_config(64)
    torch.manual_seed(0)
    ours = build_gpt(cfg)
    stock = UnifiedVoice(**{k: v for k, v in dataclasses.asdict(cfg).items() if k != "conditioning_blocks"})
    stock.load_state_dict(ours.state_dict())
    assert all(isinstance(b.mlp.act, PytorchGELUTanh) for b in ours.gpt.h)
    assert all(isinstance(b.mlp.act, NewGELUActivation) for b in stock.gpt.h)
    text = encode_text("A short line, for the test.")[None]
    codes = torch.randint(0, 64, (1, 30))
    cond_mels = torch.randn(1, 2, 80, 60)
    losses = {}
    for name, model in (("ours", ours), ("stock", stock)):
        model.eval()  # no dropout: the two must compute the same function
        model.zero_grad()
        lt, lm, _ = model(model.get_conditioning(cond_mels), text, torch.tensor([text.shape[1]]), codes,
                          torch.tensor([30 * 1024]))
        total_loss(lt, lm).backward()
        losses[name] = (lt.detach(), lm.detach(), model.gpt.h[0].mlp.c_fc.weight.grad.clone())
    for a, b in zip(losses["ours"], losses["stock"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_missing_corrupt_and_mismatched_files_are_named(models_dir, tmp_path):
    with pytest.raises(TortunerError, match="not found"):
        load_tortoise_model(tmp_path / "nowhere", "gpt")
    (tmp_path / "models.json").write_text((models_dir / "models.json").read_text())
    with pytest.raises(TortunerError, match=r"autoregressive\.pth: TorToiSe gpt weights not found .*HuggingFace"):
        load_tortoise_model(tmp_path, "gpt")
    (tmp_path / "clvp2.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TortunerError, match=r"clvp2\.pth: cannot read"):
        load_tortoise_model(tmp_path, "clvp")
    sd = torch.load(models_dir / "autoregressive.pth", weights_only=True)
    sd["gpt.h.0.attn.something_else"] = torch.zeros(1)  # only the known stale keys may be dropped
    torch.save(sd, tmp_path / "autoregressive.pth")
    with pytest.raises(TortunerError, match="unexpected keys"):
        load_tortoise_model(tmp_path, "gpt")


def test_transformers_is_pinned_below_4_56():
    assert Version("4.43") <= Version(transformers.__version__) < Version("4.56")


def test_kv_cache_sampling_depends_on_the_prompt(models_dir):
    """transformers >= 4.56 silently drops the conditioning+text prompt in TorToiSe's cached sampling."""
    torch.manual_seed(0)
    gpt = load_tortoise_model(models_dir, "gpt")
    with torch.no_grad():  # sharpen attention so that a random tiny GPT really depends on its prompt
        for name, p in gpt.named_parameters():
            if "attn.c_attn.weight" in name or "text_embedding" in name:
                p.mul_(20)
    gpt.post_init_gpt2_config(kv_cache=True)
    cond = gpt.get_conditioning(torch.randn(1, 2, 80, 100))
    outs = set()
    for text in ("The quick brown fox jumps over the lazy dog.", "Colourless green ideas sleep furiously!", "Hi."):
        out = gpt.inference_speech(cond, encode_text(text)[None], do_sample=False, max_generate_length=12)
        outs.add(tuple(out[0].tolist()))
    assert len(outs) == 3
