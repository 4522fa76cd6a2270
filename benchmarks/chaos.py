"""Kill every long verb at random moments, rerun it until it finishes, and compare with an uninterrupted run.

Prints the table of docs/reliability.md: per verb, kills survived, whether the outputs equal the uninterrupted
run's, whether a partial file was ever visible under a final name, and the work redone per kill (extra wall
seconds per kill, one process start-up of ~5 s included). Seeded; about 15 min on 2 cores with the lab verbs.

    python benchmarks/chaos.py [--kills 3] [--seed 0] [--only tokenize,prepare,synth,recover,finetune,lab] [--at-writes]

`--at-writes` kills each run just before one of its file renames instead (a temporary complete, the final name not
yet replaced): every kill lands inside an output or checkpoint write.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the harness is test support

from support.bad_inputs import _dataset, finetune_args, make_kit  # noqa: E402
from support.chaos import chaos, same_files, voice_clips  # noqa: E402


def verbs(root: Path) -> dict:
    """verb -> (make_argv(out), compare): every input is built here, under `root`."""
    kit = make_kit(root / "kit")
    clips = voice_clips(root / "clips", 24)
    ds = _dataset(root / "ft", kit, [])
    world = root / "world"
    return {
        "tokenize": (lambda out: ["tokenize", "--dvae", str(kit.dvae), "--batch-files", "2", "--out",
                                  str(out / "tokens.jsonl"), str(clips)],
                     same_files(["tokens.jsonl"])),
        "prepare": (lambda out: ["prepare", *map(str, sorted(clips.glob("*.wav"))[:8]), "--out", str(out),
                                 "--min-seconds", "3", "--max-speaker-change", "off"],
                    same_files(["wavs/*.wav", "train.txt", "val.txt", "clips.jsonl"])),
        "finetune": (lambda out: finetune_args(kit, ds, out) + ["--batch-size", "2", "--grad-accum", "4",
                                                                "--max-steps", "12", "--save-every", "2", "--resume"],
                     same_files(["checkpoints/step_0000012/model.safetensors"])),
        "synth": (lambda out: _synth_args(world, out / "s", 24), same_files(["s/*.safetensors", "s/index_*.jsonl"])),
        "recover distill": (lambda out: ["recover", "distill", "--synth", str(_made(root, world)["synth"]),
                                         "--models", str(world / "public" / "models"), "--out", str(out / "d.pth"),
                                         "--steps", "60", "--finetune-steps", "20", *QUICK],
                            same_files(["d.pth"])),
        "recover decoder": (lambda out: ["recover", "decoder", "--synth", str(_made(root, world)["synth"]),
                                         "--dvae", str(_made(root, world)["distill"]), "--out", str(out / "d.pth"),
                                         "--steps", "60", *QUICK],
                            same_files(["d.pth"])),
        "recover recon": (lambda out: ["recover", "recon", "--speech", str(world / "public" / "speech"), "--synth",
                                       str(_made(root, world)["synth"]), "--dvae", str(_made(root, world)["decoder"]),
                                       "--models", str(world / "public" / "models"), "--out", str(out / "d.pth"),
                                       "--steps", "40", "--pseudo-rounds", "2", *QUICK],
                          same_files(["d.pth"])),
        "lab build": (lambda out: ["lab", "build", "--size", "test", "--seed", "3", "--threads", "1",
                                   "--checkpoint-seconds", "0", "--out", str(out / "w")],
                      same_files(["w/public/models/*.pth", "w/hidden/*.pth", "w/public/**/*.jsonl"])),
        "lab run": (lambda out: ["lab", "run", "--world", str(world), "--out", str(out / "r"), "--threads", "1",
                                 "--checkpoint-seconds", "0"],
                    same_files(["r/*.pth", "r/synth/*.safetensors"], jsonl_as_sets=True)),
        "lab finetune": (lambda out: ["lab", "finetune", "--world", str(world), "--run", str(_finetune_run(out, world)),
                                      "--steps", "12", "--batch-size", "4", "--lr", "1e-3", "--warmup-steps", "2",
                                      "--levers", "guided", "--outcome-samples", "1", "--threads", "1"],
                         same_report("r/report.json", "finetune")),
    }, world


QUICK = ["--threads", "1", "--checkpoint-seconds", "0"]  # a loop checkpoint after every step: kills land mid-loop


def _synth_args(world: Path, out: Path, pairs: int) -> list[str]:
    return ["synth", "--models", str(world / "public" / "models"), "--speech", str(world / "public" / "speech"),
            "--out", str(out), "--num-pairs", str(pairs), "--renderer", "lab", "--max-tokens", "60",
            "--batch-items", "4", "--threads", "1"]


def _made(root: Path, world: Path) -> dict[str, Path]:
    """The standalone `recover` verbs' inputs, made once, uninterrupted: pairs, a distilled and a decoder dVAE."""
    from tortuner.cli import main as tortuner

    made = {"synth": root / "made" / "synth", "distill": root / "made" / "distill.pth",
            "decoder": root / "made" / "decoder.pth"}
    if not made["decoder"].is_file():
        models = str(world / "public" / "models")
        steps = [_synth_args(world, made["synth"], 48),
                 ["recover", "distill", "--synth", str(made["synth"]), "--models", models, "--out",
                  str(made["distill"]), "--steps", "60", "--finetune-steps", "20", "--threads", "1"],
                 ["recover", "decoder", "--synth", str(made["synth"]), "--dvae", str(made["distill"]), "--out",
                  str(made["decoder"]), "--steps", "60", "--threads", "1"]]
        for argv in steps:
            assert tortuner(argv) == 0, argv
    return made


def _finetune_run(out: Path, world: Path) -> Path:
    """A run folder for `lab finetune`: the world's teacher as the 'recovered' dVAE (made once per folder)."""
    import json

    run = out / "r"
    if not (run / "dvae.pth").is_file():
        run.mkdir(parents=True, exist_ok=True)
        shutil.copy(world / "hidden" / "teacher_dvae.pth", run / "dvae.pth")
        (run / "report.json").write_text(json.dumps({"agreement": 1.0}))
        (run / "report.md").write_text("# Recovery report\n")
    return run


def same_report(name: str, prefix: str):
    """A `compare` that wants every `prefix*` figure of two JSON reports equal (timings aside)."""
    import json

    def compare(a: Path, b: Path) -> list[str]:
        def flat(d: dict, at: str = "") -> dict:
            out = {}
            for k, v in d.items():
                out |= flat(v, f"{at}{k}.") if isinstance(v, dict) else {f"{at}{k}": v}
            return out

        # the two runs write into different folders: paths are compared relative to them
        ra = flat(json.loads((a / name).read_text().replace(str(a), "OUT")))
        rb = flat(json.loads((b / name).read_text().replace(str(b), "OUT")))
        keys = sorted(k for k in set(ra) | set(rb) if k.startswith(prefix) and "seconds" not in k)
        return [f"{name}: {k} {ra.get(k)} != {rb.get(k)}" for k in keys if ra.get(k) != rb.get(k)] or \
            ([] if keys else [f"{name}: no {prefix}* figures"])

    return compare


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="comma-separated verbs (default: all)")
    ap.add_argument("--at-writes", action="store_true",
                    help="kill just before a file rename (inside a write) instead of at random moments")
    args = ap.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        table, world = verbs(root)
        chosen = [v for v in table if not args.only or any(v.startswith(o) for o in args.only.split(","))]
        if any(not v.startswith(("tokenize", "prepare", "finetune", "lab build")) for v in chosen):
            # synth, recover and lab run / finetune need a world: built once, uninterrupted
            from tortuner.cli import main as tortuner

            assert tortuner(["lab", "build", "--size", "test", "--seed", "3", "--threads", "1", "--out",
                             str(world)]) == 0
            if any(v.startswith("recover") for v in chosen):
                _made(root, world)  # before any timing: the reference run must time the verb alone
        print("| verb | kills | runs | outputs equal the uninterrupted run's | partial files seen | "
              "uninterrupted | redone per kill | resumed inside a loop |\n|---|---|---|---|---|---|---|---|")
        for verb in chosen:
            make_argv, compare = table[verb]
            rep = chaos(verb, make_argv, compare, root / verb.replace(" ", "_"), args.kills, args.seed,
                        at_writes=args.at_writes)
            failures += not rep.ok
            equal = "yes" if rep.finished and not rep.differences else f"**no**: {'; '.join(rep.differences)[:150]}"
            print(f"| {verb} | {rep.kills} | {rep.reruns} | {equal} | {len(rep.broken) or 'none'}"
                  f"{(': ' + ', '.join(rep.broken[:2])) if rep.broken else ''} | {rep.reference_seconds:.0f} s | "
                  f"{rep.redone_per_kill:.0f} s | {rep.mid_loop} |", flush=True)
    print(f"\n{failures} failing verbs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
