#!/usr/bin/env python3
"""Check unas's exact parameter counter against diffusers' UNet2DConditionModel.

For SD1.5 (configs/archs/sd15.toml) and for architectures sampled from a search space that
diffusers can express (diffusers layout), this script asks the `unas` binary for the
architecture's parameter count and its exported diffusers `config.json` (sampling with
`--layout diffusers`), builds
`UNet2DConditionModel.from_config(...)` on PyTorch's `meta` device (no weight memory is
allocated) and compares `sum(p.numel())` with unas's count. Any mismatch exits non-zero.

Usage: tools/check_param_counts.py [--unas target/debug/unas] [--space default] [--min 5]
Requires: torch, diffusers (see tools/requirements.txt).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def unas_show(unas: str, arch: str) -> dict:
    out = subprocess.run(
        [unas, "space", "show", arch, "--json"], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def diffusers_params(config: dict) -> int:
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        model = UNet2DConditionModel.from_config(config)
    return sum(p.numel() for p in model.parameters())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unas", default="target/debug/unas", help="path to the unas binary")
    ap.add_argument("--space", default="default", help="search space to sample from")
    ap.add_argument("--samples", type=int, default=40, help="architectures sampled")
    ap.add_argument("--seed", type=int, default=11, help="sampling seed")
    ap.add_argument("--min", type=int, default=5, help="diffusers-expressible samples required")
    ap.add_argument("--max", type=int, default=8, help="diffusers-expressible samples checked")
    args = ap.parse_args()

    archs = ["configs/archs/sd15.toml"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [args.unas, "space", "sample", "--space", args.space, "-n", str(args.samples),
             "--seed", str(args.seed), "--layout", "diffusers", "--out", tmp],
            check=True, capture_output=True, text=True,
        )
        sampled = sorted(Path(tmp).glob("*.toml"))
        expressible = []
        for path in sampled:
            info = unas_show(args.unas, str(path))
            if info["diffusers_config"].get("_class_name") == "UNet2DConditionModel":
                expressible.append((str(path), info))
            if len(expressible) >= args.max:
                break
        if len(expressible) < args.min:
            print(f"only {len(expressible)} diffusers-expressible archs in {len(sampled)} samples "
                  f"(need {args.min})", file=sys.stderr)
            return 1

        failures = 0
        rows = [(a, unas_show(args.unas, a)) for a in archs] + expressible
        for name, info in rows:
            cfg = info["diffusers_config"]
            ours = info["params"]
            theirs = diffusers_params(cfg)
            ok = ours == theirs
            failures += not ok
            blocks = ",".join(t.replace("Block2D", "") for t in cfg["down_block_types"])
            print(f"{'ok  ' if ok else 'FAIL'} {info['hash']} unas={ours:>13,} "
                  f"diffusers={theirs:>13,} layers={cfg['layers_per_block']} "
                  f"widths={cfg['block_out_channels']} down={blocks}")
    print(f"{len(rows) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
