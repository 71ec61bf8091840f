// int8 inference: the quantization (src/kernels/int8_gemm.h) by hand, oneDNN's product equal to
// the plain int32 loops bit for bit, the error of Int8Weight within its analytic bound, NaN in
// gives NaN out, and whole models (Transformer, RNN with the fused step) decoding in int8 close
// to fp32 while training through a quantized layer stays exact.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "attend/io/int8_weights.h"
#include "attend/io/safetensors.h"
#include "attend/models/seq2seq.h"
#include "attend/models/transformer.h"
#include "attend/nn/linear.h"
#include "attend/ops/int8.h"
#include "attend/random.h"
#include "kernels/int8_gemm.h"

namespace attend {
namespace {

std::vector<float> random_values(int64_t n, float scale, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

TEST(Int8Quantize, RowsBySymmetricScaleZeroRowsAndNonFinite) {
  const std::vector<float> x = {1.0f, -2.0f, 0.5f,  // scale 2/127: 63.5 -> 64 (to even), -127, 31.75 -> 32
                                0.0f, 0.0f,  0.0f, std::nanf(""), 1.0f, 2.0f, 1.0f, INFINITY, 0.0f};
  std::vector<int8_t> q(12);
  std::vector<float> s(4);
  kernels::quantize_rows(x.data(), 4, 3, 127, q.data(), s.data());
  EXPECT_FLOAT_EQ(s[0], 2.0f / 127.0f);
  EXPECT_EQ(q[0], 64);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 32);
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_TRUE(std::isnan(s[2])) << "a NaN in the row";
  EXPECT_TRUE(std::isnan(s[3])) << "an infinity in the row";
  kernels::quantize_rows(x.data(), 1, 3, 63, q.data(), s.data());  // 7-bit weights
  EXPECT_EQ(q[1], -63);
  EXPECT_FLOAT_EQ(s[0], 2.0f / 63.0f);
}

// oneDNN's product and the reference loops sum the same integers: equal bit for bit, over
// shapes with tails and values at the range's ends (where non-VNNI int16 pairs would saturate
// with R = 127).
TEST(Int8Gemm, OneDnnEqualsTheReferenceBitForBit) {
  const int R = kernels::int8_range();
  Rng rng(5);
  for (int M : {1, 3, 17, 64})
    for (int N : {1, 7, 256, 257})
      for (int K : {1, 5, 64, 300}) {
        std::vector<int8_t> qa(size_t(M) * K), qb(size_t(N) * K);
        auto draw = [&] {  // a third at the ends of the range
          const int v = rng.below(3) == 0 ? (rng.below(2) ? R : -R) : static_cast<int>(rng.below(2 * R + 1)) - R;
          return static_cast<int8_t>(v);
        };
        for (auto& v : qa) v = draw();
        for (auto& v : qb) v = draw();
        const std::vector<float> sa = random_values(M, 0.01f, 1), sb = random_values(N, 0.01f, 2),
                                 bias = random_values(N, 1.0f, 3);
        std::vector<float> want(size_t(M) * N), got(size_t(M) * N);
        kernels::int8_gemm_reference(M, N, K, qa.data(), sa.data(), qb.data(), sb.data(), bias.data(), want.data());
        const kernels::Int8Gemm gemm(N, K);
        gemm.run(M, qa.data(), sa.data(), qb.data(), sb.data(), bias.data(), got.data());
        ASSERT_EQ(got, want) << "M " << M << " N " << N << " K " << K << " weight range " << R;
      }
}

TEST(Int8Gemm, RefusesShapesItCannotSumExactly) {
  EXPECT_THROW(kernels::Int8Gemm(0, 4), std::invalid_argument);
  EXPECT_THROW(kernels::Int8Gemm(4, kernels::kInt8MaxK + 1), std::invalid_argument);
}

// |x.w - (qx sx).(qw sw)| <= sum_k |x_k| |dw_k| + |w_k| |dx_k| + |dx_k| |dw_k|, with |dx_k| <= sx/2
// and |dw_k| <= sw/2 (rounding to the nearest step); checked for every output.
TEST(Int8Weight, ErrorWithinTheRoundingBound) {
  const int M = 9, In = 130, Out = 70;
  const std::vector<float> x = random_values(int64_t(M) * In, 1.0f, 11), w = random_values(int64_t(In) * Out, 0.1f, 12),
                           bias = random_values(Out, 1.0f, 13);
  const auto q = Int8Weight::from_in_out(w.data(), In, Out);
  std::vector<float> y(size_t(M) * Out);
  q->apply(x.data(), M, bias.data(), y.data());
  const int R = kernels::int8_range();
  for (int m = 0; m < M; ++m) {
    float xmax = 0.0f;
    for (int k = 0; k < In; ++k) xmax = std::max(xmax, std::fabs(x[size_t(m) * In + k]));
    const double dx = xmax / double(R) / 2.0;
    for (int o = 0; o < Out; ++o) {
      float wmax = 0.0f;
      for (int k = 0; k < In; ++k) wmax = std::max(wmax, std::fabs(w[size_t(k) * Out + o]));
      const double dw = wmax / double(R) / 2.0;
      double exact = bias[o], bound = 1e-5;
      for (int k = 0; k < In; ++k) {
        const double xv = x[size_t(m) * In + k], wv = w[size_t(k) * Out + o];
        exact += xv * wv;
        bound += std::fabs(xv) * dw + std::fabs(wv) * dx + dx * dw;
      }
      ASSERT_LE(std::fabs(y[size_t(m) * Out + o] - exact), bound) << "row " << m << " output " << o;
    }
  }
}

TEST(Int8Weight, NonFiniteInputRowGivesNaNRowOnly) {
  const int In = 16, Out = 8;
  const std::vector<float> w = random_values(In * Out, 0.1f, 21);
  std::vector<float> x = random_values(3 * In, 1.0f, 22);
  x[In + 5] = INFINITY;
  const auto q = Int8Weight::from_in_out(w.data(), In, Out);
  std::vector<float> y(3 * Out);
  q->apply(x.data(), 3, nullptr, y.data());
  for (int o = 0; o < Out; ++o) {
    EXPECT_TRUE(std::isfinite(y[o]));
    EXPECT_TRUE(std::isnan(y[Out + o])) << "output " << o << " of the row with an infinity";
    EXPECT_TRUE(std::isfinite(y[2 * Out + o]));
  }
}

TEST(Int8Weight, ShapesAreChecked) {
  const std::vector<float> w(12, 0.5f);
  const auto q = Int8Weight::from_in_out(w.data(), 3, 4);
  EXPECT_THROW(q->apply(Tensor(Shape{2, 4}), Tensor()), std::invalid_argument);
  EXPECT_THROW(q->apply(Tensor(Shape{2, 3}), Tensor(Shape{3})), std::invalid_argument);
  EXPECT_EQ(q->apply(Tensor(Shape{5, 2, 3}), Tensor(Shape{4})).shape(), (Shape{5, 2, 4}));
  EXPECT_THROW(parse_precision("fp16"), std::invalid_argument);
  EXPECT_EQ(parse_precision("int8"), Precision::kInt8);
}

TEST(Int8Weight, ThreadsGetTheSameNumbers) {
  const int M = 33, In = 200, Out = 300;
  const std::vector<float> x = random_values(int64_t(M) * In, 1.0f, 31), w = random_values(int64_t(In) * Out, 0.1f, 32);
  const auto q = Int8Weight::from_in_out(w.data(), In, Out);
  std::vector<float> alone(size_t(M) * Out);
  q->apply(x.data(), M, nullptr, alone.data());
  std::vector<std::vector<float>> outs(4, std::vector<float>(alone.size()));
  std::vector<std::thread> threads;
  for (auto& out : outs)
    threads.emplace_back([&] {
      for (int r = 0; r < 20; ++r) q->apply(x.data(), M, nullptr, out.data());
    });
  for (auto& t : threads) t.join();
  for (const auto& out : outs) EXPECT_EQ(out, alone);
}

// oneDNN runs each product on the calling thread and leaves the caller's OpenMP setting as it
// was (PyTorch in the same process reads it).
TEST(Int8Weight, LeavesTheCallersOpenMpThreadsAlone) {
  const std::vector<float> w = random_values(64 * 32, 0.1f, 35), x = random_values(4 * 64, 1.0f, 36);
  const auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
  const auto set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  ASSERT_TRUE(get && set) << "libdnnl's OpenMP runtime is loaded";
  const int before = get();
  set(3);
  const auto q = Int8Weight::from_in_out(w.data(), 64, 32);
  std::vector<float> y(4 * 32);
  q->apply(x.data(), 4, nullptr, y.data());
  EXPECT_EQ(get(), 3);
  set(before);
}

// Under a tape a quantized layer computes in fp32, so that gradients stay exact.
TEST(Int8Linear, RecordingUsesTheFp32Weights) {
  Rng rng(41);
  Linear fp(24, 10, true, rng);
  Linear q = fp;
  q.quantize();
  const Var x(Tensor::from(Shape{3, 24}, random_values(72, 1.0f, 42)));
  Tape tape;
  std::vector<float> recorded;
  {
    TapeScope scope(tape);
    recorded = q(x).value().to_vector();
  }
  EXPECT_EQ(recorded, fp(x).value().to_vector());
  NoGradScope no_grad;
  EXPECT_NE(q(x).value().to_vector(), recorded) << "without a tape: the int8 product";
}

// Logits of every decoding step of `model`, fp32 then int8, within `tol` of the largest (for
// 8 bits: the error grows with the quantization step, twice as large with 7).
template <typename M>
void expect_int8_steps_close(M& model, double tol, const std::string& what, const DecodeOptions& options = {}) {
  Batch batch;
  batch.B = 2, batch.S = 4, batch.src = {4, 5, 6, 7, 5, 4, 7, 1}, batch.src_lengths = {4, 3};
  auto steps = [&] {
    std::unique_ptr<StepDecoder> dec = model.decoder(batch, 1, options);
    std::vector<float> all;
    std::vector<int> prev = {1, 1};
    for (int t = 0; t < 5; ++t) {
      const Tensor logits = dec->step(prev).logits;
      all.insert(all.end(), logits.data(), logits.data() + logits.numel());
      prev = {4 + t % 3, 5};
    }
    return all;
  };
  const std::vector<float> fp = steps();
  model.quantize();
  const std::vector<float> q = steps();
  ASSERT_EQ(fp.size(), q.size());
  double top = 0.0, worst = 0.0;
  for (size_t i = 0; i < fp.size(); ++i) top = std::max(top, double(std::fabs(fp[i])));
  for (size_t i = 0; i < fp.size(); ++i) worst = std::max(worst, double(std::fabs(fp[i] - q[i])));
  EXPECT_LE(worst, tol * 127.0 / kernels::int8_range() * top) << what << ": largest logit " << top;
  EXPECT_GT(worst, 0.0) << what << ": int8 was not used";
}

TEST(Int8Model, TransformerStepsCloseToFp32) {
  for (bool pre : {true, false})
    for (bool tie : {false, true}) {
      TransformerConfig c;
      c.dim = 32, c.heads = 4, c.ffn = 64, c.encoder_layers = 2, c.decoder_layers = 2, c.dropout = 0.0f;
      c.pre_norm = pre, c.tie_embeddings = tie, c.max_length = 16, c.src_vocab = c.tgt_vocab = 11;
      c.relative_positions = tie ? 3 : 0;  // stays fp32, a bias on the scores
      c.decoder_relative_positions = tie && pre ? 2 : 0;
      Rng rng(51);
      Transformer model(c, rng);
      for (const auto& p : model.parameters())
        if (Var v = p.var; p.name.find("relative_bias") != std::string::npos)
          for (int64_t i = 0; i < v.value().numel(); ++i) v.value().data()[i] = rng.normal();
      expect_int8_steps_close(model, 0.05, std::string("pre_norm ") + (pre ? "1" : "0") + " tie " + (tie ? "1" : "0"));
    }
}

// The dequantized weights, as a model that released its fp32 copies lists them: each within
// half a quantization step of the original; lookups in an int8 table are those rows.
TEST(Int8Weight, DequantizedWeightsAndRows) {
  const int in = 12, out = 7;
  const std::vector<float> w = random_values(in * out, 0.5f, 45);  // [In, Out]
  const auto q = Int8Weight::from_in_out(w.data(), in, out);
  const Tensor back = q->dequantize_in_out();
  ASSERT_EQ(back.shape(), (Shape{in, out}));
  for (int o = 0; o < out; ++o) {
    float top = 0.0f;
    for (int i = 0; i < in; ++i) top = std::max(top, std::fabs(w[i * out + o]));
    for (int i = 0; i < in; ++i)
      EXPECT_LE(std::fabs(back.data()[i * out + o] - w[i * out + o]), 0.5f * top / kernels::int8_range() * 1.0001f);
  }
  const auto table = Int8Weight::from_out_in(w.data(), out * in / 4, 4);  // as a [21, 4] table
  const Tensor rows = table->rows({3, 0, 3});
  ASSERT_EQ(rows.shape(), (Shape{3, 4}));
  const Tensor all = table->dequantize_in_out();  // [4, 21]
  for (int e = 0; e < 4; ++e) {
    EXPECT_EQ(rows.data()[e], all.data()[e * 21 + 3]);
    EXPECT_EQ(rows.data()[4 + e], all.data()[e * 21]);
  }
  EXPECT_THROW(table->rows({21}), std::invalid_argument);
  EXPECT_THROW(table->rows({-1}), std::invalid_argument);
}

std::map<std::string, std::vector<float>> values_of(const Module& m) {
  std::map<std::string, std::vector<float>> v;
  for (const auto& p : m.parameters()) v[p.name] = p.var.value().to_vector();
  return v;
}

// After release_fp32: every parameter listed, each within the quantization step of its largest
// value (per-row scales) of the original.
void expect_listed_dequantized(const Module& m, const std::map<std::string, std::vector<float>>& original,
                               const std::string& what) {
  for (const auto& [name, now] : values_of(m)) {
    const std::vector<float>& was = original.at(name);
    ASSERT_EQ(now.size(), was.size()) << what << " " << name;
    double top = 0.0, worst = 0.0;
    for (size_t i = 0; i < was.size(); ++i)
      top = std::max(top, double(std::fabs(was[i]))), worst = std::max(worst, double(std::fabs(now[i] - was[i])));
    EXPECT_LE(worst, top / kernels::int8_range()) << what << " " << name;
  }
}

// Recording a tape through released weights throws an error that says so.
template <typename F>
void expect_tape_refused(F record, const std::string& what) {
  Tape tape;
  TapeScope scope(tape);
  try {
    record();
    ADD_FAILURE() << what << ": a tape recorded through released weights";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("released"), std::string::npos) << e.what();
  }
}

// A Transformer loaded for int8 inference gives up its fp32 weights: it decodes exactly as
// before, lists dequantized weights, and refuses to be recorded on a tape.
TEST(Int8Model, TransformerWithoutFp32WeightsDecodesTheSame) {
  for (bool tie : {false, true}) {
    TransformerConfig c;
    c.dim = 32, c.heads = 4, c.ffn = 64, c.encoder_layers = 2, c.decoder_layers = 2, c.dropout = 0.0f;
    c.tie_embeddings = tie, c.max_length = 16, c.src_vocab = c.tgt_vocab = 11;
    Rng rng(53);
    Transformer model(c, rng);
    const auto original = values_of(model);
    Batch batch;
    batch.B = 2, batch.S = 3, batch.T = 2, batch.src = {4, 5, 6, 7, 5, 8}, batch.src_lengths = {3, 3};
    batch.tgt_in = {1, 1, 4, 5}, batch.tgt_out = {4, 5, 2, 2};
    model.quantize();
    auto logits = [&] {
      NoGradScope no_grad;
      return model.logits(batch, nullptr).value().to_vector();
    };
    const std::vector<float> before = logits();
    const int64_t count = model.parameter_count();
    model.release_fp32();
    EXPECT_EQ(logits(), before) << "tie " << tie;
    model.quantize();  // again, with nothing in fp32 to quantize: the int8 weights stay
    EXPECT_EQ(logits(), before) << "tie " << tie;
    EXPECT_EQ(model.parameter_count(), count);
    const std::string what = "tie " + std::to_string(tie);
    expect_listed_dequantized(model, original, what);
    expect_tape_refused([&] { model.logits(batch, nullptr); }, what);
  }
}

Seq2SeqConfig small_rnn(CellKind cell, ScoreKind score, bool feed) {
  Seq2SeqConfig c;
  c.cell = cell, c.attention.score = score, c.input_feeding = feed;
  c.embedding = 16, c.hidden = 32, c.encoder_hidden = 16, c.attention.attention_dim = 24, c.dropout = 0.0f;
  c.src_vocab = 11, c.tgt_vocab = 13;
  return c;
}

// Both step decoders: the fused one and the general one (one op per product, window constraints).
TEST(Int8Model, RnnStepsCloseToFp32) {
  DecodeOptions general;
  general.reference_step = true;
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
    for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kGeneral, ScoreKind::kAdditive})
      for (bool feed : {false, true})
        for (bool fused : {true, false}) {
          Rng rng(61);
          Seq2Seq model(small_rnn(cell, score, feed), rng);
          ASSERT_TRUE(model.fused_step_applies(DecodeOptions{}));
          expect_int8_steps_close(model, 0.05,
                                  "cell " + std::to_string(int(cell)) + " score " + std::to_string(int(score)) +
                                      " feed " + std::to_string(feed) + " fused " + std::to_string(fused),
                                  fused ? DecodeOptions{} : general);
        }
}

// An RNN loaded for int8 inference gives up its fp32 weights (all but the attention
// mechanism's): every decoding path gives what it gave before, the parameters are listed
// dequantized, and a tape through it throws.
TEST(Int8Model, RnnWithoutFp32WeightsDecodesTheSame) {
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
    for (bool feed : {false, true}) {
      Rng rng(67);
      Seq2Seq model(small_rnn(cell, ScoreKind::kAdditive, feed), rng);
      const std::string what = "cell " + std::to_string(int(cell)) + " feed " + std::to_string(feed);
      const auto original = values_of(model);
      Batch batch;
      batch.B = 2, batch.S = 3, batch.T = 2, batch.src = {4, 5, 6, 7, 5, 8}, batch.src_lengths = {3, 2};
      batch.tgt_in = {1, 1, 4, 5}, batch.tgt_out = {4, 5, 2, 2};
      model.freeze();
      model.quantize();
      DecodeOptions general, window;
      general.reference_step = true, window.window_back = window.window_forward = 1;
      auto decoded = [&] {
        std::vector<float> all;
        for (const DecodeOptions& o : {DecodeOptions{}, general, window}) {
          std::unique_ptr<StepDecoder> dec = model.decoder(batch, 1, o);
          for (std::vector<int> prev : {std::vector<int>{1, 1}, {4, 6}, {9, 2}}) {
            const Tensor logits = dec->step(prev).logits;
            all.insert(all.end(), logits.data(), logits.data() + logits.numel());
          }
        }
        NoGradScope no_grad;
        const std::vector<float> teacher_forced = model.logits(batch, nullptr).value().to_vector();
        all.insert(all.end(), teacher_forced.begin(), teacher_forced.end());
        return all;
      };
      const std::vector<float> before = decoded();
      const int64_t count = model.parameter_count();
      model.release_fp32();
      EXPECT_EQ(decoded(), before) << what;
      model.quantize(), model.freeze();  // again, with nothing in fp32: the int8 weights and tables stay
      EXPECT_EQ(decoded(), before) << what;
      EXPECT_EQ(model.parameter_count(), count) << what;
      expect_listed_dequantized(model, original, what);
      expect_tape_refused([&] { model.loss(batch, 0.0f, nullptr); }, what);
    }
}

// A weight quantized in blocks of its rows: each block's product is the block's own Int8Weight,
// the whole product the sum of the blocks', and bounds that are not a partition are refused.
TEST(Int8Blocks, BlocksSumToTheWholeProduct) {
  const int in = 12, out = 5;
  const Tensor w = Tensor::from(Shape{in, out}, random_values(in * out, 0.5f, 81));
  const Tensor x = Tensor::from(Shape{3, in}, random_values(3 * in, 1.0f, 82));
  const Tensor bias = Tensor::from(Shape{out}, random_values(out, 1.0f, 83));
  const Int8Blocks blocks(w, {0, 4, 12});
  ASSERT_TRUE(blocks.block(0, 4) && blocks.block(4, 8));
  EXPECT_FALSE(blocks.block(0, 12));
  EXPECT_FALSE(blocks.block(4, 4));
  Tensor x0 = Tensor::empty(Shape{3, 4}), x1 = Tensor::empty(Shape{3, 8});
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < in; ++i) (i < 4 ? x0.data()[n * 4 + i] : x1.data()[n * 8 + i - 4]) = x.data()[n * in + i];
  const Tensor y0 = blocks.apply_rows(x0, 0, 4, bias), y1 = blocks.apply_rows(x1, 4, 8, Tensor()),
               y = blocks.apply(x, bias);
  ASSERT_EQ(y.shape(), (Shape{3, out}));
  for (int64_t k = 0; k < y.numel(); ++k) EXPECT_FLOAT_EQ(y.data()[k], y0.data()[k] + y1.data()[k]) << k;
  const Tensor back = blocks.dequantize_in_out();
  EXPECT_EQ(back.shape(), w.shape());
  for (int i = 0; i < in; ++i) {  // row i's values are block (i < 4 ? 0 : 1)'s, scaled per output within it
    const Tensor b = i < 4 ? blocks.block(0, 4)->dequantize_in_out() : blocks.block(4, 8)->dequantize_in_out();
    for (int o = 0; o < out; ++o) EXPECT_EQ(back.data()[i * out + o], b.data()[(i < 4 ? i : i - 4) * out + o]);
  }
  EXPECT_THROW(blocks.apply_rows(x0, 2, 4, Tensor()), std::invalid_argument);
  EXPECT_THROW(blocks.apply(x0, Tensor()), std::invalid_argument);
  EXPECT_THROW(blocks.apply(x, Tensor(Shape{4})), std::invalid_argument);
  for (const std::vector<int>& bad : std::vector<std::vector<int>>{{0, 4}, {1, 12}, {0, 6, 6, 12}, {0, 8, 4, 12}, {}})
    EXPECT_THROW(Int8Blocks(w, bad), std::invalid_argument);
}

}  // namespace
}  // namespace attend

namespace attend {
namespace {

// attend quantize's file format (io/int8_weights.h): per output for layers, per token for
// embedding tables, vectors untouched; every defect of a stored int8 tensor named.
TEST(Int8Storage, RoundTripPerOutputAndPerTokenWithinHalfAStep) {
  const Var w(Tensor::from(Shape{3, 4}, random_values(12, 1.0f, 71))),
      table(Tensor::from(Shape{5, 2}, random_values(10, 1.0f, 72))),
      bias(Tensor::from(Shape{4}, random_values(4, 1.0f, 73)));
  const std::vector<NamedParameter> params = {
      {"layer.weight", w}, {"tgt_embedding.weight", table}, {"layer.bias", bias}};
  const StoredInt8 stored = quantize_for_storage(params);
  ASSERT_EQ(stored.i8.size(), 2u);
  std::set<std::string> int8;
  std::map<std::string, Tensor> tensors =
      parse_safetensors(safetensors_bytes(stored.f32, {}, stored.i8), "m.safetensors", nullptr, &int8);
  EXPECT_EQ(int8, (std::set<std::string>{"layer.weight", "tgt_embedding.weight"}));
  EXPECT_EQ(tensors.at("layer.weight.scale").shape(), (Shape{1, 4}));
  EXPECT_EQ(tensors.at("tgt_embedding.weight.scale").shape(), (Shape{5, 1}));
  dequantize_stored(tensors, int8, "m.safetensors");
  EXPECT_EQ(tensors.size(), 3u);
  EXPECT_EQ(tensors.at("layer.bias").to_vector(), bias.value().to_vector());
  for (const auto& [name, original] : {std::pair{"layer.weight", w}, {"tgt_embedding.weight", table}}) {
    const Tensor& back = tensors.at(name);
    ASSERT_EQ(back.shape(), original.shape());
    float top = 0.0f;
    for (float v : original.value().to_vector()) top = std::max(top, std::fabs(v));
    for (int64_t i = 0; i < back.numel(); ++i)
      EXPECT_LE(std::fabs(back.data()[i] - original.value().data()[i]), top / 127.0f / 2.0f + 1e-6f) << name;
  }
  EXPECT_THROW(parse_safetensors(safetensors_bytes(stored.f32, {}, stored.i8), "m.safetensors"), std::runtime_error)
      << "a reader that takes F32 only refuses I8";
}

std::string defect(const std::vector<NamedParameter>& f32, const std::vector<Int8Tensor>& i8) {
  std::set<std::string> int8;
  try {
    std::map<std::string, Tensor> t =
        parse_safetensors(safetensors_bytes(f32, {}, i8), "m.safetensors", nullptr, &int8);
    dequantize_stored(t, int8, "m.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Int8Storage, DamagedTensorsAreNamed) {
  const Int8Tensor q{"w", Shape{2, 3}, {1, 2, 3, 4, 5, 6}};
  const Var col(Tensor::full(Shape{1, 3}, 0.5f)), row(Tensor::full(Shape{2, 1}, 0.5f));
  EXPECT_EQ(defect({{"w.scale", col}}, {q}), "");
  EXPECT_EQ(defect({{"w.scale", row}}, {q}), "");
  EXPECT_NE(defect({}, {q}).find("int8 tensor 'w' has no F32 scale 'w.scale'"), std::string::npos);
  EXPECT_NE(defect({{"w.scale", Var(Tensor::full(Shape{3}, 0.5f))}}, {q})
                .find("scale 'w.scale' has shape [3], expected [1, 3] or [2, 1]"),
            std::string::npos);
  EXPECT_NE(defect({{"w.scale", Var(Tensor::full(Shape{1, 3}, -1.0f))}}, {q}).find("scale element 0 is -1"),
            std::string::npos);
  EXPECT_NE(defect({{"w.scale", Var(Tensor::full(Shape{1, 3}, NAN))}}, {q}).find("scale element 0 is nan"),
            std::string::npos);
  EXPECT_NE(defect({{"w.scale", col}}, {{"w", Shape{2, 3}, {1, 2, -128, 4, 5, 6}}}).find("element 2 is -128"),
            std::string::npos);
  EXPECT_NE(defect({{"b.scale", Var(Tensor::full(Shape{1, 3}, 1.0f))}}, {{"b", Shape{3}, {1, 2, 3}}})
                .find("int8 tensor 'b': shape [3]: only 2-D weights"),
            std::string::npos);
  EXPECT_NE(defect({}, {q, {"w.scale", Shape{1, 3}, {1, 1, 1}}}).find("tensor 'w.scale' is I8; scales are F32"),
            std::string::npos);
}

}  // namespace
}  // namespace attend
