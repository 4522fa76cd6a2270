"""`tortuner lab build`: make a world with a hidden teacher tokenizer and public models trained on its tokens.

Stages run in order and are recorded in `world.json`; a killed build reruns only unfinished stages (each stage
writes its outputs atomically, then marks itself done). Everything is seeded, so a seed gives the same world.
"""

from __future__ import annotations

import random
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.errors import TortunerError
from tortuner.files import read_json, torch_save, write_json, write_jsonl
from tortuner.lab import train
from tortuner.lab.speech import SpeechPlan, build_speech
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae, load_tortoise_model, save_dvae, save_model_config
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.gpt_data import encode_text
from tortuner.models.renderer import Renderer, RendererConfig, fit_advance
from tortuner.models.tokenizer import Tokenizer
from tortuner.models.tortoise import CLVPConfig, GPTConfig, build_clvp, build_gpt

STAGES = ("speech", "teacher", "gpt", "renderer", "clvp", "report")


@dataclass
class LabSize:
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
    # (benchmarks/lab_gpt_training.py); what stops it overfitting is more lines per speaker.
    gpt_dropout: float = 0.0
    # Likewise the stock CLVP's 0.1 dropouts: without them its steps took 0.80x as long and it retrieved held-out
    # lines as well (benchmarks/lab_clvp_training.py: top-1 among 8 on the public speech 0.509 vs 0.475).
    clvp_dropout: float = 0.0
    # 1 s of conditioning instead of DL-Art-School's 2 s (44000): the stock conditioning encoder (6 attention blocks)
    # costs more than the lab's small GPT itself, and halving its input made GPT steps ~35 % faster at the same
    # held-out NLL (benchmarks/lab_gpt_training.py --cond-samples; docs/lab.md).
    cond_samples: int = 22050
    # Attention blocks of the GPT's conditioning encoder (stock: 6). Over the lab's 1 s clips 2 blocks give the same
    # held-out NLL at 0.77x the GPT step (benchmarks/lab_gpt_training.py --cond-blocks; docs/lab.md).
    gpt_cond_blocks: int = 6


# What a world that does not record a setting was built with: the value builds used before the setting existed
# (settings not listed here were introduced with the old behaviour as their default).
UNRECORDED = {"clvp_dropout": 0.1}

SIZES: dict[str, LabSize] = {
    # a few seconds of everything: for tests of the machinery, not of quality
    "test": LabSize(SpeechPlan(3, 2, 2, 4, 3, 8, 1, 1, max_words=10), num_codes=32, codebook_dim=16, dvae_hidden=32,
                    dvae_blocks=1, dvae_steps=60, gpt_layers=1, gpt_dim=64, gpt_heads=2, gpt_steps=30,
                    renderer_channels=32, renderer_blocks=1, renderer_steps=30, clvp_dim=32, clvp_depth=1,
                    clvp_steps=20, batch=8, gpt_batch=4, gpt_cond_blocks=2),
    "tiny": LabSize(SpeechPlan(48, 16, 5, 48, 6, 40, 3, 3, max_words=14), num_codes=128, codebook_dim=32,
                    dvae_hidden=64, dvae_blocks=1, dvae_steps=2000, gpt_layers=3, gpt_dim=128, gpt_heads=4,
                    gpt_steps=1500, renderer_channels=96, renderer_blocks=3, renderer_steps=3000, clvp_dim=64,
                    clvp_depth=1, clvp_steps=200, gpt_lr=2e-3, gpt_cond_blocks=2),
    "small": LabSize(SpeechPlan(40, 24, 8, 72, 8, 60, 8, 6, max_words=18), num_codes=256, codebook_dim=48,
                     dvae_hidden=96, dvae_blocks=2, dvae_steps=3000, gpt_layers=3, gpt_dim=192, gpt_heads=4,
                     gpt_steps=2000, renderer_channels=128, renderer_blocks=4, renderer_steps=3000, clvp_dim=96,
                     clvp_depth=1, clvp_steps=300, gpt_cond_blocks=2),
    "base": LabSize(SpeechPlan(120, 80, 20, 40, 10, 120, 14, 8, max_words=30), num_codes=2048, codebook_dim=128,
                    dvae_hidden=256, dvae_blocks=3, dvae_steps=20000, gpt_layers=8, gpt_dim=512, gpt_heads=8,
                    gpt_steps=20000, renderer_channels=256, renderer_blocks=6, renderer_steps=8000, clvp_dim=256,
                    clvp_depth=4, clvp_steps=4000, batch=32, gpt_batch=32),
}


@dataclass
class BuildConfig:
    out: str = "worlds/small"
    size: str = "small"
    seed: int = 0
    threads: int = 0  # torch threads; 0 = leave torch's default
    until: str = ""  # stop after this stage (one of STAGES); "" = build everything
    # bf16 autocast for the teacher's and the renderer's training (not the GPT's: slower there, see docs/lab.md).
    # auto = bf16 on CPUs with native bf16 (AVX512-BF16 / AMX), where it is ~1.6x faster (elsewhere it is emulated),
    # or, for a world already started, the precision it was started with.
    mixed_precision: str = "auto"


def resolve_precision(mixed_precision: str) -> str:
    """'auto' -> 'bf16' on a CPU with native bf16 arithmetic, else 'no'."""
    if mixed_precision == "auto":
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        return "bf16" if native else "no"
    if mixed_precision not in ("no", "bf16"):
        raise TortunerError(f"--mixed-precision {mixed_precision!r}: one of auto, no, bf16")
    return mixed_precision


def _configs(size: LabSize) -> dict:
    gpt = GPTConfig(layers=size.gpt_layers, model_dim=size.gpt_dim, heads=size.gpt_heads, max_text_tokens=200,
                    max_mel_tokens=300, number_mel_codes=size.num_codes + 2, start_mel_token=size.num_codes,
                    stop_mel_token=size.num_codes + 1, conditioning_blocks=size.gpt_cond_blocks)
    clvp = CLVPConfig(dim_text=size.clvp_dim, dim_speech=size.clvp_dim, dim_latent=size.clvp_dim,
                      text_enc_depth=size.clvp_depth, text_seq_len=200, text_heads=4, num_speech_tokens=size.num_codes,
                      speech_enc_depth=size.clvp_depth, speech_heads=4, speech_seq_len=300)
    renderer = RendererConfig(latent_dim=size.gpt_dim, channels=size.renderer_channels, blocks=size.renderer_blocks)
    return {"gpt": gpt, "clvp": clvp, "renderer": renderer, "lab": {"cond_samples": size.cond_samples}}


def _clips(folder: Path, mel: DvaeMel | None = None) -> list[train.Clip]:
    """A speech set's clips, with their mel when `mel` is given (only the teacher trains on mels)."""
    return [train.Clip(wav=(w := load_audio(r["audio"], DVAE_SR)), mel=None if mel is None else mel(w), text=r["text"],
                       speaker=r["speaker"]) for r in load_manifest(folder)]


def _attach_tokens(folder: Path, dvae: DiscreteVAE) -> None:
    """Write teacher tokens into a hidden set's manifest (the tokens the recovered tokenizer is scored on)."""
    rows = load_manifest(folder)
    tokens = Tokenizer(dvae).tokenize_wavs([load_audio(row["audio"], DVAE_SR) for row in rows])
    for row, toks in zip(rows, tokens):
        row["tokens"] = toks.tolist()
        row["audio"] = str(Path(row["audio"]).relative_to(folder.resolve()))
    write_jsonl(folder / "manifest.jsonl", rows)


class WorldBuilder:
    def __init__(self, cfg: BuildConfig):
        if cfg.size not in SIZES:
            raise TortunerError(f"unknown size {cfg.size!r}; one of {sorted(SIZES)}")
        if cfg.until and cfg.until not in STAGES:
            raise TortunerError(f"unknown stage {cfg.until!r}; one of {STAGES}")
        self.cfg = cfg
        self.size = SIZES[cfg.size]
        self.paths = WorldPaths(Path(cfg.out))
        self.mel = DvaeMel()
        self._clips: list[train.Clip] | None = None
        self.state = read_json(self.paths.state) if self.paths.state.is_file() else {}
        if self.state and (self.state.get("size"), self.state.get("seed")) != (cfg.size, cfg.seed):
            raise TortunerError(f"{self.paths.state}: world was started with size={self.state.get('size')} "
                                f"seed={self.state.get('seed')}; use another --out or the same settings")
        # a world that does not record a setting added to LabSize later was built the way tortuner built it before
        defaults = {f.name: f.default for f in fields(LabSize) if f.default is not MISSING} | UNRECORDED
        if {**defaults, **self.state.get("config", asdict(self.size))} != asdict(self.size):
            raise TortunerError(f"{self.paths.state}: world was started with other '{cfg.size}' settings (an older "
                                "tortuner?); use another --out")
        precision = resolve_precision(cfg.mixed_precision)
        if self.state.get("stages"):  # a started world continues in its precision (worlds before the flag: fp32)
            started = self.state.get("mixed_precision", "no")
            if cfg.mixed_precision != "auto" and precision != started:
                raise TortunerError(f"{self.paths.state}: world was started with mixed precision {started!r}, not "
                                    f"{precision!r}; use another --out")
            precision = started
        self.bf16 = precision == "bf16"
        self.state["mixed_precision"] = precision
        self.state.setdefault("stages", {})
        self.state.update(size=cfg.size, seed=cfg.seed, num_codes=self.size.num_codes,
                          config=asdict(self.size))

    def _precision_note(self) -> str:
        """Said up front: without native bf16 the teacher and renderer train in float32, ~2x slower (docs/lab.md)."""
        if self.bf16:
            return "teacher and renderer under bf16 autocast"
        if resolve_precision("auto") == "bf16":
            return "float32"
        return "float32 (this CPU has no native bf16, so the teacher and renderer train ~2x slower)"

    def _done(self, stage: str, seconds: float) -> None:
        self.state["stages"][stage] = {"done": True, "seconds": round(seconds, 1)}
        write_json(self.paths.state, self.state)

    def run(self) -> dict:
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.paths.root.mkdir(parents=True, exist_ok=True)
        write_json(self.paths.state, self.state)
        print(f"lab build: {self.cfg.size} world, seed {self.cfg.seed}, {self._precision_note()}", flush=True)
        writer = SummaryWriter(str(self.paths.tb))
        for i, stage in enumerate(STAGES):
            if self.state["stages"].get(stage, {}).get("done"):
                continue
            t0 = time.time()
            torch.manual_seed(self.cfg.seed * 100 + i)
            getattr(self, f"_stage_{stage}")(writer, self.cfg.seed * 100 + i)
            self._done(stage, time.time() - t0)
            print(f"lab build: {stage} done in {time.time() - t0:.0f} s", flush=True)
            if stage == self.cfg.until:
                break
        writer.close()
        return read_json(self.paths.report) if self.paths.report.is_file() else {}

    # ------------------------------------------------------------------------------------------------ stages
    def _stage_speech(self, writer, seed):
        p = self.paths
        build_speech(self.size.speech, seed, {"teacher": p.teacher_speech, "public": p.public_speech,
                                              "eval": p.eval, "newvoice": p.newvoice})

    def _stage_teacher(self, writer, seed):
        s = self.size
        dvae = DiscreteVAE(DVAEConfig(num_tokens=s.num_codes, codebook_dim=s.codebook_dim, hidden_dim=s.dvae_hidden,
                                      num_resnet_blocks=s.dvae_blocks))
        clips = _clips(self.paths.teacher_speech, self.mel)
        hist = train.train_teacher(clips, dvae, s.dvae_steps, s.batch, 256, writer, seed, bf16=self.bf16)
        save_dvae(dvae, self.paths.teacher)
        for folder in (self.paths.teacher_speech, self.paths.eval, self.paths.newvoice):
            _attach_tokens(folder, dvae)
        torch_save({"teacher": torch.tensor(hist)}, self.paths.work / "history_teacher.pt")

    def _texted_clips(self, folder: Path, dvae: DiscreteVAE) -> list[train.Clip]:
        clips = [c for c in _clips(folder) if c.text]
        for c, tokens in zip(clips, Tokenizer(dvae).tokenize_training_wavs([c.wav for c in clips])):
            c.tokens = tokens
        return clips

    def _training_clips(self) -> list[train.Clip]:
        """What the public models learn from: the teacher's speech and the public speech, with teacher tokens.

        Loaded once per build (the GPT, renderer and CLVP stages share them).
        """
        if self._clips is None:
            dvae = load_dvae(self.paths.teacher)
            self._clips = (self._texted_clips(self.paths.teacher_speech, dvae)
                           + self._texted_clips(self.paths.public_speech, dvae))
        return self._clips

    def _stage_gpt(self, writer, seed):
        cfgs = _configs(self.size)
        gpt = build_gpt(cfgs["gpt"])
        train.set_dropout(gpt, self.size.gpt_dropout)
        hist = train.train_gpt(self._training_clips(), gpt, self.size.gpt_steps, self.size.gpt_batch,
                               self.size.cond_samples, writer, seed, lr=self.size.gpt_lr)
        self.paths.models.mkdir(parents=True, exist_ok=True)
        save_model_config(self.paths.models, cfgs)
        torch_save(gpt.state_dict(), self.paths.models / "autoregressive.pth")
        torch_save({"gpt": torch.tensor(hist)}, self.paths.work / "history_gpt.pt")

    def _renderer_items(self, clips: list[train.Clip], gpt, rng: random.Random):
        by_speaker = train.group_by_speaker(clips)
        umel = UnivNetMel()
        examples = [train.gpt_example(c, by_speaker[c.speaker], self.mel, self.size.cond_samples, rng) for c in clips]
        latents = train.gpt_latents(gpt, examples)
        return [(lat, ex.cond_mels, umel(torch.from_numpy(resample(c.wav.numpy(), DVAE_SR, UNIVNET_SR)))[0])
                for c, ex, lat in zip(clips, examples, latents)]

    def _stage_renderer(self, writer, seed):
        gpt = load_tortoise_model(self.paths.models, "gpt")
        items = self._renderer_items(self._training_clips(), gpt, random.Random(seed))
        cfgs = _configs(self.size)
        model = Renderer(cfgs["renderer"])
        hist = train.train_renderer(items, model, self.size.renderer_steps, self.size.batch, 48, writer, seed,
                                    bf16=self.bf16)
        model.cfg.advance = fit_advance(model, items[:64])
        save_model_config(self.paths.models, cfgs)  # now with the renderer's measured timing
        torch_save(model.state_dict(), self.paths.models / "renderer.pth")
        torch_save({"renderer": torch.tensor(hist)}, self.paths.work / "history_renderer.pt")

    def _stage_clvp(self, writer, seed):
        pairs = [(encode_text(c.text), c.tokens) for c in self._training_clips()]
        clvp = build_clvp(_configs(self.size)["clvp"])
        train.set_dropout(clvp, self.size.clvp_dropout)
        hist = train.train_clvp(pairs, clvp, self.size.clvp_steps, self.size.batch, writer, seed)
        torch_save(clvp.state_dict(), self.paths.models / "clvp2.pth")
        torch_save({"clvp": torch.tensor(hist)}, self.paths.work / "history_clvp.pt")

    def _stage_report(self, writer, seed):
        from tortuner.lab.report import world_report

        report = world_report(self.paths, self.size, seed)
        write_json(self.paths.report, report)


def build_world(cfg: BuildConfig) -> dict:
    return WorldBuilder(cfg).run()
