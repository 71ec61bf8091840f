// Layers and the seq2seq model: gradients, padding invariance, decoding, checkpoints, determinism.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "attend/attention/registry.h"
#include "attend/decode/search.h"
#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/models/transformer.h"
#include "attend/models/translator.h"
#include "attend/nn/rnn.h"
#include "attend/ops/shape.h"
#include "attend/train/trainer.h"
#include "gradcheck.h"

namespace attend {
namespace {

using testing::gradcheck;
using testing::random_var;

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("attend_model_test_" + std::to_string(::getpid())) / name;
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Every parameter of a module, plus extra inputs, as gradcheck inputs.
std::vector<Var> with_params(const Module& m, std::vector<Var> extra = {}) {
  for (const auto& p : m.parameters()) extra.push_back(p.var);
  return extra;
}

TEST(RnnGrad, BidirectionalGruAndLstmOverPaddedBatch) {
  for (CellKind kind : {CellKind::kGru, CellKind::kLstm}) {
    SCOPED_TRACE(to_string(kind));
    Rng rng(31);
    Rnn rnn(kind, 3, 4, /*bidirectional=*/true, rng);
    const int S = 3;
    const std::vector<int> lengths = {3, 2};
    gradcheck([&](const std::vector<Var>& x) { return rnn.forward(x[0], lengths, S).outputs; },
              with_params(rnn, {random_var({S * 2, 3}, rng)}));
    gradcheck([&](const std::vector<Var>& x) { return rnn.forward(x[0], lengths, S).last[1].h; },
              with_params(rnn, {random_var({S * 2, 3}, rng)}));
  }
}

TEST(Rnn, WithoutATapeTheSameNumbersAsTheRecordedSteps) {
  // forward_projected runs its steps on raw buffers when nothing is recorded; the numbers must
  // be the cell ops' own, bit for bit, over a padded batch (outputs and final states).
  for (CellKind kind : {CellKind::kGru, CellKind::kLstm})
    for (bool bidirectional : {true, false}) {
      SCOPED_TRACE(to_string(kind) + (bidirectional ? " bidirectional" : ""));
      Rng rng(35);
      Rnn rnn(kind, 3, 5, bidirectional, rng);
      for (auto& p : rnn.parameters())
        for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 1.6f * rng.uniform() - 0.8f;
      const int S = 4;
      const std::vector<int> lengths = {4, 1, 3};
      Var x = random_var({S * 3, 3}, rng);
      Rnn::Output recorded, plain;
      {
        Tape tape;
        TapeScope scope(tape);
        recorded = rnn.forward(x, lengths, S);
      }
      {
        NoGradScope no_grad;
        plain = rnn.forward(x, lengths, S);
      }
      EXPECT_EQ(plain.outputs.value().shape(), recorded.outputs.value().shape());
      EXPECT_EQ(plain.outputs.value().to_vector(), recorded.outputs.value().to_vector());
      ASSERT_EQ(plain.last.size(), recorded.last.size());
      for (size_t d = 0; d < plain.last.size(); ++d) {
        EXPECT_EQ(plain.last[d].h.value().to_vector(), recorded.last[d].h.value().to_vector()) << "direction " << d;
        if (kind == CellKind::kLstm) {
          EXPECT_EQ(plain.last[d].c.value().to_vector(), recorded.last[d].c.value().to_vector()) << "direction " << d;
        }
      }
    }
}

TEST(Rnn, PaddingDoesNotChangeAShortSequence) {
  Rng rng(32);
  Rnn rnn(CellKind::kGru, 3, 4, true, rng);
  Var alone = random_var({2, 3}, rng, 1.0f, false);  // S=2, B=1
  Var padded(Tensor(Shape{4 * 2, 3}));               // S=4, B=2: row 0 is the same sequence
  for (int t = 0; t < 2; ++t)
    for (int k = 0; k < 3; ++k) padded.value().data()[(t * 2) * 3 + k] = alone.value().data()[t * 3 + k];
  for (int64_t i = 0; i < padded.value().numel(); ++i)
    if ((i / 3) % 2 == 1) padded.value().data()[i] = rng.normal();
  Rnn::Output a = rnn.forward(alone, {2}, 2), b = rnn.forward(padded, {2, 4}, 4);  // outputs [S, B, 8]
  for (int s = 0; s < 2; ++s)
    for (int k = 0; k < 8; ++k)
      EXPECT_NEAR(a.outputs.value().data()[s * 8 + k], b.outputs.value().data()[(s * 2) * 8 + k], 1e-6f);
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(a.last[0].h.value().data()[k], b.last[0].h.value().data()[k], 1e-6f);
    EXPECT_NEAR(a.last[1].h.value().data()[k], b.last[1].h.value().data()[k], 1e-6f);
  }
}

// The mechanism `kind`, with `window` where it has a window.
void set_mechanism(Seq2SeqConfig& c, const std::string& kind, int window) {
  c.attention.mechanism = kind;
  if (find_mechanism(kind).option("window")) c.attention.options["window"] = window;
}

Seq2SeqConfig tiny_config(CellKind cell, ScoreKind score, bool feed) {
  Seq2SeqConfig c;
  c.cell = cell, c.attention.score = score, c.input_feeding = feed;
  if (score == ScoreKind::kGeneral || score == ScoreKind::kAdditive) c.encoder_hidden = 3;  // memory 6 != decoder 4
  c.embedding = 3, c.hidden = 4, c.attention.attention_dim = 3, c.dropout = 0.0f;
  c.src_vocab = 7, c.tgt_vocab = 6;
  return c;
}

TEST(Seq2SeqGrad, TeacherForcedLossEveryCellScoreAndFeeding) {
  std::vector<EncodedExample> ex = {{{4, 5, 6}, {4, 5}}, {{6, 4}, {5}}};
  Batch batch = make_batch(ex, {0, 1});
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
    for (ScoreKind score : {ScoreKind::kDot, ScoreKind::kGeneral, ScoreKind::kAdditive})
      for (bool feed : {true, false}) {
        SCOPED_TRACE(to_string(cell) + " " + to_string(score) + (feed ? " feed" : ""));
        Rng rng(33);
        Seq2Seq model(tiny_config(cell, score, feed), rng);
        gradcheck([&](const std::vector<Var>&) { return model.loss(batch, 0.1f, nullptr); }, with_params(model));
      }
}

TEST(Seq2Seq, VocabularyTableProjectionEqualsPerTokenProjection) {
  // With no dropout RNG the model projects each vocabulary entry once and looks rows up; with an
  // RNG (and dropout 0) it projects every token. Both must give the same loss and gradients.
  std::vector<EncodedExample> ex;
  Rng data(38);
  for (int i = 0; i < 6; ++i) {
    EncodedExample e;
    for (int k = 0; k < 5; ++k) e.src.push_back(4 + static_cast<int>(data.below(3)));
    for (int k = 0; k < 4; ++k) e.tgt.push_back(4 + static_cast<int>(data.below(2)));
    ex.push_back(e);
  }
  Batch batch = make_batch(ex, {0, 1, 2, 3, 4, 5});  // 30 source tokens > 7 entries: the table path
  Rng rng(39);
  Seq2Seq model(tiny_config(CellKind::kGru, ScoreKind::kAdditive, true), rng);
  auto run = [&](Rng* r) {
    Tape tape;
    TapeScope scope(tape);
    Var l = model.loss(batch, 0.0f, r);
    tape.backward(l);
    std::vector<float> g = {l.value().item()};
    for (auto& p : model.parameters()) {
      for (float v : p.var.grad().to_vector()) g.push_back(v);
      p.var.grad_ref().zero();
    }
    return g;
  };
  Rng unused(1);
  const std::vector<float> table = run(nullptr), per_token = run(&unused);
  ASSERT_EQ(table.size(), per_token.size());
  for (size_t i = 0; i < table.size(); ++i) EXPECT_NEAR(table[i], per_token[i], 1e-5f) << "element " << i;
}

TEST(Seq2Seq, PrecomputedMemoryCombinedGivesTheSameSteps) {
  // Decoding multiplies the weights by h W_c[:M] (precomputed) instead of forming c_t and
  // multiplying by W_c[:M]: the same numbers up to rounding, for every mechanism whose context is
  // its weights times the memory (and no precomputation for the others).
  std::vector<EncodedExample> ex = {{{4, 5, 6, 5, 4}, {}}, {{6, 4}, {}}};
  Batch batch = make_batch(ex, {0, 1});
  for (const MechanismInfo& info : mechanisms())  // every registered mechanism
    for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
      for (bool feed : {true, false}) {
        const std::string& kind = info.name;
        SCOPED_TRACE(kind + " " + to_string(cell) + (feed ? " feed" : ""));
        Seq2SeqConfig c = tiny_config(cell, ScoreKind::kAdditive, feed);
        set_mechanism(c, kind, /*window=*/1);
        Rng rng(40);
        Seq2Seq model(c, rng);
        NoGradScope no_grad;
        Seq2Seq::Encoded plain = model.encode(batch.src, batch.src_lengths, batch.S, nullptr);
        Seq2Seq::Encoded fast = plain;
        model.precompute_memory_combined(fast);
        // Precomputed exactly when the context is the weights times the values; where it is not
        // (multi-head), precomputing would change the steps, which the comparison below would see.
        ASSERT_EQ(fast.memory_combined.defined(), make_attention(c.attention, 4, 6, rng)->context_is_weighted_values());
        Seq2Seq::DecoderState a = model.initial_state(plain), b = model.initial_state(fast);
        a.attn.inference = b.attn.inference = true;  // inference behaviour (pointer, argmax)
        for (int t = 0; t < 4; ++t) {
          const std::vector<int> prev = {4 + t % 2, 5};
          Seq2Seq::StepOutput sa = model.step(prev, a, plain, nullptr), sb = model.step(prev, b, fast, nullptr);
          const std::vector<float> la = sa.logits.value().to_vector(), lb = sb.logits.value().to_vector();
          const std::vector<float> wa = sa.weights.value().to_vector(), wb = sb.weights.value().to_vector();
          for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5f) << "step " << t << " logit " << i;
          for (size_t i = 0; i < wa.size(); ++i) EXPECT_NEAR(wa[i], wb[i], 1e-5f) << "step " << t << " weight " << i;
          a = std::move(sa.state), b = std::move(sb.state);
        }
      }
}

// Beam search carries every mechanism's state through its reorders: the score and attention of
// each hypothesis it returns equal those of the same tokens decoded again on their own, step by
// step, without any reordering (a state field left out of the gather would change them). Greedy
// decoding (beam 1) is held to the same.
TEST(Seq2Seq, EveryMechanismsStateSurvivesBeamSearch) {
  std::vector<EncodedExample> ex = {{{4, 5, 6, 5, 4, 6}, {}}, {{6, 4, 5}, {}}};
  const Batch batch = make_batch(ex, {0, 1});
  ASSERT_GE(mechanisms().size(), 10u);
  for (const MechanismInfo& info : mechanisms())  // every registered mechanism
    for (int beam : {1, 3})
      for (uint64_t seed : {77, 78, 79})
        for (float gain : {1.0f, 3.0f}) {
          const std::string& kind = info.name;
          SCOPED_TRACE(kind + " beam " + std::to_string(beam) + " seed " + std::to_string(seed) + " gain " +
                       std::to_string(gain));
          Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
          set_mechanism(c, kind, /*window=*/1);
          Rng rng(seed);
          Seq2Seq model(c, rng);
          for (auto& p : model.parameters()) {  // gain 3: peaked distributions, decisive pointers
            float* w = p.var.value().data();
            for (int64_t i = 0, n = p.var.value().numel(); i < n; ++i) w[i] *= gain;
            if (p.name == "output.bias") w[Vocab::kEos] = -30.0f;  // no early </s>: every step reorders the beams
            if (p.name.size() > 2 && p.name.compare(p.name.size() - 2, 2, ".r") == 0)
              w[0] = 0.2f;  // a monotonic head's offset: stop probabilities near 1/2, a moving pointer
          }
          const DecodeOptions o{.beam = beam, .length_penalty = 0.0f, .max_length = 7};
          const std::vector<Hypothesis> hyps = decode(model, batch, o);
          for (int b = 0; b < batch.B; ++b) {
            const Batch one = make_batch(ex, {b});
            std::unique_ptr<StepDecoder> dec = model.decoder(one, 1, o);
            std::vector<int> fed = {Vocab::kBos};
            std::vector<int> want = hyps[b].tokens;
            const bool closed = hyps[b].attention.size() > want.size();
            if (closed) want.push_back(Vocab::kEos);
            double score = 0.0;
            for (size_t t = 0; t < want.size(); ++t) {
              const NextTokenScores s = dec->step({fed.back()});
              const int64_t V = s.logits.size(1);
              const float* z = s.logits.data();
              const float mx = *std::max_element(z, z + V);
              double se = 0.0;
              for (int64_t v = 0; v < V; ++v) se += std::exp(double(z[v]) - mx);
              score += z[want[t]] - mx - std::log(se);
              for (int64_t sp = 0; sp < one.S; ++sp)
                EXPECT_NEAR(s.weights.data()[sp], hyps[b].attention[t][sp], 1e-5f)
                    << "row " << b << " step " << t << " position " << sp;
              fed.push_back(want[t]);
            }
            EXPECT_NEAR(hyps[b].score, score, 1e-4) << "row " << b;
            EXPECT_EQ(hyps[b].tokens.size(), 7u) << "row " << b << ": the test needs long hypotheses";
          }
        }
}

TEST(Seq2Seq, FrozenTablesDecodeAsBeforeAndNeverReachATape) {
  std::vector<EncodedExample> ex = {{{4, 5, 6}, {4, 5}}, {{6, 4}, {5}}};
  Batch batch = make_batch(ex, {0, 1});
  Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  Rng r1(41), r2(41);
  Seq2Seq live(c, r1), frozen(c, r2);
  frozen.freeze();
  const DecodeOptions greedy{.beam = 1, .length_penalty = 0.0f, .max_length = 6};
  const DecodeOptions beam{.beam = 3, .length_penalty = 0.0f, .max_length = 6};
  for (const DecodeOptions& o : {greedy, beam}) {
    auto want = decode(live, batch, o), got = decode(frozen, batch, o);
    for (int b = 0; b < 2; ++b) {
      EXPECT_EQ(got[b].tokens, want[b].tokens) << "row " << b << " beam " << o.beam;
      EXPECT_NEAR(got[b].score, want[b].score, 1e-5f) << "row " << b << " beam " << o.beam;
    }
  }
  // Recording a loss uses the weights themselves: gradients reach both embedding tables.
  auto grads = [&](const Seq2Seq& m) {
    Tape tape;
    TapeScope scope(tape);
    Var l = m.loss(batch, 0.0f, nullptr);
    tape.backward(l);
    std::vector<float> g;
    for (auto& p : m.parameters()) {
      for (float v : p.var.grad().to_vector()) g.push_back(v);
      p.var.grad_ref().zero();
    }
    return g;
  };
  const std::vector<float> gl = grads(live), gf = grads(frozen);
  ASSERT_EQ(gl.size(), gf.size());
  for (size_t i = 0; i < gl.size(); ++i) EXPECT_NEAR(gl[i], gf[i], 1e-6f) << "gradient element " << i;
  // freeze() again after the weights change picks the change up.
  for (Seq2Seq* m : {&live, &frozen})
    for (auto& p : m->parameters())
      if (p.name == "tgt_embedding.weight") p.var.value().data()[4 * c.embedding] += 3.0f;  // token 4
  frozen.freeze();
  Seq2Seq::Encoded el, ef;
  {
    NoGradScope no_grad;
    el = live.encode(batch.src, batch.src_lengths, batch.S, nullptr);
    ef = frozen.encode(batch.src, batch.src_lengths, batch.S, nullptr);
  }
  ASSERT_TRUE(ef.target_gates.defined());
  const std::vector<float> want = live.step({4, 4}, live.initial_state(el), el, nullptr).logits.value().to_vector();
  const std::vector<float> got = frozen.step({4, 4}, frozen.initial_state(ef), ef, nullptr).logits.value().to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << "logit " << i;
}

// Steps the fused and the general decoder of `model` side by side for 5 steps with the same
// tokens and beam reorders: logits and weights agree.
void expect_fused_step_matches_general(const Seq2Seq& model, const Batch& batch, int K) {
  ASSERT_TRUE(model.fused_step_applies(DecodeOptions{}));
  auto fused = model.decoder(batch, K, DecodeOptions{});
  auto general = model.decoder(batch, K, DecodeOptions{.reference_step = true});
  const int N = batch.B * K;
  std::vector<int> prev(N, Vocab::kBos);
  for (int t = 0; t < 5; ++t) {
    NextTokenScores a = general->step(prev), b = fused->step(prev);
    ASSERT_EQ(a.logits.shape(), b.logits.shape());
    ASSERT_EQ(a.weights.shape(), b.weights.shape());
    const std::vector<float> la = a.logits.to_vector(), lb = b.logits.to_vector();
    const std::vector<float> wa = a.weights.to_vector(), wb = b.weights.to_vector();
    for (size_t i = 0; i < la.size(); ++i) ASSERT_NEAR(la[i], lb[i], 1e-5f) << "step " << t << " logit " << i;
    for (size_t i = 0; i < wa.size(); ++i) ASSERT_NEAR(wa[i], wb[i], 1e-6f) << "step " << t << " weight " << i;
    for (int n = 0; n < N; ++n) prev[n] = 4 + (n + t) % 2;
    if (K > 1) {  // every row continues the first row of its source, or itself
      std::vector<int> parents(N);
      for (int n = 0; n < N; ++n) parents[n] = (t % 2) ? n / K * K : n;
      general->reorder(parents), fused->reorder(parents);
    }
  }
}

TEST(Seq2Seq, FusedDecodingStepMatchesTheGeneralStep) {
  // The fused step (soft attention, every score) against the general one, step by step with
  // the same tokens and beam reorders, over padded sources: logits and weights.
  std::vector<EncodedExample> ex = {{{4, 5, 6, 5, 4}, {}}, {{6, 4}, {}}, {{5, 5, 6}, {}}};
  Batch batch = make_batch(ex, {0, 1, 2});
  auto randomised = [](const Seq2SeqConfig& c) {
    Rng rng(42);
    auto model = std::make_unique<Seq2Seq>(c, rng);
    for (auto& p : model->parameters())  // biases start at zero: make every weight matter
      for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 1.6f * rng.uniform() - 0.8f;
    return model;
  };
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
    for (ScoreKind score : {ScoreKind::kAdditive, ScoreKind::kDot, ScoreKind::kScaledDot, ScoreKind::kGeneral})
      for (bool feed : {true, false})
        for (int layers : {1, 2})
          for (int K : {1, 3}) {
            SCOPED_TRACE(to_string(cell) + " " + to_string(score) + (feed ? " feed" : "") + " layers " +
                         std::to_string(layers) + " K " + std::to_string(K));
            Seq2SeqConfig c = tiny_config(cell, score, feed);
            c.encoder_layers = layers;
            expect_fused_step_matches_general(*randomised(c), batch, K);
          }
  {  // a vocabulary larger than the tokens to decode: the input gates are products, not table rows
    SCOPED_TRACE("no target table");
    Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
    c.tgt_vocab = 200;
    expect_fused_step_matches_general(*randomised(c), batch, 1);
  }
  // Where it does not apply, decoder() runs the general step.
  Seq2SeqConfig local = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  local.attention.mechanism = "local-m";
  Seq2SeqConfig sparse = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  sparse.attention.normalizer = Normalizer::kSparsemax;
  for (const Seq2SeqConfig& c : {local, sparse}) {
    Rng rng(43);
    EXPECT_FALSE(Seq2Seq(c, rng).fused_step_applies(DecodeOptions{}));
  }
  Rng rng(44);
  Seq2Seq soft(tiny_config(CellKind::kGru, ScoreKind::kAdditive, true), rng);
  EXPECT_FALSE(soft.fused_step_applies(DecodeOptions{.window_back = 1, .window_forward = 2}));
}

TEST(Seq2SeqGrad, StackedEncoder) {
  std::vector<EncodedExample> ex = {{{4, 5, 6}, {4, 5}}, {{6, 4}, {5}}};
  Batch batch = make_batch(ex, {0, 1});
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm}) {
    Rng rng(40);
    Seq2SeqConfig c = tiny_config(cell, ScoreKind::kGeneral, true);
    c.encoder_layers = 2;
    Seq2Seq model(c, rng);
    EXPECT_EQ(model.parameters().size(),
              Seq2Seq(tiny_config(cell, ScoreKind::kGeneral, true), rng).parameters().size() + 8);
    gradcheck([&](const std::vector<Var>&) { return model.loss(batch, 0.0f, nullptr); }, with_params(model));
  }
}

// Learns to reverse short strings: enough to show that the whole stack trains.
std::vector<Example> reverse_task(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<Example> out;
  for (int i = 0; i < n; ++i) {
    std::string s;
    for (int k = 0, len = 2 + static_cast<int>(rng.below(4)); k < len; ++k) s += static_cast<char>('a' + rng.below(5));
    out.push_back({s, std::string(s.rbegin(), s.rend())});
  }
  return out;
}

TrainOptions reverse_options(const std::string& dir) {
  write_tsv(dir + "/train.tsv", reverse_task(600, 1));
  write_tsv(dir + "/dev.tsv", reverse_task(60, 2));
  TrainOptions o;
  o.task = "tsv", o.train_path = dir + "/train.tsv", o.dev_path = dir + "/dev.tsv", o.out = dir + "/model";
  o.model.rnn.hidden = 32, o.model.rnn.embedding = 16, o.model.rnn.attention.attention_dim = 16;
  o.batch = 16, o.epochs = 6, o.seed = 5, o.lr = 5e-3f;
  return o;
}

// A run stopped by its time budget mid-epoch reports the epoch it was in (it used to say the next).
TEST(Training, TimeBudgetStopReportsTheEpochItStoppedIn) {
  const std::string dir = temp_dir("budget");
  TrainOptions o = reverse_options(dir);
  o.max_minutes = 1e-7;  // spent after the first step
  const TrainResult r = Trainer(o).run();
  EXPECT_EQ(r.steps, 1);
  EXPECT_EQ(r.best.epoch, 1);
  EXPECT_NE(r.stop_reason.find("time budget of 1e-07 minutes used"), std::string::npos) << r.stop_reason;
  EXPECT_NE(read_file(o.out + "/metrics.jsonl").find("\"epoch\":1,"), std::string::npos)
      << read_file(o.out + "/metrics.jsonl");
}

// A step budget stops after exactly that many updates, mid-epoch, and evaluates the last of them.
TEST(Training, StepBudgetStopsAfterThatManyUpdates) {
  const std::string dir = temp_dir("steps");
  TrainOptions o = reverse_options(dir);
  o.max_steps = 3;
  const TrainResult r = Trainer(o).run();
  EXPECT_EQ(r.steps, 3);
  EXPECT_NE(r.stop_reason.find("step budget of 3 updates"), std::string::npos) << r.stop_reason;
  EXPECT_NE(read_file(o.out + "/metrics.jsonl").find("\"step\":3,"), std::string::npos)
      << read_file(o.out + "/metrics.jsonl");
  o.max_steps = -1;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

// A cooldown is a part of a step budget: none without one, none longer.
TEST(Training, CooldownNeedsAStepBudgetAndFitsInIt) {
  TrainOptions o = reverse_options(temp_dir("cooldown"));
  o.max_steps = 3, o.cooldown = 3;
  EXPECT_NO_THROW(o.validate());
  o.cooldown = 4;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o.max_steps = 0, o.cooldown = 1;
  try {
    o.validate();
    ADD_FAILURE() << "a cooldown without a step budget was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--cooldown 1 needs --max-steps"), std::string::npos) << e.what();
  }
}

TEST(Training, LearnsToReverseAndIsByteForByteDeterministic) {
  const std::string dir = temp_dir("reverse");
  TrainOptions o = reverse_options(dir);
  TrainResult r = Trainer(o).run();
  EXPECT_GT(r.best.dev_exact_match, 0.8) << "dev exact match " << r.best.dev_exact_match;
  const std::string first = read_file(o.out + "/model.safetensors");
  std::filesystem::remove_all(o.out);
  Trainer(o).run();
  EXPECT_EQ(read_file(o.out + "/model.safetensors"), first) << "same seed, same threads: identical weights";
  // The directory holds a complete, loadable model whose outputs are the trained ones.
  Translator t = Translator::load(o.out);
  std::vector<Translation> out = t.translate({"abcd", "ee"}, DecodeOptions{});
  EXPECT_EQ(out[0].text, "dcba");
  EXPECT_EQ(out[0].attention.size(), 5u);  // 4 tokens + </s>
  EXPECT_EQ(out[0].attention[0].size(), 4u);
  std::vector<Translation> beam = t.translate({"abcd", "ee"}, DecodeOptions{.beam = 4});
  EXPECT_EQ(beam[0].text, "dcba");
}

// A model whose decoders forward to `inner`'s, counting the rows dropped or refusing to drop.
class KeepProbe : public Model {
 public:
  KeepProbe(const Model& inner, bool allow) : inner_(inner), allow_(allow) {}
  Architecture architecture() const override { return inner_.architecture(); }
  nlohmann::json config_json() const override { return inner_.config_json(); }
  Var logits(const Batch& b, Rng* r) const override { return inner_.logits(b, r); }
  using Model::loss;
  Var loss(const Batch& b, const CrossEntropyOptions& t, Rng* r) const override { return inner_.loss(b, t, r); }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    inner_.collect(prefix, out);
  }
  std::unique_ptr<StepDecoder> decoder(const Batch& batch, int K, const DecodeOptions& o) const override {
    struct Forward : StepDecoder {
      std::unique_ptr<StepDecoder> d;
      const KeepProbe* probe;
      NextTokenScores step(const std::vector<int>& prev) override { return d->step(prev); }
      void reorder(const std::vector<int>& parents) override { d->reorder(parents); }
      bool keep(const std::vector<int>& rows) override {
        if (!probe->allow_) return false;
        probe->dropped_ += static_cast<int>(probe->rows_before_) - static_cast<int>(rows.size());
        probe->rows_before_ = rows.size();
        return d->keep(rows);
      }
    };
    auto f = std::make_unique<Forward>();
    f->d = inner_.decoder(batch, K, o), f->probe = this;
    rows_before_ = size_t(batch.B) * K, dropped_ = 0;
    return f;
  }
  int dropped() const { return dropped_; }

 private:
  const Model& inner_;
  bool allow_;
  mutable size_t rows_before_ = 0;
  mutable int dropped_ = 0;
};

// Decodes `batch` greedily and with beam 3, dropping finished sentences and not: the same tokens,
// scores and attention. `model`'s weights are random; the </s> bias is set where the sentences
// end at the most different steps, so that there is something to drop.
void expect_dropping_changes_nothing(const Model& model, float* eos_bias, const Batch& batch, const DecodeOptions& o) {
  KeepProbe dropping(model, true), stepping_all(model, false);
  size_t most = 0;
  float best = 0.0f;
  for (float bias = -8.0f; bias <= 8.0f; bias += 0.5f) {
    *eos_bias = bias;
    std::set<size_t> lengths;
    for (const Hypothesis& h : decode(stepping_all, batch, o)) lengths.insert(h.tokens.size());
    if (lengths.size() > most) most = lengths.size(), best = bias;
  }
  ASSERT_GE(most, 3u) << "outputs of too few lengths to exercise the dropping";
  *eos_bias = best;
  for (int beam : {1, 3}) {
    SCOPED_TRACE("beam " + std::to_string(beam));
    DecodeOptions ob = o;
    ob.beam = beam;
    const std::vector<Hypothesis> a = decode(dropping, batch, ob), b = decode(stepping_all, batch, ob);
    EXPECT_GT(dropping.dropped(), 0) << "no sentence was dropped: the test checks nothing";
    for (int r = 0; r < batch.B; ++r) {
      EXPECT_EQ(a[r].tokens, b[r].tokens) << "row " << r;
      EXPECT_NEAR(a[r].score, b[r].score, 1e-5f) << "row " << r;
      ASSERT_EQ(a[r].attention.size(), b[r].attention.size()) << "row " << r;
      for (size_t t = 0; t < a[r].attention.size(); ++t)
        for (size_t s = 0; s < a[r].attention[t].size(); ++s)
          EXPECT_NEAR(a[r].attention[t][s], b[r].attention[t][s], 1e-6f) << "row " << r << " step " << t;
    }
  }
}

// Every weight uniform in [-1, 1]; returns the output layer's </s> bias.
float* randomise(const Model& model, Rng& rng) {
  float* eos_bias = nullptr;
  for (auto& p : model.parameters()) {
    for (int64_t i = 0; i < p.var.value().numel(); ++i) p.var.value().data()[i] = 2.0f * rng.uniform() - 1.0f;
    if (p.name == "output.bias") eos_bias = p.var.value().data() + Vocab::kEos;
  }
  return eos_bias;
}

TEST(Decode, SearchesDropFinishedSentencesWithoutChangingAnyOutput) {
  std::vector<EncodedExample> ex;
  Rng data(45);
  for (int i = 0; i < 24; ++i) {
    EncodedExample e;
    const int n = 1 + static_cast<int>(data.below(6));
    for (int k = 0; k < n; ++k) e.src.push_back(4 + static_cast<int>(data.below(3)));
    ex.push_back(e);
  }
  std::vector<int> idx(ex.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int>(i);
  const Batch batch = make_batch(ex, idx);
  for (CellKind cell : {CellKind::kGru, CellKind::kLstm})
    for (const std::string kind : {"soft", "monotonic"})
      for (bool reference : {false, true}) {
        SCOPED_TRACE(to_string(cell) + " " + kind + (reference ? " reference step" : ""));
        Seq2SeqConfig c = tiny_config(cell, ScoreKind::kAdditive, true);
        c.attention.mechanism = kind, c.hidden = 16, c.embedding = 8, c.encoder_hidden = 8;
        Rng rng(46);
        Seq2Seq model(c, rng);
        expect_dropping_changes_nothing(
            model, randomise(model, rng), batch,
            {.beam = 1, .length_penalty = 0.0f, .max_length = 12, .reference_step = reference});
      }
  SCOPED_TRACE("transformer");
  TransformerConfig tc;
  tc.dim = 16, tc.heads = 2, tc.ffn = 24, tc.encoder_layers = 1, tc.decoder_layers = 2, tc.dropout = 0.0f;
  tc.max_length = 32, tc.src_vocab = 7, tc.tgt_vocab = 6;
  Rng rng(48);  // (with some seeds every sentence ends at one of two steps: nothing to test)
  Transformer transformer(tc, rng);
  expect_dropping_changes_nothing(transformer, randomise(transformer, rng), batch,
                                  {.beam = 1, .length_penalty = 0.0f, .max_length = 12});
}

TEST(Decode, BeamSearchNeverScoresBelowGreedy) {
  Rng rng(34);
  Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  c.hidden = 8, c.embedding = 6;
  Seq2Seq model(c, rng);
  std::vector<EncodedExample> ex = {{{4, 5, 6}, {}}, {{6, 4}, {}}, {{5}, {}}};
  Batch batch = make_batch(ex, {0, 1, 2});
  auto greedy = decode(model, batch, {.beam = 1, .length_penalty = 0.0f, .max_length = 6});
  auto beam = decode(model, batch, {.beam = 5, .length_penalty = 0.0f, .max_length = 6});
  for (int b = 0; b < 3; ++b) EXPECT_GE(beam[b].score, greedy[b].score - 1e-4f) << "row " << b;
  auto beam1 = decode(model, batch, {.beam = 1, .length_penalty = 0.0f, .max_length = 6});
  for (int b = 0; b < 3; ++b) EXPECT_EQ(beam1[b].tokens, greedy[b].tokens);
}

TEST(Decode, WindowConstraintKeepsAttentionNearThePreviousPosition) {
  Rng rng(41);
  Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  c.hidden = 8, c.embedding = 6;
  Seq2Seq model(c, rng);
  std::vector<EncodedExample> ex;
  for (int i = 0; i < 5; ++i) {
    EncodedExample e;
    for (int k = 0; k < 6 + i; ++k) e.src.push_back(4 + static_cast<int>(rng.below(3)));
    ex.push_back(e);
  }
  Batch batch = make_batch(ex, {0, 1, 2, 3, 4});
  for (int beam : {1, 3}) {
    auto hyps = decode(model, batch,
                       {.beam = beam, .length_penalty = 1.0f, .max_length = 8, .window_back = 0, .window_forward = 1});
    for (const auto& h : hyps) {
      int last = -1;
      for (const auto& row : h.attention) {
        double total = 0;
        for (float w : row) total += w;
        if (total == 0.0) continue;  // nothing left inside the window
        const int at = static_cast<int>(std::max_element(row.begin(), row.end()) - row.begin());
        if (last >= 0) {
          EXPECT_GE(at, last) << "beam " << beam;
          EXPECT_LE(at, last + 1) << "beam " << beam;
          for (size_t s = 0; s < row.size(); ++s) {
            if (int(s) < last || int(s) > last + 1) {
              EXPECT_EQ(row[s], 0.0f);
            }
          }
        }
        last = at;
      }
    }
  }
}

TEST(Checkpoint, SafetensorsRoundTripAndCorruptFilesAreRejected) {
  Rng rng(35);
  Seq2Seq model(tiny_config(CellKind::kLstm, ScoreKind::kGeneral, true), rng);
  const std::string dir = temp_dir("ckpt"), path = dir + "/m.safetensors";
  save_safetensors(path, model.parameters());
  const std::string bytes = read_file(path);
  auto loaded = load_safetensors(path);
  EXPECT_EQ(loaded.size(), model.parameters().size());
  for (const auto& p : model.parameters())
    EXPECT_EQ(loaded.at(p.name).to_vector(), p.var.value().to_vector()) << p.name;

  auto expect_error = [&](const std::string& data, const std::string& needle) {
    try {
      parse_safetensors(data, "x.safetensors");
      ADD_FAILURE() << "accepted a bad file; expected: " << needle;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("x.safetensors"), std::string::npos) << e.what();
    }
  };
  expect_error(bytes.substr(0, 5), "truncated");
  expect_error(bytes.substr(0, bytes.size() - 4), "truncated");
  std::string huge = bytes;
  huge[7] = 0x7f;
  expect_error(huge, "exceeds");
  std::string notjson = bytes;
  notjson[8] = '#';
  expect_error(notjson, "JSON");
  std::string dtype = bytes;
  dtype.replace(dtype.find("F32"), 3, "F16");
  expect_error(dtype, "dtype");
  // A shape that does not fit the model is caught on assignment.
  Rng rng2(36);
  Seq2SeqConfig other = tiny_config(CellKind::kLstm, ScoreKind::kGeneral, true);
  other.hidden = 6;
  Seq2Seq wrong(other, rng2);
  EXPECT_THROW(assign_parameters(wrong.parameters(), loaded, path), std::runtime_error);
}

// A Transformer's directory names its architecture in config.json and loads back to the same
// model: identical weights, logits and translations.
TEST(Checkpoint, TransformerModelDirectoryRoundTrips) {
  const std::string dir = temp_dir("transformer");
  Rng rng(38);
  Vocab sv, tv;
  for (const char* t : {"a", "b", "c"}) sv.add(t), tv.add(t);
  ModelConfig mc;
  mc.architecture = Architecture::kTransformer;
  mc.transformer.dim = 16, mc.transformer.heads = 2, mc.transformer.ffn = 24;
  mc.transformer.encoder_layers = mc.transformer.decoder_layers = 1, mc.transformer.max_length = 32;
  mc.set_vocabularies(sv.size(), tv.size());
  const Tokenizer chars{Tokenizer::Kind::kChar, false, false};
  Translator t(mc.build(rng), chars, chars, sv, tv);
  t.save(dir);
  const nlohmann::json config = nlohmann::json::parse(read_file(dir + "/config.json"));
  EXPECT_EQ(config["model"]["architecture"], "transformer");
  EXPECT_EQ(config["model"]["dim"], 16);
  const Translator u = Translator::load(dir);
  EXPECT_EQ(u.model().architecture(), Architecture::kTransformer);
  const auto a = t.model().parameters(), b = u.model().parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].var.value().to_vector(), b[i].var.value().to_vector()) << a[i].name;
  }
  const auto x = t.translate({"abc", "cab"}, {.beam = 3}), y = u.translate({"abc", "cab"}, {.beam = 3});
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_EQ(x[i].text, y[i].text);
    EXPECT_EQ(x[i].maps.size(), 2u);  // one layer, two heads
    EXPECT_EQ(x[i].maps, y[i].maps);
  }
  // A mistyped architecture is an error naming the file and the value.
  nlohmann::json bad = config;
  bad["model"]["architecture"] = "lstm";
  std::filesystem::remove(dir + "/checkpoint.json");  // else the manifest refuses the edited file first
  write_file_atomic(dir + "/config.json", bad.dump());
  try {
    Translator::load(dir);
    ADD_FAILURE() << "loaded an unknown architecture";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/config.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'lstm'"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, LoadingAModelDirectoryValidatesEveryFile) {
  const std::string dir = temp_dir("bundle");
  Rng rng(37);
  Seq2SeqConfig c = tiny_config(CellKind::kGru, ScoreKind::kAdditive, true);
  Vocab sv, tv;
  for (const char* t : {"a", "b", "c"}) sv.add(t);
  for (const char* t : {"x", "y"}) tv.add(t);
  Translator t(std::make_unique<Seq2Seq>(c, rng), {}, {}, sv, tv);
  t.save(dir);
  EXPECT_NO_THROW(Translator::load(dir));
  const std::string good = read_file(dir + "/model.safetensors");
  write_file_atomic(dir + "/model.safetensors", good.substr(0, good.size() / 2));
  EXPECT_THROW(Translator::load(dir), std::runtime_error);
  write_file_atomic(dir + "/model.safetensors", good);
  write_file_atomic(dir + "/tgt_vocab.json", "[\"<pad>\", \"<unk>\", \"<s>\", \"</s>\", \"x\", \"x\"]");
  EXPECT_THROW(Translator::load(dir), std::runtime_error);
  EXPECT_THROW(Translator::load(dir + "/nope"), std::runtime_error);
}

}  // namespace
}  // namespace attend
