"""Measure every `prepare` filter on controlled corruptions of clean espeak-ng speech and on real voices.

Prints the markdown tables of docs/prepare.md: for each corruption, the share of clips whose decision is right
(the filter meant for it drops it; nothing drops a clean clip), the share dropped by any filter, and the range of
the target score. Then the share of real human voice clips (shipped with `tortoise`) that pass every filter and
the share of real two-speaker clips caught. Then the concatenated-conditions case: whole `prepare` runs on long
recordings whose clean and damaged stretches alternate (every damage, random orders and lengths, 0.5-2 s pauses),
as the share of clean and of damaged speech inside kept clips. Then, with `--asr`, each named ASR backend's word
error rate on espeak-ng speech with known text. Uses the default settings of `PrepareConfig`.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the calibration harness is test support

from support.calibrate import (  # noqa: E402
    OVERLAP_CASES,
    asr_quality,
    filter_accuracy,
    mixed_case,
    real_speech_pass_rate,
    real_turns,
    real_two_speakers,
)
from tortuner.data.prepare_config import PrepareConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16, help="clips per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dnsmos", type=float, default=3.0, help="also measure --min-dnsmos-bak at this value (0: skip)")
    ap.add_argument("--mixed", type=int, default=6, help="concatenated-conditions recordings (~5 min each; 0: skip)")
    ap.add_argument("--only-mixed", action="store_true", help="skip the single-condition tables")
    ap.add_argument("--asr", nargs="*", default=[], metavar="BACKEND[=MODEL]",
                    help="measure these ASR backends' word error rate (e.g. pocketsphinx faster-whisper=DIR)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if not args.only_mixed:
        single_condition(args)
    if args.mixed:
        concatenated(args.mixed)
    for spec in args.asr:
        backend, _, model = spec.partition("=")
        q = asr_quality(backend, model or None)
        print(f"\nASR {spec}: word error rate {q['wer']:.1%}, with punctuation as words {q['wer_punct']:.1%} "
              f"({q['n']} espeak-ng sentences, 8 voices; {q['cpu_per_audio_s']:.2f} s of CPU per s of audio)\n"
              f"  e.g. {q['example']}")
    print(f"\n({time.perf_counter() - t0:.0f} s)")


def concatenated(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="calibrate_mixed_") as d:
        shares = mixed_case(list(range(n)), Path(d))
    clean = shares.pop("clean")
    damaged = tuple(map(sum, zip(*shares.values())))
    print(f"\nconcatenated conditions: {n} recordings, clean stretches of 6-16 s alternating with each damage once "
          "(3-14 s; random order), 0.5-2 s pauses:\n")
    print("| stretch | seconds | share inside kept clips |")
    print("|---|---|---|")
    print(f"| clean (target >= 95 %) | {clean[1]:.0f} | {clean[0] / clean[1]:.1%} |")
    print(f"| damaged, all kinds (target <= 2 %) | {damaged[1]:.0f} | {damaged[0] / damaged[1]:.1%} |")
    for kind, (k, s) in sorted(shares.items()):
        print(f"| {kind} | {s:.0f} | {k / s:.1%} |")


def single_condition(args: argparse.Namespace) -> None:
    th = PrepareConfig().thresholds()
    print("thresholds: " + ", ".join(f"{k}={v}" for k, v in th.items() if v is not None))
    print(f"\n| corruption (espeak-ng speech, {args.n} clips of 8-14 s, 8 voices) | filter meant to catch it | "
          "accuracy | dropped by any filter | target score range |")
    print("|---|---|---|---|---|")
    for r in filter_accuracy(th, n=args.n, seed=args.seed):
        print(f"| {r['case']} | {r['filter']} | {r['accuracy']:.0%} | {r['dropped']:.0%} | {r['score']} |")
    voices = Path(str(importlib.resources.files("tortoise") / "voices"))
    rate, failures = real_speech_pass_rate(th, voices)
    print(f"\nreal voices (tortoise/voices, one 12 s clip per speaker) passing every filter: {rate:.0%}"
          + (f" (dropped: {'; '.join(failures)})" if failures else ""))
    hit, n = real_two_speakers(th, voices)
    print(f"real two-speaker clips (two tortoise voices, 6 s each) dropped as 'speakers': {hit:.0%} of {n}")
    turns, n_turns, joins, n_joins = real_turns(voices, PrepareConfig().max_voice_change)
    print(f"voice-change cuts inside one utterance (tortoise voices, 0.3 s pauses, --max-voice-change "
          f"{PrepareConfig().max_voice_change}): two speakers A B A: {turns} of {n_turns} turns cut; "
          f"one speaker's clips in a row: {joins} of {n_joins} joins cut")
    if args.dnsmos:
        th2 = th | {"min_dnsmos_bak": args.dnsmos}
        print(f"\nopt-in DNSMOS background filter, --min-dnsmos-bak {args.dnsmos} (other filters at their defaults):")
        print("\n| case | filter meant to catch it | accuracy | dropped by any filter | score range |")
        print("|---|---|---|---|---|")
        for r in filter_accuracy(th2, n=args.n, seed=args.seed, cases=OVERLAP_CASES):
            print(f"| {r['case']} | {r['filter']} | {r['accuracy']:.0%} | {r['dropped']:.0%} | {r['score']} |")
        rate, failures = real_speech_pass_rate(th2, voices)
        print(f"\nreal voices passing every filter with it: {rate:.0%}"
              + (f" (dropped: {'; '.join(failures)})" if failures else ""))


if __name__ == "__main__":
    main()
