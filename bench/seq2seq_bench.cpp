// Seq2seq throughput of attend: training target-tokens/s and greedy-decoding sentences/s.
// Prints one JSON object per measurement; bench/seq2seq.py runs it beside PyTorch.
//
// Model (the same as bench/seq2seq.py builds in PyTorch): embeddings 128, bidirectional GRU
// encoder 256 per direction, GRU decoder 256 with input feeding, additive attention 256,
// Luong output layer, source vocabulary 30, target vocabulary 42; G2P-sized sequences
// (S = 10 source tokens, T = 9 target tokens including </s>); Adam; dropout 0.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "attend/decode/search.h"
#include "attend/models/seq2seq.h"
#include "attend/train/optimizer.h"
#include "../src/kernels/blas.h"

using namespace attend;
using Clock = std::chrono::steady_clock;

namespace {
constexpr int kSrcVocab = 30, kTgtVocab = 42, kS = 10, kT = 9;

Seq2SeqConfig bench_config() {
  Seq2SeqConfig c;
  c.cell = CellKind::kGru;
  c.embedding = 128, c.hidden = 256, c.encoder_hidden = 256, c.attention.attention_dim = 256;
  c.attention.score = ScoreKind::kAdditive, c.input_feeding = true, c.dropout = 0.0f;
  c.src_vocab = kSrcVocab, c.tgt_vocab = kTgtVocab;
  return c;
}

// Matrix-product FLOPs of one forward pass over a batch (what GFLOP/s is reported against).
double forward_flops(const Seq2SeqConfig& c, int B) {
  const double E = c.embedding, H = c.hidden, He = c.encoder_size(), M = c.memory_size(), A = c.attention.attention_dim,
               V = c.tgt_vocab;
  const double enc = 2.0 * B * kS * (2 * E * 3 * He + 2 * He * 3 * He);  // two directions
  const double once = 2.0 * B * (kS * M * A + M * H);                    // key projection, bridge
  const double step = 2.0 * B * ((E + H) * 3 * H + H * 3 * H + H * A + kS * A + kS * M + (M + H) * H + H * V);
  return enc + once + kT * step;
}

Batch random_batch(int B, Rng& rng, bool targets) {
  std::vector<EncodedExample> ex(B);
  std::vector<int> idx(B);
  for (int b = 0; b < B; ++b) {
    idx[b] = b;
    for (int s = 0; s < kS; ++s) ex[b].src.push_back(4 + static_cast<int>(rng.below(kSrcVocab - 4)));
    if (targets)
      for (int t = 0; t < kT - 1; ++t) ex[b].tgt.push_back(4 + static_cast<int>(rng.below(kTgtVocab - 4)));
  }
  return make_batch(ex, idx);
}

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void bench_train(int B, double min_seconds) {
  Rng rng(1);
  Seq2Seq model(bench_config(), rng);
  Adam adam(model.parameters(), {.lr = 1e-3f});
  std::vector<Batch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(random_batch(B, rng, true));
  auto step = [&](const Batch& b) {
    Tape tape;
    TapeScope scope(tape);
    Var loss = model.loss(b, 0.0f, nullptr);
    tape.backward(loss);
    adam.step(1e-3f);
    adam.zero_grad();
    return loss.value().item();
  };
  const float first = step(batches[0]);  // validate: a finite loss near log(V) for a fresh model
  if (!(first > 0.0f && first < 10.0f)) {
    std::fprintf(stderr, "seq2seq_bench: implausible first loss %f\n", first);
    std::exit(1);
  }
  for (int i = 0; i < 3; ++i) step(batches[i % batches.size()]);  // warm-up
  int steps = 0;
  const auto t0 = Clock::now();
  while (seconds(t0) < min_seconds || steps < 5) step(batches[steps++ % batches.size()]);
  const double s = seconds(t0);
  const double tokens = double(steps) * B * kT;
  std::printf(
      "{\"impl\": \"attend\", \"task\": \"train\", \"batch\": %d, \"steps\": %d, \"seconds\": %.4f, "
      "\"tokens_per_second\": %.1f, \"gflops\": %.2f}\n",
      B, steps, s, tokens / s, 3.0 * forward_flops(model.config(), B) * steps / s / 1e9);
}

// reference: decode with the general step (DecodeOptions::reference_step), the fused step's reference path.
void bench_greedy(int B, double min_seconds, bool reference) {
  Rng rng(2);
  Seq2Seq model(bench_config(), rng);
  // Never predict </s>, so every sentence decodes exactly kT steps, as the PyTorch loop does.
  for (auto& p : model.parameters())
    if (p.name == "output.bias") p.var.value().data()[Vocab::kEos] = -1e4f;
  model.freeze();  // as Translator::load does: attend translate/eval decode a frozen model
  std::vector<Batch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(random_batch(B, rng, false));
  const DecodeOptions opt{.beam = 1, .length_penalty = 0.0f, .max_length = kT, .reference_step = reference};
  for (int i = 0; i < 3; ++i) decode(model, batches[i], opt);
  int runs = 0;
  const auto t0 = Clock::now();
  while (seconds(t0) < min_seconds || runs < 5) {
    auto h = decode(model, batches[runs++ % batches.size()], opt);
    if (h[0].tokens.size() != size_t(kT)) {
      std::fprintf(stderr, "seq2seq_bench: decoded %zu tokens, expected %d\n", h[0].tokens.size(), kT);
      std::exit(1);
    }
  }
  const double s = seconds(t0);
  std::printf(
      "{\"impl\": \"attend\", \"task\": \"%s\", \"batch\": %d, \"runs\": %d, \"seconds\": %.4f, "
      "\"sentences_per_second\": %.1f, \"gflops\": %.2f}\n",
      reference ? "greedy-general" : "greedy", B, runs, s, double(runs) * B / s,
      forward_flops(model.config(), B) * runs / s / 1e9);
}
}  // namespace

// Usage: seq2seq_bench [seconds per measurement] [train|greedy|greedy-general BATCH]  (default: the whole sweep)
int main(int argc, char** argv) {
  const double min_seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  if (argc > 3) {
    const std::string task = argv[2];
    const int B = std::atoi(argv[3]);
    if (task == "train")
      bench_train(B, min_seconds);
    else
      bench_greedy(B, min_seconds, task == "greedy-general");
    return 0;
  }
  kernels::set_blas_threads(1);
  Rng rng(0);
  Seq2Seq probe(bench_config(), rng);
  std::printf("{\"impl\": \"attend\", \"task\": \"info\", \"parameters\": %lld}\n",
              static_cast<long long>(probe.parameter_count()));
  for (int B : {64, 8}) bench_train(B, min_seconds);
  for (int B : {64, 8, 1}) {
    bench_greedy(B, min_seconds, false);
    bench_greedy(B, min_seconds, true);
  }
  return 0;
}
