#!/usr/bin/env python3
"""Training throughput on this machine: 1 process x 1 thread, 1 process x 2 threads and
2 processes x 1 thread (mpirun), for the G2P recipe (RNN) and a G2P Transformer. Two processes
run twice: at the same global batch (each process takes half: strong scaling, the smaller
products cost speed) and at the same batch per process (the global batch doubles: weak
scaling, how data parallelism grows with more machines); with a plain compute probe run in the same session (one copy, then two at once) to
show what the second vCPU gives, and the share of each update spent exchanging gradients.

  bench/distributed.py --attend build/attend --data runs/g2p-data [--steps 60] [--batch 64]

Tokens/s are the trainer's own (metrics.jsonl, between the last two evaluations: start-up and
evaluation excluded). A dev file of 200 words keeps the evaluations short.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
MPI = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader,tcp"]
PROBE = ("import numpy as np, time\n"
         "a = np.random.rand(512, 512).astype(np.float32); n = 0; t0 = time.time()\n"
         "while time.time() - t0 < 4: a @ a; n += 1\n"
         "print(n * 2 * 512 ** 3 / (time.time() - t0) / 1e9)")


def probe(copies):
    """GFLOP/s of each of `copies` single-threaded matrix-product loops running at once."""
    procs = [subprocess.Popen(["/usr/bin/python3", "-c", PROBE], stdout=subprocess.PIPE, text=True, env=ENV)
             for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def train(args, data, model, layout, out):
    procs, threads, split = layout
    batch = args.batch // procs if split else args.batch
    cmd = [args.attend, "train", "--task", "g2p", "--data", data, *model, "--seed", "1", "--threads", str(threads),
           "--batch", str(batch), "--max-steps", str(args.steps), "--eval-every", str(args.steps // 2),
           "--out", out, "--overwrite"]
    if procs > 1:
        cmd = MPI + ["-np", str(procs)] + cmd
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env={**ENV, "OMP_NUM_THREADS": str(threads)})
    if r.returncode != 0:
        raise SystemExit(f"distributed.py: {' '.join(cmd)}: exit {r.returncode}\n{r.stderr[-2000:]}")
    evals = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    m = re.search(r"([\d.]+) ms per update, of which ([\d.]+) ms", r.stderr)
    return {"tokens_per_second": evals[-1]["tokens_per_second"], "wall": time.time() - t0,
            "update_ms": float(m.group(1)) if m else None, "reduce_ms": float(m.group(2)) if m else None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attend", default="build/attend")
    p.add_argument("--data", required=True, help="a G2P data directory (train.tsv, dev.tsv)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=64, help="the global batch of one process (sentences)")
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="attend-distributed-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    os.symlink(os.path.abspath(os.path.join(args.data, "train.tsv")), os.path.join(data, "train.tsv"))
    with open(os.path.join(args.data, "dev.tsv")) as f, open(os.path.join(data, "dev.tsv"), "w") as g:
        g.writelines(f.readlines()[:200])
    one, two = probe(1), probe(2)
    print(f"compute probe (512 x 512 sgemm loop): one copy {one[0]:.1f} GFLOP/s; two at once {two[0]:.1f} + "
          f"{two[1]:.1f} = {sum(two) / one[0]:.2f}x one", flush=True)
    models = {"g2p RNN recipe": [], "g2p Transformer": ["--model", "transformer"]}
    # (processes, threads, the global batch split between the processes)
    layouts = [(1, 1, True), (1, 2, True), (2, 1, True), (2, 1, False)]
    print(f"\n| model | processes x threads | batch per process | target tokens/s | vs 1 x 1 | ms per update | "
          f"exchanging gradients |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        base = None
        for layout in layouts:
            r = train(args, data, model, layout, os.path.join(work, "run"))
            base = base or r["tokens_per_second"]
            share = (f"{r['reduce_ms']:.1f} ms ({100 * r['reduce_ms'] / r['update_ms']:.1f}%)"
                     if r["reduce_ms"] is not None else "")
            update = f"{r['update_ms']:.1f}" if r["update_ms"] is not None else ""
            per_process = args.batch // layout[0] if layout[2] else args.batch
            print(f"| {name} | {layout[0]} x {layout[1]} | {per_process} | {r['tokens_per_second']:.0f} | "
                  f"{r['tokens_per_second'] / base:.2f}x | {update} | {share} |", flush=True)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
