#!/usr/bin/env python3
"""PyTorch eager baseline for `unas bench unet --vs-torch`.

Builds the U-Net of a unas architecture (JSON as serialised by `UNetArch`, or TOML) with the
reference implementations of tools/fixtures/unet_reference.py (diffusers' UNet2DConditionModel
or the FlexibleUNet re-implementation), random weights, and times its forward pass exactly as
the Rust bench does: `--warmup` untimed runs, then `--repeats` timed runs, median and quartiles
(numpy-style linear interpolation). Prints one JSON object on stdout.

  python3 tools/bench/torch_unet.py --arch arch.json --latent 32 --batch 2 --threads 2
"""

import argparse
import json
import statistics
import sys
import time
import tomllib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import unet_reference  # noqa: E402


def quantile(sorted_values, q):
    pos = q * (len(sorted_values) - 1)
    lo, hi = int(pos // 1), int(-(-pos // 1))
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, help="architecture as .json or .toml ('-': JSON stdin)")
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--text-len", type=int, default=77)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: torch default)")
    args = p.parse_args()

    if args.arch == "-":
        arch = json.load(sys.stdin)
    elif args.arch.endswith(".toml"):
        arch = tomllib.loads(Path(args.arch).read_text())
    else:
        arch = json.loads(Path(args.arch).read_text())
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = unet_reference.build(arch).eval()
    build_ms = (time.perf_counter() - t0) * 1e3
    st = unet_reference.normalize(arch)["stem"]
    sample = torch.randn(args.batch, st["in_channels"], args.latent, args.latent)
    timesteps = torch.full((args.batch,), 500.0)
    context = torch.randn(args.batch, args.text_len, st["cross_attention_dim"])
    samples = []
    with torch.inference_mode():
        for run in range(args.warmup + args.repeats):
            t = time.perf_counter()
            model(sample, timesteps, context)
            ms = (time.perf_counter() - t) * 1e3
            if run >= args.warmup:
                samples.append(ms)
    s = sorted(samples)
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "build_ms": build_ms,
        "samples_ms": samples,
        "median_ms": statistics.median(s),
        "q1_ms": quantile(s, 0.25),
        "q3_ms": quantile(s, 0.75),
    }))


if __name__ == "__main__":
    main()
