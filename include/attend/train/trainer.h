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
// The model is replaced as one unit (io/checkpoint.h) and the state atomically, so a run killed at
// any moment (even SIGKILL) resumes from the last saved state, and the resumed run ends with the
// same bytes as an uninterrupted one (same seed and thread count). A run holds DIR/.lock while it
// works: a second run into the same directory fails at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "attend/data/batch.h"
#include "attend/data/tsv.h"
#include "attend/data/vocab.h"
#include "attend/eval/metrics.h"
#include "attend/models/model_config.h"
#include "attend/random.h"
#include "attend/train/communicator.h"
#include "attend/train/optimizer.h"
#include "attend/train/train_state.h"

namespace attend {

struct TrainOptions {
  std::string task = "dates";        // "dates" (built in), "g2p" (data_dir from attend data cmudict) or "tsv"
  std::string train_path, dev_path;  // source<TAB>target per line
  // Or Moses-style parallel files: line i of *_source is translated by line i of *_target.
  std::string train_source, train_target, dev_source, dev_target;
  std::string data_dir;                                          // g2p: holds train.tsv and dev.tsv
  int dates_train = 40000, dates_dev = 1000, dates_test = 2000;  // sizes of the generated dates splits
  ModelConfig model;  // RNN or Transformer; vocabulary sizes are filled in from the data
  Tokenizer source, target;
  // SentencePiece tokenizers: one model trained on both sides (so that the vocabularies agree)
  // instead of one per side.
  bool joint_vocab = false;
  int batch = 64;
  int64_t batch_tokens = 0;  // > 0: batches of up to this many padded target tokens instead of `batch` sentences
  int accum = 1;             // batches per update (gradient accumulation), the loss a mean over all their tokens
  // The dev metric that picks the best model and stops the run: exact (match), bleu, chrf, loss
  // (teacher-forced), or auto: bleu for sentencepiece targets, else exact.
  std::string metric = "auto";
  // > 0: every evaluation also saves the weights to out/checkpoints/step-NNNNNNNN, keeping the
  // last this many (for attend average).
  int keep_checkpoints = 0;
  // > 0: an exponential moving average of the weights, ema = decay * ema + (1 - decay) * w after
  // every update, is what is evaluated and saved (Marian's --exponential-smoothing, fairseq's
  // --ema-decay); the optimizer trains the raw weights.
  float ema = 0.0f;
  // Several processes: each keeps Adam's moments for its share of the weights only and updates
  // that share (ZeRO stage 1, optimizer.h); the same training as without, up to summation order.
  bool shard_optimizer = false;
  int epochs = 30;
  double max_minutes = 0.0;  // 0 = no limit
  int64_t max_steps = 0;     // updates before stopping; 0 = no limit (a budget that load cannot stretch)
  int64_t cooldown = 0;      // the last updates of max_steps take the learning rate linearly to zero
  uint64_t seed = 1;
  int threads = 1;
  float lr = 2e-3f;
  std::string schedule = "constant";
  int warmup = 0;
  float clip_norm = 5.0f;
  float weight_decay = 0.0f;
  float label_smoothing = 0.1f;
  int patience = 4;       // evaluations without a better dev score before stopping
  int lr_patience = 1;    // ... before the learning rate is halved (again after as many more); 0 = never
  int eval_every = 0;     // steps between dev evaluations; 0 = once per epoch
  int max_nonfinite = 5;  // consecutive non-finite losses/gradients before giving up
  int save_every = 500;   // steps between training-state saves (0 = only at evaluations)
  bool resume = false;    // continue the run whose training state is in `out`
  // A new run that starts from the weights of the model in this directory (fairseq's
  // --finetune-from-model, OpenNMT's -train_from with -reset_optim all): the same architecture,
  // sizes, tokenizers and vocabularies (its SentencePiece models are taken over); the optimizer,
  // learning-rate schedule and data order start afresh. Other settings (dropout, lr, batches) may differ.
  std::string init_from;
  // Token-level knowledge distillation (Kim & Rush 2016; Sun et al. 2019 for G2P): the models in
  // these directories (trained on data with the same vocabularies, any architecture) give, for
  // every target token of every batch, the mean of their next-token probabilities; the loss's
  // target distribution is (1 - teacher_weight) x the label-smoothed reference + teacher_weight x
  // that mean. Empty: no teacher.
  std::vector<std::string> teachers;
  float teacher_weight = 0.5f;
  // Only the K most probable tokens of the teachers' mean distribution, renormalised (the rest
  // 0), whether cached or not: with a cache, 8 bytes per token and K instead of 4 per token and
  // vocabulary entry, which lets translation vocabularies fit. 0 = the whole distribution.
  int teacher_top_k = 0;
  // The teachers' probabilities of every training example are computed once and kept when they
  // take at most this many MiB (one float per target token and vocabulary entry), else for every
  // batch; 0: always for every batch. Runs saved before the cache existed read 0.
  int64_t teacher_cache_mb = 4096;
  bool overwrite = false;  // train into `out` even though it holds another run's model or state
  std::string out;         // model directory
  std::string command;     // the command line that started the run, for reports (not a setting)
  void validate() const;   // throws std::invalid_argument naming the option and value
};
void to_json(nlohmann::json& j, const TrainOptions& o);
void from_json(const nlohmann::json& j, TrainOptions& o);

// The settings a resumed run may be given again (the budgets, the machine's, the plateau rule),
// each as its key in TrainOptions' JSON and its command-line flag; every other one must match.
struct ResumableOption {
  const char* key;
  const char* flag;
};
const std::vector<ResumableOption>& resumable_options();

inline constexpr const char* kTrainStateFile = "train_state.safetensors";
// The options a run in `dir` was started with, read from its training state (for resuming);
// throws std::runtime_error naming the file when there is none or it is damaged.
TrainOptions load_train_options(const std::string& dir);
// How the run in `dir` went, from its training state (for reports): {"options", "step", "epoch",
// "elapsed_seconds", "finished", "stop_reason", "data_files" (path, bytes, sha256 of each data
// file)}; throws like load_train_options.
nlohmann::json load_train_summary(const std::string& dir);

struct TrainProgress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps_per_epoch = 0, step_in_epoch = 0;
  double loss = 0.0;  // running mean over the epoch
  double tokens_per_second = 0.0;
  double elapsed_seconds = 0.0;
  double eta_seconds = 0.0;  // to the end of the epoch budget (or the time budget, if sooner)
};

struct TrainCallbacks {
  std::function<void(const TrainProgress&)> on_step;
  std::function<void(const EvalRecord&)> on_eval;
  std::function<void(const std::string&)> on_message;  // warnings and notices
  // Polled after every step (and every chunk of the teachers' probabilities, which can take
  // minutes before the first step); returning true saves the training state and ends the run
  // (TrainResult::interrupted), e.g. from a SIGINT/SIGTERM handler's flag.
  std::function<bool()> should_stop;
};

struct TrainResult {
  EvalRecord best;
  int64_t steps = 0;
  double seconds = 0.0;
  std::string stop_reason;
  bool interrupted = false;  // stopped by should_stop; resume with TrainOptions::resume
  // Several processes: wall time of the updates (forward, backward, exchange, optimizer) and of
  // the gradient exchange within them, over this run's updates.
  double update_seconds = 0.0, reduce_seconds = 0.0;
  int64_t updates = 0;  // taken by this run (a resumed run: since it resumed)
};

class Translator;
class TeacherCache;
struct Translation;
class DirectoryLock;

// One training run in `options.out`. The constructor takes the directory's lock, finishes or
// discards what a killed run left there, reads and checks the data (before anything is written),
// and builds the model, optimizer and state, or restores them with `options.resume`; run() trains
// until a stopping rule (epochs, budget, early stopping, should_stop) and saves as it goes.
class GradientBuckets;  // src/train/gradient_buckets.h

class Trainer {
 public:
  explicit Trainer(const TrainOptions& options, const TrainCallbacks& callbacks = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainResult run();
  // The pieces of run():
  bool step();        // trains on the epoch's next batch; false when the epoch has none left
  void evaluate();    // the dev set; keeps the best model; may end the run (stop_reason)
  void save_state();  // DIR/train_state.safetensors, atomically
  void restore();     // from DIR/train_state.safetensors (the constructor does this for resume)
  const TrainState& state() const { return state_; }

 private:
  void check_directory();
  void load_data();
  void prepare_subwords();
  std::string dev_metric() const;
  void keep_checkpoint();
  void update_ema();
  void swap_ema();  // exchanges the model's weights with the moving average (evaluate, save)
  // evaluate() on the weights the model has now; tokens_per_second: the training speed since the
  // previous evaluation, for the record.
  void evaluate_weights(double tokens_per_second);
  double dev_loss() const;
  void build_model();
  void start_from_model();  // --init-from: the starting model's weights into the new one
  // Refuses `other` (what: how to name it) unless its vocabularies are this run's, token for
  // token; `why` ends the message.
  void check_vocabularies(const std::string& what, const Translator& other, const std::string& why) const;
  void load_teachers();   // --teacher: the models, refused if one is --out
  bool cache_teachers();  // teacher_cache_, within --teacher-cache-mb; false if should_stop said so
  void check_teachers_unchanged(const nlohmann::json& meta, const std::string& origin) const;
  // The teachers' mean next-token probabilities for every target step of `batch`, [T*B, V]
  // (not computed at all when --teacher-weight is 0: they would count for nothing).
  Tensor teacher_probabilities(const Batch& batch) const;          // from teacher_cache_ when there is one
  Tensor compute_teacher_probabilities(const Batch& batch) const;  // the teachers' forward passes
  std::string tsv_path(bool train) const;
  void check_tokens(const std::vector<EncodedExample>& set, const std::vector<Example>& examples, bool train) const;
  void resume_finished(TrainState& saved, const std::string& origin) const;
  void note_moved_cooldown(const nlohmann::json& saved_options) const;
  void begin_epoch();
  void end_epoch();
  bool after_step();  // evaluations, saves, budgets; true when the run must return now
  double elapsed() const;
  void message(const std::string& m) const;

  // Data parallelism (mpirun -np N): this rank's share of a global batch's examples; the
  // gradients, token counts and losses summed over the ranks; whether any rank must stop.
  std::vector<int> shard(const std::vector<int>& global) const;
  bool any_rank(bool flag) const;
  std::vector<Translation> translate_dev(const std::vector<std::string>& sources) const;
  void check_ranks_agree() const;

  TrainOptions opt_;
  TrainCallbacks cb_;
  const Communicator& comm_ = Communicator::world();  // one process unless started by mpirun
  std::unique_ptr<GradientBuckets> buckets_;          // several processes, unsharded: the exchange
  std::unique_ptr<DirectoryLock> lock_;
  std::vector<Example> train_examples_, dev_examples_, test_examples_;
  std::vector<EncodedExample> train_set_, dev_set_;
  ReferenceSet dev_refs_;  // the dev sources, each with all its references
  std::unique_ptr<Translator> bundle_;
  std::unique_ptr<Translator> start_;                  // --init-from's model, until its weights are copied
  std::vector<std::unique_ptr<Translator>> teachers_;  // --teacher's models
  std::vector<std::string> teachers_sha256_;           // of each one's checkpoint.json: a resumed run's must match
  std::unique_ptr<TeacherCache> teacher_cache_;        // their probabilities of train_set_, when they fit
  std::vector<NamedParameter> params_;
  std::unique_ptr<Adam> adam_;
  std::vector<Tensor> ema_;  // the moving average of params_ (with --ema), in their order
  LrSchedule schedule_;
  Rng rng_{1};
  TrainState state_;
  TrainResult result_;
  std::vector<std::vector<int>> batches_;  // this epoch's batch order
  bool stop_ = false;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now(), tok_t0_ = t0_;
  double tokens_ = 0.0;
  int64_t first_step_ = 0;
  // Training tokens since the previous evaluation ended, and when it ended (EvalRecord's tokens/s).
  double window_tokens_ = 0.0;
  std::chrono::steady_clock::time_point window_t0_ = t0_;
};

}  // namespace attend
