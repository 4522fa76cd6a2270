"""`tortuner lab run`: recover a world's tokenizer from its public half, then score it against the hidden teacher.

Stages (each resumable, recorded in RUN/state.json): synth -> distill -> decoder -> recon (the proposal) ->
improved (self-training on GPT-guided pseudo-labels) -> select (the public GPT gain picks RUN/dvae.pth, no hidden
data) -> baseline. Only `WORLD/public/` is read by these; `score` then uses `WORLD/hidden/` when it exists.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tortuner.config_args import arg
from tortuner.errors import TortunerError
from tortuner.files import read_json, sha_file, write_json
from tortuner.lab.oracle import train_oracle
from tortuner.lab.sizes import SIZES
from tortuner.lab.world import WorldPaths
from tortuner.models.checkpoints import cond_samples_of, load_dvae, load_tortoise_model, model_configs, save_dvae
from tortuner.recover.baseline import BaselineConfig, matched_agreement, run_baseline
from tortuner.recover.data import load_real
from tortuner.recover.decoder import DecoderConfig, run_decoder
from tortuner.recover.distill import DistillConfig, run_distill
from tortuner.recover.evaluate import score_tokenizer
from tortuner.recover.recon import ReconConfig, run_recon
from tortuner.synth.synth import SynthConfig, run_synth
from tortuner.training import checkpoint_seconds_arg, run_stages

RUN_STAGES = ("synth", "distill", "decoder", "recon", "improved", "select", "baseline")


@dataclass
class RunConfig:
    world: str = arg("worlds/small", "lab world folder (`tortuner lab build`); only its public/ half is used to "
                                     "recover, its hidden/ half (when present) to score")
    out: str = arg("runs/small", "run folder (created; rerun to resume)")
    preset: str = arg("auto", "recovery settings of this size (auto = the world's size)",
                      choices=("auto", *SIZES))
    ablation: bool = arg(False, "also run the ablations (fewer pairs, no CLVP filter, no decoder pre-training)")
    score_only: bool = arg(False, "only score the finished stages against the hidden teacher")
    num_pairs: int = arg(0, "synthetic pairs (0 = the preset's)")
    pseudo_weight: float = arg(1.0, "the improved stage's pseudo-label weight (self-training: anchor 1, no recon loss)")
    seed: int = arg(0, "seed of every stage")
    threads: int = arg(2, "torch threads")
    checkpoint_seconds: float = checkpoint_seconds_arg("run")


class LabRun:
    """Recovers (`run`) and scores (`score`) one world's tokenizer: one `_<name>` method per stage of RUN_STAGES."""

    def __init__(self, cfg: RunConfig):
        self.cfg, self.world, self.out = cfg, WorldPaths(cfg.world), Path(cfg.out)
        if not self.world.models.is_dir():
            raise TortunerError(f"{cfg.world}: not a lab world (no public/models); build one with "
                                "`tortuner lab build`")
        size = read_json(self.world.state).get("size", "small") if self.world.state.is_file() else "small"
        name = size if cfg.preset == "auto" else cfg.preset
        if name not in SIZES:
            raise TortunerError(f"--preset {name!r}: choose from {', '.join(SIZES)}")
        self.preset = SIZES[name].recovery
        if cfg.num_pairs:
            self.preset = replace(self.preset, num_pairs=cfg.num_pairs)
        self.out.mkdir(parents=True, exist_ok=True)
        self.state_path = self.out / "state.json"
        self.state = read_json(self.state_path) if self.state_path.is_file() else {"stages": {}}

    def p(self, name: str) -> str:
        return str(self.out / name)

    # -------------------------------------------------------------------------------------------- public half
    def run(self) -> dict:
        """Run the stages not yet done, recording each one's summary in state.json."""
        torch.set_num_threads(self.cfg.threads)
        return run_stages(RUN_STAGES, self.state, self.state_path, lambda i, name: getattr(self, f"_{name}")())

    def _synth(self):
        pr, w = self.preset, self.world
        return run_synth(SynthConfig(models=str(w.models), speech=str(w.public_speech), out=self.p("synth"),
                                     num_pairs=pr.num_pairs, samples_per_text=pr.samples_per_text,
                                     max_tokens=pr.max_tokens, seed=self.cfg.seed, renderer="lab"))

    def distill_config(self, **kw) -> DistillConfig:
        pr = self.preset
        base = dict(synth=self.p("synth"), out=self.p("distill.pth"), models=str(self.world.models),
                    codebook_dim=pr.codebook_dim, hidden_dim=pr.hidden_dim, num_resnet_blocks=pr.blocks,
                    steps=pr.distill_steps, finetune_steps=pr.finetune_steps, batch=pr.batch, seed=self.cfg.seed,
                    checkpoint_seconds=self.cfg.checkpoint_seconds)
        return DistillConfig(**{**base, **kw})

    def _distill(self):
        curve = self.out / "curve"
        curve.mkdir(exist_ok=True)
        snap = lambda step, model: save_dvae(model, curve / f"distill_{step:06d}.pth")  # noqa: E731 (scored later)
        return run_distill(self.distill_config(), callback=snap, every=self.preset.curve_every)

    def _decoder(self):
        return run_decoder(DecoderConfig(synth=self.p("synth"), dvae=self.p("distill.pth"),
                                         out=self.p("decoder.pth"), steps=self.preset.decoder_steps,
                                         batch=self.preset.batch, seed=self.cfg.seed,
                                         checkpoint_seconds=self.cfg.checkpoint_seconds))

    def recon_config(self, **kw) -> ReconConfig:
        base = dict(speech=str(self.world.public_speech), synth=self.p("synth"), dvae=self.p("decoder.pth"),
                    out=self.p("recon.pth"), steps=self.preset.recon_steps, batch=self.preset.batch,
                    models=str(self.world.models), seed=self.cfg.seed, checkpoint_seconds=self.cfg.checkpoint_seconds)
        return ReconConfig(**{**base, **kw})

    def _recon(self):
        return run_recon(self.recon_config())

    def _improved(self):
        """Self-training from the decoder stage: the encoder learns GPT-guided labels of the public speech (beam
        search, `recover.pseudo`), relabelled once halfway, with the synthetic pairs as an anchor at weight 1 and no
        reconstruction loss. On the tiny world it took top-1 from 0.477 (decoder) to 0.497 where recon + pseudo-labels
        + anchor 10 fell to 0.442 (docs/recovery.md, "Closing the synthetic -> real gap")."""
        return run_recon(self.recon_config(out=self.p("improved.pth"), dvae=self.p("decoder.pth"), recon_weight=0.0,
                                           anchor_weight=1.0, pseudo_weight=self.cfg.pseudo_weight, pseudo_rounds=2,
                                           steps=2 * self.preset.recon_steps))

    def _select(self):
        """Pick the final dVAE among decoder / recon / improved by the public GPT's information gain on public
        speech (`gpt_gain` = H(tokens) - NLL, no hidden data). On six builds of the tiny and small worlds it ranked
        the three exactly as their agreement with the hidden teacher did; the public NLL alone rewards a codebook
        drifting to fewer, more predictable codes (it picked `improved` on two tiny builds, e.g. 0.476 vs 0.489),
        the CLVP score prefers the tokenizer closest to the GPT's own samples (`decoder` on every build);
        docs/recovery.md."""
        models = self.world.models
        gpt, clvp = load_tortoise_model(models, "gpt").eval(), load_tortoise_model(models, "clvp").eval()
        clips = load_real(self.world.public_speech)
        scores = {}
        for name in ("decoder", "recon", "improved"):  # each score kept on disk: a killed stage redoes one at most
            cached = self.out / f"select_{name}.json"
            if cached.is_file() and read_json(cached).get("sha256") == sha_file(self.p(f"{name}.pth"), "sha256"):
                scores[name] = read_json(cached)["scores"]
                continue
            scores[name] = score_tokenizer(load_dvae(self.p(f"{name}.pth")), clips, None, gpt, clvp,
                                           self._cond_samples())
            write_json(cached, {"sha256": sha_file(self.p(f"{name}.pth"), "sha256"), "scores": scores[name]})
        best = max(scores, key=lambda n: scores[n]["gpt_gain"])
        shutil.copyfile(self.p(f"{best}.pth"), self.p("dvae.pth"))
        return {key: {n: m[metric] for n, m in scores.items()}
                for key, metric in (("public_gpt_gain", "gpt_gain"), ("public_clvp", "clvp"), ("public_nll", "nll"))
                } | {"selected": best}

    def _baseline(self):
        pr = self.preset
        return run_baseline(BaselineConfig(speech=str(self.world.public_speech), models=str(self.world.models),
                                           out=self.p("baseline.pth"), codebook_dim=pr.codebook_dim,
                                           hidden_dim=pr.hidden_dim, num_resnet_blocks=pr.blocks,
                                           steps=pr.baseline_steps, batch=pr.batch, seed=self.cfg.seed,
                                           checkpoint_seconds=self.cfg.checkpoint_seconds))

    def _cond_samples(self) -> int:
        return cond_samples_of(model_configs(self.world.models))

    # -------------------------------------------------------------------------------------------- scoring
    def score(self) -> dict:
        w = self.world
        if not w.teacher.is_file():
            raise TortunerError(f"{w.hidden}: no hidden half to score against")
        torch.set_num_threads(self.cfg.threads)
        teacher = load_dvae(w.teacher).eval()
        clips = load_real(w.eval)
        gpt = load_tortoise_model(w.models, "gpt").eval()
        clvp = load_tortoise_model(w.models, "clvp").eval()
        cs = self._cond_samples()
        final = score_tokenizer(load_dvae(self.p("dvae.pth")), clips, teacher, gpt, clvp, cs)
        tref = score_tokenizer(teacher, clips, None, None, None, cs)
        rep: dict = {
            "world": str(w.root), "eval_clips": len(clips), "preset": asdict(self.preset),
            "agreement_top1": final["agreement_top1"], "agreement_top5": final["agreement_top5"],
            "nll_teacher": final["nll_reference"], "nll_recovered": final["nll"],
            "nll_ratio": final["nll"] / final["nll_reference"],
            "recon_l1_teacher": tref["recon_l1"], "recon_l1_recovered": final["recon_l1"],
            "codes_used_recovered": final["codes_used"], "perplexity_recovered": final["perplexity"],
            "clvp_recovered": final["clvp"], "selected": self.state["stages"].get("select", {}).get("selected"),
        }
        # the same student and budget with the teacher's own labels on real speech: the ceiling top-1 is read against
        oracle = score_tokenizer(train_oracle(w, self.preset, self.out / "oracle.pth", seed=self.cfg.seed,
                                              checkpoint_seconds=self.cfg.checkpoint_seconds), clips, teacher)
        rep["oracle_agreement_top1"], rep["oracle_agreement_top5"] = oracle["agreement_top1"], oracle["agreement_top5"]
        stages = {}
        for name in ("distill", "decoder", "recon", "improved"):
            m = score_tokenizer(load_dvae(self.p(f"{name}.pth")), clips, teacher, gpt, None, cs)
            stages[name] = {k: m[k] for k in ("agreement_top1", "agreement_top5", "nll", "recon_l1")}
            stages[name]["nll_ratio"] = m["nll"] / m["nll_reference"]
        stages["recon"]["drift"] = self.state["stages"]["recon"].get("drift")
        stages["improved"]["drift"] = self.state["stages"]["improved"].get("drift")
        rep["stages"] = stages
        rep["proposal_agreement_top1"] = stages["recon"]["agreement_top1"]
        rep["proposal_nll_ratio"] = stages["recon"]["nll_ratio"]
        base = load_dvae(self.p("baseline.pth"))
        bm = matched_agreement(base, teacher, clips)
        rep["baseline_agreement_top1"] = bm["agreement_top1"]
        rep["baseline_matched_agreement_top1"] = bm["matched_agreement_top1"]
        rep["chance_top1"] = bm["chance"]
        rep["baseline_nll_ratio"] = (score_tokenizer(base, clips, teacher, gpt, None, cs)["nll"]
                                     / final["nll_reference"])
        rep["curve"] = [(int(p.stem.split("_")[1]), score_tokenizer(load_dvae(p), clips, teacher)["agreement_top1"])
                        for p in sorted((self.out / "curve").glob("distill_*.pth"))]
        rep["synth_pairs"] = self.state["stages"]["synth"].get("pairs")
        rep["stage_seconds"] = {k: v.get("seconds") for k, v in self.state["stages"].items()}
        if self.cfg.ablation:
            rep["ablation"] = self.ablation(clips, teacher, gpt)
        from tortuner.lab.run_report import write_report

        write_report(self.out, rep, clips[0], teacher, load_dvae(self.p("dvae.pth")))
        return rep

    def ablation(self, clips, teacher, gpt) -> dict:
        """The seed's three doubts: pairs count, CLVP filtering, decoder pre-training + recon."""
        out: dict = {"pairs": []}
        abl = self.out / "ablation"
        abl.mkdir(exist_ok=True)
        n = self.state["stages"]["synth"]["pairs"]
        score = lambda path: score_tokenizer(load_dvae(path), clips, teacher, gpt, None,  # noqa: E731
                                             self._cond_samples())
        point = lambda k, s: {"pairs": k, "agreement_top1": s["agreement_top1"],  # noqa: E731
                              "nll_ratio": s["nll"] / s["nll_reference"]}
        for k in sorted({max(4, int(n * f)) for f in (0.125, 0.25, 0.5)} - {n}):
            path = abl / f"pairs_{k}.pth"
            if not path.is_file():
                run_distill(self.distill_config(out=str(path), max_pairs=k))
            out["pairs"].append(point(k, score(path)))
        s = score(self.p("distill.pth"))
        out["pairs"].append(point(n, s))
        path = abl / "no_clvp.pth"
        if not path.is_file():
            run_distill(self.distill_config(out=str(path), clvp_top=1.0))
        out["without_clvp_filter_top1"] = score(path)["agreement_top1"]
        out["with_clvp_filter_top1"] = s["agreement_top1"]
        path = abl / "recon_no_decoder_pretrain.pth"
        if not path.is_file():
            run_recon(self.recon_config(dvae=self.p("distill.pth"), out=str(path)))
        out["recon_without_decoder_pretrain_top1"] = score(path)["agreement_top1"]
        out["recon_with_decoder_pretrain_top1"] = score(self.p("recon.pth"))["agreement_top1"]
        out["without_recon_top1"] = score(self.p("decoder.pth"))["agreement_top1"]
        return out


def run_lab(cfg: RunConfig) -> dict:
    lab = LabRun(cfg)
    if not cfg.score_only:
        lab.run()
    if not lab.world.teacher.is_file():
        print(f"no hidden half in {cfg.world}: recovery done, scoring skipped (rerun with --score-only on the full "
              "world)")
        return {"scored": False, **lab.state}
    previous = read_json(lab.out / "report.json") if (lab.out / "report.json").is_file() else {}
    rep = lab.score()
    _keep_finetune(previous, rep, lab.out)
    write_json(lab.out / "report.json", rep)
    return rep


def _keep_finetune(previous: dict, rep: dict, run: Path) -> None:
    """Carry `lab finetune`'s results into a re-scored report if they were made with the current `dvae.pth`."""
    if "finetune" not in previous:
        return
    from tortuner.lab.finetune_report import write_markdown

    if previous["finetune"].get("dvae_sha256") != sha_file(run / "dvae.pth", "sha256"):
        print(f"{run / 'report.json'}: fine-tune results dropped (made with another dvae.pth); rerun `tortuner lab "
              "finetune` for them")
        return
    rep.update({k: v for k, v in previous.items() if k.startswith(("finetune", "outcome_"))})
    write_markdown(run / "report.md", rep)
