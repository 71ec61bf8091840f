#!/usr/bin/python3
"""Greedy decoding of a real test set with a trained RNN model: attend vs the same weights in
PyTorch, one thread, side by side in one run; words (inputs) per second and whether the outputs
agree.

PyTorch runs the network scripts/golden_check.py rebuilds from model.safetensors (checked there
against attend's logits), decoded as it is written plainly: batches of the test set in file
order, the keys projected once per batch, every row stepped until all rows have produced </s>
or the step limit (2 x the longest source + 10, as attend). attend decodes through its Python
module, `attend.Model.load(DIR).translate(words, beam=1, batch=B)`, which is what `attend
translate` and `attend eval` run: inputs batched by length, finished sentences dropped, the
fused step for soft additive attention; and the same with `precision="int8"` (`attend translate
--precision int8`: int8 products, docs/benchmarks.md).

Usage: PYTHONPATH=build/python bench/decode_real.py --model runs/g2p --test data/g2p/test.tsv [--words 2000]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import golden_check  # noqa: E402
import attend  # noqa: E402

BOS, EOS = 2, 3


def torch_greedy(model, srcs):
    """Token lists of one batch, decoded greedily with every row stepped until all have ended."""
    S, B = max(map(len, srcs)), len(srcs)
    src = torch.zeros(S, B, dtype=torch.long)
    for b, x in enumerate(srcs):
        src[: len(x), b] = torch.tensor(x)
    mem, mask, s, c = model.encode(src, [len(x) for x in srcs])
    keys = model.prepare_keys(mem)
    feed = torch.zeros(B, model.cfg["hidden"])
    prev = torch.full((B,), BOS, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    steps = []
    for _ in range(2 * S + 10):
        s, c, feed, logits = model.step(prev, s, c, feed, mem, keys, mask)
        logits[:, :EOS] = float("-inf")  # never <pad>, <unk>, <s>, as attend's search
        prev = logits.argmax(1)
        steps.append(prev)
        done |= prev == EOS
        if bool(done.all()):
            break
    out = []
    for row in torch.stack(steps, 1).tolist():
        out.append(row[: row.index(EOS)] if EOS in row else row)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="an RNN model directory with soft attention")
    ap.add_argument("--test", required=True, help="TSV file; its sources are decoded")
    ap.add_argument("--words", type=int, default=2000, help="inputs to decode, spread evenly over the file")
    args = ap.parse_args()
    torch.set_num_threads(1)

    config = json.load(open(f"{args.model}/config.json"))
    if config["model"].get("architecture", "rnn") != "rnn":
        raise SystemExit("decode_real: an RNN model directory, please")
    lines = [line.rstrip("\n").split("\t")[0] for line in open(args.test) if line.strip()]
    words = lines[:: max(1, len(lines) // args.words)][: args.words]
    src_vocab = {t: i for i, t in enumerate(json.load(open(f"{args.model}/src_vocab.json")))}
    tgt_tokens = json.load(open(f"{args.model}/tgt_vocab.json"))
    tok = golden_check.Tokenizer(config["source"])
    srcs = [[src_vocab.get(t, 1) for t in tok.split(w)] for w in words]
    sep = " " if config["target"]["kind"] == "space" else ""
    model = golden_check.Seq2Seq(config["model"], golden_check.read_safetensors(f"{args.model}/model.safetensors"))
    ours = attend.Model.load(args.model, precision="fp32")
    ours8 = attend.Model.load(args.model, precision="int8")

    print(f"{args.model}: {len(words):,} inputs of {args.test}, greedy, one thread; torch {torch.__version__}")
    print()
    print("| batch | attend | attend int8 | PyTorch | attend / PyTorch | int8 / PyTorch | outputs equal | int8 equal |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for B in (64, 8, 1):
        t0 = time.perf_counter()
        a = ours.translate(words, beam=1, batch=B)
        ta = time.perf_counter() - t0
        t0 = time.perf_counter()
        a8 = ours8.translate(words, beam=1, batch=B)
        ta8 = time.perf_counter() - t0
        t0 = time.perf_counter()
        p = []
        with torch.no_grad():
            for i in range(0, len(srcs), B):
                p += [sep.join(tgt_tokens[t] for t in row) for row in torch_greedy(model, srcs[i: i + B])]
        tp = time.perf_counter() - t0
        same = sum(x == y for x, y in zip(a, p)) / len(words)
        same8 = sum(x == y for x, y in zip(a8, p)) / len(words)
        print(f"| {B} | {len(words) / ta:,.0f} words/s | {len(words) / ta8:,.0f} words/s | {len(words) / tp:,.0f} words/s "
              f"| {tp / ta:.2f}x | {tp / ta8:.2f}x | {100 * same:.2f}% | {100 * same8:.2f}% |")


if __name__ == "__main__":
    main()
