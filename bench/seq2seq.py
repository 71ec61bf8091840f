#!/usr/bin/python3
"""attend vs PyTorch, side by side in one run, single-threaded: seq2seq training target-tokens/s
and greedy decoding sentences/s.

The PyTorch model below is the same network as bench/seq2seq_bench.cpp builds with attend,
written plainly (nn.GRU encoder, a decoder step loop over nn.GRUCell, additive attention,
Adam): embeddings 128, bi-GRU encoder 256 per direction, GRU decoder 256 with input feeding,
additive attention 256, source vocabulary 30, target vocabulary 42, S = 10, T = 9.

Usage: bench/seq2seq.py [--attend build/bench/seq2seq_bench] [--seconds 3]
"""
import argparse
import json
import os
import subprocess
import time

# Debian's torch does its GEMMs through the system libblas.so.3, which is OpenBLAS here and
# starts a thread per core unless told otherwise before it loads: one thread, as for attend.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import torch
import torch.nn as nn
import torch.nn.functional as F

SRC_V, TGT_V, S, T = 30, 42, 10, 9
E, H, HE, A = 128, 256, 256, 256
M = 2 * HE
EOS = 3


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_emb = nn.Embedding(SRC_V, E)
        self.tgt_emb = nn.Embedding(TGT_V, E)
        self.encoder = nn.GRU(E, HE, bidirectional=True)
        self.bridge = nn.Linear(M, H)
        self.decoder = nn.GRUCell(E + H, H)
        self.wq = nn.Linear(H, A, bias=False)
        self.wk = nn.Linear(M, A, bias=False)
        self.va = nn.Linear(A, 1, bias=False)
        self.combine = nn.Linear(M + H, H, bias=False)
        self.output = nn.Linear(H, TGT_V)

    def encode(self, src):  # src [S, B]
        mem, last = self.encoder(self.src_emb(src))  # mem [S, B, M], last [2, B, HE]
        mem = mem.transpose(0, 1)  # [B, S, M]
        s0 = torch.tanh(self.bridge(torch.cat([last[0], last[1]], dim=1)))
        return mem, self.wk(mem), s0

    def step(self, prev, s, feed, mem, keys):
        s = self.decoder(torch.cat([self.tgt_emb(prev), feed], dim=1), s)
        scores = self.va(torch.tanh(self.wq(s).unsqueeze(1) + keys)).squeeze(2)  # [B, S]
        a = torch.softmax(scores, dim=1)
        c = torch.bmm(a.unsqueeze(1), mem).squeeze(1)  # [B, M]
        att = torch.tanh(self.combine(torch.cat([c, s], dim=1)))
        return self.output(att), s, att

    def loss(self, src, tgt_in, tgt_out):
        mem, keys, s = self.encode(src)
        feed = torch.zeros(src.shape[1], H)
        logits = []
        for t in range(tgt_in.shape[0]):
            lg, s, feed = self.step(tgt_in[t], s, feed, mem, keys)
            logits.append(lg)
        return F.cross_entropy(torch.stack(logits).view(-1, TGT_V), tgt_out.reshape(-1))

    @torch.no_grad()
    def greedy(self, src, steps):
        mem, keys, s = self.encode(src)
        B = src.shape[1]
        feed = torch.zeros(B, H)
        prev = torch.full((B,), 2, dtype=torch.long)
        out = []
        for _ in range(steps):
            lg, s, feed = self.step(prev, s, feed, mem, keys)
            prev = lg.argmax(dim=1)
            out.append(prev)
        return torch.stack(out)


def batch(B, g):
    src = torch.randint(4, SRC_V, (S, B), generator=g)
    tgt = torch.randint(4, TGT_V, (T - 1, B), generator=g)
    tgt_in = torch.cat([torch.full((1, B), 2), tgt])
    tgt_out = torch.cat([tgt, torch.full((1, B), EOS)])
    return src, tgt_in, tgt_out


def forward_flops(B):  # the same count as seq2seq_bench.cpp
    enc = 2.0 * B * S * (2 * E * 3 * HE + 2 * HE * 3 * HE)
    once = 2.0 * B * (S * M * A + M * H)
    step = 2.0 * B * ((E + H) * 3 * H + H * 3 * H + H * A + S * A + S * M + (M + H) * H + H * TGT_V)
    return enc + once + T * step


def torch_train(B, min_seconds):
    torch.manual_seed(1)
    model = Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    batches = [batch(B, g) for _ in range(8)]

    def step(b):
        opt.zero_grad(set_to_none=True)
        loss = model.loss(*b)
        loss.backward()
        opt.step()

    for i in range(4):
        step(batches[i])
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds or steps < 5:
        step(batches[steps % 8])
        steps += 1
    s = time.perf_counter() - t0
    return {"impl": "pytorch", "task": "train", "batch": B, "steps": steps, "seconds": s,
            "tokens_per_second": steps * B * T / s, "gflops": 3 * forward_flops(B) * steps / s / 1e9}


def torch_greedy(B, min_seconds):
    torch.manual_seed(2)
    model = Seq2Seq().eval()
    g = torch.Generator().manual_seed(2)
    batches = [batch(B, g)[0] for _ in range(8)]
    for i in range(3):
        model.greedy(batches[i], T)
    runs, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds or runs < 5:
        model.greedy(batches[runs % 8], T)
        runs += 1
    s = time.perf_counter() - t0
    return {"impl": "pytorch", "task": "greedy", "batch": B, "runs": runs, "seconds": s,
            "sentences_per_second": runs * B / s, "gflops": forward_flops(B) * runs / s / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attend", default="build/bench/seq2seq_bench")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(1)

    proc = subprocess.run([args.attend, str(args.seconds)], check=True, capture_output=True, text=True,
                          env={"OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"})
    ours = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    info = next(r for r in ours if r["task"] == "info")
    theirs_params = sum(p.numel() for p in Seq2Seq().parameters())
    if info["parameters"] != theirs_params:
        raise SystemExit(f"models differ: attend has {info['parameters']} parameters, PyTorch {theirs_params}")

    rows = []
    def mine(task, B):
        return next((r for r in ours if r["task"] == task and r["batch"] == B), None)

    for B in (64, 8):
        rows.append(("train", B, mine("train", B), None, torch_train(B, args.seconds)))
    for B in (64, 8, 1):
        rows.append(("greedy", B, mine("greedy", B), mine("greedy-general", B), torch_greedy(B, args.seconds)))

    print(f"seq2seq, {theirs_params:,} parameters, S={S}, T={T}, one thread; torch {torch.__version__}")
    print()
    print("| task | batch | attend | attend, general step | PyTorch | attend / PyTorch | attend GFLOP/s | PyTorch GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for task, B, a, g, p in rows:
        key, unit = ("tokens_per_second", "tok/s") if task == "train" else ("sentences_per_second", "sent/s")
        general = f"{g[key]:,.0f} {unit}" if g else "-"
        print(f"| {task} | {B} | {a[key]:,.0f} {unit} | {general} | {p[key]:,.0f} {unit} | {a[key] / p[key]:.2f}x "
              f"| {a['gflops']:.1f} | {p['gflops']:.1f} |")


if __name__ == "__main__":
    main()
