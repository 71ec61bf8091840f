// Transformer throughput of attend: training target-tokens/s (with page faults per step and
// peak memory) and decoding sentences/s, greedy and beam. Prints one JSON object per run;
// bench/transformer.py runs it beside the same model in PyTorch.
//
// Model (issue 17's comparison): pre-LN, C = 256, 4 heads, feed-forward 1,024, 3 + 3 layers,
// an untied output layer with bias, sinusoidal positions, dropout 0.1 and label smoothing 0.1 in
// training, Adam. Two shapes: "word" (vocabularies 8,000, S = T = 24, word-level sentences) and
// "char" (vocabularies 30 and 42, S = 10, T = 9, G2P-sized).
//
// Distillation (attend train --teacher): "train-kd" adds two teachers of the model's shape whose
// mean next-token probabilities are computed for every batch (attend without the cache, and what
// a PyTorch loop does); "train-kd-cached" reads them from a TeacherCache filled before timing.
//
// Usage: transformer_bench SHAPE check FILE        writes the weights and a batch with its loss
//        transformer_bench SHAPE train|train-kd|train-kd-cached|greedy|beam5 BATCH SECONDS [THREADS]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "attend/decode/search.h"
#include "attend/io/safetensors.h"
#include "attend/models/transformer.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/loss.h"
#include "attend/ops/softmax.h"
#include "attend/threads.h"
#include "attend/train/communicator.h"
#include "attend/train/optimizer.h"
#include "attend/train/teacher_cache.h"
#include "../src/kernels/blas.h"

using namespace attend;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape2 {
  int src_vocab, tgt_vocab, S, T;
};

Shape2 shape_of(const std::string& name) {
  if (name == "word") return {8000, 8000, 24, 24};
  if (name == "char") return {30, 42, 10, 9};
  throw std::invalid_argument("transformer_bench: shape must be word or char, got '" + name + "'");
}

TransformerConfig config_of(const Shape2& s) {
  TransformerConfig c;
  c.dim = 256, c.heads = 4, c.ffn = 1024, c.encoder_layers = c.decoder_layers = 3;
  c.pre_norm = true, c.tie_embeddings = false, c.dropout = 0.1f;
  c.src_vocab = s.src_vocab, c.tgt_vocab = s.tgt_vocab;
  return c;
}

// n examples; with `ragged`, lengths vary (S/2..S, T/2..T) so that the check covers padding.
std::vector<EncodedExample> random_examples(const Shape2& s, int n, Rng& rng, bool targets, bool ragged) {
  std::vector<EncodedExample> ex(n);
  for (EncodedExample& e : ex) {
    const int S = ragged ? s.S / 2 + int(rng.below(s.S - s.S / 2 + 1)) : s.S;
    const int T = ragged ? s.T / 2 + int(rng.below(s.T - s.T / 2 + 1)) : s.T;
    for (int i = 0; i < S; ++i) e.src.push_back(4 + int(rng.below(s.src_vocab - 4)));
    if (targets)
      for (int t = 0; t < T - 1; ++t) e.tgt.push_back(4 + int(rng.below(s.tgt_vocab - 4)));
  }
  return ex;
}

// Examples [first, first + B) of `set` as one batch.
Batch slice(const std::vector<EncodedExample>& set, int first, int B) {
  std::vector<int> idx(B);
  for (int b = 0; b < B; ++b) idx[b] = first + b;
  return make_batch(set, idx);
}

Batch random_batch(const Shape2& s, int B, Rng& rng, bool targets, bool ragged) {
  return slice(random_examples(s, B, rng, targets, ragged), 0, B);
}

double seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Minor page faults so far, and the peak resident memory: VmHWM, which starts afresh at exec
// (getrusage's ru_maxrss would count the parent's peak: it survives fork and exec).
struct Usage {
  long minor_faults, max_rss_kb;
};
Usage usage() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  long hwm = -1;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %ld kB", &hwm) == 1) break;
    std::fclose(f);
  }
  return {u.ru_minflt, hwm};
}

// The weights, a ragged batch (ids as floats, time-major) and the model's loss on it without
// dropout, for bench/transformer.py to load into PyTorch and compare.
void check(const Shape2& s, const std::string& path) {
  Rng rng(1);
  Transformer model(config_of(s), rng);
  Rng data_rng(5);
  const Batch b = random_batch(s, 16, data_rng, true, /*ragged=*/true);
  NoGradScope no_grad;
  const float loss = model.loss(b, 0.1f, nullptr).value().item();
  auto ids = [](const std::vector<int>& v, int64_t rows, int64_t cols) {
    Tensor t(Shape{rows, cols});
    for (size_t i = 0; i < v.size(); ++i) t.data()[i] = float(v[i]);
    return Var(t);
  };
  std::vector<NamedParameter> tensors = model.parameters();
  tensors.push_back({"batch.src", ids(b.src, b.S, b.B)});
  tensors.push_back({"batch.src_lengths", ids(b.src_lengths, 1, b.B)});
  tensors.push_back({"batch.tgt_in", ids(b.tgt_in, b.T, b.B)});
  tensors.push_back({"batch.tgt_out", ids(b.tgt_out, b.T, b.B)});
  save_safetensors(path, tensors);
  std::printf("{\"impl\": \"attend\", \"task\": \"check\", \"loss\": %.7f, \"parameters\": %lld}\n", loss,
              static_cast<long long>(model.parameter_count()));
}

enum class Teachers { kNone, kEveryBatch, kCached };

// The trainer's teachers (Trainer::compute_teacher_probabilities): their mean softmax, [T*B, V].
Tensor mean_probabilities(const std::vector<std::unique_ptr<Transformer>>& teachers, const Batch& b) {
  NoGradScope no_grad;
  Var mean;
  for (const auto& t : teachers) {
    const Var p = softmax(t->logits(b, nullptr));
    mean = mean.defined() ? add(mean, p) : p;
  }
  return scale(mean, 1.0f / float(teachers.size())).value();
}

void train(const Shape2& s, int B, double min_seconds, Teachers with) {
  Rng rng(1);
  Transformer model(config_of(s), rng);
  Adam adam(model.parameters(), {.lr = 1e-4f});
  const std::vector<EncodedExample> set = random_examples(s, 8 * B, rng, true, false);
  std::vector<Batch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(slice(set, i * B, B));
  std::vector<std::unique_ptr<Transformer>> teachers;
  if (with != Teachers::kNone)
    for (uint64_t seed : {11, 12}) {
      Rng teacher_rng(seed);
      teachers.push_back(std::make_unique<Transformer>(config_of(s), teacher_rng));
    }
  const auto probabilities = [&](const Batch& b) { return mean_probabilities(teachers, b); };
  std::unique_ptr<TeacherCache> cache;
  if (with == Teachers::kCached)
    cache = std::make_unique<TeacherCache>(set, s.tgt_vocab, probabilities, Communicator::world());
  Rng dropout_rng(3);
  auto step = [&](const Batch& b) {
    const Tensor soft = with == Teachers::kNone ? Tensor() : cache ? cache->rows(b) : probabilities(b);
    const CrossEntropyOptions targets{.label_smoothing = 0.1f,
                                      .soft_targets = soft.defined() ? &soft : nullptr,
                                      .soft_weight = soft.defined() ? 0.5f : 0.0f};
    Tape tape;
    TapeScope scope(tape);
    Var loss = model.loss(b, targets, &dropout_rng);
    tape.backward(loss);
    adam.step(1e-4f);
    adam.zero_grad();
    return loss.value().item();
  };
  const float first = step(batches[0]);
  if (!(first > 0.0f && first < 20.0f)) throw std::runtime_error("implausible first loss " + std::to_string(first));
  for (int i = 1; i < 4; ++i) step(batches[i]);  // warm-up: the storage cache fills
  int steps = 0;
  kernels::GemmStats products;  // the time and arithmetic of the steps' matrix products
  kernels::set_gemm_stats(&products);
  const Usage u0 = usage();
  const auto t0 = Clock::now();
  while (seconds(t0) < min_seconds || steps < 5) step(batches[steps++ % batches.size()]);
  const double sec = seconds(t0);
  const Usage u1 = usage();
  kernels::set_gemm_stats(nullptr);
  std::printf(
      "{\"impl\": \"attend\", \"task\": \"%s\", \"batch\": %d, \"steps\": %d, \"seconds\": %.4f, "
      "\"tokens_per_second\": %.1f, \"faults_per_step\": %.1f, \"max_rss_mb\": %.1f, "
      "\"gemm_gflop_per_step\": %.3f, \"gemm_gflops\": %.1f, \"gemm_share\": %.4f}\n",
      with == Teachers::kNone     ? "train"
      : with == Teachers::kCached ? "train-kd-cached"
                                  : "train-kd",
      B, steps, sec, double(steps) * B * s.T / sec, double(u1.minor_faults - u0.minor_faults) / steps,
      u1.max_rss_kb / 1024.0, products.flops / steps / 1e9, products.flops / products.seconds / 1e9,
      products.seconds / sec);
}

void decode_bench(const Shape2& s, int B, int beam, double min_seconds) {
  Rng rng(2);
  Transformer model(config_of(s), rng);
  // Never </s>: every sentence decodes exactly T steps, as the PyTorch loop does.
  for (auto& p : model.parameters())
    if (p.name == "output.bias") p.var.value().data()[Vocab::kEos] = -1e4f;
  std::vector<Batch> batches;
  for (int i = 0; i < 8; ++i) batches.push_back(random_batch(s, B, rng, false, false));
  DecodeOptions opt;
  opt.beam = beam, opt.length_penalty = 0.0f, opt.max_length = s.T;
  for (int i = 0; i < 2; ++i) decode(model, batches[i], opt);
  int runs = 0;
  const Usage u0 = usage();
  const auto t0 = Clock::now();
  while (seconds(t0) < min_seconds || runs < 3) {
    const auto h = decode(model, batches[runs++ % batches.size()], opt);
    if (h[0].tokens.size() != size_t(s.T))
      throw std::runtime_error("decoded " + std::to_string(h[0].tokens.size()) + " tokens, expected " +
                               std::to_string(s.T));
  }
  const double sec = seconds(t0);
  const Usage u1 = usage();
  std::printf(
      "{\"impl\": \"attend\", \"task\": \"%s\", \"batch\": %d, \"runs\": %d, \"seconds\": %.4f, "
      "\"sentences_per_second\": %.1f, \"faults_per_step\": %.2f, \"max_rss_mb\": %.1f}\n",
      beam == 1 ? "greedy" : "beam5", B, runs, sec, double(runs) * B / sec,
      double(u1.minor_faults - u0.minor_faults) / (double(runs) * s.T), u1.max_rss_kb / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    set_threads(argc > 5 ? std::atoi(argv[5]) : 1);  // (throws on a count out of range)
    if (argc < 4) throw std::invalid_argument("usage: transformer_bench word|char check FILE | TASK BATCH SECONDS");
    const Shape2 s = shape_of(argv[1]);
    const std::string task = argv[2];
    if (task == "check") return check(s, argv[3]), 0;
    if (argc < 5) throw std::invalid_argument("usage: transformer_bench SHAPE TASK BATCH SECONDS");
    const int B = std::atoi(argv[3]);
    const double sec = std::atof(argv[4]);
    if (B < 1 || B > 4096 || !(sec > 0.0 && sec < 3600.0))
      throw std::invalid_argument("batch must be in [1, 4096] and seconds in (0, 3600)");
    if (task == "train") return train(s, B, sec, Teachers::kNone), 0;
    if (task == "train-kd") return train(s, B, sec, Teachers::kEveryBatch), 0;
    if (task == "train-kd-cached") return train(s, B, sec, Teachers::kCached), 0;
    if (task == "greedy" || task == "beam5") return decode_bench(s, B, task == "greedy" ? 1 : 5, sec), 0;
    throw std::invalid_argument("unknown task '" + task + "' (check, train, train-kd, train-kd-cached, greedy, beam5)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "transformer_bench: %s\n", e.what());
    return 1;
  }
}
