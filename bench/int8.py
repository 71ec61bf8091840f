#!/usr/bin/python3
"""int8 vs fp32 decoding of real inputs with trained models: attend's two precisions side by
side in one run, one thread, greedy; inputs per second, target tokens per second, and how
many outputs are the same.

For each model directory: `attend.Model.load(DIR)` and `attend.Model.load(DIR,
precision="int8")` translate the same inputs (spread evenly over the test file) at batch 64, 8
and 1, which is what `attend translate|eval --precision ...` run. Each measurement is the best
of --repeats runs, the two precisions alternating so that both see the same machine.

Then the memory each precision keeps: what a fresh process has allocated (glibc's mallinfo2)
after loading the model and translating one input, beyond what it had before (an int8 model
keeps its weights in int8 only), beside the fp32 weights' bytes.

Usage: PYTHONPATH=build/python bench/int8.py --test runs/g2p-data/test.tsv --model runs/g2p [--model ...]
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
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


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def heap_in_use_kb():
    """Bytes malloc has handed out and not been given back (glibc's mallinfo2), in KiB."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    m = libc.mallinfo2()
    return (m.uordblks + m.hblkhd) / 1024


def resident_child(model_dir, precision, text):
    """In a process of its own: the memory loading the model and one translation keep."""
    attend.set_threads(1)
    before = heap_in_use_kb()
    m = attend.Model.load(model_dir, precision=precision)
    loaded = heap_in_use_kb() - before
    m.translate([text], beam=1)
    print(json.dumps({"loaded": loaded, "translated": heap_in_use_kb() - before}))


def resident(model_dir, test):
    text = next(line.split("\t")[0] for line in open(test, encoding="utf-8") if line.strip())
    kb = {}
    for precision in ("fp32", "int8"):
        r = subprocess.run([sys.executable, __file__, "--resident", model_dir, precision, text], check=True,
                           capture_output=True, text=True)
        kb[precision] = json.loads(r.stdout.splitlines()[-1])
    weights = sum(w.size for w in attend.Model.load(model_dir).parameters().values()) * 4 / 1024
    print(f"memory a process keeps for the model (fp32 weights {weights / 1024:.1f} MB): loaded, fp32 "
          f"{kb['fp32']['loaded'] / 1024:.1f} MB, int8 {kb['int8']['loaded'] / 1024:.1f} MB "
          f"({kb['int8']['loaded'] / kb['fp32']['loaded']:.2f}x); after one translation, fp32 "
          f"{kb['fp32']['translated'] / 1024:.1f} MB, int8 {kb['int8']['translated'] / 1024:.1f} MB "
          f"({kb['int8']['translated'] / kb['fp32']['translated']:.2f}x)\n")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--resident":
        return resident_child(*sys.argv[2:])
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
        resident(model_dir, test)


if __name__ == "__main__":
    main()
