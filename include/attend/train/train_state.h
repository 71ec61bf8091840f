// attend train: the training state, everything besides the tensors that a resumed run needs
// to continue exactly where the interrupted one stopped. Saved as JSON in the header of
// DIR/train_state.safetensors next to the tensors (weights "param.*", Adam moments "adam.*").
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace attend {

// One evaluation on the dev set. score() is the value of its metric, higher is better.
struct EvalRecord {
  int64_t step = 0;
  int epoch = 0;
  double train_loss = 0.0;
  double dev_exact_match = 0.0, dev_error_rate = 0.0;
  double dev_bleu = 0.0, dev_chrf = 0.0;  // of the detokenized outputs (0 unless the metric is bleu or chrf)
  double dev_loss = 0.0;                  // teacher-forced, per target token (0 unless the metric is loss)
  std::string metric = "exact";           // what chose the best model: exact, bleu, chrf or loss
  double lr = 0.0;
  double elapsed_seconds = 0.0;
  // Training target tokens per second between the previous evaluation and this one (the
  // evaluations themselves not counted); 0 in records written before it was kept.
  double tokens_per_second = 0.0;
  bool best = false;
  double score() const;
  bool better_than(const EvalRecord& other) const;  // by the metric (exact: ties broken by error rate)
};
void to_json(nlohmann::json& j, const EvalRecord& r);
void from_json(const nlohmann::json& j, EvalRecord& r);

struct TrainState {
  int64_t step = 0;                     // updates so far
  int epoch = 1;                        // the epoch in progress (1-based)
  uint64_t next_batch = 0;              // position in this epoch's batch order
  std::array<uint64_t, 4> epoch_rng{};  // the RNG before this epoch's shuffle (replayed on resume)
  std::array<uint64_t, 4> rng{};        // the RNG now
  int64_t adam_steps = 0;
  float lr_scale = 1.0f;    // halved whenever the dev score stalls or a step is not finite
  int stale = 0;            // evaluations since the best one
  int nonfinite = 0;        // consecutive non-finite steps
  double epoch_loss = 0.0;  // sum over this epoch's steps
  int64_t epoch_steps = 0;
  int64_t last_eval_step = -1;
  double elapsed_seconds = 0.0;
  EvalRecord best{.dev_exact_match = -1.0};
  std::string metrics;  // metrics.jsonl so far
  bool finished = false;
  bool stopped_on_budget = false;  // finished because --max-steps / --max-minutes ran out
  std::string stop_reason;
  // What the run was trained on: the vocabularies' SHA-256 and each data file's path, size and
  // SHA-256 ([{path, bytes, sha256}]); a resumed run must find the same.
  std::string src_vocab_sha256, tgt_vocab_sha256;
  nlohmann::json data_files = nlohmann::json::array();

  // Throws std::invalid_argument naming the first field out of range (negative counts, a
  // non-finite or non-positive lr_scale, an all-zero RNG, a position past `batches_per_epoch`).
  void validate(int64_t batches_per_epoch) const;
};
void to_json(nlohmann::json& j, const TrainState& s);
void from_json(const nlohmann::json& j, TrainState& s);  // throws std::invalid_argument naming the field

}  // namespace attend
