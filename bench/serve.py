#!/usr/bin/env python3
"""attend serve under load: throughput and latency with dynamic batching on and off, and a soak.

Starts `attend serve` for each model, drives it with wrk (Debian's package; bench/serve.lua sends
one input line per request, cycling through a test file) at each concurrency, and prints a table.

  bench/serve.py --attend build/attend \
      --model g2p=runs/g2p/model:runs/g2p-data/test.tsv \
      --model kjv-web=runs/kjv-web-transformer:runs/kjv-web/test.tsv [--seconds 10] [--threads 1]
  bench/serve.py --attend build/attend --model g2p=DIR:FILE --soak-minutes 10 --concurrency 32

The server decodes with --threads workers (one core each); wrk runs on one thread beside it, so on
a 2-vCPU machine the load generator shares the second core with the server's I/O thread.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_model(spec):
    m = re.fullmatch(r"([A-Za-z0-9._-]+)=([^:]+):(.+)", spec)
    if not m:
        raise SystemExit(f"serve.py: --model takes NAME=DIR:TESTFILE, got {spec!r}")
    return m.group(1), m.group(2), m.group(3)


class Server:
    def __init__(self, attend, name, model_dir, *args):
        cmd = [attend, "serve", "--model", f"{name}={model_dir}", "--port", "0", "--quiet", *args]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on (http://[\d.]+:\d+)", line)
        if not m:
            raise SystemExit(f"serve.py: attend serve did not start: {line}{self.proc.stderr.read()}")
        self.url = m.group(1)

    def status(self):
        """Resident memory (MB) and open file descriptors of the server process."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            rss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) / 1024
        return rss, len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=120)
        rest = self.proc.stderr.read()
        if code != 0:
            raise SystemExit(f"serve.py: attend serve exited {code}: {rest}")


def wrk(url, test_file, name, connections, seconds, mix=False):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s",
           os.path.join(HERE, "serve.lua"), url, "--", test_file, name] + (["mix"] if mix else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(args, name, model_dir, test_file):
    rows = []
    for batching in (True, False):
        extra = ["--threads", str(args.threads), "--max-queue", "4096", "--max-wait-ms", str(args.max_wait_ms),
                 "--precision", args.precision]
        extra += [] if batching else ["--no-batching"]
        s = Server(args.attend, name, model_dir, *extra)
        try:
            wrk(s.url, test_file, name, 1, 2)  # warm-up
            for c in args.concurrency:
                r = wrk(s.url, test_file, name, c, args.seconds)
                bad = sum(v for k, v in r["status"].items() if k != "200") + r["socket_errors"] + r["timeouts"]
                rows.append((name, batching, c, r["rps"], r["p50_ms"], r["p99_ms"], bad))
                print(f"{name:10s} batching {'on ' if batching else 'off'} c={c:3d}: {r['rps']:8.1f} sentences/s, "
                      f"p50 {r['p50_ms']:7.2f} ms, p99 {r['p99_ms']:7.2f} ms, not 200: {bad}", flush=True)
        finally:
            s.stop()
    return rows


def decode_rates(args, name, model_dir, test_file, n=256):
    """Sentences/s of `attend translate` itself at batch 1 and 64 on the same inputs: the most
    batching can give (start-up is removed by timing a one-line run)."""
    lines = [l.split("\t", 1)[0] for l in open(test_file, encoding="utf-8").read().splitlines() if l.strip()][:n]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

    def seconds(batch, inputs):
        t0 = time.perf_counter()
        subprocess.run([args.attend, "translate", "--model", model_dir, "--batch", str(batch), "--precision",
                        args.precision], input="\n".join(inputs) + "\n",
                       capture_output=True, text=True, check=True, env=env)
        return time.perf_counter() - t0

    start = min(seconds(1, lines[:1]) for _ in range(3))
    rates = {b: (len(lines) - 1) / (seconds(b, lines) - start) for b in (1, 64)}
    print(f"{name:10s} attend translate: {rates[1]:.1f} sentences/s at batch 1, {rates[64]:.1f} at batch 64 "
          f"({rates[64] / rates[1]:.2f}x: the most batching can give)", flush=True)
    return rates


def summary(rows, cmax):
    def get(name, batching, c):
        return next(r for r in rows if r[0] == name and r[1] == batching and r[2] == c)

    print("\n| model | batching | concurrency | sentences/s | p50 ms | p99 ms | not 200 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {'on' if r[1] else 'off'} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} | {r[5]:.2f} | {r[6]} |")
    print()
    for name in dict.fromkeys(r[0] for r in rows):
        on, off, single = get(name, True, cmax), get(name, False, cmax), get(name, False, 1)
        print(f"{name}: at concurrency {cmax}, batching gives {on[3] / off[3]:.2f}x the throughput of "
              f"one-at-a-time; p99 {on[5]:.1f} ms = {on[5] / single[4]:.2f}x the single-request latency "
              f"({single[4]:.2f} ms, p50 at concurrency 1)")


def soak(args, name, model_dir, test_file):
    s = Server(args.attend, name, model_dir, "--threads", str(args.threads))
    try:
        wrk(s.url, test_file, name, args.concurrency[-1], 5, mix=True)  # warm-up: pools and caches
        rss0, fd0 = s.status()
        print(f"soak start: RSS {rss0:.1f} MB, {fd0} file descriptors", flush=True)
        total, samples = {}, []
        slices = max(1, int(args.soak_minutes * 60 // 60))
        for k in range(slices):
            r = wrk(s.url, test_file, name, args.concurrency[-1], 60, mix=True)
            for code, n in r["status"].items():
                total[code] = total.get(code, 0) + n
            total["socket errors"] = total.get("socket errors", 0) + r["socket_errors"] + r["timeouts"]
            samples.append(s.status())
            print(f"  minute {k + 1}: {r['rps']:.0f} requests/s, p99 {r['p99_ms']:.1f} ms, statuses {r['status']}, "
                  f"RSS {samples[-1][0]:.1f} MB, {samples[-1][1]} fds", flush=True)
        rss1, fd1 = s.status()
    finally:
        s.stop()
    fives = {k: v for k, v in total.items() if k.startswith("5") and k != "503"}
    print(f"\nsoak: {args.soak_minutes} min at concurrency {args.concurrency[-1]}, statuses {total}")
    print(f"RSS {rss0:.1f} -> {rss1:.1f} MB (max {max(x[0] for x in samples):.1f}), "
          f"file descriptors {fd0} -> {fd1}; 5xx other than 503: {sum(fives.values())}")
    return not fives and total.get("socket errors", 0) == 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--attend", default=os.path.join(HERE, "..", "build", "attend"))
    p.add_argument("--model", action="append", required=True, help="NAME=DIR:TESTFILE")
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="attend serve --threads (decoding workers)")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--max-wait-ms", type=int, default=0, help="attend serve --max-wait-ms")
    p.add_argument("--soak-minutes", type=float, default=0)
    p.add_argument("--precision", default="fp32", choices=("fp32", "int8"), help="attend serve --precision")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    models = [parse_model(m) for m in args.model]
    if args.soak_minutes > 0:
        sys.exit(0 if all(soak(args, *m) for m in models) else 1)
    for m in models:
        decode_rates(args, *m)
    rows = [r for m in models for r in measure(args, *m)]
    summary(rows, max(args.concurrency))


if __name__ == "__main__":
    main()
