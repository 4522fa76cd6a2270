"""`tortuner prepare` verb: one flag per `PrepareConfig` field (same name, dashes for underscores)."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from tortuner.data.asr import BACKENDS
from tortuner.data.prepare import PrepareConfig, run

HELP = {
    "out": "dataset folder to create or resume (wavs/, train.txt, val.txt, clips.jsonl, report.json/png)",
    "speaker": "speaker label for every clip (default: the name of the folder each file is in)",
    "workers": "inputs processed in parallel (one process each)",
    "vad_threshold": "silero-vad speech probability that starts speech",
    "min_silence": "silences at least this long (s) split the recording",
    "min_seconds": "shortest kept clip (s)",
    "max_seconds": "longest kept clip (s)",
    "max_pause": "longest silence (s) allowed inside a clip when merging short utterances",
    "pad": "silence kept around each clip's speech (s)",
    "max_clipped_pct": "drop clips with more than this percent of samples clipped",
    "min_bandwidth_hz": "drop narrow-band clips (phone, low bitrate) below this bandwidth",
    "max_music": "drop clips whose music score (held tonal peaks between words) is above this",
    "min_snr_db": "drop clips with a lower speech-to-noise ratio (dB)",
    "max_rt60_s": "drop clips whose estimated reverberation time (s) is above this",
    "max_speaker_change": "drop clips whose two voice clusters are further apart than this (several speakers)",
    "min_dnsmos_bak": "drop clips whose DNSMOS background score is below this (slow; catches voices talking "
                      "over the speaker; 3.0 is a reasonable value)",
    "reference_voice": "clips/folders of the target speaker: keep only clips that sound like them",
    "min_reference_similarity": "with --reference-voice: minimum cosine similarity to the reference",
    "asr": "transcription backend",
    "asr_model": "faster-whisper model folder / openai-whisper .pt file",
    "language": "language code passed to Whisper",
    "transcripts": "NAME|text file with your own transcripts (NAME: clip name or source file name); skips ASR",
    "max_text_tokens": "drop clips whose transcript has more TorToiSe text tokens than this",
    "sample_rate": "sample rate of the written wavs",
    "val_fraction": "share of kept clips written to val.txt",
}


def _threshold(text: str) -> float | None:
    """A float, or 'off' to disable the filter."""
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off', got {text!r}") from None


def _handler(args: argparse.Namespace) -> int:
    cfg = PrepareConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PrepareConfig)})
    report = run(cfg)
    dropped = ", ".join(f"{k} {v['clips']}" for k, v in report["dropped"].items()) or "none"
    print(f"kept {report['kept']}/{report['candidates']} clips ({report['hours_kept'] * 60:.1f} of "
          f"{report['hours_input'] * 60:.1f} min); dropped: {dropped}; skipped inputs: {len(report['inputs_skipped'])}"
          f" -> {cfg.out}", file=sys.stderr)
    return 0 if report["inputs_done"] or not report["inputs_skipped"] else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="long recordings -> clean, transcribed 5-20 s clips (LJSpeech layout)",
                       description="Split recordings on silences with silero-vad, keep 5-20 s clips, drop noisy, "
                                   "music, narrow-band, clipped, reverberant and multi-speaker clips (every score is "
                                   "kept in clips.jsonl), transcribe, and write an LJSpeech-style dataset. "
                                   "Rerunning resumes: finished inputs are skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (searched recursively)")
    for f in dataclasses.fields(PrepareConfig):
        if f.name == "inputs":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        helptext = HELP[f.name] + (f" (default: {default})" if default not in (None, []) else "")
        if f.name == "out":
            p.add_argument(flag, required=True, help=HELP[f.name])
        elif f.name == "reference_voice":
            p.add_argument(flag, nargs="+", default=[], metavar="CLIP", help=HELP[f.name])
        elif f.name == "asr":
            p.add_argument(flag, choices=BACKENDS, default=default, help=HELP[f.name] + f" (default: {default})")
        elif f.type in ("float | None",) or f.name.startswith(("min_", "max_")) and "None" in str(f.type):
            p.add_argument(flag, type=_threshold, default=default, metavar="X|off", help=helptext)
        elif f.type in ("int", int):
            p.add_argument(flag, type=int, default=default, help=helptext)
        elif f.type in ("float", float):
            p.add_argument(flag, type=float, default=default, help=helptext)
        else:
            p.add_argument(flag, default=default, help=helptext)
    p.set_defaults(func=_handler)
