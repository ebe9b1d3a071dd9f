#!/usr/bin/env python3
"""Seed repeatability of two ground-truth protocols on the architectures and seeds they share.

    python3 tools/calibration/compare_protocols.py OLD/ground_truth.csv NEW/ground_truth.csv

For each file, on the (arch, seed) pairs with a `final` row in both files: ICC(1) and the
consistency ICC(C,1) over seeds (the formulas of evaluator/src/quality/calibration.rs), the
sd of the architecture means, the residual sd (arch x seed, two-way), the largest deviation of
one seed from its architecture's mean, and Kendall tau-b between every pair of single seeds;
then the paired ICC(C,1) difference (second file minus first) with a 95 % percentile bootstrap
interval over architectures (10,000 resamples, seed 0; a resample drawing fewer than 3 distinct
architectures is redrawn), and Kendall tau-b between the two files' seed means.
Pure Python (no numpy), so it runs wherever the tables are.
"""
import csv
import itertools
import math
import random
import sys


def finals(path):
    out = {}
    for r in csv.DictReader(open(path)):
        if r["weights"] == "final":
            out[(r["arch"], int(r["seed"]))] = float(r["val_loss"])
    return out


def kendall_tau_b(a, b):
    conc = disc = ta = tb = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ta += 1
        elif db == 0:
            tb += 1
        elif (da > 0) == (db > 0):
            conc += 1
        else:
            disc += 1
    n = conc + disc
    return (conc - disc) / math.sqrt((n + ta) * (n + tb)) if n else float("nan")


def stats(rows):
    n, k = len(rows), len(rows[0])
    means = [sum(r) / k for r in rows]
    grand = sum(means) / n
    col = [sum(r[j] for r in rows) / n for j in range(k)]
    msb = k * sum((m - grand) ** 2 for m in means) / (n - 1)
    msw = sum((v - m) ** 2 for r, m in zip(rows, means) for v in r) / (n * (k - 1))
    icc1 = (msb - msw) / (msb + (k - 1) * msw)
    ssr = k * sum((m - grand) ** 2 for m in means)
    ssc = n * sum((c - grand) ** 2 for c in col)
    sst = sum((v - grand) ** 2 for r in rows for v in r)
    mse = (sst - ssr - ssc) / ((n - 1) * (k - 1))
    iccc = (msb - mse) / (msb + (k - 1) * mse)
    sd_arch = math.sqrt(sum((m - grand) ** 2 for m in means) / (n - 1))
    dev = max(abs(v - m) for r, m in zip(rows, means) for v in r)
    taus = [
        kendall_tau_b([r[i] for r in rows], [r[j] for r in rows])
        for i, j in itertools.combinations(range(k), 2)
    ]
    return icc1, iccc, sd_arch, math.sqrt(max(mse, 0.0)), dev, taus


def main():
    tables = [finals(p) for p in sys.argv[1:3]]
    keys = set(tables[0]) & set(tables[1])
    archs = sorted({a for a, _ in keys})
    seeds = sorted({s for _, s in keys})
    archs = [a for a in archs if all((a, s) in keys for s in seeds)]
    print(f"{len(archs)} architectures x seeds {seeds}: {', '.join(a[:6] for a in archs)}")
    if len(archs) < 2 or len(seeds) < 2:
        sys.exit("needs 2 or more architectures with 2 or more seeds in both files")
    print("| protocol | ICC(1) | ICC(C,1) | sd of arch means | residual sd | largest seed deviation | single-seed tau (pairs) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for path, t in zip(sys.argv[1:3], tables):
        rows = [[t[(a, s)] for s in seeds] for a in archs]
        icc1, iccc, sd_arch, resid, dev, taus = stats(rows)
        pairs = ", ".join(f"{x:.2f}" for x in taus)
        print(f"| {path} | {icc1:.3f} | {iccc:.3f} | {sd_arch:.5f} | {resid:.5f} | {dev:.5f} | {pairs} |")
    a_rows = [[tables[0][(a, s)] for s in seeds] for a in archs]
    b_rows = [[tables[1][(a, s)] for s in seeds] for a in archs]
    diff = stats(b_rows)[1] - stats(a_rows)[1]
    rng = random.Random(0)
    boots = []
    while len(boots) < 10000:
        idx = [rng.randrange(len(archs)) for _ in archs]
        if len(set(idx)) < 3:
            continue
        d = stats([b_rows[i] for i in idx])[1] - stats([a_rows[i] for i in idx])[1]
        if not math.isnan(d):
            boots.append(d)
    boots.sort()
    lo, hi = boots[int(0.025 * len(boots))], boots[int(0.975 * len(boots)) - 1]
    print(f"\nICC(C,1) difference (second - first): {diff:+.3f}, 95 % bootstrap interval [{lo:+.3f}, {hi:+.3f}]")
    a_mean = [sum(r) / len(r) for r in a_rows]
    b_mean = [sum(r) / len(r) for r in b_rows]
    print(f"Kendall tau-b between the two files' seed means: {kendall_tau_b(a_mean, b_mean):.3f}")


if __name__ == "__main__":
    main()
