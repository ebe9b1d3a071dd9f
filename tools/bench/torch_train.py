#!/usr/bin/env python3
"""PyTorch eager baseline for `unas bench train --vs-torch`.

One training step of the unas CPU proxy in PyTorch: the U-Net of a unas architecture (JSON as
serialised by `UNetArch`, or TOML) built by tools/fixtures/unet_reference.py (diffusers'
UNet2DConditionModel or the FlexibleUNet re-implementation), random weights, random latents and
text embeddings; the DeciDiffusion recipe of evaluator/src/quality/train.rs (cosine betas
rescaled to zero terminal SNR, v-prediction, Min-SNR-5 weighted MSE, mean over the batch) and
AdamW with burn's defaults (betas 0.9/0.999, eps 1e-5, weight decay 1e-4), lr 1e-3. Times
forward + loss, backward, the optimiser step and the whole step exactly as the Rust bench does:
`--warmup` untimed steps, then `--repeats` timed ones; median and quartiles (numpy-style linear
interpolation). Prints one JSON object on stdout.

  python3 tools/bench/torch_train.py --arch arch.json --latent 16 --batch 16 --threads 2
"""

import argparse
import json
import math
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


def timing(samples):
    s = sorted(samples)
    return {
        "samples_ms": samples,
        "median_ms": statistics.median(s),
        "q1_ms": quantile(s, 0.25),
        "q3_ms": quantile(s, 0.75),
    }


def alphas_cumprod(t=1000):
    """Cosine betas (max 0.999) rescaled to zero terminal SNR, as Recipe::alphas_cumprod."""
    f = lambda x: math.cos((x + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    betas = [min(1 - f((i + 1) / t) / f(i / t), 0.999) for i in range(t)]
    acp, acc = [], 1.0
    for b in betas:
        acc *= 1 - b
        acp.append(acc)
    s = [a ** 0.5 for a in acp]
    s0, st = s[0], s[-1]
    return [((x - st) * (s0 / (s0 - st))) ** 2 for x in s]


def min_snr_v_weight(a, gamma=5.0):
    snr = a / (1 - a) if a < 1 else float("inf")
    if snr == 0 or not math.isfinite(snr):
        return 1.0
    return min(snr, gamma) / (snr + 1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", required=True, help="architecture as .json or .toml ('-': JSON stdin)")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--text-len", type=int, default=16)
    p.add_argument("--warmup", type=int, default=2)
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
    model = unet_reference.build(arch).train()
    st = unet_reference.normalize(arch)["stem"]
    b = args.batch
    x0 = torch.randn(b, st["in_channels"], args.latent, args.latent)
    context = torch.randn(b, args.text_len, st["cross_attention_dim"])
    acp = alphas_cumprod()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-5,
                            weight_decay=1e-4)
    fwd, bwd, upd, step, losses = [], [], [], [], []
    for run in range(args.warmup + args.repeats):
        ts = torch.randint(0, 1000, (b,))
        noise = torch.randn_like(x0)
        t0 = time.perf_counter()
        a = torch.tensor([acp[i] for i in ts.tolist()], dtype=torch.float32).view(b, 1, 1, 1)
        w = torch.tensor([min_snr_v_weight(acp[i]) for i in ts.tolist()]).view(b)
        sa, s1a = a.sqrt(), (1 - a).sqrt()
        xt = sa * x0 + s1a * noise
        target = sa * noise - s1a * x0
        pred = model(xt, ts.float(), context)
        loss = (((pred - target) ** 2).mean(dim=(1, 2, 3)) * w).mean()
        value = loss.item()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        losses.append(value)
        if run >= args.warmup:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            upd.append((t3 - t2) * 1e3)
            step.append((t3 - t0) * 1e3)
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "forward": timing(fwd),
        "backward": timing(bwd),
        "optimizer": timing(upd),
        "step": timing(step),
        "losses": losses,
    }))


if __name__ == "__main__":
    main()
