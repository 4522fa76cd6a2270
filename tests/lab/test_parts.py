"""The lab's building blocks on real speech: espeak-ng speakers, Griffin-Lim inversion, the renderer."""

import math

import pytest
import torch
import torch.nn.functional as F

from tortuner.audio.griffinlim import univnet_mel_to_wav
from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, UnivNetMel
from tortuner.lab import train
from tortuner.lab.espeak import Speaker, speak
from tortuner.lab.report import bigram_nll
from tortuner.lab.speech import human_voices
from tortuner.models.renderer import Renderer, RendererConfig, fit_advance, output_frames, shift_frames
from tortuner.training import autocast, set_dropout


def test_espeak_speakers_are_deterministic_and_distinct():
    a = Speaker("en-us", "m3", 40, 150)
    b = Speaker("en-gb", "f2", 70, 180)
    text = "The quick test, spoken twice."
    wa, wa2, wb = speak(text, a), speak(text, a), speak(text, b)
    assert torch.equal(wa, wa2)
    assert wa.abs().max() > 0.1 and wa.dim() == 1
    assert wb.numel() != wa.numel() or not torch.allclose(wa, wb)
    assert wb.numel() < wa.numel()  # faster rate -> shorter


def test_griffin_lim_inverts_a_real_clip_mel():
    umel = UnivNetMel()
    wav = torch.from_numpy(resample(load_audio(human_voices()[0] / "1.wav", DVAE_SR)[: DVAE_SR * 3].numpy(),
                                    DVAE_SR, UNIVNET_SR))
    mel = umel(wav)[0]
    out = univnet_mel_to_wav(mel, n_iter=16)
    assert out.dim() == 1 and abs(out.numel() - wav.numel()) <= 1024
    again = umel(out[None])[0][:, : mel.shape[1]]
    own = F.l1_loss(again, mel[:, : again.shape[1]])
    shifted = F.l1_loss(again, mel[:, : again.shape[1]].roll(40, dims=1))
    assert own < 0.3 * shifted  # the inverted audio has the clip's spectrum and level, not just its average


@pytest.mark.parametrize("bf16", [False, True])
def test_renderer_shapes_and_it_learns(bf16):
    torch.manual_seed(0)
    model = Renderer(RendererConfig(latent_dim=16, channels=32, blocks=2))
    lat, cond = torch.randn(2, 10, 16), torch.randn(2, 2, 80, 60)
    out = model(lat, cond)
    assert out.shape == (2, 100, output_frames(10)) == (2, 100, 10 * 4 * 24000 // 22050)
    target = torch.randn(2, 100, output_frames(10))
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = F.l1_loss(model(lat, cond), target).item()
    for _ in range(40):
        with autocast(bf16):  # as the lab trains it
            loss = F.l1_loss(model(lat, cond).float(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_shift_frames_moves_a_real_mel_by_fractions_of_a_frame():
    mel = UnivNetMel()(torch.from_numpy(resample(load_audio(human_voices()[0] / "1.wav", DVAE_SR)[:DVAE_SR].numpy(),
                                                 DVAE_SR, UNIVNET_SR)))[0]
    assert torch.equal(shift_frames(mel, 0.0), mel)
    assert torch.allclose(shift_frames(mel, 2.0)[:, :-2], mel[:, 2:])
    half = shift_frames(mel, 0.5)[:, :-1]
    assert torch.allclose(half, (mel[:, :-1] + mel[:, 1:]) / 2, atol=1e-5)


def test_fit_advance_finds_a_late_renderer_and_forward_applies_it():
    torch.manual_seed(0)
    model = Renderer(RendererConfig(latent_dim=16, channels=32, blocks=2)).eval()
    items = []
    with torch.no_grad():
        for _ in range(4):
            lat, cond = torch.randn(12, 16), torch.randn(2, 80, 60)
            out = model(lat[None], cond[None])[0]
            items.append((lat, cond, shift_frames(out, 0.625)))  # targets lead the output by 0.625 frames
        assert fit_advance(model, items) == 0.625
        assert fit_advance(model, [(lat, cond, out) for lat, cond, out in
                                   ((a, b, model(a[None], b[None])[0]) for a, b, _ in items)]) == 0.0
        model.cfg.advance = 0.625
        lat, cond, target = items[0]
        assert torch.allclose(model(lat[None], cond[None])[0][:, :-1], target[:, :-1], atol=1e-5)


def test_bigram_reference_sees_code_order_and_nothing_else():
    """A code sequence that cycles is near free for the bigram; shuffled codes cost about ln K; unseen order more."""
    k, gen = 16, torch.Generator().manual_seed(0)
    cycle = [torch.arange(k).repeat(8) for _ in range(6)]
    shuffled = [torch.randint(0, k, (128,), generator=gen) for _ in range(6)]
    assert bigram_nll(cycle[:4], cycle[4:], k) < 0.1
    assert abs(bigram_nll(shuffled[:4], shuffled[4:], k) - math.log(k)) < 0.25
    assert bigram_nll(cycle[:4], [c.flip(0) for c in cycle[4:]], k) > math.log(k)


def test_gpt_latents_and_teacher_tokens_come_back_in_input_order_and_equal_one_clip_at_a_time():
    """The build batches clips by length for the renderer's latents and the teacher's tokens; each clip must get
    exactly what it gets alone, in the order given."""
    from stock_reference import stock_latents
    from tortuner.audio.mel import SAMPLES_PER_TOKEN, DvaeMel
    from tortuner.lab.train import gpt_latents
    from tortuner.models.dvae import DiscreteVAE, DVAEConfig
    from tortuner.models.gpt_data import GPTExample, encode_text
    from tortuner.models.tokenizer import Tokenizer
    from tortuner.models.tortoise import build_gpt, tiny_gpt_config

    torch.manual_seed(0)
    wav = load_audio(sorted(human_voices()[0].glob("*.wav"))[0], DVAE_SR)
    wavs = [wav[i * 3000 : i * 3000 + n] for i, n in enumerate((30000, 9000, 21000, 14000, 40000))]
    mel = DvaeMel()
    dvae = DiscreteVAE(DVAEConfig(num_tokens=64, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)).eval()
    tokens = Tokenizer(dvae).tokenize_training_wavs(wavs)
    with torch.no_grad():
        alone = [dvae.tokenize(mel(F.pad(w, (0, SAMPLES_PER_TOKEN)))[None])[0] for w in wavs]
    assert all(torch.equal(a, b) for a, b in zip(tokens, alone))

    gpt = build_gpt(tiny_gpt_config(64)).eval()
    texts = ["one", "a longer line of text, to read", "two words", "and so on", "the last line here"]
    examples = [GPTExample(encode_text(t), c, w.numel(), mel(torch.stack([w[:8000], w[-8000:]])))
                for t, c, w in zip(texts, tokens, wavs)]
    lats = gpt_latents(gpt, examples, batch=3)
    for ex, lat in zip(examples, lats):
        with torch.no_grad():
            cond = gpt.get_conditioning(ex.cond_mels[None])
        stock = stock_latents(gpt, cond, ex.text, ex.codes[: ex.wav_length // SAMPLES_PER_TOKEN])
        assert lat.shape == stock.shape and torch.allclose(lat, stock, atol=1e-5)


def test_clvp_trained_without_dropout_retrieves_its_lines_and_top1_scores_whole_groups(tmp_path):
    """The build trains the stock CLVP with `set_dropout(clvp, 0)`; every dropout must then be off, and a CLVP fit
    to 8 (text, codes) pairs must find each line's codes among the 8 (chance 1/8). Trailing pairs that do not fill a
    group of 8 are not scored."""
    from torch.utils.tensorboard import SummaryWriter

    from tortuner.lab.report import clvp_top1
    from tortuner.models.gpt_data import encode_text
    from tortuner.models.tortoise import build_clvp, tiny_clvp_config

    torch.manual_seed(0)
    clvp = build_clvp(tiny_clvp_config(64))
    set_dropout(clvp, 0.0)
    drops = [m for m in clvp.modules() if isinstance(m, torch.nn.Dropout)]
    assert drops and all(m.p == 0.0 for m in drops)
    gen = torch.Generator().manual_seed(1)
    lines = ["one small line", "the second text", "a third one here", "four and more", "five is next",
             "six of them", "seven, said he", "eight at last", "a ninth, unscored", "and a tenth"]
    pairs = [(encode_text(t), torch.randint(0, 64, (int(n),), generator=gen))
             for t, n in zip(lines, torch.randint(20, 40, (len(lines),), generator=gen))]
    hits_before, total = clvp_top1(clvp.eval(), pairs)
    assert total == 8
    train.train_clvp(pairs[:8], clvp, 150, 8, SummaryWriter(str(tmp_path)), seed=0, lr=3e-3)
    hits, total = clvp_top1(clvp, pairs)
    assert total == 8 and hits == 8 > hits_before
