// attend train: the training loop for either model (teacher forcing, Adam, dev-set early
// stopping, best-checkpoint keeping) and its resumable training state.
//
// A run in directory DIR writes:
//   model.safetensors, config.json, ...   the best model so far (see translator.h)
//   train_state.safetensors               everything needed to continue exactly where it was:
//                                         current weights ("param.*"), Adam moments ("adam.m.*",
//                                         "adam.v.*") and, as JSON in the header's metadata, the
//                                         options, step, data-order position, RNG states,
//                                         learning-rate scale and early-stopping bookkeeping.
// Both are replaced atomically, so a run killed at any moment (even SIGKILL) resumes from the
// last saved state, and the resumed run ends with the same bytes as an uninterrupted one
// (same seed and thread count).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "attend/data/vocab.h"
#include "attend/models/model_config.h"

namespace attend {

struct TrainOptions {
  std::string task = "dates";  // "dates" (built in), "g2p" (data_dir from attend data cmudict) or "tsv"
  std::string train_path, dev_path;
  std::string data_dir;        // g2p: holds train.tsv and dev.tsv
  int dates_train = 40000, dates_dev = 1000, dates_test = 2000;  // sizes of the generated dates splits
  ModelConfig model;  // RNN or Transformer; vocabulary sizes are filled in from the data
  Tokenizer source, target;
  int batch = 64;
  int epochs = 30;
  double max_minutes = 0.0;  // 0 = no limit
  int64_t max_steps = 0;     // updates before stopping; 0 = no limit (a budget that load cannot stretch)
  uint64_t seed = 1;
  int threads = 1;
  float lr = 2e-3f;
  std::string schedule = "constant";
  int warmup = 0;
  float clip_norm = 5.0f;
  float weight_decay = 0.0f;
  float label_smoothing = 0.1f;
  int patience = 4;      // evaluations without a better dev score before stopping
  int eval_every = 0;    // steps between dev evaluations; 0 = once per epoch
  int max_nonfinite = 5; // consecutive non-finite losses/gradients before giving up
  int save_every = 500;  // steps between training-state saves (0 = only at evaluations)
  bool resume = false;   // continue the run whose training state is in `out`
  std::string out;       // model directory
  void validate() const; // throws std::invalid_argument naming the option and value
};
void to_json(nlohmann::json& j, const TrainOptions& o);
void from_json(const nlohmann::json& j, TrainOptions& o);

inline constexpr const char* kTrainStateFile = "train_state.safetensors";
// The options a run in `dir` was started with, read from its training state (for resuming);
// throws std::runtime_error naming the file when there is none or it is damaged.
TrainOptions load_train_options(const std::string& dir);

struct TrainProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps_per_epoch = 0, step_in_epoch = 0;
  double loss = 0.0;           // running mean over the epoch
  double tokens_per_second = 0.0;
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;    // to the end of the epoch budget (or the time budget, if sooner)
};

struct EvalRecord {
  int64_t step = 0;
  int epoch = 0;
  double train_loss = 0.0;
  double dev_exact_match = 0.0, dev_error_rate = 0.0;
  double lr = 0.0;
  double elapsed_seconds = 0.0;
  bool best = false;
};

struct TrainCallbacks {
  std::function<void(const TrainProgress&)> on_step;
  std::function<void(const EvalRecord&)> on_eval;
  std::function<void(const std::string&)> on_message;  // warnings and notices
  // Polled after every step; returning true saves the training state and ends the run
  // (TrainResult::interrupted), e.g. from a SIGINT/SIGTERM handler's flag.
  std::function<bool()> should_stop;
};

struct TrainResult {
  EvalRecord best;
  int64_t steps = 0;
  double seconds = 0.0;
  std::string stop_reason;
  bool interrupted = false;  // stopped by should_stop; resume with TrainOptions::resume
};

TrainResult train(const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace attend
