#!/usr/bin/env python3
"""The ground truth's noise ceiling for a chosen split of its seeds, and over every split.

    python3 tools/calibration/split_ceiling.py GROUND_TRUTH.csv SEEDS

SEEDS: comma-separated (e.g. 0,1,2,3); the first half is compared with the rest. Kendall tau-b
between the two halves' per-architecture means of the `final` rows, then the mean and range
over every way of splitting SEEDS into a first half of that size and the rest (as
`unas quality calibrate` does for all common seeds). Lets two ground-truth sets be compared on
the same seeds when one has more. Pure Python.
"""
import csv
import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from supernet_seeds import kendall_tau_b  # noqa: E402


def main():
    gt_file, seeds = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
    by_arch = {}
    for r in csv.DictReader(open(gt_file)):
        if r["weights"] == "final" and int(r["seed"]) in seeds:
            by_arch.setdefault(r["arch"], {})[int(r["seed"])] = float(r["val_loss"])
    archs = sorted(a for a, v in by_arch.items() if all(s in v for s in seeds))
    mean = lambda a, part: sum(by_arch[a][s] for s in part) / len(part)
    tau = lambda part, rest: kendall_tau_b([mean(a, part) for a in archs], [mean(a, rest) for a in archs])
    half = len(seeds) // 2
    print(f"{len(archs)} architectures with seeds {seeds}")
    print(f"  seeds {seeds[:half]} vs {seeds[half:]}: tau {tau(seeds[:half], seeds[half:]):.3f}")
    taus = [tau(p, [s for s in seeds if s not in p]) for p in itertools.combinations(seeds, half)]
    print(f"  all {len(taus)} splits: mean tau {sum(taus) / len(taus):.3f}, "
          f"range [{min(taus):.3f}, {max(taus):.3f}]")


if __name__ == "__main__":
    main()
