#!/usr/bin/env python3
"""How much of a parent's quality score a one-knob mutant inherits, on a unas study's
objective: what evolution (aging, NSGA-II) needs to beat random search.

Draws `--pairs` random architectures of the study's space (uniform over each flat knob's
choices), scores each and one mutant of it (one knob set to another choice, redrawn until the
architecture changes), through `unas search evaluate` (the study's latency model, budget and
quality, with the benchmark's quality cache). Over the pairs where both are feasible and
scored: Spearman's ρ between parent and mutant quality, and, as the no-inheritance baseline,
ρ between each parent and the next pair's mutant; percentile bootstrap 95 % CIs over pairs
(2000 resamples). Standard library only.

    python3 tools/heritability.py --config configs/quickstart.toml \
        --benchmark runs/quickstart-benchmark --pairs 60
"""

import argparse
import json
import random
import subprocess
import sys


def ranks(v):
    order = sorted(range(len(v)), key=lambda i: v[i])
    r = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va > 0 and vb > 0 else float("nan")


def bootstrap(a, b, seed=0, resamples=2000):
    rng = random.Random(seed)
    n = len(a)
    vals = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        v = spearman([a[i] for i in idx], [b[i] for i in idx])
        if v == v:
            vals.append(v)
    vals.sort()
    return vals[int(0.025 * (len(vals) - 1))], vals[int(0.975 * (len(vals) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--benchmark", required=True, help="folder of the quality cache")
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--unas", default="target/release/unas")
    args = ap.parse_args()
    proc = subprocess.Popen(
        [args.unas, "search", "evaluate", "--config", args.config, "--out", args.benchmark],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    header = json.loads(proc.stdout.readline())
    knobs = header["knobs"]

    def ask(choices):
        proc.stdin.write(json.dumps({"choices": choices}) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    rng = random.Random(args.seed)
    pairs = []
    while len(pairs) < args.pairs:
        parent = {k["name"]: rng.randrange(len(k["choices"])) for k in knobs}
        p = ask(parent)
        if p.get("status") != "done":
            continue
        mutable = [k for k in knobs if len(k["choices"]) > 1]
        for _ in range(100):
            k = rng.choice(mutable)
            child = dict(parent)
            child[k["name"]] = rng.choice(
                [i for i in range(len(k["choices"])) if i != parent[k["name"]]])
            c = ask(child)
            if c.get("hash") != p["hash"]:
                break
        if c.get("status") != "done":
            continue
        pairs.append((p["quality"], c["quality"], k["name"]))
        print(f"pair {len(pairs)}: {p['quality']:.5f} -> {c['quality']:.5f} ({k['name']})",
              file=sys.stderr)
    proc.stdin.close()
    proc.wait()
    a = [x[0] for x in pairs]
    b = [x[1] for x in pairs]
    shifted = b[1:] + b[:1]
    rho, (lo, hi) = spearman(a, b), bootstrap(a, b)
    rho0, (lo0, hi0) = spearman(a, shifted), bootstrap(a, shifted)
    out = {
        "pairs": len(pairs),
        "rho_parent_mutant": rho, "ci": [lo, hi],
        "rho_unrelated": rho0, "ci_unrelated": [lo0, hi0],
        "quality": header["quality"], "budget_ms": header["budget_ms"],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
