"""Measure every `prepare` filter on controlled corruptions of clean espeak-ng speech and on real voices.

Prints the markdown table of docs/prepare.md: for each corruption, the share of clips whose decision is right
(the filter meant for it drops it; nothing drops a clean clip), the share dropped by any filter, and the range of
the target score. Then the share of real human voice clips (shipped with `tortoise`) that pass every filter and
the share of real two-speaker clips caught. Uses the default thresholds of `PrepareConfig`.
"""

from __future__ import annotations

import argparse
import importlib.resources
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the calibration harness is test support

from support.calibrate import OVERLAP_CASES, filter_accuracy, real_speech_pass_rate, real_two_speakers  # noqa: E402
from tortuner.data.prepare_config import PrepareConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=16, help="clips per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dnsmos", type=float, default=3.0, help="also measure --min-dnsmos-bak at this value (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
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
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
