#!/usr/bin/env python3
"""How a supernet proxy's ranking depends on the supernet seed, and what averaging seeds buys.

    python3 tools/calibration/supernet_seeds.py GROUND_TRUTH.csv PROXY_SCORES.csv [PROXY]

PROXY defaults to `supernet-val-loss`. Against the ground-truth mean (the `final` rows, over
the seeds every architecture has), prints Kendall tau-b of: each supernet seed alone; the mean
over every pair of seeds (an ensemble of two) and over all seeds; and tau between every pair of
supernet seeds. Pure Python (no numpy), so it runs wherever the tables are.
"""
import csv
import itertools
import sys


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
    den = ((conc + disc + ta) * (conc + disc + tb)) ** 0.5
    return (conc - disc) / den if den else float("nan")


def ground_truth(path):
    by_arch = {}
    for r in csv.DictReader(open(path)):
        if r["weights"] == "final":
            by_arch.setdefault(r["arch"], {})[int(r["seed"])] = float(r["val_loss"])
    seeds = set.intersection(*(set(v) for v in by_arch.values()))
    return {a: sum(v[s] for s in seeds) / len(seeds) for a, v in by_arch.items()}, sorted(seeds)


def main():
    gt_file, scores_file = sys.argv[1], sys.argv[2]
    proxy = sys.argv[3] if len(sys.argv) > 3 else "supernet-val-loss"
    means, gt_seeds = ground_truth(gt_file)
    scores = {}
    for r in csv.DictReader(open(scores_file)):
        if r["proxy"] == proxy:
            scores.setdefault(int(r["supernet_seed"]), {})[r["arch"]] = float(r["score"])
    archs = sorted(a for a in means if all(a in s for s in scores.values()))
    gt = [means[a] for a in archs]
    mean_of = lambda seeds: [sum(scores[s][a] for s in seeds) / len(seeds) for a in archs]
    print(f"{proxy}: {len(archs)} architectures, ground-truth seeds {gt_seeds}, "
          f"supernet seeds {sorted(scores)}")
    singles = []
    for s in sorted(scores):
        t = kendall_tau_b(mean_of([s]), gt)
        singles.append(t)
        print(f"  seed {s}: tau {t:.3f}")
    if singles:
        print(f"  single seeds: mean tau {sum(singles) / len(singles):.3f}, "
              f"range [{min(singles):.3f}, {max(singles):.3f}]")
    pairs = []
    for p in itertools.combinations(sorted(scores), 2):
        t = kendall_tau_b(mean_of(p), gt)
        pairs.append(t)
        between = kendall_tau_b(mean_of([p[0]]), mean_of([p[1]]))
        print(f"  seeds {p[0]}+{p[1]}: ensemble tau {t:.3f}; tau between the two {between:.3f}")
    if pairs:
        print(f"  ensembles of two: mean tau {sum(pairs) / len(pairs):.3f}, "
              f"range [{min(pairs):.3f}, {max(pairs):.3f}]")
    if len(scores) > 2:
        print(f"  all {len(scores)} seeds: ensemble tau {kendall_tau_b(mean_of(sorted(scores)), gt):.3f}")


if __name__ == "__main__":
    main()
