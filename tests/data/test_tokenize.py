"""`tortuner tokenize` end to end on real speech with a small dVAE file."""

import json
import shutil

import pytest
import torch

from tortuner.audio.io import load_audio
from tortuner.audio.mel import DvaeMel, num_frames, num_tokens
from tortuner.cli import main
from tortuner.models.checkpoints import save_dvae
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def dvae_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("dvae") / "dvae.pth"
    save_dvae(DiscreteVAE(DVAEConfig(num_tokens=128, codebook_dim=16, hidden_dim=32, num_resnet_blocks=1)), path)
    return path


@pytest.fixture()
def audio_dir(tmp_path, tortoise_voices):
    d = tmp_path / "audio"
    for speaker in ("lj", "emma", "tom"):
        for wav in sorted((tortoise_voices / speaker).glob("*.wav"))[:2]:
            (d / speaker).mkdir(parents=True, exist_ok=True)
            shutil.copy(wav, d / speaker / wav.name)
    (d / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return d


def test_tokenize_cli_writes_one_line_per_file_and_skips_bad_ones(dvae_file, audio_dir, tmp_path, capsys):
    out = tmp_path / "tokens.jsonl"
    assert main(["tokenize", "--dvae", str(dvae_file), "--out", str(out), "--batch-files", "4", str(audio_dir)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6
    err = capsys.readouterr().err
    assert "broken.wav" in err and "skipped" in err
    from tortuner.models.checkpoints import load_dvae

    dvae = load_dvae(dvae_file)
    mel = DvaeMel()
    for row in rows:  # each equals tokenizing that file alone, with ceil(frames / 4) tokens
        wav = load_audio(row["audio"], 22050)
        alone = dvae.tokenize(mel(wav)[None])[0].tolist()
        assert row["tokens"] == alone
        assert len(alone) == num_tokens(num_frames(wav.numel()))
        assert all(0 <= t < 128 for t in alone)


def test_tokenize_resumes_and_keeps_finished_files(dvae_file, audio_dir, tmp_path):
    out = tmp_path / "tokens.jsonl"
    first = audio_dir / "lj"
    assert main(["tokenize", "--dvae", str(dvae_file), "--out", str(out), str(first)]) == 0
    before = out.read_text()
    assert main(["tokenize", "--dvae", str(dvae_file), "--out", str(out), str(audio_dir)]) == 0
    after = out.read_text()
    assert after.startswith(before) and len(after.splitlines()) == 6


def test_missing_dvae_is_a_clear_error(audio_dir, tmp_path, capsys):
    assert main(["tokenize", "--dvae", str(tmp_path / "dvae.pth"), str(audio_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tortuner: error:") and "dvae.pth" in err and "not found" in err and "\n" not in err
    assert main(["tokenize", "--dvae", "tortoise", str(audio_dir)]) == 2


def test_tokenizer_batches_mixed_lengths_exactly(dvae_file, real_clip):
    from tortuner.models.checkpoints import load_dvae

    wav = load_audio(real_clip, 22050)
    wavs = [wav[:n] for n in (5000, 30000, 12345, 60000)]
    tok = Tokenizer(load_dvae(dvae_file), max_batch_frames=1000)
    together = tok.tokenize_wavs(wavs)
    singles = [Tokenizer(load_dvae(dvae_file)).tokenize_wavs([w])[0] for w in wavs]
    assert all(torch.equal(a, b) for a, b in zip(together, singles))
