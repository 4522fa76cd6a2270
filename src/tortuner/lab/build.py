"""`tortuner lab build`: make a world with a hidden teacher tokenizer and public models trained on its tokens.

Stages run in order and are recorded in `world.json`; a killed build reruns only unfinished stages (each stage
writes its outputs atomically, then marks itself done), and a training stage continues from its last in-loop
checkpoint (`work/<stage>.loop.pt`, every `--checkpoint-seconds`). Everything is seeded, so a seed gives the same
world, killed or not.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from tortuner.audio.io import load_audio, resample
from tortuner.audio.mel import DVAE_SR, UNIVNET_SR, DvaeMel, UnivNetMel
from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import read_json, torch_save, write_json, write_jsonl
from tortuner.lab import train
from tortuner.lab.sizes import SIZES, UNRECORDED, LabSize
from tortuner.lab.speech import build_speech
from tortuner.lab.train import WorldClip
from tortuner.lab.world import WorldPaths, load_manifest
from tortuner.models.checkpoints import load_dvae, load_tortoise_model, save_dvae, save_model_config
from tortuner.models.dvae import DiscreteVAE, DVAEConfig
from tortuner.models.gpt_data import encode_text
from tortuner.models.renderer import Renderer, fit_advance
from tortuner.models.tokenizer import Tokenizer
from tortuner.models.tortoise import build_clvp, build_gpt
from tortuner.training import LoopCheckpoint, checkpoint_seconds_arg, kept, run_stages, set_dropout

BUILD_STAGES = ("speech", "teacher", "gpt", "renderer", "clvp", "report")


@dataclass
class BuildConfig:
    size: str = arg("small", "test (machinery only), tiny (minutes), small (make demo), base (GPU)",
                    choices=sorted(SIZES))
    out: str = arg("worlds/small", "world folder (created; rerun to resume)")
    seed: int = arg(0, "same seed, same world")
    threads: int = arg(0, "torch threads (0 = torch's default)")
    until: str = arg("", "stop after this stage (default: build everything)", choices=BUILD_STAGES)
    # bf16 autocast for the teacher's and the renderer's training (not the GPT's: slower there, see docs/lab.md).
    # auto = bf16 on CPUs with native bf16 (AVX512-BF16 / AMX), where it is ~1.6x faster (elsewhere it is emulated),
    # or, for a world already started, the precision it was started with.
    mixed_precision: str = arg("auto", "bf16 autocast for the teacher and renderer training (auto = where the CPU "
                                       "has native bf16)", choices=("auto", "no", "bf16"))
    checkpoint_seconds: float = checkpoint_seconds_arg("build")


def resolve_precision(mixed_precision: str) -> str:
    """'auto' -> 'bf16' on a CPU with native bf16 arithmetic, else 'no'."""
    if mixed_precision == "auto":
        native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        return "bf16" if native else "no"
    if mixed_precision not in ("no", "bf16"):
        raise TortunerError(f"--mixed-precision {mixed_precision!r}: one of auto, no, bf16")
    return mixed_precision


def speech_clips(folder: Path, mel: DvaeMel | None = None) -> list[WorldClip]:
    """The clips of one of a world's speech sets (its `manifest.jsonl`), in manifest order, with their dVAE mel when
    `mel` is given (only the teacher trains on mels)."""
    return [WorldClip(wav=(w := load_audio(r["audio"], DVAE_SR)), mel=None if mel is None else mel(w),
                      text=r["text"], speaker=r["speaker"]) for r in load_manifest(folder)]


def texted_clips(folder: Path, dvae: DiscreteVAE) -> list[WorldClip]:
    """A speech set's transcribed clips with `dvae`'s training tokens (of the clip + 1024 zero samples)."""
    clips = [c for c in speech_clips(folder) if c.text]
    return _with_tokens(clips, Tokenizer(dvae).tokenize_training_wavs([c.wav for c in clips]))


def _with_tokens(clips: list[WorldClip], tokens: list[torch.Tensor]) -> list[WorldClip]:
    for c, toks in zip(clips, tokens):
        c.tokens = toks
    return clips


def _attach_tokens(folder: Path, dvae: DiscreteVAE) -> None:
    """Write teacher tokens into a hidden set's manifest (the tokens the recovered tokenizer is scored on)."""
    rows = load_manifest(folder)
    tokens = Tokenizer(dvae).tokenize_wavs([load_audio(row["audio"], DVAE_SR) for row in rows])
    for row, toks in zip(rows, tokens):
        row["tokens"] = toks.tolist()
        row["audio"] = str(Path(row["audio"]).relative_to(folder.resolve()))
    write_jsonl(folder / "manifest.jsonl", rows)


class WorldBuilder:
    """Builds (or continues) the world of a `BuildConfig`: one `_stage_<name>` method per stage of BUILD_STAGES."""

    def __init__(self, cfg: BuildConfig):
        if cfg.size not in SIZES:
            raise TortunerError(f"unknown size {cfg.size!r}; one of {sorted(SIZES)}")
        if cfg.until and cfg.until not in BUILD_STAGES:
            raise TortunerError(f"unknown stage {cfg.until!r}; one of {BUILD_STAGES}")
        self.cfg = cfg
        self.size = SIZES[cfg.size].build
        self.paths = WorldPaths(Path(cfg.out))
        self.mel = DvaeMel()
        self._clips: list[WorldClip] | None = None
        self._keep: Path | None = None  # where `_kept` saves what a rerun should not compute again (set by `run`)
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

    @classmethod
    def open(cls, world: str | Path) -> WorldBuilder:
        """The builder of an existing world, with the size and seed its `world.json` records: what experiments use
        to get a world's stage inputs (`training_clips`, `renderer_items`, `mel`, `size`). Writes nothing (only
        `run()` does)."""
        state = read_json(WorldPaths(Path(world)).state)
        return cls(BuildConfig(out=str(world), size=state["size"], seed=state["seed"]))

    def _precision_note(self) -> str:
        """Said up front: without native bf16 the teacher and renderer train in float32, ~2x slower (docs/lab.md)."""
        if self.bf16:
            return "teacher and renderer under bf16 autocast"
        if resolve_precision("auto") == "bf16":
            return "float32"
        return "float32 (this CPU has no native bf16, so the teacher and renderer train ~2x slower)"

    def run(self) -> dict:
        """Run the stages not yet done (stage i is seeded with seed x 100 + i); the world report, once there is one."""
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._keep = self.paths.work
        write_json(self.paths.state, self.state)
        print(f"lab build: {self.cfg.size} world, seed {self.cfg.seed}, {self._precision_note()}", flush=True)
        writer = SummaryWriter(str(self.paths.tb))

        def stage(i: int, name: str) -> None:
            seed = self.cfg.seed * 100 + i
            torch.manual_seed(seed)
            getattr(self, f"_stage_{name}")(writer, seed)

        run_stages(BUILD_STAGES, self.state, self.paths.state, stage, until=self.cfg.until, label="lab build")
        writer.close()
        return read_json(self.paths.report) if self.paths.report.is_file() else {}

    def loop_checkpoint(self, stage: str, seed: int) -> LoopCheckpoint:
        """The in-loop checkpoint of a training stage; valid only for the same size, seed and precision."""
        key = f"{stage} {self.cfg.size} {seed} {self.state['mixed_precision']} {sorted(asdict(self.size).items())}"
        return LoopCheckpoint(self.paths.work / f"{stage}.loop.pt", self.cfg.checkpoint_seconds, key)

    def _kept(self, name: str, source: Path, make: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        """`make()` (a pure function of the model file `source`), kept in `work/<name>.pt` while a build runs
        (`training.kept`): the teacher's tokens of the 4.6k training clips and the GPT's latents of them. `_drop`
        deletes it once no later stage needs it; outside `run()` (experiments through `open`) nothing is written."""
        return make() if self._keep is None else kept(self._keep / f"{name}.pt", source, make)

    def _drop(self, name: str) -> None:
        (self.paths.work / f"{name}.pt").unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------------ stages
    def _stage_speech(self, writer, seed):
        p = self.paths
        build_speech(self.size.speech, seed, {"teacher": p.teacher_speech, "public": p.public_speech,
                                              "eval": p.eval, "newvoice": p.newvoice})

    def _stage_teacher(self, writer, seed):
        s = self.size
        dvae = DiscreteVAE(DVAEConfig(num_tokens=s.num_codes, codebook_dim=s.codebook_dim, hidden_dim=s.dvae_hidden,
                                      num_resnet_blocks=s.dvae_blocks))
        clips = speech_clips(self.paths.teacher_speech, self.mel)
        ckpt = self.loop_checkpoint("teacher", seed)
        hist = train.train_teacher(clips, dvae, s.dvae_steps, s.batch, 256, writer, seed, bf16=self.bf16, ckpt=ckpt)
        save_dvae(dvae, self.paths.teacher)
        for folder in (self.paths.teacher_speech, self.paths.eval, self.paths.newvoice):
            _attach_tokens(folder, dvae)
        torch_save({"teacher": torch.tensor(hist)}, self.paths.work / "history_teacher.pt")
        ckpt.done()

    def training_clips(self) -> list[WorldClip]:
        """What the public models learn from: the teacher's speech and the public speech, with teacher tokens.

        Loaded once per build (the GPT, renderer and CLVP stages share them).
        """
        if self._clips is None:
            clips = [c for folder in (self.paths.teacher_speech, self.paths.public_speech)
                     for c in speech_clips(folder) if c.text]
            tokens = self._kept("training_tokens", self.paths.teacher, lambda: Tokenizer(
                load_dvae(self.paths.teacher)).tokenize_training_wavs([c.wav for c in clips]))
            self._clips = _with_tokens(clips, tokens)  # = texted_clips of both sets, the tokens kept for a rerun
        return self._clips

    def _stage_gpt(self, writer, seed):
        cfgs = self.size.model_configs()
        gpt = build_gpt(cfgs["gpt"])
        set_dropout(gpt, self.size.gpt_dropout)
        ckpt = self.loop_checkpoint("gpt", seed)
        hist = train.train_gpt(self.training_clips(), gpt, self.size.gpt_steps, self.size.gpt_batch,
                               self.size.cond_samples, writer, seed, lr=self.size.gpt_lr, ckpt=ckpt)
        self.paths.models.mkdir(parents=True, exist_ok=True)
        save_model_config(self.paths.models, cfgs)
        torch_save(gpt.state_dict(), self.paths.models / "autoregressive.pth")
        torch_save({"gpt": torch.tensor(hist)}, self.paths.work / "history_gpt.pt")
        ckpt.done()

    def renderer_items(self, clips: list[WorldClip], gpt, rng: random.Random,
                       keep: Path | None = None) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The renderer's training items, one per clip: (the GPT's teacher-forced latents (N, D), the conditioning
        mels (2, 80, T) it was given, and the target: the clip's univnet mel (100, frames)). `keep`: the GPT's file,
        when the latents are the build's own (kept for a rerun, see `_kept`)."""
        by_speaker = train.group_by_speaker(clips)
        umel = UnivNetMel()
        examples = [train.gpt_example(c, by_speaker[c.speaker], self.mel, self.size.cond_samples, rng)
                    for c in clips]
        if keep is None:
            latents = train.gpt_latents(gpt, examples)
        else:
            latents = self._kept("renderer_latents", keep, lambda: train.gpt_latents(gpt, examples))
        return [(lat, ex.cond_mels, umel(torch.from_numpy(resample(c.wav.numpy(), DVAE_SR, UNIVNET_SR)))[0])
                for c, ex, lat in zip(clips, examples, latents)]

    def _stage_renderer(self, writer, seed):
        gpt = load_tortoise_model(self.paths.models, "gpt")
        items = self.renderer_items(self.training_clips(), gpt, random.Random(seed),
                                    keep=self.paths.models / "autoregressive.pth")
        cfgs = self.size.model_configs()
        model = Renderer(cfgs["renderer"])
        ckpt = self.loop_checkpoint("renderer", seed)
        hist = train.train_renderer(items, model, self.size.renderer_steps, self.size.batch, 48, writer, seed,
                                    bf16=self.bf16, ckpt=ckpt)
        model.cfg.advance = fit_advance(model, items[:64])
        save_model_config(self.paths.models, cfgs)  # now with the renderer's measured timing
        torch_save(model.state_dict(), self.paths.models / "renderer.pth")
        torch_save({"renderer": torch.tensor(hist)}, self.paths.work / "history_renderer.pt")
        ckpt.done()
        self._drop("renderer_latents")

    def _stage_clvp(self, writer, seed):
        pairs = [(encode_text(c.text), c.tokens) for c in self.training_clips()]
        clvp = build_clvp(self.size.model_configs()["clvp"])
        set_dropout(clvp, self.size.clvp_dropout)
        ckpt = self.loop_checkpoint("clvp", seed)
        hist = train.train_clvp(pairs, clvp, self.size.clvp_steps, self.size.batch, writer, seed, ckpt=ckpt)
        torch_save(clvp.state_dict(), self.paths.models / "clvp2.pth")
        torch_save({"clvp": torch.tensor(hist)}, self.paths.work / "history_clvp.pt")
        ckpt.done()
        self._drop("training_tokens")

    def _stage_report(self, writer, seed):
        from tortuner.lab.report import world_report

        report = world_report(self.paths, self.size, seed)
        write_json(self.paths.report, report)


def build_world(cfg: BuildConfig) -> dict:
    return WorldBuilder(cfg).run()
