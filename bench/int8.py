#!/usr/bin/python3
"""int8 vs fp32 decoding of real inputs with trained models: attend's two precisions side by
side in one run, one thread, greedy; inputs per second, target tokens per second, and how
many outputs are the same.

For each model directory: `attend.Model.load(DIR)` and `attend.Model.load(DIR,
precision="int8")` translate the same inputs (spread evenly over the test file) at batch 64, 8
and 1, which is what `attend translate|eval --precision ...` run. Each measurement is the best
of --repeats runs, the two precisions alternating so that both see the same machine.

Usage: PYTHONPATH=build/python bench/int8.py --test runs/g2p-data/test.tsv --model runs/g2p [--model ...]
"""
import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import attend  # noqa: E402


def timed(model, inputs, batch, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model.translate(inputs, beam=1, batch=batch)
        best = min(best, time.perf_counter() - t0)
    return best, out


def tokens(outputs, config):
    kind = config["target"].get("kind", "char")
    return sum(len(o.split()) if kind in ("space", "sentencepiece") else len(o) for o in outputs) + len(outputs)


def bench(model_dir, test, n, repeats, batches):
    lines = [line.rstrip("\n").split("\t")[0] for line in open(test, encoding="utf-8") if line.strip()]
    inputs = lines[:: max(1, len(lines) // n)][:n]
    config = json.load(open(f"{model_dir}/config.json"))
    fp, q = attend.Model.load(model_dir), attend.Model.load(model_dir, precision="int8")
    print(f"{model_dir} ({fp.architecture}): {len(inputs):,} inputs of {test}, greedy, one thread")
    print()
    print("| batch | fp32 inputs/s | int8 inputs/s | int8 / fp32 | int8 target tokens/s | outputs equal |")
    print("|---:|---:|---:|---:|---:|---:|")
    for B in batches:
        tf, tq = float("inf"), float("inf")
        for _ in range(repeats):  # alternate, best of each
            t, a = timed(fp, inputs, B, 1)
            tf = min(tf, t)
            t, b = timed(q, inputs, B, 1)
            tq = min(tq, t)
        same = sum(x == y for x, y in zip(a, b)) / len(inputs)
        print(f"| {B} | {len(inputs) / tf:,.0f} | {len(inputs) / tq:,.0f} | {tf / tq:.2f}x | "
              f"{tokens(b, config) / tq:,.0f} | {100 * same:.2f}% |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="a model directory (repeat for several)")
    ap.add_argument("--test", action="append", required=True, help="TSV test file per model (or one for all)")
    ap.add_argument("--inputs", type=int, default=1000, help="inputs decoded, spread evenly over the file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batches", default="64,8,1")
    args = ap.parse_args()
    attend.set_threads(1)
    tests = args.test if len(args.test) == len(args.model) else args.test[:1] * len(args.model)
    for model_dir, test in zip(args.model, tests):
        bench(model_dir, test, args.inputs, args.repeats, [int(b) for b in args.batches.split(",")])


if __name__ == "__main__":
    main()
