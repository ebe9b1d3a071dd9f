#!/usr/bin/env python3
"""Optuna's NSGA-II on a unas study's objectives: an outside reference for
`unas search benchmark` (docs/strategy-benchmark.md).

Optuna (https://optuna.org, `pip install optuna`) asks; `unas search evaluate` answers over
JSON lines with the study's latency model, budget, constraints and quality — the same quality
cache file as the benchmark, so architectures both visit are scored once and identically.
Each seed runs `--trials` trials of `optuna.samplers.NSGAIISampler(population_size=P,
seed=SEED)` with the candidate's total constraint violation as its constraint
(`Trial.set_constraint`, or `constraints_func` before Optuna 5), a two-objective study (latency, quality; both
minimised). The space is given to Optuna as fixed categorical knobs (`SearchSpace::flat_knobs`:
every knob of the largest stage count, indices into their choices); unas maps each choice
onto one valid architecture. A candidate over the budget is not scored for quality (as in
unas studies): Optuna is told its latency, a placeholder quality and its violation, so
constrained domination ranks it behind every feasible one.

Hypervolumes use the benchmark's reference point (read from its strategy-benchmark.md) on
each run's feasible points, exactly as unas computes them; the ratio to random search pairs
seeds with the benchmark's random-search runs and its 95 % CI is a percentile bootstrap over
seeds (2000 resamples). Trials to 95 %: the first trial count at which the run's hypervolume
reaches 95 % of the best final hypervolume of that seed among the benchmark's strategies and
this run.

    python3 tools/optuna_nsga2.py --config configs/quickstart.toml \
        --benchmark runs/quickstart-benchmark --seeds 10 --trials 40 --population 12
"""

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

PLACEHOLDER_QUALITY = 1e30


def hypervolume_2d(points, reference):
    """Area dominated by `points` (both objectives minimised) inside `reference`."""
    p = sorted(q for q in points if q[0] < reference[0] and q[1] < reference[1])
    hv, best_y = 0.0, reference[1]
    for x, y in p:
        if y < best_y:
            hv += (reference[0] - x) * (best_y - y)
            best_y = y
    return hv


def read_benchmark(md_file):
    """(reference point, {strategy: [per-seed hypervolumes]}) from strategy-benchmark.md."""
    text = Path(md_file).read_text()
    m = re.search(r"reference point: ([0-9.eE+-]+) ms, quality ([0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)", text)
    if not m:
        sys.exit(f"{md_file}: no 'reference point' line")
    reference = (float(m.group(1)), float(m.group(2)))
    runs = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] and re.match(r"^[0-9.]+$", cells[1]):
            runs[cells[0]] = [float(x) for x in cells[5].split(",")]
    if "random" not in runs:
        sys.exit(f"{md_file}: no random-search row")
    return reference, runs


def ratio_ci(a, b, resamples=2000, seed=0):
    rng = random.Random(seed)
    n = len(a)
    ratios = []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        sb = sum(b[i] for i in idx)
        if sb > 0:
            ratios.append(sum(a[i] for i in idx) / sb)
    ratios.sort()
    if not ratios:
        return (float("nan"), float("nan"))
    return (ratios[int(0.025 * (len(ratios) - 1))], ratios[int(0.975 * (len(ratios) - 1))])


class Evaluator:
    """`unas search evaluate` as a subprocess: one request line, one reply line."""

    def __init__(self, unas, config, out):
        self.proc = subprocess.Popen(
            [unas, "search", "evaluate", "--config", config, "--out", out],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.header = json.loads(self.proc.stdout.readline())

    def __call__(self, choices):
        self.proc.stdin.write(json.dumps({"choices": choices}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def run_seed(optuna, ev, seed, trials, population):
    # Optuna ≥ 5 takes constraints from the trial (`Trial.set_constraint`); older releases
    # from `constraints_func`.
    new_api = hasattr(optuna.trial.Trial, "set_constraint")
    kwargs = {} if new_api else {
        "constraints_func": lambda t: [t.user_attrs.get("violation", 0.0)]
    }
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed, **kwargs)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    results = []
    for _ in range(trials):
        t = study.ask()
        choices = {
            k["name"]: t.suggest_categorical(k["name"], list(range(len(k["choices"]))))
            for k in ev.header["knobs"]
        }
        r = ev(choices)
        if "error" in r and "status" not in r:
            sys.exit(f"unas refused a request: {r['error']}")
        t.set_user_attr("violation", float(r["violation"]))
        if new_api:
            t.set_constraint("violation", float(r["violation"]))
        t.set_user_attr("hash", r["hash"])
        if r["status"] == "failed":
            study.tell(t, state=optuna.trial.TrialState.FAIL)
        else:
            quality = r["quality"] if r["status"] == "done" else None
            study.tell(t, [r["latency_ms"], PLACEHOLDER_QUALITY if quality is None else quality])
        results.append(r)
    return results


def curve_of(results, reference):
    """The hypervolume after each trial (feasible, scored points only)."""
    points, curve = [], []
    for r in results:
        if r["status"] == "done" and r["quality"] is not None:
            points.append((r["latency_ms"], r["quality"]))
        curve.append(hypervolume_2d(points, reference))
    return curve


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="study file (as given to the benchmark)")
    ap.add_argument("--benchmark", required=True,
                    help="the benchmark's output folder (strategy-benchmark.md, quality cache)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--population", type=int, default=12)
    ap.add_argument("--unas", default="target/release/unas")
    ap.add_argument("--wait", action="store_true",
                    help="wait for the benchmark's strategy-benchmark.md (a benchmark running "
                         "beside this one)")
    args = ap.parse_args()
    try:
        import optuna
    except ImportError:
        sys.exit("needs Optuna: pip install optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    bench = Path(args.benchmark)
    bench.mkdir(parents=True, exist_ok=True)
    trials_file = bench / "optuna-nsga2-trials.json"
    ev = Evaluator(args.unas, args.config, str(bench))
    per_seed = []
    for seed in range(args.seeds):
        results = run_seed(optuna, ev, seed, args.trials, args.population)
        per_seed.append(results)
        trials_file.write_text(json.dumps(per_seed) + "\n")
        print(f"seed {seed}: {len(set(r['hash'] for r in results))} distinct of "
              f"{len(results)} trials", file=sys.stderr)
    ev.close()
    # The benchmark may still be running beside this: its report gives the reference point.
    md = bench / "strategy-benchmark.md"
    while args.wait and not md.exists():
        time.sleep(30)
    reference, runs = read_benchmark(md)
    if len(runs["random"]) < args.seeds:
        sys.exit(f"the benchmark has {len(runs['random'])} seeds, fewer than --seeds")
    finals, to95, distinct = [], [], set()
    for seed, results in enumerate(per_seed):
        curve = curve_of(results, reference)
        distinct.update(r["hash"] for r in results)
        finals.append(curve[-1])
        best = max([curve[-1]] + [runs[s][seed] for s in runs])
        hit = next((i + 1 for i, h in enumerate(curve) if best > 0 and h >= 0.95 * best), None)
        to95.append(hit)
        print(f"seed {seed}: hypervolume {curve[-1]:.5g}", file=sys.stderr)
    random_hv = runs["random"][: args.seeds]
    mean = sum(finals) / len(finals)
    ratio = mean / (sum(random_hv) / len(random_hv))
    lo, hi = ratio_ci(finals, random_hv)
    reached = [k for k in to95 if k is not None]
    result = {
        "sampler": f"optuna {optuna.__version__} NSGAIISampler(population_size="
                   f"{args.population}), constraint = the budget and caps' total violation",
        "seeds": args.seeds,
        "trials": args.trials,
        "reference": reference,
        "hypervolumes": finals,
        "mean": mean,
        "ratio_to_random": ratio,
        "ratio_ci": [lo, hi],
        "trials_to_95": to95,
        "distinct_archs": len(distinct),
    }
    (bench / "optuna-nsga2.json").write_text(json.dumps(result, indent=1) + "\n")
    row = (f"| optuna-nsga2 | {mean:.5g} | {ratio:.3f}x | [{lo:.3f}, {hi:.3f}] | "
           + (f"{sum(reached) / len(reached):.1f} ({len(reached)}/{len(to95)} seeds)"
              if reached else f"never (0/{len(to95)})")
           + " | " + ", ".join(f"{h:.5g}" for h in finals) + " |")
    print(row)
    (bench / "optuna-nsga2.md").write_text(row + "\n")


if __name__ == "__main__":
    main()
