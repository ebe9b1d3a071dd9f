#!/bin/bash
# Before/after CPU benchmark of two unas binaries, alternating, in one invocation:
#   tools/bench/run-before-after.sh OLD_BINARY NEW_BINARY [ROUNDS]
# `unas bench unet --vs-torch` (latent 32, batch 2) for tiny, tiny-nas, decidiffusion and
# `unas bench train --vs-torch` (batch 16, latent 16) for tiny, tiny-nas, 2 threads each.
# A running `unas quality calibrate` is paused (SIGSTOP) meanwhile and resumed at the end.
# The old binary needs the `bench train` subcommand (add src/cmd/bench.rs,
# evaluator/src/quality/bench_train.rs and tools/bench/torch_train.py to its checkout).
set -u
OLD=${1:?old binary}
NEW=${2:?new binary}
ROUNDS=${3:-2}
P=$(pgrep -f "unas quality calibrate" || true)
[ -n "$P" ] && kill -STOP $P
trap '[ -n "$P" ] && kill -CONT $P' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for a in tiny tiny-nas decidiffusion; do
    for v in OLD NEW; do
      echo "== bench unet $a $v round $round"
      "${!v}" bench unet --arch $a --latent 32 --batch 2 --threads 2 --vs-torch \
        --repeats 5 --warmup 2 2>&1 | grep -E "burn:|torch|ratio"
    done
  done
  for a in tiny tiny-nas; do
    for v in OLD NEW; do
      echo "== bench train $a $v round $round"
      "${!v}" bench train --arch $a --batch 16 --latent 16 --threads 2 --vs-torch \
        --repeats 5 --warmup 2 2>&1 | tail -6
    done
  done
done
