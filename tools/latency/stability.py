#!/usr/bin/env python3
"""Tabulates repeated `unas profile` + 3x `unas latency validate` sets (docs/latency.md).

Each set folder holds profile.log, tiny.lut.toml (when the profile was not refused) and
validate1..3.log. Sets named t* ran a binary without the after-measurement noise refusal: their
outcome is what the current binary gives, read from the after-reading they printed.

usage: stability.py DIR [--csv OUT]
"""
import csv, re, sys, pathlib

LIMIT = 10.0

def threads(name: str, toml: str) -> int:
    m = re.search(r"threads = (\d+)", toml)
    return int(m.group(1)) if m else (1 if name[1] == "1" else 2)

def parse_validate(text: str):
    readings = [float(x) for x in re.findall(r"host noise: ([0-9.]+) %", text)]
    if "the host is too noisy to time" in text:
        return dict(outcome="refused: noisy before", readings=readings)
    rows = re.findall(r"^\S+\s+([0-9.]+) ms\s+([0-9.]+) ms\s+[0-9.]+ ms\s+([-+0-9.]+)%$", text, re.M)
    errs = [float(e) for _, _, e in rows]
    after = readings[-1]
    w10 = 100.0 * sum(abs(e) <= 10 for e in errs) / len(errs)
    outcome = "refused: noisy after" if after > LIMIT else ("pass" if w10 >= 90 else "FAIL")
    return dict(outcome=outcome, readings=readings, within10=w10,
                within5=100.0 * sum(abs(e) <= 5 for e in errs) / len(errs),
                mean_err=sum(errs) / len(errs), n=len(errs))

def main():
    root = pathlib.Path(sys.argv[1])
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        prof = (d / "profile.log").read_text()
        toml = (d / "tiny.lut.toml").read_text() if (d / "tiny.lut.toml").exists() else ""
        t = threads(d.name, toml)
        pr = [float(x) for x in re.findall(r"host noise: ([0-9.]+) %", prof)]
        if not toml:
            out.append(dict(set=d.name, threads=t, run="profile", outcome="refused: noisy before",
                            readings=pr))
            continue
        for i in (1, 2, 3):
            r = parse_validate((d / f"validate{i}.log").read_text())
            out.append(dict(set=d.name, threads=t, run=f"validate{i}", **r))
    cols = ["set", "threads", "run", "outcome", "readings", "within5", "within10", "mean_err"]
    w = csv.writer(sys.stdout)
    w.writerow(cols)
    for r in out:
        w.writerow([" ".join(f"{x:.1f}" for x in r[c]) if c == "readings" else
                    (f"{r[c]:.1f}" if isinstance(r.get(c), float) else r.get(c, "")) for c in cols])
    print()
    for t in (2, 1):
        rs = [r for r in out if r["threads"] == t]
        kinds = {}
        for r in rs:
            kinds[r["outcome"]] = kinds.get(r["outcome"], 0) + 1
        measured = [r["within10"] for r in rs if "within10" in r and r["outcome"] != "refused: noisy after"]
        print(f"# {t} thread(s): {len(rs)} runs: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
              + (f"; runs that passed both checks: within ±10 % {min(measured):.1f}–{max(measured):.1f} %"
                 f" ({sum(m >= 90 for m in measured)} of {len(measured)} at ≥ 90 %)" if measured else ""))

main()
