#!/usr/bin/python3
"""Multi-head scaled-dot-product attention: attend's fused kernel, attend's reference path and
PyTorch, side by side in one run, single-threaded, fp32, H = 8, D = 64, S = T.

PyTorch (Debian's 1.13) is measured two ways:
  plain  softmax(Q Kᵀ · s) V as people write it (masked_fill for causal), autograd for backward;
  tuned  the best formulation we know for 1.13 (no F.scaled_dot_product_attention before 2.0):
         baddbmm with the scale and an additive causal mask fused in, then an in-place softmax
         (forward) or softmax + bmm under autograd (forward+backward).
Every measurement runs in its own process, so "extra MiB" is that process's peak RSS beyond
its inputs and outputs. FLOPs: forward 4·B·H·T·S·D, forward+backward 3.5x that, causal half.

The machine's FMA peak and OpenBLAS's sgemm rate are measured first (bench/fma_peak.cpp), and
every fused figure is also given as a percentage of that peak.

Usage: bench/sdpa.py [--attend build/bench/sdpa_bench] [--peak build/bench/fma_peak] [--quick]
"""
import argparse
import json
import os
import subprocess
import sys

H, D = 8, 64


def torch_worker(B, T, causal, mode, formulation, repeats):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    import time
    import torch

    torch.set_num_threads(1)

    def rss(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return float(line.split()[1]) / 1024.0
        return 0.0

    base = rss("VmRSS:")
    g = torch.Generator().manual_seed(1)
    backward = mode == "fwdbwd"
    q, k, v, dout = (torch.randn(B, H, T, D, generator=g) for _ in range(4))
    if backward:
        for t in (q, k, v):
            t.requires_grad_(True)
    io = (4 + 1 + (3 if backward else 0)) * q.numel() * 4 / 1048576.0
    scale = D ** -0.5
    mask = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
    bias = torch.zeros(T, T).masked_fill(mask, float("-inf")).expand(B * H, T, T) if causal else None

    def plain():
        s = q @ k.transpose(-1, -2) * scale
        if causal:
            s = s.masked_fill(mask, float("-inf"))
        return torch.softmax(s, -1) @ v

    def tuned():
        qq, kk, vv = q.reshape(B * H, T, D), k.reshape(B * H, T, D), v.reshape(B * H, T, D)
        if backward:
            if causal:
                s = torch.baddbmm(bias, qq, kk.transpose(1, 2), alpha=scale)
            else:
                s = torch.bmm(qq, kk.transpose(1, 2)) * scale
            return torch.bmm(torch.softmax(s, -1), vv).view(B, H, T, D)
        with torch.no_grad():
            s = torch.empty(B * H, T, T)
            if causal:
                torch.baddbmm(bias, qq, kk.transpose(1, 2), alpha=scale, out=s)
            else:
                torch.baddbmm(s, qq, kk.transpose(1, 2), beta=0.0, alpha=scale, out=s)
            s.sub_(s.amax(-1, keepdim=True)).exp_()
            s.div_(s.sum(-1, keepdim=True))
            return torch.bmm(s, vv).view(B, H, T, D)

    fn = plain if formulation == "plain" else tuned
    times = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        o = fn()
        if backward:
            for t in (q, k, v):
                t.grad = None
            o.backward(dout)
        dt = time.perf_counter() - t0
        del o
        if r > 0:
            times.append(dt)
    times.sort()
    median = times[len(times) // 2]
    flops = 4.0 * B * H * T * T * D * (3.5 if backward else 1.0) * (0.5 if causal else 1.0)
    print(json.dumps({"seconds": median, "gflops": flops / median / 1e9, "extra_mib": rss("VmHWM:") - base - io,
                      "io_mib": io}))


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attend", default="build/bench/sdpa_bench")
    ap.add_argument("--peak", default="build/bench/fma_peak", help="the machine's FMA peak and sgemm rate")
    ap.add_argument("--quick", action="store_true", help="B = 1 and T <= 1024 only")
    ap.add_argument("--torch-worker", nargs=6, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        B, T, causal, mode, formulation, repeats = a.torch_worker
        torch_worker(int(B), int(T), causal == "1", mode, formulation, int(repeats))
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    peak = run([a.peak])
    print(f"this machine, one thread: FMA peak {peak['fma_gflops']:.1f} GFLOP/s ({peak['isa']}), "
          f"OpenBLAS sgemm 1024^3 {peak['sgemm_gflops']:.1f} GFLOP/s; '% peak' = fused GFLOP/s / FMA peak")
    print(f"H={H} D={D} S=T fp32, one thread; GFLOP/s by the FLOP convention above; "
          "ratio = attend fused / PyTorch (time); extra = peak RSS beyond inputs and outputs")
    head = (f"{'B':>2} {'T':>5} {'causal':>6} {'pass':>7} | {'fused ms':>9} {'GFLOP/s':>7} {'% peak':>6} {'extra MiB':>9} | "
            f"{'ref GFLOP/s':>11} | {'torch plain':>11} {'x':>5} {'MiB':>7} | {'torch tuned':>11} {'x':>5} {'MiB':>7}")
    print(head)
    print("-" * len(head))
    for B in ([1] if a.quick else [1, 4]):
        for T in ([128, 512, 1024] if a.quick else [128, 512, 1024, 2048, 4096]):
            for causal in (0, 1):
                for mode in ("fwd", "fwdbwd"):
                    reps = 5 if T <= 1024 else 3
                    fused = run([a.attend, str(B), str(H), str(T), str(D), str(causal), mode, "fused", str(reps)])
                    ref = None
                    if B == 1 and T <= 512:  # the oracle is plain loops: seconds at T = 512
                        ref = run([a.attend, str(B), str(H), str(T), str(D), str(causal), mode, "reference", "1"])
                    torch = {}
                    for f in ("plain", "tuned"):
                        torch[f] = run([sys.executable, __file__, "--torch-worker", str(B), str(T), str(causal), mode, f,
                                        str(reps)])
                    ref_s = f"{ref['gflops']:11.2f}" if ref else f"{'-':>11}"
                    print(f"{B:>2} {T:>5} {causal:>6} {mode:>7} | {fused['seconds'] * 1e3:9.2f} {fused['gflops']:7.1f} "
                          f"{100 * fused['gflops'] / peak['fma_gflops']:6.0f} "
                          f"{fused['extra_mib']:9.1f} | {ref_s} | "
                          f"{torch['plain']['gflops']:11.1f} {torch['plain']['seconds'] / fused['seconds']:5.2f} "
                          f"{torch['plain']['extra_mib']:7.0f} | "
                          f"{torch['tuned']['gflops']:11.1f} {torch['tuned']['seconds'] / fused['seconds']:5.2f} "
                          f"{torch['tuned']['extra_mib']:7.0f}", flush=True)


if __name__ == "__main__":
    main()
