#!/usr/bin/env python3
"""How many calibration architectures issue 13's CI criterion needs: a simulation.

    python3 tools/calibration/power.py [CEILING_TAU] [MACS_TAU] [SIMS]

The criterion: the proxy's τ against the ground-truth mean has a 95 % percentile-bootstrap CI
(over architectures) whose lower end is above the τ of MACs on the same set. Model (bivariate
normal, so τ = (2/π)·asin(r)): each architecture has a true quality z ~ N(0, 1); each ground-truth
seed is z plus independent noise of variance s², with s² chosen so that τ between the means of
two disjoint halves of 2 seeds each is CEILING_TAU (default 0.697, the mean over the six splits
of `docs/calibration/sn300-cover/`'s four seeds; 0.848 is its best split); the ground truth is
the mean of 4 seeds. MACs and the proxy are z plus independent noise, scaled so their expected τ
against the ground-truth mean is MACS_TAU (default 0.606) and the proxy's level. For each set
size n it prints the fraction of simulated calibrations (SIMS, default 200; 1000 bootstrap
resamples each) that meet the criterion, and beside it (after the slash) the fraction that
meets its paired form: the bootstrap CI of τ(proxy) − τ(MACs), same resamples, above 0. numpy only; seeded, so it recomputes exactly.
"""
import math
import sys

import numpy as np


def tau_b(x, y):
    """Kendall τ-b of each row pair of x, y (shape [batch, n])."""
    dx = np.sign(x[:, :, None] - x[:, None, :])
    dy = np.sign(y[:, :, None] - y[:, None, :])
    iu = np.triu_indices(x.shape[1], 1)
    dx, dy = dx[:, iu[0], iu[1]], dy[:, iu[0], iu[1]]
    s = (dx * dy).sum(1)
    den = np.sqrt((dx != 0).sum(1) * (dy != 0).sum(1))
    return np.where(den > 0, s / np.maximum(den, 1), np.nan)


def main():
    ceiling = float(sys.argv[1]) if len(sys.argv) > 1 else 0.697
    macs_tau = float(sys.argv[2]) if len(sys.argv) > 2 else 0.606
    sims = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    r_half = math.sin(math.pi * ceiling / 2)
    s2 = 2 * (1 / r_half - 1)  # corr of two 2-seed means = 1 / (1 + s²/2)
    gt_sd = math.sqrt(s2 / 4)
    r_truth = 1 / math.sqrt(1 + s2 / 4)  # corr(z, 4-seed mean)
    tau_max = 2 / math.pi * math.asin(r_truth)

    def loading(tau):  # corr with z that gives this expected τ against the 4-seed mean
        return min(1.0, math.sin(math.pi * tau / 2) / r_truth)

    a = loading(macs_tau)
    levels = [(0.636, "0.636 (about MACs' level)"), (0.75, "0.75"),
              (tau_max, f"{tau_max:.3f} (a perfect proxy: the true quality)")]
    print(f"ground-truth noise: s² {s2:.4f} per seed (ceiling {ceiling}); a perfect proxy's "
          f"expected τ against the 4-seed mean: {tau_max:.3f}; MACs' expected τ {macs_tau}")
    rng = np.random.default_rng(0)
    print("| n | " + " | ".join(label for _, label in levels) + " |")
    print("|---:|" + "---:|" * len(levels))
    for n in (12, 16, 24, 32, 48):
        passed = [0] * len(levels)
        paired = [0] * len(levels)
        for _ in range(sims):
            z = rng.standard_normal(n)
            gt = z + gt_sd * rng.standard_normal(n)
            macs = a * z + math.sqrt(1 - a * a) * rng.standard_normal(n)
            t_macs = tau_b(macs[None], gt[None])[0]
            idx = rng.integers(0, n, size=(1000, n))
            boot_macs = tau_b(macs[idx], gt[idx])
            for k, (tau, _) in enumerate(levels):
                b = loading(tau)
                p = b * z + math.sqrt(max(0.0, 1 - b * b)) * rng.standard_normal(n)
                boot = tau_b(p[idx], gt[idx])
                if np.nanpercentile(boot, 2.5) > t_macs:
                    passed[k] += 1
                if np.nanpercentile(boot - boot_macs, 2.5) > 0:
                    paired[k] += 1
        print(f"| {n} | " + " | ".join(f"{c / sims:.2f} / {d / sims:.2f}"
                                       for c, d in zip(passed, paired)) + " |")


if __name__ == "__main__":
    main()
