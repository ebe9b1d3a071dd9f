#!/usr/bin/env python3
"""Where a proxy misranks: each architecture's rank by the ground truth and by the proxy, and
how the rank error goes with the architecture's layer counts.

    python3 tools/calibration/rank_errors.py GROUND_TRUTH.csv PROXY_SCORES.csv ARCHS_DIR [PROXY]

PROXY defaults to `supernet-val-loss`; its score is the mean over its supernet seeds (each
seed's own rank error is printed beside it), the
ground truth the mean of the `final` rows over the seeds every architecture has (as in
`supernet_seeds.py`). Rank 1 = lowest loss. The rank error is proxy rank minus ground-truth
rank (positive: the proxy under-rates the architecture). For each layer count it prints
Spearman's rho with the rank error, with the ground truth and with the proxy. These are
exploratory: with 12 architectures and 8 counts, a rho is a hint for the next experiment, not
a finding (no-signal sd of rho at n items: 1/sqrt(n - 1)). Pure Python (tomllib, no numpy).
"""
import csv
import glob
import os
import sys
import tomllib

from supernet_seeds import ground_truth


def ranks(values):
    """Ranks 1..n (average ranks for ties)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    num = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    den = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return num / den if den else float("nan")


def counts(arch):
    """Layer counts of one unas architecture TOML."""
    down, up, mid = arch["down"], arch["up"], arch["mid"]
    blocks = down + up
    return {
        "stages": len(down),
        "resnets": sum(b["resnets"] for b in blocks) + mid["resnets"],
        "attentions": sum(b["attentions"] for b in blocks) + mid["attentions"],
        "down attentions": sum(b["attentions"] for b in down),
        "up attentions": sum(b["attentions"] for b in up),
        "up block 2 attentions": up[1]["attentions"] if len(up) > 1 else 0,
        "mid resnets": mid["resnets"],
        "mid attentions": mid["attentions"],
    }


def main():
    gt_file, scores_file, archs_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    proxy = sys.argv[4] if len(sys.argv) > 4 else "supernet-val-loss"
    means, gt_seeds = ground_truth(gt_file)
    scores, by_seed = {}, {}
    for r in csv.DictReader(open(scores_file)):
        if r["proxy"] == proxy:
            scores.setdefault(r["arch"], []).append(float(r["score"]))
            by_seed.setdefault(int(r["supernet_seed"]), {})[r["arch"]] = float(r["score"])
    layers = {}
    for path in sorted(glob.glob(os.path.join(archs_dir, "*.toml"))):
        arch_id = os.path.basename(path)[:-5].split("-", 1)[1]
        with open(path, "rb") as f:
            layers[arch_id] = counts(tomllib.load(f))
    archs = sorted(a for a in means if a in scores and a in layers)
    gt = [means[a] for a in archs]
    px = [sum(scores[a]) / len(scores[a]) for a in archs]
    rg, rp = ranks(gt), ranks(px)
    err = [p - g for p, g in zip(rp, rg)]
    seeds = sorted(s for s, d in by_seed.items() if all(a in d for a in archs))
    seed_err = {}
    for s in seeds:
        r = ranks([by_seed[s][a] for a in archs])
        seed_err[s] = [p - g for p, g in zip(r, rg)]
    print(f"{proxy}: {len(archs)} architectures, ground-truth seeds {gt_seeds}, "
          f"proxy seeds {seeds} (rank of their mean; then each seed's rank error)")
    head = "".join(f"{'s' + str(s):>5}" for s in seeds)
    print(f"{'arch':<18}{'gt rank':>8}{'proxy rank':>11}{'error':>7}{head}")
    for i in sorted(range(len(archs)), key=lambda i: rg[i]):
        per = "".join(f"{seed_err[s][i]:>+5.0f}" for s in seeds)
        print(f"{archs[i]:<18}{rg[i]:>8.0f}{rp[i]:>11.0f}{err[i]:>+7.0f}{per}")
    n = len(archs)
    print(f"Spearman rho (no-signal sd {1 / (n - 1) ** 0.5:.3f}):")
    print(f"{'count':<24}{'vs error':>9}{'vs gt':>8}{'vs proxy':>9}")
    for name in layers[archs[0]]:
        c = [layers[a][name] for a in archs]
        if len(set(c)) < 2:
            print(f"{name:<24}  (the same in every architecture: {c[0]})")
            continue
        print(f"{name:<24}{spearman(c, err):>9.3f}{spearman(c, gt):>8.3f}{spearman(c, px):>9.3f}")


if __name__ == "__main__":
    main()
