#!/usr/bin/env python3
"""Distillation against training from scratch (docs/train.md): per-condition validation losses
and the paired differences (seed s against seed s) with 95 % t-intervals, from
docs/train/distillation.csv.

    python3 tools/calibration/distillation_table.py [docs/train/distillation.csv]
"""
import csv
import statistics as st
import sys

T_975_2 = 4.302652729911275  # Student t, 0.975 quantile, 2 degrees of freedom

path = sys.argv[1] if len(sys.argv) > 1 else "docs/train/distillation.csv"
v = {}
for r in csv.DictReader(open(path)):
    v[(r["condition"], int(r["seed"]))] = float(r["val_loss"])
seeds = sorted({s for c, s in v if c == "scratch"})
for c in ["scratch", "distilled", "initonly"]:
    xs = [v[(c, s)] for s in seeds]
    print(c, " ".join(f"{x:.5f}" for x in xs), f"mean {st.mean(xs):.5f} sd {st.stdev(xs):.5f}")
for a, b in [("distilled", "scratch"), ("initonly", "scratch"), ("distilled", "initonly")]:
    d = [v[(a, s)] - v[(b, s)] for s in seeds]
    m, se = st.mean(d), st.stdev(d) / len(d) ** 0.5
    t = T_975_2 if len(d) == 3 else float("nan")
    print(f"{a} - {b}:", " ".join(f"{x:+.5f}" for x in d),
          f"mean {m:+.5f} 95% CI [{m - t * se:+.5f}, {m + t * se:+.5f}]")
if ("teacher", 0) in v:
    print(f"teacher {v[('teacher', 0)]:.5f}")
