#!/usr/bin/python3
"""Golden end-to-end check: attend's models against the same networks written in PyTorch.

Reads a model directory written by `attend train` (config.json, vocabularies and
model.safetensors, parsed here without the safetensors package), builds the identical
network in PyTorch from those weights, and compares the teacher-forced logits and loss of a
batch with what attend computes (through its Python module).

Usage: PYTHONPATH=build/python scripts/golden_check.py --model runs/dates --data runs/dates/test.tsv
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[begin:end], dtype="<f4").reshape(info["shape"]).copy())
    return out


class Tokenizer:
    def __init__(self, cfg):
        self.kind, self.lower, self.collapse = cfg["kind"], cfg["lowercase"], cfg["collapse_spaces"]

    def split(self, text):
        if self.lower:
            text = text.lower()
        if self.collapse:
            text = " ".join(text.split())
        return list(text) if self.kind == "char" else text.split()


class Seq2Seq(torch.nn.Module):
    """attend's RNN encoder-decoder (include/attend/models/seq2seq.h), written plainly."""

    def __init__(self, cfg, w):
        super().__init__()
        self.cfg, self.w = cfg, w
        cell = cfg["cell"]
        rnn = torch.nn.GRU if cell == "gru" else torch.nn.LSTM
        E, He, L = cfg["embedding"], cfg["encoder_hidden"], cfg.get("encoder_layers", 1)
        self.encoder = rnn(E, He, num_layers=L, bidirectional=cfg["bidirectional"])
        for l in range(L):
            prefix = "encoder." if l == 0 else f"encoder{l}."
            for d, suffix in (("fwd", ""), ("bwd", "_reverse")):
                if d == "bwd" and not cfg["bidirectional"]:
                    continue
                getattr(self.encoder, f"weight_ih_l{l}{suffix}").data = w[f"{prefix}{d}.w_ih"].t().contiguous()
                getattr(self.encoder, f"weight_hh_l{l}{suffix}").data = w[f"{prefix}{d}.w_hh"].t().contiguous()
                getattr(self.encoder, f"bias_ih_l{l}{suffix}").data = w[f"{prefix}{d}.b_ih"]
                getattr(self.encoder, f"bias_hh_l{l}{suffix}").data = w[f"{prefix}{d}.b_hh"]
        H = cfg["hidden"]
        self.decoder = (torch.nn.GRUCell if cell == "gru" else torch.nn.LSTMCell)(E + (H if cfg["input_feeding"] else 0), H)
        self.decoder.weight_ih.data = w["decoder.w_ih"].t().contiguous()
        self.decoder.weight_hh.data = w["decoder.w_hh"].t().contiguous()
        self.decoder.bias_ih.data = w["decoder.b_ih"]
        self.decoder.bias_hh.data = w["decoder.b_hh"]

    def prepare_keys(self, mem):  # what the score reads of the memory [B, S, M], once per batch
        return mem @ self.w["attention.Wk"] if self.cfg["score"] == "additive" else mem

    def score(self, s, keys):  # s [B, H], prepared keys -> [B, S]
        w, kind = self.w, self.cfg["score"]
        if kind in ("dot", "scaled-dot"):
            sc = torch.einsum("bh,bsh->bs", s, keys)
            return sc / keys.shape[2] ** 0.5 if kind == "scaled-dot" else sc
        if kind == "general":  # s^T W k
            return torch.einsum("bq,qk,bsk->bs", s, w["attention.W"], keys)
        return torch.tanh((s @ w["attention.Wq"]).unsqueeze(1) + keys) @ w["attention.va"]

    def encode(self, src, lengths):  # src [S, B] -> memory [B, S, M], mask [B, S], decoder state (s, c)
        w, cfg = self.w, self.cfg
        x = F.embedding(src, w["src_embedding.weight"])
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, last = self.encoder(packed)
        mem, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=src.shape[0])
        mem = mem.transpose(0, 1)  # [B, S, M]
        h_n = last[0] if cfg["cell"] == "lstm" else last
        cat = lambda t: torch.cat([t[-2], t[-1]], dim=1) if cfg["bidirectional"] else t[-1]
        s = torch.tanh(cat(h_n) @ w["bridge_h.weight"] + w["bridge_h.bias"])
        c = cat(last[1]) @ w["bridge_c.weight"] + w["bridge_c.bias"] if cfg["cell"] == "lstm" else None
        mask = torch.arange(src.shape[0]).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, S]
        return mem, mask, s, c

    def step(self, prev, s, c, feed, mem, keys, mask):  # prev [B] tokens -> s, c, feed (h~_t), logits [B, V]
        w, cfg = self.w, self.cfg
        inp = F.embedding(prev, w["tgt_embedding.weight"])
        if cfg["input_feeding"]:
            inp = torch.cat([inp, feed], dim=1)
        if cfg["cell"] == "lstm":
            s, c = self.decoder(inp, (s, c))
        else:
            s = self.decoder(inp, s)
        a = torch.softmax(self.score(s, keys).masked_fill(~mask, float("-inf")), dim=1)
        ctx = torch.einsum("bs,bsm->bm", a, mem)
        feed = torch.tanh(torch.cat([ctx, s], dim=1) @ w["combine.weight"])
        return s, c, feed, feed @ w["output.weight"] + w["output.bias"]

    def forward(self, src, lengths, tgt_in):  # src [S, B], tgt_in [T, B] -> logits [T, B, V]
        mem, mask, s, c = self.encode(src, lengths)
        keys = self.prepare_keys(mem)
        feed = torch.zeros(src.shape[1], self.cfg["hidden"])
        logits = []
        for t in range(tgt_in.shape[0]):
            s, c, feed, out = self.step(tgt_in[t], s, c, feed, mem, keys, mask)
            logits.append(out)
        return torch.stack(logits)


class Transformer(torch.nn.Module):
    """attend's Transformer (include/attend/models/transformer.h), written plainly."""

    def __init__(self, cfg, w):
        super().__init__()
        self.cfg, self.w = cfg, w
        C = cfg["dim"]
        pos = torch.arange(cfg["max_length"], dtype=torch.float64).unsqueeze(1)
        i = torch.arange(0, C, 2, dtype=torch.float64)
        angle = pos / torch.pow(10000.0, i / C)
        self.pe = torch.zeros(cfg["max_length"], C)
        self.pe[:, 0::2] = torch.sin(angle).float()
        self.pe[:, 1::2] = torch.cos(angle[:, : C // 2]).float()

    def linear(self, x, name):
        return x @ self.w[name + ".weight"] + self.w[name + ".bias"]

    def norm(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".gamma"], self.w[name + ".beta"], eps=1e-5)

    def attention(self, xq, xkv, name, key_mask, causal):  # [B,T,C], [B,S,C], key_mask [B,S]
        B, T, C = xq.shape
        H = self.cfg["heads"]
        split = lambda x: x.reshape(B, x.shape[1], H, C // H).transpose(1, 2)  # [B,H,*,D]
        q, k, v = split(self.linear(xq, name + ".q")), split(self.linear(xkv, name + ".k")), split(self.linear(xkv, name + ".v"))
        scores = q @ k.transpose(2, 3) / (C // H) ** 0.5  # [B,H,T,S]
        allowed = key_mask[:, None, None, :]
        if causal:
            allowed = allowed & torch.ones(T, xkv.shape[1], dtype=torch.bool).tril()
        a = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
        return self.linear((a @ v).transpose(1, 2).reshape(B, T, C), name + ".o")

    def ffn(self, x, name):
        return self.linear(torch.relu(self.linear(x, name + ".w1")), name + ".w2")

    def embed(self, ids, table):  # ids [L, B] -> [B, L, C]
        C = self.cfg["dim"]
        return F.embedding(ids.t(), self.w[table]) * C ** 0.5 + self.pe[: ids.shape[0]]

    def residual(self, x, ln, f):  # a sub-layer f with its residual connection and layer norm `ln`
        return x + f(self.norm(x, ln)) if self.cfg["pre_norm"] else self.norm(x + f(x), ln)

    def forward(self, src, lengths, tgt_in):  # src [S, B], tgt_in [T, B] -> logits [T, B, V]
        cfg, pre = self.cfg, self.cfg["pre_norm"]
        src_mask = torch.arange(src.shape[0]).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # [B, S]
        tgt_mask = torch.ones(tgt_in.shape[1], tgt_in.shape[0], dtype=torch.bool)
        x = self.embed(src, "src_embedding.weight")
        for l in range(cfg["encoder_layers"]):
            p = f"encoder.{l}."
            x = self.residual(x, p + "ln1", lambda n: self.attention(n, n, p + "self_attn", src_mask, False))
            x = self.residual(x, p + "ln2", lambda n: self.ffn(n, p + "ffn"))
        memory = self.norm(x, "encoder_norm") if pre else x
        y = self.embed(tgt_in, "tgt_embedding.weight")
        for l in range(cfg["decoder_layers"]):
            p = f"decoder.{l}."
            y = self.residual(y, p + "ln1", lambda n: self.attention(n, n, p + "self_attn", tgt_mask, True))
            y = self.residual(y, p + "ln2", lambda n: self.attention(n, memory, p + "cross_attn", src_mask, False))
            y = self.residual(y, p + "ln3", lambda n: self.ffn(n, p + "ffn"))
        if pre:
            y = self.norm(y, "decoder_norm")
        out = y @ self.w["tgt_embedding.weight"].t() if cfg["tie_embeddings"] else self.linear(y, "output")
        return out.transpose(0, 1)  # [T, B, V]


def check(model_dir, pairs, label_smoothing=0.1):
    """Returns (max |logit difference|, attend loss, PyTorch loss) for (source, target) pairs."""
    import attend

    config = json.load(open(f"{model_dir}/config.json"))
    src_vocab = {t: i for i, t in enumerate(json.load(open(f"{model_dir}/src_vocab.json")))}
    tgt_vocab = {t: i for i, t in enumerate(json.load(open(f"{model_dir}/tgt_vocab.json")))}
    st, tt = Tokenizer(config["source"]), Tokenizer(config["target"])
    srcs = [[src_vocab.get(t, 1) for t in st.split(s)] for s, _ in pairs]
    tgts = [[tgt_vocab.get(t, 1) for t in tt.split(y)] for _, y in pairs]
    S, T = max(map(len, srcs)), max(map(len, tgts)) + 1
    src = torch.zeros(S, len(pairs), dtype=torch.long)
    tgt_in = torch.zeros(T, len(pairs), dtype=torch.long)
    tgt_out = torch.zeros(T, len(pairs), dtype=torch.long)
    for b, (x, y) in enumerate(zip(srcs, tgts)):
        src[: len(x), b] = torch.tensor(x)
        tgt_in[: len(y) + 1, b] = torch.tensor([2] + y)
        tgt_out[: len(y) + 1, b] = torch.tensor(y + [3])
    weights = read_safetensors(f"{model_dir}/model.safetensors")
    if config["model"].get("architecture", "rnn") == "transformer":
        model = Transformer(config["model"], weights)
    else:
        if config["model"].get("normalizer", "softmax") != "softmax" or config["model"].get("attention", "soft") != "soft":
            raise SystemExit("golden_check: only soft attention with softmax is rebuilt in PyTorch here")
        model = Seq2Seq(config["model"], weights)
    with torch.no_grad():
        ref_logits = model(src, [len(x) for x in srcs], tgt_in)  # [T, B, V]
        ref_loss = F.cross_entropy(ref_logits.reshape(-1, ref_logits.shape[2]), tgt_out.reshape(-1), ignore_index=0,
                                   label_smoothing=label_smoothing).item()
    loss, logits = attend.Model.load(model_dir).loss([s for s, _ in pairs], [y for _, y in pairs], label_smoothing)
    diff = np.abs(logits - ref_logits.transpose(0, 1).numpy()).max()
    return float(diff), float(loss), ref_loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="TSV file; its first --batch lines are the batch")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    pairs = [line.rstrip("\n").split("\t") for line in open(args.data)][: args.batch]
    diff, loss, ref = check(args.model, pairs)
    print(f"max |logit difference| {diff:.2e}; loss attend {loss:.6f}, PyTorch {ref:.6f}")
    ok = diff <= 1e-4 and abs(loss - ref) <= 1e-5 * max(1.0, abs(ref))
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
