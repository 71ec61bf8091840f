// attend models: the RNN encoder-decoder with attention (Bahdanau et al. 2015; Luong et al. 2015).
//
// The encoder (bidirectional GRU by default, LSTM optional; one or more stacked layers) reads
// the source and produces the hidden states h_1..h_S (those of its top layer). The decoder starts from the encoder's
// last state through a learned bridge, s_0 = tanh(W_b [→h_S; ←h_1] + b_b). At every step t:
//   s_t  = RNN(s_{t-1}, [emb(y_{t-1}); h̃_{t-1}])      (h̃ input feeding is optional)
// (h_s has 2 x encoder_hidden values with a bidirectional encoder; s_t, h̃_t have `hidden`.)
//   a_t  = softmax(score(s_t, h_1..h_S))              (the attention weights, [B,S])
//   c_t  = Σ_s a_t[s] h_s                             (the context)
//   h̃_t  = tanh(W_c [c_t; s_t])                       (Luong et al. 2015, eq. 5)
//   p(y_t | y_<t, x) = softmax(W_o h̃_t + b_o)
#pragma once

#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attend/attention/mechanism.h"
#include "attend/data/batch.h"
#include "attend/models/model.h"
#include "attend/nn/linear.h"
#include "attend/nn/rnn.h"
#include "attend/ops/int8.h"

namespace attend {

struct FusedInt8;  // models/fused_soft_decoder.h

struct Seq2SeqConfig {
  CellKind cell = CellKind::kGru;
  int embedding = 64;
  int hidden = 128;        // decoder state size
  int encoder_hidden = 0;  // per encoder direction; 0 = hidden/2 when bidirectional, else hidden
  int encoder_layers = 1;  // stacked recurrent layers, dropout between them
  bool bidirectional = true;
  AttentionConfig attention;  // mechanism, score, normaliser, attention size and the mechanism's options
  bool input_feeding = true;
  float dropout = 0.1f;
  int src_vocab = 0, tgt_vocab = 0;
  void validate() const;  // throws std::invalid_argument naming the bad field and value
  int encoder_size() const { return encoder_hidden > 0 ? encoder_hidden : bidirectional ? hidden / 2 : hidden; }
  int memory_size() const { return encoder_size() * (bidirectional ? 2 : 1); }  // size of h_1..h_S
};
void to_json(nlohmann::json& j, const Seq2SeqConfig& c);
void from_json(const nlohmann::json& j, Seq2SeqConfig& c);

class Seq2Seq : public Model {
 public:
  // Input gates emb(v) W_ih + b_ih for every vocabulary entry v, [V, G*H]: fp32, or int8 with a
  // scale per entry once the model is quantized (freeze(), quantize()). Undefined: neither.
  struct GateTable {
    Var fp32;
    std::shared_ptr<const Int8Weight> int8;
    bool defined() const { return fp32.defined() || int8 != nullptr; }
    Var rows(const std::vector<int>& ids) const;  // [N, G*H]
    // The same into out [N, G*H], for ids in [0, V) (the caller checks them).
    void rows(const std::vector<int>& ids, float* out) const;
    GateTable in_int8() const;  // an fp32 table quantized per entry; an int8 one as it is
  };
  struct Encoded {
    AttentionMemory memory;  // keys/values [B,S,M], mask [B,S], lengths
    RnnState bridge;         // the decoder's initial state
    GateTable target_gates;  // inference: emb(v) W_ih[:E] + b_ih for every target token v
    Var memory_combined;     // inference: h_s W_c[:M] for every source position, [B,S,H] (see step)
    int B = 0, S = 0;
  };
  struct DecoderState {
    RnnState rnn;                    // s_{t-1}
    Var feed;                        // h̃_{t-1} [B,H] (zeros at t = 0); undefined without input feeding
    AttentionState attn;             // what the attention mechanism carries between steps
    std::vector<int> last_attended;  // decoding with a window constraint: argmax of the previous step
  };
  // Decoding only: keep attention within [last - back, last + forward] of the previous argmax.
  struct WindowConstraint {
    int back = 0, forward = 0;
  };
  struct StepOutput {
    Var logits;       // [B,V]
    Var weights;      // [B,S]
    Var attentional;  // h̃_t [B,H]
    Tensor trace;     // [B,K] what the mechanism exposes (trace_names()), or empty
    DecoderState state;
  };

  Seq2Seq() = default;
  Seq2Seq(const Seq2SeqConfig& config, Rng& rng);
  const Seq2SeqConfig& config() const { return config_; }

  // src: [S*B] time-major ids, lengths [B]. dropout_rng == nullptr means no dropout (inference).
  Encoded encode(const std::vector<int>& src, const std::vector<int>& lengths, int S, Rng* dropout_rng) const;
  DecoderState initial_state(const Encoded& enc) const;
  // Decoding: precompute enc.memory_combined, the memory's part of the attentional layer. Since
  // c_t = a_t h (a weighted sum of the memory), W_c[c_t; s_t] = a_t (h W_c[:M]) + s_t W_c[M:], so
  // each step multiplies S weights instead of streaming the M x H block of W_c: at batch 1 that
  // block is a fifth of the weights a step reads.
  void precompute_memory_combined(Encoded& enc) const;
  // One decoder step for the previous tokens prev [B].
  StepOutput step(const std::vector<int>& prev, const DecoderState& state, const Encoded& enc, Rng* dropout_rng,
                  const WindowConstraint* window = nullptr) const;
  // Teacher-forced output logits for every target step, [T*B, V] in time-major order.
  // `final_state` receives the attention state after the last step (its loss terms: coverage
  // penalty, hard attention's sampled log-probabilities and entropy). With an Rng, dropout is
  // on and hard attention samples; without, it takes the argmax.
  Var logits(const Batch& batch, Rng* dropout_rng, AttentionState* final_state) const;
  Var logits(const Batch& batch, Rng* dropout_rng) const override { return logits(batch, dropout_rng, nullptr); }
  // Teacher-forced mean cross-entropy over the batch's target tokens, plus the mechanism's own
  // terms: See et al.'s coverage loss; for hard attention trained with REINFORCE, Xu et al.'s
  // -(R - b) log a(s~) - lambda_e H(a), with R the sentence's log-likelihood and b its moving
  // average (a buffer of the model, "attention.reinforce_baseline", saved with the weights).
  using Model::loss;
  Var loss(const Batch& batch, const CrossEntropyOptions& targets, Rng* dropout_rng) const override;
  // Decoding steps over the encoded batch (seq2seq_decoder.cpp): the mechanism's inference mode
  // (hard attention's argmax, monotonic attention's hard pointer) and the options' window constraint.
  std::unique_ptr<StepDecoder> decoder(const Batch& batch, int rows_per_source,
                                       const DecodeOptions& options) const override;
  // Whether decoder() runs the fused step (soft attention with softmax, any score, no window
  // constraint, not options.reference_step) instead of the general one.
  bool fused_step_applies(const DecodeOptions& options) const;
  Architecture architecture() const override { return Architecture::kRnn; }
  nlohmann::json config_json() const override;
  std::vector<std::string> trace_names() const override;  // the mechanism's (MechanismInfo::trace)
  // Computes the input tables of every source and target token once (see use_frozen below); in
  // int8 when the model is quantized.
  void freeze() override;
  // Every affine product in int8 (the attention mechanism's parameters stay fp32), and the
  // frozen tables with them.
  void quantize() override;
  // After quantize(): frees the fp32 weights of everything quantize() covered (freezing first,
  // so that decoding reads the embeddings only through the int8 tables).
  void release_fp32() override;

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;

 private:
  // h̃_t = tanh(W_c [c_t; s_t]) (Luong et al. 2015, eq. 5) for the attention result a and state s [B,H].
  Var attentional(const AttentionResult& a, const Var& s, const Encoded& enc) const;
  // The decoder's input gates for tokens `ids` from their embeddings: emb W_ih[:E] + b_ih.
  Var embedding_gates(const std::vector<int>& ids, const Encoded& enc, Rng* dropout_rng) const;
  // One decoder step from the embedding part of its gates.
  RnnState advance_decoder_cell(const Var& gates_emb, const DecoderState& state) const;
  // The attention memory with the window constraint folded into its mask, so that the
  // mechanism normalises over the window and its state (coverage, previous weights) sees only
  // what it attended to.
  AttentionMemory window_memory(const Encoded& enc, const std::vector<int>& last, const WindowConstraint& w) const;
  // freeze()'s tables: emb(v) W_ih + b_ih of the first encoder layer per direction ([V_src, G*He])
  // and of the decoder's embedding rows ([V_tgt, G*H]). Used only without dropout and when
  // nothing is recorded (so training never sees them).
  struct Frozen {
    std::vector<GateTable> source_gates;
    GateTable target_gates;
    Frozen in_int8() const;  // every table quantized per entry
  };
  bool use_frozen(Rng* dropout_rng) const;
  // The decoder's embedding-part input gates of every target token, emb(v) W_ih[:E] + b_ih, [V, G*H].
  Var target_gate_table() const;
  // What enc.target_gates holds for `tokens` target tokens: freeze()'s table, a fresh one when
  // the vocabulary is smaller than the tokens (and no dropout), else nothing (per-token products).
  GateTable target_gates_for(int64_t tokens, Rng* dropout_rng) const;
  std::shared_ptr<const Frozen> frozen_;
  Seq2SeqConfig config_;
  Embedding src_emb_, tgt_emb_;
  std::vector<Rnn> encoder_;  // layers
  Linear bridge_h_, bridge_c_;
  RnnCell decoder_cell_;
  std::shared_ptr<AttentionMechanism> attention_;
  Linear attentional_layer_, output_;
  std::shared_ptr<const FusedInt8> int8_;  // after quantize()
};

}  // namespace attend
