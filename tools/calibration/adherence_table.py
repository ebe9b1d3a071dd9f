#!/usr/bin/env python3
"""Prompt-adherence table of `unas train` runs: one row per train.json in docs/train/adherence/
(written by `unas train --adherence N`), as CSV on stdout (docs/train/adherence.csv).

  python3 tools/calibration/adherence_table.py > docs/train/adherence.csv
"""
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ATTRS = ["shape", "colour", "size", "position", "background"]


def main():
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["run", "seed", "steps", "batch", "lr", "min_snr_gamma", "guidance", "seconds",
                "val_loss"]
               + ATTRS + [f"{a}_vae" for a in ATTRS] + [f"{a}_real" for a in ATTRS])
    for f in sorted((ROOT / "docs/train/adherence").glob("*.json")):
        d = json.loads(f.read_text())
        a = d["adherence"]
        st = d["settings"]
        gamma = st["recipe"]["min_snr_gamma"]
        w.writerow([f.stem, st["seed"], d["steps"], st["batch"], st["recipe"]["lr"],
                    "none" if gamma is None else gamma, a["guidance"],
                    round(d["seconds_this_call"]), f"{d['val_loss']['overall']:.5f}"]
                   + [f"{a['per_attribute'][k]:.3f}" for k in ATTRS]
                   + [f"{a['per_attribute_vae'][k]:.3f}" for k in ATTRS]
                   + [f"{a['per_attribute_real'][k]:.3f}" for k in ATTRS])


if __name__ == "__main__":
    main()
