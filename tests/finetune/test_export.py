"""`tortuner export` writes what the stock UnifiedVoice loads with strict=True, for lab/tiny and full-size configs."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
from safetensors.torch import load_file

from tortuner.cli import main
from tortuner.errors import TortunerError
from tortuner.finetune.export import check_stock_layout
from tortuner.models.checkpoints import load_tortoise_model
from tortuner.models.tortoise import GPTConfig, build_gpt


@pytest.fixture(scope="module")
def run(tmp_path_factory, espeak_dataset, tiny_dvae, tiny_models):
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["finetune", "--data", str(espeak_dataset), "--dvae", str(tiny_dvae), "--models", str(tiny_models),
                 "--out", str(out), "--max-steps", "4", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3",
                 "--save-every", "2", "--val-every", "0", "--device", "cpu", "--num-workers", "0"]) == 0
    return out


def test_export_loads_strictly_into_the_stock_class(run, tiny_models, espeak_dataset, tmp_path):
    from tortoise.models.autoregressive import UnifiedVoice

    from tortuner.models.checkpoints import model_configs

    out = tmp_path / "autoregressive.pth"
    assert main(["export", str(run), "--out", str(out)]) == 0
    sd = torch.load(out, map_location="cpu", weights_only=True)
    cfg = model_configs(tiny_models)["gpt"]
    assert cfg.conditioning_blocks == 6  # the stock encoder, which UnifiedVoice always builds
    stock = UnifiedVoice(**{k: v for k, v in cfg.__dict__.items() if k != "conditioning_blocks"})
    stock.load_state_dict(sd, strict=True)
    trained = load_file(run / "checkpoints" / "step_0000004" / "model.safetensors")
    assert all(torch.equal(sd[k], trained[k]) for k in trained)
    original = torch.load(tiny_models / "autoregressive.pth", weights_only=True)
    assert not torch.equal(sd["mel_head.weight"], original["mel_head.weight"])  # it is the fine-tuned model
    # The exported file works as a drop-in `autoregressive.pth`: the user's last step, speaking with it.
    load_tortoise_model(tiny_models, "gpt", out)
    wav = tmp_path / "spoken.wav"
    assert main(["speak", "--models", str(tiny_models), "--gpt", str(out), "--voice", str(espeak_dataset / "wavs"),
                 "--text", "It works.", "--out", str(wav), "--preset", "ultra_fast", "--num-samples", "2",
                 "--max-mel-tokens", "16", "--diffusion-iterations", "3", "--device", "cpu"]) == 0
    assert wav.stat().st_size > 1000
    # --step picks an older checkpoint; --half halves the file.
    assert main(["export", str(run), "--step", "2", "--half", "--out", str(tmp_path / "s2.pth")]) == 0
    s2 = torch.load(tmp_path / "s2.pth", weights_only=True)
    assert s2["mel_head.weight"].dtype == torch.float16
    assert main(["export", str(run), "--step", "3", "--out", str(tmp_path / "s3.pth")]) == 2


def test_full_size_layout_is_what_tortoise_api_builds():
    """tortoise.api builds UnifiedVoice with literal kwargs; our default GPTConfig must give the very same layout,
    so a full-size export loads there strictly (checked on the meta device: no 1.6 GB allocation)."""
    import tortoise.api as api
    from tortoise.models.autoregressive import UnifiedVoice

    tree = ast.parse(inspect.getsource(api.TextToSpeech.__init__).strip().replace("\n    ", "\n"))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "UnifiedVoice")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    with torch.device("meta"):
        ref = UnifiedVoice(**kwargs).state_dict()
        ours = build_gpt(GPTConfig()).state_dict()
    assert {k: v.shape for k, v in ref.items()} == {k: v.shape for k, v in ours.items()}
    check_stock_layout({k: torch.empty(v.shape, device="meta") for k, v in ref.items()}, GPTConfig())
    broken = {k: torch.empty(v.shape, device="meta") for k, v in ref.items() if k != "mel_head.bias"}
    with pytest.raises(TortunerError, match="mel_head.bias"):
        check_stock_layout(broken, GPTConfig())
