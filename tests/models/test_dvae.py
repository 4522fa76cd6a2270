"""The dVAE matches DL-Art-School's layout (tests/fixtures/dvae_state_dict.json, copied from the compat spec) and
its VQ semantics, checked against independent computations."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tortuner.errors import TortunerError
from tortuner.models.checkpoints import load_dvae, save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig, EMACodebook, code_distances, config_from_state_dict

SPEC = json.loads((Path(__file__).parents[1] / "fixtures" / "dvae_state_dict.json").read_text())
SMALL = DVAEConfig(num_tokens=64, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)


def test_tortoise_config_state_dict_is_exactly_the_spec():
    with torch.device("meta"):
        sd = DiscreteVAE().state_dict()
    assert list(sd) == list(SPEC)  # same keys, same order as DL-Art-School saves them
    assert {k: list(v.shape) for k, v in sd.items()} == SPEC


def test_a_spec_shaped_file_loads_strictly_and_saves_back_identically(tmp_path):
    g = torch.Generator().manual_seed(0)
    foreign = {k: torch.randn(*shape, generator=g) for k, shape in SPEC.items()}
    foreign["discrete_loss.accumulator"] = torch.zeros(3)  # coqui's extra buffers are ignored
    torch.save(foreign, tmp_path / "dvae.pth")
    model = load_dvae(tmp_path / "dvae.pth")
    assert model.cfg == DVAEConfig()
    save_dvae(model, tmp_path / "again.pth")
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    assert set(again) == set(SPEC)
    assert all(torch.equal(again[k], foreign[k]) for k in SPEC)


def test_tokens_are_nearest_codebook_columns_and_decode_looks_up_rows():
    torch.manual_seed(0)
    model = DiscreteVAE(SMALL).eval()
    mel = torch.randn(2, 80, 37)
    z = model.encode(mel).detach().numpy()  # (B, T', D)
    embed = model.codebook.embed.numpy()    # (D, K)
    ref = ((z[..., :, None] - embed[None, None]) ** 2).sum(2).argmin(-1)
    tokens = model.tokenize(mel)
    assert tokens.shape == (2, 10)  # ceil(37 / 4)
    assert np.array_equal(tokens.numpy(), ref)
    vectors = torch.from_numpy(embed.T[tokens.numpy()])
    assert torch.allclose(model.decode(tokens), model.decoder(vectors.transpose(1, 2)))
    assert model.decode(tokens).shape == (2, 80, 40)
    assert torch.equal(model.logits(mel).argmax(-1), tokens)


def test_batched_tokenize_with_lengths_equals_one_at_a_time():
    torch.manual_seed(1)
    model = DiscreteVAE(SMALL).eval()
    mels = [torch.randn(80, n) for n in (13, 64, 41)]
    batch = torch.zeros(3, 80, 64)
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[1]] = m
    together = model.tokenize(batch, torch.tensor([m.shape[1] for m in mels]))
    for i, m in enumerate(mels):
        alone = model.tokenize(m[None])[0]
        assert torch.equal(together[i, : alone.numel()], alone)


def test_ema_update_follows_the_laplace_smoothed_formula():
    torch.manual_seed(2)
    model = DiscreteVAE(SMALL)
    cb = model.codebook
    flat = torch.randn(50, 16)
    tokens = cb.distances(flat).argmin(-1)
    size0, avg0 = cb.cluster_size.clone(), cb.embed_avg.clone()
    cb.ema_update(flat, tokens)
    counts = torch.bincount(tokens, minlength=64).float()
    sums = torch.zeros(16, 64).index_add_(1, tokens, flat.t())
    size = 0.99 * size0 + 0.01 * counts
    avg = 0.99 * avg0 + 0.01 * sums
    n = size.sum()
    expected = avg / ((size + 1e-5) / (n + 64 * 1e-5) * n)
    assert torch.allclose(cb.cluster_size, size) and torch.allclose(cb.embed, expected, atol=1e-5)


@pytest.mark.parametrize("bf16", [False, True])
def test_training_step_reduces_reconstruction_error_on_real_speech(real_clip, bf16):
    """Also under bf16 autocast, as the lab trains its teacher: the nearest-code search and EMA sums stay float32."""
    from tortuner.audio.io import load_audio
    from tortuner.audio.mel import DvaeMel

    torch.manual_seed(3)
    mel = DvaeMel()(load_audio(real_clip, 22050)[: 22050 * 4])[None]
    model = DiscreteVAE(SMALL).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            recon, commit, tokens = model(mel)
        loss = F.mse_loss(recon.float(), mel) + 0.25 * commit
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(F.mse_loss(recon.float(), mel).item())
    assert recon.shape == mel.shape and tokens.shape == (1, -(-mel.shape[-1] // 4))
    assert losses[-1] < 0.5 * losses[0]
    if not bf16:
        return
    assert recon.dtype == torch.bfloat16 and commit.dtype == torch.float32
    assert all(b.dtype == torch.float32 for b in model.codebook.buffers())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, tokens = model(mel)
        z = model.encode(mel).float()  # the same bf16 encoder outputs the step quantised
    assert torch.equal(tokens[0], torch.cdist(z[0], model.codebook.embed.t()).argmin(-1))


def test_code_distances_are_squared_euclidean_to_the_columns():
    g = torch.Generator().manual_seed(0)
    z, embed = torch.randn(2, 5, 8, generator=g), torch.randn(8, 12, generator=g)
    expected = torch.cdist(z, embed.t()[None].expand(2, -1, -1)) ** 2
    assert torch.allclose(code_distances(z, embed), expected, atol=1e-4)


def test_dead_codes_restart_on_encoder_outputs_with_either_policy():
    book = EMACodebook(4, 6)
    book.cluster_size.copy_(torch.tensor([10.0, 10.0, 0.5, 10.0, 0.0, 10.0]))
    before, flat = book.embed.clone(), torch.randn(20, 4)
    mean = float(book.cluster_size.mean())
    # the lab teacher's policy: dead below a tenth of the mean count, restarted at half the mean count, no noise
    assert book.restart_dead_codes(flat, relative=0.1, refill=0.5, jitter=0.0,
                                   generator=torch.Generator().manual_seed(0)) == 2
    moved = torch.tensor([False, False, True, False, True, False])
    assert torch.equal(book.embed[:, ~moved], before[:, ~moved])
    assert all(any(torch.equal(book.embed[:, j], row) for row in flat) for j in (2, 4))
    assert torch.equal(book.embed_avg[:, moved], book.embed[:, moved])
    assert torch.allclose(book.cluster_size[moved], torch.tensor(0.5 * mean))
    # the default (recovery's baseline): only counts below 1e-3, none left now
    assert book.restart_dead_codes(flat) == 0
    # reseeding moves every code and counts each once
    assert book.restart_dead_codes(flat, reseed=True, jitter=0.0) == 6
    assert torch.equal(book.cluster_size, torch.ones(6))


def test_config_is_inferred_from_any_size():
    for cfg in (SMALL, DVAEConfig(num_tokens=512, codebook_dim=64, hidden_dim=96, num_resnet_blocks=2)):
        assert config_from_state_dict(DiscreteVAE(cfg).state_dict()) == cfg


def test_bad_dvae_files_are_one_line_errors(tmp_path):
    torch.save({"hello": torch.zeros(2)}, tmp_path / "other.pth")
    (tmp_path / "broken.pth").write_bytes(b"\x80\x02garbage")
    sd = DiscreteVAE(SMALL).state_dict()
    sd["encoder.0.0.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "wrong.pth")
    for name, needle in (("missing.pth", "not found"), ("other.pth", "not a dVAE"), ("broken.pth", "cannot read"),
                         ("wrong.pth", "shape")):
        with pytest.raises(TortunerError) as e:
            load_dvae(tmp_path / name)
        assert name in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)
