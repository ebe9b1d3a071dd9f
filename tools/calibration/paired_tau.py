#!/usr/bin/env python3
"""Is a proxy's ranking better than a baseline's? A paired bootstrap of the τ difference.

    python3 tools/calibration/paired_tau.py GROUND_TRUTH.csv PROXY_SCORES.csv PROXY [BASELINE ...]

Against the ground-truth mean (the `final` rows, over the seeds every architecture has) it
prints Kendall τ-b of PROXY (the mean over its supernet seeds) and of each BASELINE (default:
`macs params`), and the percentile-bootstrap 95 % CI of τ(PROXY) − τ(BASELINE) over
architectures (2000 resamples, the same resampled architectures for both: a paired test).
It also prints the noise ceiling's paired difference (τ of the mean of ground-truth seeds
0–1 against the mean of seeds 2–3, same resamples), which bounds what any proxy can show on
the set. Last, leave one ground-truth seed out: against the mean of the other seeds, τ of the
held-out seed's own run (one more training from scratch, used as a proxy), of each baseline,
and of PROXY per supernet seed, each averaged over the held-out seeds. Pure Python, seeded (`random.Random(0)`), so the figures recompute exactly.
"""
import csv
import random
import sys

from supernet_seeds import kendall_tau_b


def ground_truth(path):
    by_arch = {}
    for r in csv.DictReader(open(path)):
        if r["weights"] == "final":
            by_arch.setdefault(r["arch"], {})[int(r["seed"])] = float(r["val_loss"])
    seeds = sorted(set.intersection(*(set(v) for v in by_arch.values())))
    return by_arch, seeds


def proxy_by_seed(path, name):
    by_seed = {}
    for r in csv.DictReader(open(path)):
        if r["proxy"] == name:
            by_seed.setdefault(int(r["supernet_seed"]), {})[r["arch"]] = float(r["score"])
    return by_seed


def means(by_seed):
    """Each architecture's mean score over the supernet seeds that scored it."""
    by_arch = {}
    for scores in by_seed.values():
        for a, v in scores.items():
            by_arch.setdefault(a, []).append(v)
    return {a: sum(v) / len(v) for a, v in by_arch.items()}


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    gt_file, scores_file, proxy = sys.argv[1:4]
    baselines = sys.argv[4:] or ["macs", "params"]
    per_seed, seeds = ground_truth(gt_file)
    mean = {a: sum(v[s] for s in seeds) / len(seeds) for a, v in per_seed.items()}
    by_seed = proxy_by_seed(scores_file, proxy)
    p = means(by_seed)
    bases = {b: means(proxy_by_seed(scores_file, b)) for b in baselines}
    archs = sorted(a for a in mean if a in p and all(a in m for m in bases.values()))
    n = len(archs)
    if n < 3:
        sys.exit(f"{proxy}: only {n} architectures have scores")
    half = len(seeds) // 2
    ha = {a: sum(per_seed[a][s] for s in seeds[:half]) / half for a in archs}
    hb = {a: sum(per_seed[a][s] for s in seeds[half:]) / (len(seeds) - half) for a in archs}

    def tau(score, idx):
        return kendall_tau_b([score[archs[i]] for i in idx], [mean[archs[i]] for i in idx])

    def ceiling(idx):
        return kendall_tau_b([ha[archs[i]] for i in idx], [hb[archs[i]] for i in idx])

    full = list(range(n))
    rng = random.Random(0)
    samples = [[rng.randrange(n) for _ in range(n)] for _ in range(2000)]
    print(f"{n} architectures, ground-truth seeds {seeds} (ceiling: {seeds[:half]} vs {seeds[half:]})")
    print(f"  tau {proxy}: {tau(p, full):.3f}; noise ceiling {ceiling(full):.3f}")
    for b, m in bases.items():
        d = [tau(p, s) - tau(m, s) for s in samples]
        dc = [ceiling(s) - tau(m, s) for s in samples]
        print(f"  tau {b}: {tau(m, full):.3f}; {proxy} - {b}: {tau(p, full) - tau(m, full):+.3f} "
              f"[{percentile(d, 0.025):+.3f}, {percentile(d, 0.975):+.3f}], "
              f"P(diff <= 0) {sum(x <= 0 for x in d) / len(d):.3f}; "
              f"ceiling - {b}: {ceiling(full) - tau(m, full):+.3f} "
              f"[{percentile(dc, 0.025):+.3f}, {percentile(dc, 0.975):+.3f}]")

    print("  leave one ground-truth seed out (mean tau over the held-out seeds, against the "
          "mean of the other seeds):")
    loo = lambda score: sum(
        kendall_tau_b([score(a, s) for a in archs],
                      [sum(per_seed[a][o] for o in seeds if o != s) / (len(seeds) - 1)
                       for a in archs])
        for s in seeds) / len(seeds)
    print(f"    the held-out seed's own run: {loo(lambda a, s: per_seed[a][s]):.3f}")
    for b, m in bases.items():
        print(f"    {b}: {loo(lambda a, s: m[a]):.3f}")
    taus = {k: loo(lambda a, s: v[a]) for k, v in sorted(by_seed.items()) if all(a in v for a in archs)}
    print(f"    {proxy}, per supernet seed: "
          + ", ".join(f"{k}: {t:.3f}" for k, t in taus.items())
          + f" (mean {sum(taus.values()) / len(taus):.3f})")


if __name__ == "__main__":
    main()
