#!/usr/bin/python3
"""attend vs PyTorch, side by side in one run, single-threaded: the Transformer's training
target-tokens/s, page faults per step and peak memory, and decoding sentences/s (greedy and
beam 5, each with a KV cache), and training with distillation from two teachers (their
probabilities for every batch, as a PyTorch loop computes them, and attend's TeacherCache).

The PyTorch model below is the network bench/transformer_bench.cpp builds with attend, written
the way a PyTorch user would (nn.MultiheadAttention, nn.LayerNorm, F.cross_entropy with label
smoothing, torch.optim.Adam): pre-LN, C = 256, 4 heads, feed-forward 1,024, 3 + 3 layers,
untied output layer, sinusoidal positions, dropout 0.1. First it loads attend's weights and a
ragged batch (bench/transformer_bench SHAPE check) and requires the same loss; then every
measurement runs in a process of its own (peak memory is per process), attend's and PyTorch's
one after the other.

For training, attend also counts its matrix products (their GFLOP per step, their rate and
their share of the step), beside the machine's FMA peak and OpenBLAS's sgemm rate on 1024^3
measured first in the same run (bench/fma_peak.cpp): "bound" is the ratio attend would reach if
everything but its products took no time.

With --threads 2, attend's rows run again on two threads (PyTorch stays on one), beside a plain
compute probe (one 512^3 sgemm loop, then two at once) that shows what the second vCPU gives.

Usage: bench/transformer.py [--attend build/bench/transformer_bench] [--peak build/bench/fma_peak]
                            [--seconds 5] [--shapes word,char] [--threads 2]
"""
import argparse
import json
import math
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time

# Debian's torch does its GEMMs through the system libblas.so.3, which is OpenBLAS here and
# starts a thread per core unless told otherwise before it loads: one thread, as for attend.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {"word": (8000, 8000, 24, 24), "char": (30, 42, 10, 9)}
C, HEADS, FFN, LAYERS, DROPOUT, SMOOTHING = 256, 4, 1024, 3, 0.1, 0.1
PAD, BOS, EOS = 0, 2, 3


def sinusoids(length, dim):
    pe = np.zeros((length, dim), dtype=np.float64)
    for i in range(0, dim, 2):
        angle = np.arange(length) / np.power(10000.0, i / dim)
        pe[:, i] = np.sin(angle)
        if i + 1 < dim:
            pe[:, i + 1] = np.cos(angle)
    return torch.tensor(pe, dtype=torch.float32)


class Sublayers(nn.Module):
    """One pre-LN layer: self-attention, optional cross-attention, feed-forward."""

    def __init__(self, cross):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(C, HEADS, dropout=DROPOUT, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(C, HEADS, dropout=DROPOUT, batch_first=True) if cross else None
        self.ln = nn.ModuleList(nn.LayerNorm(C) for _ in range(3 if cross else 2))
        self.w1, self.w2 = nn.Linear(C, FFN), nn.Linear(FFN, C)
        self.drop = nn.Dropout(DROPOUT)

    def ffn(self, x):
        return self.w2(self.drop(F.relu(self.w1(x))))

    def forward(self, x, pad=None, memory=None, memory_pad=None, causal=None):
        n = self.ln[0](x)
        x = x + self.drop(self.self_attn(n, n, n, key_padding_mask=pad, attn_mask=causal, need_weights=False)[0])
        if self.cross_attn is not None:
            n = self.ln[1](x)
            x = x + self.drop(self.cross_attn(n, memory, memory, key_padding_mask=memory_pad, need_weights=False)[0])
        return x + self.drop(self.ffn(self.ln[-1](x)))


class Transformer(nn.Module):
    def __init__(self, src_vocab, tgt_vocab):
        super().__init__()
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, C), nn.Embedding(tgt_vocab, C)
        self.encoder = nn.ModuleList(Sublayers(False) for _ in range(LAYERS))
        self.decoder = nn.ModuleList(Sublayers(True) for _ in range(LAYERS))
        self.enc_norm, self.dec_norm = nn.LayerNorm(C), nn.LayerNorm(C)
        self.output = nn.Linear(C, tgt_vocab)
        self.register_buffer("pe", sinusoids(512, C))
        self.drop = nn.Dropout(DROPOUT)

    def embed(self, table, ids, offset=0):  # ids [B, L]
        return self.drop(table(ids) * math.sqrt(C) + self.pe[offset:offset + ids.shape[1]])

    def encode(self, src, src_pad):
        x = self.embed(self.src_emb, src)
        for layer in self.encoder:
            x = layer(x, pad=src_pad)
        return self.enc_norm(x)

    def logits(self, src, src_pad, tgt_in):  # batch-major [B, L] -> [B*T, V]
        memory = self.encode(src, src_pad)
        T = tgt_in.shape[1]
        causal = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        y = self.embed(self.tgt_emb, tgt_in)
        for layer in self.decoder:
            y = layer(y, memory=memory, memory_pad=src_pad, causal=causal)
        logits = self.output(self.dec_norm(y))
        return logits.reshape(-1, logits.shape[-1])

    def loss(self, src, src_pad, tgt_in, tgt_out, soft=None):
        """With soft [B*T, V] (teachers' probabilities), attend's distillation loss, weight 0.5:
        the target distribution is half the smoothed one-hot and half the teachers'."""
        logits, tgt = self.logits(src, src_pad, tgt_in), tgt_out.reshape(-1)
        hard = F.cross_entropy(logits, tgt, ignore_index=PAD, label_smoothing=SMOOTHING)
        if soft is None:
            return hard
        keep = tgt != PAD
        distilled = -(soft[keep] * F.log_softmax(logits[keep], -1)).sum(-1).mean()
        return 0.5 * hard + 0.5 * distilled


# ---- decoding with a KV cache, written out (nn.MultiheadAttention has no cache) ----
def heads(x):  # [N, L, C] -> [N, H, L, D]
    return x.view(x.shape[0], x.shape[1], HEADS, C // HEADS).transpose(1, 2)


def attend_cached(q, k, v, pad=None):  # q [N,H,1,D], k/v [N,H,L,D]
    scores = q @ k.transpose(2, 3) / math.sqrt(C // HEADS)
    if pad is not None:
        scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # [N,H,1,D]
    return out.transpose(1, 2).reshape(q.shape[0], 1, C)


def projections(mha):
    w, b = mha.in_proj_weight, mha.in_proj_bias
    return [(w[i * C:(i + 1) * C], b[i * C:(i + 1) * C]) for i in range(3)]


class Cache:
    def __init__(self, model, memory, src_pad):
        self.model, self.src_pad, self.self_kv = model, src_pad, [None] * LAYERS
        self.cross_kv = []
        for layer in model.decoder:
            (_, _), (wk, bk), (wv, bv) = projections(layer.cross_attn)
            self.cross_kv.append((heads(F.linear(memory, wk, bk)), heads(F.linear(memory, wv, bv))))

    def step(self, prev, t):  # prev [N] -> logits [N, V]
        m = self.model
        y = m.tgt_emb(prev)[:, None, :] * math.sqrt(C) + m.pe[t]
        for l, layer in enumerate(m.decoder):
            (wq, bq), (wk, bk), (wv, bv) = projections(layer.self_attn)
            n = layer.ln[0](y)
            k, v = heads(F.linear(n, wk, bk)), heads(F.linear(n, wv, bv))
            if self.self_kv[l] is not None:
                k, v = torch.cat([self.self_kv[l][0], k], 2), torch.cat([self.self_kv[l][1], v], 2)
            self.self_kv[l] = (k, v)
            a = attend_cached(heads(F.linear(n, wq, bq)), k, v)
            y = y + layer.self_attn.out_proj(a)
            (wq, bq), _, _ = projections(layer.cross_attn)
            a = attend_cached(heads(F.linear(layer.ln[1](y), wq, bq)), *self.cross_kv[l], self.src_pad)
            y = y + layer.cross_attn.out_proj(a)
            y = y + layer.ffn(layer.ln[2](y))
        return m.output(m.dec_norm(y))[:, 0]

    def reorder(self, rows):
        self.self_kv = [(k[rows], v[rows]) for k, v in self.self_kv]


@torch.no_grad()
def greedy(model, src, src_pad, steps):
    cache = Cache(model, model.encode(src, src_pad), src_pad)
    prev, out = torch.full((src.shape[0],), BOS, dtype=torch.long), []
    for t in range(steps):
        prev = cache.step(prev, t).argmax(1)
        out.append(prev)
    return torch.stack(out, 1)


@torch.no_grad()
def beam_search(model, src, src_pad, steps, K=5):
    B = src.shape[0]
    rows = torch.arange(B).repeat_interleave(K)
    cache = Cache(model, model.encode(src, src_pad)[rows], src_pad[rows])
    cache.cross_kv = [(k, v) for k, v in cache.cross_kv]
    scores = torch.zeros(B, K)
    scores[:, 1:] = float("-inf")  # the K rows start equal: expand one
    prev, tokens = torch.full((B * K,), BOS, dtype=torch.long), torch.zeros(B * K, 0, dtype=torch.long)
    for t in range(steps):
        logp = torch.log_softmax(cache.step(prev, t), dim=1)  # [B*K, V]
        V = logp.shape[1]
        total = (scores.view(B * K, 1) + logp).view(B, K * V)
        scores, best = total.topk(K, dim=1)  # [B, K]
        parent = (best // V + torch.arange(B)[:, None] * K).view(-1)
        prev = (best % V).view(-1)
        tokens = torch.cat([tokens[parent], prev[:, None]], 1)
        cache.reorder(parent)
    return tokens.view(B, K, -1)[:, 0]


# ---- attend's weights into the PyTorch model ----
def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[8 + n + a:8 + n + b], dtype=np.float32).reshape(info["shape"]).copy())
    return out


def load_attend_weights(model, w):
    def linear(dst, prefix):  # attend's Linear is y = x W + b with W [in, out]
        dst.weight.data.copy_(w[prefix + "weight"].T)
        dst.bias.data.copy_(w[prefix + "bias"])

    def mha(dst, prefix):
        dst.in_proj_weight.data.copy_(torch.cat([w[prefix + p + ".weight"].T for p in "qkv"]))
        dst.in_proj_bias.data.copy_(torch.cat([w[prefix + p + ".bias"] for p in "qkv"]))
        linear(dst.out_proj, prefix + "o.")

    def norm(dst, prefix):
        dst.weight.data.copy_(w[prefix + "gamma"])
        dst.bias.data.copy_(w[prefix + "beta"])

    model.src_emb.weight.data.copy_(w["src_embedding.weight"])
    model.tgt_emb.weight.data.copy_(w["tgt_embedding.weight"])
    for side, layers in (("encoder", model.encoder), ("decoder", model.decoder)):
        for l, layer in enumerate(layers):
            p = f"{side}.{l}."
            mha(layer.self_attn, p + "self_attn.")
            if layer.cross_attn is not None:
                mha(layer.cross_attn, p + "cross_attn.")
            linear(layer.w1, p + "ffn.w1.")
            linear(layer.w2, p + "ffn.w2.")
            for i, ln in enumerate(layer.ln):
                norm(ln, p + f"ln{i + 1}.")
    norm(model.enc_norm, "encoder_norm.")
    norm(model.dec_norm, "decoder_norm.")
    linear(model.output, "output.")


def check_same_model(attend, shape):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "check.safetensors")
        ours = json.loads(subprocess.run([attend, shape, "check", path], check=True, capture_output=True,
                                         text=True).stdout)
        w = read_safetensors(path)
    sv, tv, _, _ = SHAPES[shape]
    model = Transformer(sv, tv).eval()
    theirs_params = sum(p.numel() for p in model.parameters())
    if ours["parameters"] != theirs_params:
        raise SystemExit(f"{shape}: attend has {ours['parameters']:,} parameters, PyTorch {theirs_params:,}")
    load_attend_weights(model, w)
    src = w["batch.src"].long().T  # [B, S]
    lengths = w["batch.src_lengths"].long()[0]
    src_pad = torch.arange(src.shape[1])[None, :] >= lengths[:, None]
    with torch.no_grad():
        loss = model.loss(src, src_pad, w["batch.tgt_in"].long().T, w["batch.tgt_out"].long().T).item()
    if abs(loss - ours["loss"]) > 1e-4 * max(1.0, abs(loss)):
        raise SystemExit(f"{shape}: the models disagree: loss {ours['loss']:.7f} (attend) vs {loss:.7f} (PyTorch)")
    return theirs_params, ours["loss"], loss


# ---- PyTorch measurements (each in a process of its own: --torch TASK SHAPE BATCH SECONDS) ----
def full_batch(shape, B, g):
    sv, tv, S, T = SHAPES[shape]
    src = torch.randint(4, sv, (B, S), generator=g)
    tgt = torch.randint(4, tv, (B, T - 1), generator=g)
    tgt_in = torch.cat([torch.full((B, 1), BOS), tgt], 1)
    tgt_out = torch.cat([tgt, torch.full((B, 1), EOS)], 1)
    return src, torch.zeros(B, S, dtype=torch.bool), tgt_in, tgt_out


def peak_rss_mb():
    """VmHWM: the peak resident memory of this process since exec (ru_maxrss would include the
    parent's peak, which survives fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def torch_train(shape, B, seconds, teachers=0):
    """With teachers, distillation as a PyTorch loop does it: their mean probabilities for every
    batch, in eval mode without autograd."""
    torch.manual_seed(1)
    sv, tv, _, T = SHAPES[shape]
    model = Transformer(sv, tv)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(1)
    batches = [full_batch(shape, B, g) for _ in range(8)]
    teacher_models = [Transformer(sv, tv).eval() for _ in range(teachers)]

    def step(b):
        soft = None
        if teacher_models:
            with torch.no_grad():
                soft = sum(F.softmax(t.logits(*b[:3]), -1) for t in teacher_models) / len(teacher_models)
        opt.zero_grad(set_to_none=True)
        model.loss(*b, soft=soft).backward()
        opt.step()

    for i in range(4):
        step(batches[i])
    steps, f0, t0 = 0, minor_faults(), time.perf_counter()
    while time.perf_counter() - t0 < seconds or steps < 5:
        step(batches[steps % 8])
        steps += 1
    s = time.perf_counter() - t0
    return {"tokens_per_second": steps * B * T / s, "faults_per_step": (minor_faults() - f0) / steps}


def torch_decode(shape, B, seconds, beam):
    torch.manual_seed(2)
    sv, tv, _, T = SHAPES[shape]
    model = Transformer(sv, tv).eval()
    g = torch.Generator().manual_seed(2)
    batches = [full_batch(shape, B, g)[:2] for _ in range(8)]
    run = (lambda s, p: beam_search(model, s, p, T)) if beam else (lambda s, p: greedy(model, s, p, T))
    for i in range(2):
        run(*batches[i])
    runs, f0, t0 = 0, minor_faults(), time.perf_counter()
    while time.perf_counter() - t0 < seconds or runs < 3:
        run(*batches[runs % 8])
        runs += 1
    return {"sentences_per_second": runs * B / (time.perf_counter() - t0),
            "faults_per_step": (minor_faults() - f0) / (runs * T)}


def torch_child(task, shape, B, seconds):
    torch.set_num_threads(1)
    if task.startswith("train"):
        r = torch_train(shape, B, seconds, teachers=2 if task == "train-kd" else 0)
    else:
        r = torch_decode(shape, B, seconds, task == "beam5")
    r["max_rss_mb"] = peak_rss_mb()
    print(json.dumps(r))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attend", default="build/bench/transformer_bench")
    ap.add_argument("--peak", default="build/bench/fma_peak", help="the machine's FMA peak and sgemm rate")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--shapes", default="word,char")
    ap.add_argument("--threads", type=int, default=1, help="also run attend on this many threads")
    ap.add_argument("--torch", nargs=4, metavar=("TASK", "SHAPE", "BATCH", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch:
        task, shape, B, seconds = args.torch
        return torch_child(task, shape, int(B), float(seconds))
    torch.set_num_threads(1)
    print(f"Transformer (pre-LN, C={C}, {HEADS} heads, FFN {FFN}, {LAYERS}+{LAYERS} layers), one thread; "
          f"torch {torch.__version__}")
    peak = run_json([args.peak])
    print(f"this machine, one thread: FMA peak {peak['fma_gflops']:.1f} GFLOP/s ({peak['isa']}), "
          f"OpenBLAS sgemm 1024^3 {peak['sgemm_gflops']:.1f} GFLOP/s\n")
    rows, distill = [], []
    for shape in args.shapes.split(","):
        params, ours, theirs = check_same_model(args.attend, shape)
        print(f"{shape}: {params:,} parameters; loss of the same weights on the same batch: attend {ours:.6f}, "
              f"PyTorch {theirs:.6f}")
        for task, batches in (("train", (64, 16)), ("greedy", (64, 1)), ("beam5", (64, 1))):
            for B in batches:
                a = run_json([args.attend, shape, task, str(B), str(args.seconds)])
                p = run_json([sys.executable, __file__, "--torch", task, shape, str(B), str(args.seconds)])
                a2 = (run_json([args.attend, shape, task, str(B), str(args.seconds), str(args.threads)])
                      if args.threads > 1 else None)
                rows.append((shape, task, B, a, p, a2))
        distill.append((shape, 64, *(run_json([args.attend, shape, task, "64", str(args.seconds)])
                                     for task in ("train-kd", "train-kd-cached")),
                        run_json([sys.executable, __file__, "--torch", "train-kd", shape, "64", str(args.seconds)])))
    print("\n| shape | task | batch | attend | PyTorch | attend / PyTorch | faults/step attend, PyTorch "
          "| peak MB attend, PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for shape, task, B, a, p, _ in rows:
        key, unit = ("tokens_per_second", "tok/s") if task == "train" else ("sentences_per_second", "sent/s")
        faults = f"{a['faults_per_step']:,.0f}, {p['faults_per_step']:,.0f}"
        print(f"| {shape} | {task} | {B} | {a[key]:,.0f} {unit} | {p[key]:,.0f} {unit} | {a[key] / p[key]:.2f}x "
              f"| {faults} | {a['max_rss_mb']:,.0f}, {p['max_rss_mb']:,.0f} |")
    print("\nattend's matrix products in training (kernels::gemm: OpenBLAS's sgemm, oneDNN's for 2-128 rows):\n")
    print("| shape | batch | GFLOP per step | products' GFLOP/s | % of sgemm 1024^3 | share of the step "
          "| bound: attend / PyTorch if all else were free |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape, task, B, a, p, _ in rows:
        if task != "train":
            continue
        bound = a["tokens_per_second"] / a["gemm_share"] / p["tokens_per_second"]
        print(f"| {shape} | {B} | {a['gemm_gflop_per_step']:.2f} | {a['gemm_gflops']:.1f} "
              f"| {100 * a['gemm_gflops'] / peak['sgemm_gflops']:.0f}% | {100 * a['gemm_share']:.0f}% | {bound:.2f}x |")
    distill_table(rows, distill)
    if args.threads > 1:
        threads_table(args.threads, rows)


def distill_table(rows, distill):
    print("\nDistillation from two teachers of the model's shape (attend train --teacher, weight 0.5), "
          "target tokens/s:\n")
    print("| shape | batch | attend, no teachers | attend, teachers every batch | attend, teachers cached "
          "| PyTorch, teachers every batch | cached / no teachers | attend cached / PyTorch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for shape, B, every, cached, torch_kd in distill:
        plain = next(a for s, task, b, a, _, _ in rows if (s, task, b) == (shape, "train", B))
        tps = [r["tokens_per_second"] for r in (plain, every, cached, torch_kd)]
        print(f"| {shape} | {B} | {tps[0]:,.0f} | {tps[1]:,.0f} | {tps[2]:,.0f} | {tps[3]:,.0f} "
              f"| {tps[2] / tps[0]:.2f}x | {tps[2] / tps[3]:.2f}x |")


PROBE = ("import numpy as np, time\n"
         "a = np.random.rand(512, 512).astype(np.float32); n = 0; t0 = time.time()\n"
         "while time.time() - t0 < 4: a @ a; n += 1\n"
         "print(n * 2 * 512 ** 3 / (time.time() - t0) / 1e9)")


def probe(copies):
    """GFLOP/s of each of `copies` single-threaded matrix-product loops running at once."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def threads_table(threads, rows):
    one, two = probe(1), probe(2)
    print(f"\nattend on {threads} threads vs 1 (compute probe: two 512^3 sgemm loops at once run "
          f"{sum(two) / one[0]:.2f}x one; the second vCPU is shared with other machines' work)\n")
    print(f"| shape | task | batch | 1 thread | {threads} threads | speedup | vs PyTorch (1 thread) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for shape, task, B, a, p, a2 in rows:
        key, unit = ("tokens_per_second", "tok/s") if task == "train" else ("sentences_per_second", "sent/s")
        print(f"| {shape} | {task} | {B} | {a[key]:,.0f} {unit} | {a2[key]:,.0f} {unit} | {a2[key] / a[key]:.2f}x "
              f"| {a2[key] / p[key]:.2f}x |")


if __name__ == "__main__":
    main()
