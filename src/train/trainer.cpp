#include "attend/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <cmath>
#include <iomanip>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "attend/attention/registry.h"
#include "attend/cpu.h"
#include "attend/data/batch.h"
#include "attend/data/dates.h"
#include "attend/data/tsv.h"
#include "attend/eval/metrics.h"
#include "attend/io/checkpoint.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/softmax.h"
#include "attend/data/lines.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"
#include "attend/data/sentencepiece.h"
#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/models/translator.h"
#include "attend/threads.h"
#include "../io/json_field.h"
#include "train/gradient_buckets.h"
#include "attend/train/optimizer.h"
#include "attend/train/teacher_cache.h"

namespace attend {

// Several processes: gradients are exchanged in buckets of this many floats (4 MB), each started
// as soon as backward has finished its parameters (gradient_buckets.h).
constexpr int64_t kBucketFloats = int64_t(1) << 20;

void TrainOptions::validate() const {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (task != "dates" && task != "tsv" && task != "g2p") bad("--task must be dates, g2p or tsv, got '" + task + "'");
  const bool moses_train = !train_source.empty() || !train_target.empty(),
             moses_dev = !dev_source.empty() || !dev_target.empty();
  if (task == "dates" && (!train_path.empty() || !dev_path.empty() || moses_train || moses_dev || !data_dir.empty()))
    bad("--task dates generates its own data; --train, --dev and their -source/-target files are for --task tsv "
        "(or g2p)");
  if (moses_train && (train_source.empty() || train_target.empty()))
    bad("--train-source and --train-target go together (line i of one translates line i of the other)");
  if (moses_dev && (dev_source.empty() || dev_target.empty()))
    bad("--dev-source and --dev-target go together (line i of one translates line i of the other)");
  if ((moses_train && !train_path.empty()) || (moses_dev && !dev_path.empty()))
    bad("give the training and dev data either as TSV files (--train, --dev) or as parallel files "
        "(--train-source/--train-target, --dev-source/--dev-target), not both for one split");
  if (task == "tsv" && ((train_path.empty() && !moses_train) || (dev_path.empty() && !moses_dev)))
    bad("--task tsv needs training data (--train FILE.tsv, or --train-source and --train-target) and dev data "
        "(--dev FILE.tsv, or --dev-source and --dev-target)");
  if (task == "g2p" && data_dir.empty() && (train_path.empty() || dev_path.empty()))
    bad("--task g2p needs --data DIR (from attend data cmudict) or --train and --dev");
  if (joint_vocab && (source.kind != Tokenizer::Kind::kSentencePiece || target.kind != Tokenizer::Kind::kSentencePiece))
    bad("--joint-vocab needs --tokenizer sentencepiece");
  if (joint_vocab && (source.subword_options.vocab_size != target.subword_options.vocab_size ||
                      source.subword_options.type != target.subword_options.type))
    bad("--joint-vocab: the source and target SentencePiece settings differ");
  for (const Tokenizer* t : {&source, &target})
    if (t->kind == Tokenizer::Kind::kSentencePiece) t->subword_options.validate();
  if (batch < 1) bad("--batch must be >= 1, got " + std::to_string(batch));
  if (batch_tokens < 0 || batch_tokens > 100000000)
    bad("--batch-tokens must be in [0, 100000000], got " + std::to_string(batch_tokens));
  if (accum < 1 || accum > 4096) bad("--accum must be in [1, 4096], got " + std::to_string(accum));
  if (!(ema >= 0.0f && ema < 1.0f)) bad("--ema must be in [0, 1), got " + std::to_string(ema));
  if (keep_checkpoints < 0 || keep_checkpoints > 10000)
    bad("--keep-checkpoints must be in [0, 10000], got " + std::to_string(keep_checkpoints));
  if (metric != "auto" && metric != "exact" && metric != "bleu" && metric != "chrf" && metric != "loss")
    bad("--metric must be auto, exact, bleu, chrf or loss, got '" + metric + "'");
  if (epochs < 1) bad("--epochs must be >= 1, got " + std::to_string(epochs));
  if (threads < 1) bad("--threads must be >= 1, got " + std::to_string(threads));
  if (max_minutes < 0) bad("--max-minutes must be >= 0, got " + std::to_string(max_minutes));
  if (max_steps < 0) bad("--max-steps must be >= 0, got " + std::to_string(max_steps));
  if (cooldown < 0 || cooldown > max_steps)
    bad(max_steps == 0 && cooldown > 0
            ? "--cooldown " + std::to_string(cooldown) + " needs --max-steps, the budget it ends with"
            : "--cooldown must be in [0, --max-steps " + std::to_string(max_steps) + "], got " +
                  std::to_string(cooldown));
  if (!(lr > 0.0f)) bad("--lr must be > 0, got " + std::to_string(lr));
  if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
    bad("--label-smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  if (!(teacher_weight >= 0.0f && teacher_weight <= 1.0f))
    bad("--teacher-weight must be in [0, 1], got " + std::to_string(teacher_weight));
  if (teachers.size() > 16) bad("at most 16 --teacher models, got " + std::to_string(teachers.size()));
  if (teacher_top_k < 0 || teacher_top_k > 1024)
    bad("--teacher-top-k must be in [0, 1024], got " + std::to_string(teacher_top_k));
  if (teacher_cache_mb < 0 || teacher_cache_mb > (int64_t{1} << 24))
    bad("--teacher-cache-mb must be in [0, 16777216], got " + std::to_string(teacher_cache_mb));
  if (patience < 1) bad("--patience must be >= 1, got " + std::to_string(patience));
  if (lr_patience < 0 || lr_patience > 1000000)
    bad("--lr-patience must be in [0, 1000000], got " + std::to_string(lr_patience));
  if (eval_every < 0) bad("--eval-every must be >= 0, got " + std::to_string(eval_every));
  if (out.empty()) bad("--out must name a directory");
  if (save_every < 0) bad("--save-every must be >= 0, got " + std::to_string(save_every));
  if (max_nonfinite < 1) bad("--max-nonfinite must be >= 1, got " + std::to_string(max_nonfinite));
  if (threads > max_threads())
    bad("--threads must be at most " + std::to_string(max_threads()) + " on this machine, got " +
        std::to_string(threads));
  parse_schedule(schedule);
}

void to_json(nlohmann::json& j, const TrainOptions& o) {
  j = {{"task", o.task},
       {"train_path", o.train_path},
       {"dev_path", o.dev_path},
       {"train_source", o.train_source},
       {"train_target", o.train_target},
       {"dev_source", o.dev_source},
       {"dev_target", o.dev_target},
       {"data_dir", o.data_dir},
       {"dates_train", o.dates_train},
       {"dates_dev", o.dates_dev},
       {"dates_test", o.dates_test},
       {"model", o.model},
       {"source", o.source},
       {"target", o.target},
       {"joint_vocab", o.joint_vocab},
       {"batch", o.batch},
       {"batch_tokens", o.batch_tokens},
       {"metric", o.metric},
       {"keep_checkpoints", o.keep_checkpoints},
       {"ema", json_float(o.ema)},
       {"shard_optimizer", o.shard_optimizer},
       {"accum", o.accum},
       {"epochs", o.epochs},
       {"max_minutes", o.max_minutes},
       {"max_steps", o.max_steps},
       {"cooldown", o.cooldown},
       {"seed", o.seed},
       {"threads", o.threads},
       {"lr", json_float(o.lr)},
       {"schedule", o.schedule},
       {"warmup", o.warmup},
       {"clip_norm", json_float(o.clip_norm)},
       {"weight_decay", json_float(o.weight_decay)},
       {"label_smoothing", json_float(o.label_smoothing)},
       {"patience", o.patience},
       {"lr_patience", o.lr_patience},
       {"init_from", o.init_from},
       {"teachers", o.teachers},
       {"teacher_weight", json_float(o.teacher_weight)},
       {"teacher_top_k", o.teacher_top_k},
       {"teacher_cache_mb", o.teacher_cache_mb},
       {"eval_every", o.eval_every},
       {"max_nonfinite", o.max_nonfinite},
       {"save_every", o.save_every},
       {"out", o.out},
       {"command", o.command}};
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
  j.at("task").get_to(o.task), j.at("train_path").get_to(o.train_path), j.at("dev_path").get_to(o.dev_path);
  // Runs saved before parallel files were supported have none: empty.
  o.train_source = j.value("train_source", ""), o.train_target = j.value("train_target", "");
  o.dev_source = j.value("dev_source", ""), o.dev_target = j.value("dev_target", "");
  j.at("data_dir").get_to(o.data_dir), j.at("dates_train").get_to(o.dates_train);
  j.at("dates_dev").get_to(o.dates_dev), j.at("dates_test").get_to(o.dates_test);
  // The model settings come without vocabulary sizes (the data gives those): read them with the
  // smallest valid sizes, so the rest is validated, then put back the options' unset sizes.
  nlohmann::json model = j.at("model");
  model["src_vocab"] = model["tgt_vocab"] = 5;
  model.get_to(o.model);
  o.model.set_vocabularies(0, 0);
  j.at("source").get_to(o.source), j.at("target").get_to(o.target);
  o.joint_vocab = j.value("joint_vocab", false);  // runs saved before subwords had none
  o.command = j.value("command", "");             // nor before reports showed it
  o.batch_tokens = j.value("batch_tokens", int64_t{0}), o.accum = j.value("accum", 1);  // nor these
  o.metric = j.value("metric", std::string("auto")), o.keep_checkpoints = j.value("keep_checkpoints", 0);
  o.ema = j.value("ema", 0.0f), o.shard_optimizer = j.value("shard_optimizer", false);
  j.at("batch").get_to(o.batch), j.at("epochs").get_to(o.epochs), j.at("max_minutes").get_to(o.max_minutes);
  o.max_steps = j.value("max_steps", int64_t{0});  // runs saved before the option existed had no step budget
  o.cooldown = j.value("cooldown", int64_t{0});    // nor a cooldown
  j.at("seed").get_to(o.seed), j.at("threads").get_to(o.threads), j.at("lr").get_to(o.lr);
  j.at("schedule").get_to(o.schedule), j.at("warmup").get_to(o.warmup), j.at("clip_norm").get_to(o.clip_norm);
  j.at("weight_decay").get_to(o.weight_decay), j.at("label_smoothing").get_to(o.label_smoothing);
  j.at("patience").get_to(o.patience), j.at("eval_every").get_to(o.eval_every);
  o.lr_patience = j.value("lr_patience", 1);  // runs saved before the option halved at every stall
  o.init_from = j.value("init_from", std::string());
  o.teachers = j.value("teachers", std::vector<std::string>{});  // runs saved before distillation had none
  o.teacher_weight = j.value("teacher_weight", 0.5f);
  o.teacher_top_k = j.value("teacher_top_k", 0);                 // runs saved before it: the whole distribution
  o.teacher_cache_mb = j.value("teacher_cache_mb", int64_t{0});  // runs saved before the cache: every batch
  j.at("max_nonfinite").get_to(o.max_nonfinite), j.at("save_every").get_to(o.save_every), j.at("out").get_to(o.out);
}

const std::vector<ResumableOption>& resumable_options() {
  static const std::vector<ResumableOption> options = {
      {"max_minutes", "--max-minutes"}, {"max_steps", "--max-steps"},     {"cooldown", "--cooldown"},
      {"threads", "--threads"},         {"save_every", "--save-every"},   {"teacher_cache_mb", "--teacher-cache-mb"},
      {"patience", "--patience"},       {"lr_patience", "--lr-patience"},
  };
  return options;
}

// ---- the training state -----------------------------------------------------------------

double EvalRecord::score() const {
  if (metric == "bleu") return dev_bleu;
  if (metric == "chrf") return dev_chrf;
  if (metric == "loss") return -dev_loss;
  return dev_exact_match;
}

bool EvalRecord::better_than(const EvalRecord& o) const {
  if (score() != o.score()) return score() > o.score();
  return metric == "exact" && dev_error_rate < o.dev_error_rate;
}

void to_json(nlohmann::json& j, const EvalRecord& r) {
  j = {{"step", r.step},
       {"epoch", r.epoch},
       {"train_loss", r.train_loss},
       {"dev_exact_match", r.dev_exact_match},
       {"dev_error_rate", r.dev_error_rate},
       {"dev_bleu", r.dev_bleu},
       {"dev_chrf", r.dev_chrf},
       {"dev_loss", r.dev_loss},
       {"metric", r.metric},
       {"lr", r.lr},
       {"elapsed_seconds", r.elapsed_seconds},
       {"tokens_per_second", r.tokens_per_second},
       {"best", r.best}};
}

void from_json(const nlohmann::json& j, EvalRecord& r) {
  const char* w = "evaluation record";
  r.step = json_field<int64_t>(j, "step", w), r.epoch = json_field<int>(j, "epoch", w);
  r.train_loss = json_field<double>(j, "train_loss", w),
  r.dev_exact_match = json_field<double>(j, "dev_exact_match", w);
  r.dev_error_rate = json_field<double>(j, "dev_error_rate", w), r.lr = json_field<double>(j, "lr", w);
  r.elapsed_seconds = json_field<double>(j, "elapsed_seconds", w), r.best = json_field<bool>(j, "best", w);
  // Records written before the metric was a choice have none of these: exact match.
  r.dev_bleu = j.value("dev_bleu", 0.0), r.dev_chrf = j.value("dev_chrf", 0.0), r.dev_loss = j.value("dev_loss", 0.0);
  r.metric = j.value("metric", std::string("exact"));
  r.tokens_per_second = j.value("tokens_per_second", 0.0);
  if (!(r.tokens_per_second >= 0.0 && std::isfinite(r.tokens_per_second)))
    throw std::invalid_argument(std::string(w) + ": tokens_per_second is " + std::to_string(r.tokens_per_second));
}

void to_json(nlohmann::json& j, const TrainState& s) {
  j = {{"step", s.step},
       {"epoch", s.epoch},
       {"next_batch", s.next_batch},
       {"epoch_rng", s.epoch_rng},
       {"rng", s.rng},
       {"adam_steps", s.adam_steps},
       {"lr_scale", s.lr_scale},
       {"stale", s.stale},
       {"nonfinite", s.nonfinite},
       {"epoch_loss", s.epoch_loss},
       {"epoch_steps", s.epoch_steps},
       {"last_eval_step", s.last_eval_step},
       {"elapsed_seconds", s.elapsed_seconds},
       {"best", s.best},
       {"metrics", s.metrics},
       {"finished", s.finished},
       {"stopped_on_budget", s.stopped_on_budget},
       {"stop_reason", s.stop_reason},
       {"src_vocab_sha256", s.src_vocab_sha256},
       {"tgt_vocab_sha256", s.tgt_vocab_sha256},
       {"data_files", s.data_files}};
}

void from_json(const nlohmann::json& j, TrainState& s) {
  const char* w = "training state";
  s.step = json_field<int64_t>(j, "step", w), s.epoch = json_field<int>(j, "epoch", w);
  s.next_batch = json_field<uint64_t>(j, "next_batch", w);
  s.epoch_rng = json_field<std::array<uint64_t, 4>>(j, "epoch_rng", w);
  s.rng = json_field<std::array<uint64_t, 4>>(j, "rng", w);
  s.adam_steps = json_field<int64_t>(j, "adam_steps", w), s.lr_scale = json_field<float>(j, "lr_scale", w);
  s.stale = json_field<int>(j, "stale", w), s.nonfinite = json_field<int>(j, "nonfinite", w);
  s.epoch_loss = json_field<double>(j, "epoch_loss", w), s.epoch_steps = json_field<int64_t>(j, "epoch_steps", w);
  s.last_eval_step = json_field<int64_t>(j, "last_eval_step", w);
  s.elapsed_seconds = json_field<double>(j, "elapsed_seconds", w);
  s.best = json_field<EvalRecord>(j, "best", w), s.metrics = json_field<std::string>(j, "metrics", w);
  s.finished = json_field<bool>(j, "finished", w);
  s.stopped_on_budget = json_field<bool>(j, "stopped_on_budget", w, false);
  s.stop_reason = json_field<std::string>(j, "stop_reason", w);
  // States written before the data was fingerprinted have none of these: nothing to compare.
  s.src_vocab_sha256 = json_field<std::string>(j, "src_vocab_sha256", w, std::string());
  s.tgt_vocab_sha256 = json_field<std::string>(j, "tgt_vocab_sha256", w, std::string());
  s.data_files = j.value("data_files", nlohmann::json::array());
}

void TrainState::validate(int64_t batches_per_epoch) const {
  auto bad = [](const std::string& what) { throw std::invalid_argument("training state: " + what); };
  if (step < 0) bad("step is " + std::to_string(step));
  if (epoch < 1) bad("epoch is " + std::to_string(epoch));
  if (next_batch > uint64_t(batches_per_epoch))
    bad("next_batch " + std::to_string(next_batch) + " is past the epoch's " + std::to_string(batches_per_epoch) +
        " batches");
  if (adam_steps < 0 || adam_steps > step)
    bad("adam_steps " + std::to_string(adam_steps) + " with step " + std::to_string(step));
  if (!(lr_scale > 0.0f) || !std::isfinite(lr_scale))
    bad("lr_scale must be finite and > 0, got " + std::to_string(lr_scale));
  if (stale < 0 || nonfinite < 0)
    bad("negative counters (stale " + std::to_string(stale) + ", nonfinite " + std::to_string(nonfinite) + ")");
  if (!std::isfinite(epoch_loss) || epoch_steps < 0 || epoch_steps > step) bad("epoch_loss/epoch_steps out of range");
  if (last_eval_step < -1 || last_eval_step > step) bad("last_eval_step " + std::to_string(last_eval_step));
  if (!std::isfinite(elapsed_seconds) || elapsed_seconds < 0) bad("elapsed_seconds " + std::to_string(elapsed_seconds));
  if (!std::isfinite(best.dev_exact_match) || !std::isfinite(best.dev_error_rate)) bad("the best score is not finite");
  auto zero = [](const std::array<uint64_t, 4>& r) { return r[0] == 0 && r[1] == 0 && r[2] == 0 && r[3] == 0; };
  if (zero(rng) || zero(epoch_rng)) bad("a random generator state is all zeros (it would only ever give zeros)");
}

namespace {

constexpr const char* kStateKey = "attend.train_state";

std::string format_minutes(double seconds) {  // "45 minutes", not "45.000000"
  std::ostringstream m;
  m << std::setprecision(4) << seconds / 60.0 << (seconds == 60.0 ? " minute" : " minutes");
  return m.str();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Data paths as absolute paths, so a run can be resumed from another working directory.
TrainOptions with_absolute_paths(TrainOptions o) {
  for (std::string* p : {&o.train_path, &o.dev_path, &o.data_dir, &o.train_source, &o.train_target, &o.dev_source,
                         &o.dev_target, &o.init_from})
    if (!p->empty()) *p = std::filesystem::absolute(*p).lexically_normal().string();
  for (std::string& p : o.teachers) p = std::filesystem::absolute(p).lexically_normal().string();
  return o;
}

// The last line of defence before anything is written: weights that have overflowed are never
// saved over a good checkpoint.
void require_finite(const std::vector<NamedParameter>& params, int64_t step, const std::string& dir) {
  for (const auto& p : params) {
    const float* w = p.var.value().data();
    for (int64_t i = 0, n = p.var.value().numel(); i < n; ++i)
      if (!std::isfinite(w[i]))
        throw std::runtime_error("training diverged: at step " + std::to_string(step) + " weight " + p.name + "[" +
                                 std::to_string(i) + "] is " + std::to_string(w[i]) +
                                 "; nothing was saved (the last good checkpoint in " + dir + " is intact)");
  }
}

Vocab build_vocab(const std::vector<Example>& examples, const Tokenizer& tok, bool source) {
  Vocab v;
  if (tok.kind == Tokenizer::Kind::kSentencePiece) {  // every piece the model can produce
    for (const std::string& piece : tok.subwords->pieces()) v.add(piece);
    return v;
  }
  for (const auto& e : examples)
    for (const auto& t : tok.split(source ? e.source : e.target)) v.add(t);
  return v;
}

std::string vocab_sha256(const Vocab& v) { return sha256_hex(nlohmann::json(v.tokens()).dump()); }

nlohmann::json fingerprint(const std::string& path) {
  const MappedFile f(path);
  return {{"path", path}, {"bytes", f.bytes().size()}, {"sha256", sha256_hex(f.bytes())}};
}

// A checksum over every tensor (by name, in name order), kept in the state's JSON.
std::string tensors_sha256(const std::map<std::string, const Tensor*>& tensors) {
  std::string all;
  for (const auto& [name, t] : tensors) {
    all += name;
    all.push_back('\0');
    all.append(reinterpret_cast<const char*>(t->data()), t->numel() * sizeof(float));
  }
  return sha256_hex(all);
}

// The JSON part of a training state file, and its tensors, checked against the checksum.
struct SavedState {
  nlohmann::json meta;
  std::map<std::string, Tensor> tensors;
};

SavedState read_state(const std::string& dir) {
  const std::string path = dir + "/" + kTrainStateFile;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw std::runtime_error(path +
                             ": no training state to resume (runs save one when they start, every "
                             "--save-every steps and at each evaluation)");
  SavedState s;
  std::map<std::string, std::string> metadata;
  const MappedFile file(path);
  s.tensors = parse_safetensors(file.bytes(), path, &metadata);
  try {
    if (!metadata.count(kStateKey)) throw std::runtime_error(std::string("no '") + kStateKey + "' metadata");
    s.meta = nlohmann::json::parse(metadata.at(kStateKey));
    if (!s.meta.is_object() || s.meta.value("version", 0) != 1)
      throw std::runtime_error("version " + s.meta.value("version", nlohmann::json()).dump() +
                               " (this attend reads version 1)");
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not an attend training state: " + e.what());
  }
  if (s.meta.contains("tensors_sha256")) {
    std::map<std::string, const Tensor*> view;
    for (const auto& [name, t] : s.tensors) view[name] = &t;
    if (s.meta["tensors_sha256"] != tensors_sha256(view))
      throw std::runtime_error(path + ": the tensors do not match the state's checksum (the file is damaged)");
  }
  return s;
}

TrainOptions options_of(const SavedState& s, const std::string& dir) {
  try {
    TrainOptions o = s.meta.at("options").get<TrainOptions>();
    o.out = dir;
    o.validate();
    return o;
  } catch (const std::exception& e) {
    throw std::runtime_error(dir + "/" + kTrainStateFile + ": bad options in the training state: " + e.what());
  }
}

}  // namespace

TrainOptions load_train_options(const std::string& dir) { return options_of(read_state(dir), dir); }

nlohmann::json load_train_summary(const std::string& dir) {
  const SavedState s = read_state(dir);
  nlohmann::json out = {{"options", options_of(s, dir)}};
  try {
    const TrainState st = s.meta.get<TrainState>();
    out["step"] = st.step, out["epoch"] = st.epoch, out["elapsed_seconds"] = st.elapsed_seconds;
    out["finished"] = st.finished, out["stop_reason"] = st.stop_reason, out["data_files"] = st.data_files;
  } catch (const std::exception& e) {
    throw std::runtime_error(dir + "/" + kTrainStateFile + ": damaged: " + e.what());
  }
  return out;
}

// ---- the trainer ------------------------------------------------------------------------

Trainer::Trainer(const TrainOptions& options, const TrainCallbacks& callbacks)
    : opt_(with_absolute_paths(options)), cb_(callbacks) {
  options.validate();
  if (!comm_.writer()) cb_ = {.should_stop = callbacks.should_stop};  // rank 0 reports
  load_data();                                    // first: bad data is found before anything is written
  if (!opt_.resume && !opt_.init_from.empty()) {  // and a bad starting model
    std::error_code ec;
    if (std::filesystem::equivalent(opt_.init_from, opt_.out, ec))
      throw std::invalid_argument("--init-from " + opt_.init_from +
                                  " is the --out directory: the new run would replace the model it starts from; "
                                  "train into another directory");
    start_ = std::make_unique<Translator>(Translator::load(opt_.init_from, Precision::kFp32));
  }
  load_teachers();
  if (comm_.writer()) {  // rank 0 owns the directory; the others only read it
    lock_ = std::make_unique<DirectoryLock>(opt_.out);
    check_directory();
    std::error_code ec;  // a new run's checkpoints are its own: an older run's would be averaged with them
    if (!opt_.resume) std::filesystem::remove_all(opt_.out + "/checkpoints", ec);
  }
  comm_.barrier();
  set_threads(opt_.threads);
  build_model();
  for (size_t i = 0; i < teachers_.size(); ++i)
    check_vocabularies("--teacher " + opt_.teachers[i] + ": ", *teachers_[i],
                       "a teacher's probabilities are over its own vocabulary, so it must be trained on data that "
                       "gives the same tokens");
  check_ranks_agree();
  if (opt_.resume) {
    restore();
  } else {  // every rank starts from rank 0's weights
    if (start_) start_from_model();
    for (auto& p : params_) comm_.broadcast(p.var.value().data(), p.var.value().numel());
  }
  if (comm_.size() > 1)
    message(std::to_string(comm_.size()) + " processes: each update averages the gradients of " +
            std::to_string(comm_.size()) + " shards of a batch of " +
            (opt_.batch_tokens > 0 ? std::to_string(opt_.batch_tokens * comm_.size()) + " tokens"
                                   : std::to_string(opt_.batch * comm_.size()) + " sentences"));
}

// Ranks started with different arguments, data or builds would train different models, or wait
// for each other forever: found here, before the first update, on every rank.
void Trainer::check_ranks_agree() const {
  if (comm_.size() == 1) return;
  nlohmann::json o = opt_;
  o.erase("command");
  const nlohmann::json what = {{"options", o},
                               {"data", state_.data_files},
                               {"vocabularies", {state_.src_vocab_sha256, state_.tgt_vocab_sha256}},
                               {"parameters", bundle_->model().parameter_count()},
                               {"attend", cpu_isa()}};
  comm_.require_same("the options, data files, vocabularies and build", sha256_hex(what.dump()));
}

std::vector<int> Trainer::shard(const std::vector<int>& global) const {
  const size_t n = global.size(), r = comm_.rank(), N = comm_.size();
  return {global.begin() + n * r / N, global.begin() + n * (r + 1) / N};
}

// Sums every gradient over the ranks, as one flat buffer.
namespace {

// What dev scoring reads of a translation (its text and tokens), as length-prefixed bytes.
void put(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}
std::string take(const std::string& in, size_t& at) {
  uint64_t n = 0;
  std::memcpy(&n, in.data() + at, sizeof n);
  at += sizeof n;
  std::string s = in.substr(at, n);
  at += n;
  return s;
}

}  // namespace

// Dev decoding split across the processes: each translates a contiguous share of the sources,
// and every rank gets all the outputs, in order (every rank takes the same decisions on them).
std::vector<Translation> Trainer::translate_dev(const std::vector<std::string>& sources) const {
  if (comm_.size() == 1) return bundle_->translate(sources, DecodeOptions{});
  const size_t n = sources.size(), r = comm_.rank(), N = comm_.size();
  const std::vector<std::string> mine(sources.begin() + n * r / N, sources.begin() + n * (r + 1) / N);
  std::string bytes;
  for (const Translation& t : bundle_->translate(mine, DecodeOptions{})) {
    put(bytes, t.text);
    put(bytes, std::to_string(t.target_tokens.size()));
    for (const std::string& token : t.target_tokens) put(bytes, token);
  }
  std::vector<Translation> out;
  for (const std::string& part : comm_.allgather(bytes))
    for (size_t at = 0; at < part.size();) {
      Translation t;
      t.text = take(part, at);
      const size_t tokens = std::stoul(take(part, at));
      for (size_t k = 0; k < tokens; ++k) t.target_tokens.push_back(take(part, at));
      out.push_back(std::move(t));
    }
  return out;
}

bool Trainer::any_rank(bool flag) const {
  int64_t n = flag ? 1 : 0;
  comm_.allreduce_sum(&n, 1);
  return n > 0;
}

Trainer::~Trainer() = default;

void Trainer::load_data() {
  if (opt_.task == "dates") {
    dates::Splits s = dates::make_splits(opt_.dates_train, opt_.dates_dev, opt_.dates_test, /*seed=*/20261125);
    train_examples_ = std::move(s.train);
    dev_examples_ = std::move(s.dev);
    test_examples_ = std::move(s.test);
    return;
  }
  state_.data_files = nlohmann::json::array();
  // One split from a TSV file or from a pair of parallel files; each file is fingerprinted.
  auto split = [&](const std::string& tsv, const std::string& source, const std::string& target) {
    if (!source.empty()) {
      state_.data_files.push_back(fingerprint(source));
      state_.data_files.push_back(fingerprint(target));
      return read_parallel(source, target, LinesOptions{.max_line_bytes = TsvOptions{}.max_line_bytes});
    }
    state_.data_files.push_back(fingerprint(tsv));
    return read_tsv(tsv);
  };
  train_examples_ = split(tsv_path(true), opt_.train_source, opt_.train_target);
  dev_examples_ = split(tsv_path(false), opt_.dev_source, opt_.dev_target);
}

// What a new run may find in its directory, and what a killed one left there.
void Trainer::check_directory() {
  recover_checkpoint(opt_.out);
  remove_stale_temporaries(opt_.out);
  if (opt_.resume || opt_.overwrite) return;
  for (const char* f : {"config.json", kTrainStateFile, kManifestFile}) {
    std::error_code ec;
    if (std::filesystem::exists(opt_.out + "/" + f, ec))
      throw std::runtime_error(opt_.out + ": already holds a model or a run (" + f +
                               "); give --overwrite to train a new model there (the old one stays until the new "
                               "run saves its first), or --resume " +
                               opt_.out + " to continue its run");
  }
}

// SentencePiece models: a resumed run takes those of its model directory; a new one trains them
// on the training split (--joint-vocab: one on both sides).
void Trainer::prepare_subwords() {
  const bool src = opt_.source.kind == Tokenizer::Kind::kSentencePiece,
             tgt = opt_.target.kind == Tokenizer::Kind::kSentencePiece;
  if (!src && !tgt) return;
  if (start_) {  // --init-from: the starting model's subword models, so that its vocabularies apply
    for (auto [tok, from] :
         {std::pair{&opt_.source, &start_->source_tokenizer()}, {&opt_.target, &start_->target_tokenizer()}})
      if (tok->kind == Tokenizer::Kind::kSentencePiece) {
        if (!from->subwords)
          throw std::invalid_argument("--init-from " + opt_.init_from + ": its tokenizer is " + to_string(from->kind) +
                                      ", not sentencepiece");
        tok->subwords = from->subwords;
      }
    return;
  }
  if (opt_.resume) {
    const CheckpointReader files(opt_.out, {}, {"source.spm", "target.spm"});
    for (auto [tok, name] : {std::pair{&opt_.source, "source.spm"}, {&opt_.target, "target.spm"}}) {
      if (tok->kind != Tokenizer::Kind::kSentencePiece) continue;
      if (!files.has(name))
        throw std::runtime_error(files.path(name) + ": missing: the run's SentencePiece model cannot be resumed");
      tok->subwords = SentencePiece::from_bytes(std::string(files.bytes(name)), files.path(name));
    }
    return;
  }
  auto sentences = [&](bool sources, bool targets) {
    std::vector<std::string> out;
    for (const Example& e : train_examples_) {
      if (sources) out.push_back(e.source);
      if (targets) out.push_back(e.target);
    }
    return out;
  };
  if (opt_.joint_vocab) {
    opt_.source.subwords = opt_.target.subwords =
        SentencePiece::train(sentences(true, true), opt_.source.subword_options);
    message("sentencepiece: one " + opt_.source.subword_options.type + " model of " +
            std::to_string(opt_.source.subword_options.vocab_size) + " pieces for both sides");
    return;
  }
  for (auto [tok, sources] : {std::pair{&opt_.source, true}, {&opt_.target, false}}) {
    if (tok->kind != Tokenizer::Kind::kSentencePiece) continue;
    tok->subwords = SentencePiece::train(sentences(sources, !sources), tok->subword_options);
    message(std::string("sentencepiece: a ") + tok->subword_options.type + " model of " +
            std::to_string(tok->subword_options.vocab_size) + " pieces for the " + (sources ? "source" : "target"));
  }
}

// The TSV file of the training or dev split (--data DIR's, or --train / --dev).
std::string Trainer::tsv_path(bool train) const {
  if (!opt_.data_dir.empty()) return opt_.data_dir + (train ? "/train.tsv" : "/dev.tsv");
  return train ? opt_.train_path : opt_.dev_path;
}

// A side left without tokens by its tokenizer (a line of characters it drops, such as
// zero-width spaces or control characters) can neither train nor be scored: named with its file
// and line.
void Trainer::check_tokens(const std::vector<EncodedExample>& set, const std::vector<Example>& examples,
                           bool train) const {
  for (size_t i = 0; i < set.size(); ++i) {
    const bool source = set[i].src.empty();
    if (!source && !set[i].tgt.empty()) continue;
    const std::string& moses =
        train ? (source ? opt_.train_source : opt_.train_target) : (source ? opt_.dev_source : opt_.dev_target);
    const std::string& text = source ? examples[i].source : examples[i].target;
    throw std::runtime_error((moses.empty() ? tsv_path(train) : moses) + ":" + std::to_string(examples[i].line) +
                             ": the " + (source ? "source" : "target") + " '" + text.substr(0, 60) +
                             "' has no tokens after tokenization (" +
                             to_string((source ? opt_.source : opt_.target).kind) + " drops all of it)");
  }
}

void Trainer::build_model() {
  prepare_subwords();
  if (opt_.task == "dates" && comm_.writer()) {  // the generated splits, for attend eval; the test never trains
    write_tsv(opt_.out + "/dev.tsv", dev_examples_);
    write_tsv(opt_.out + "/test.tsv", test_examples_);
  }
  Vocab src_vocab = build_vocab(train_examples_, opt_.source, true);
  Vocab tgt_vocab = build_vocab(train_examples_, opt_.target, false);
  state_.src_vocab_sha256 = vocab_sha256(src_vocab), state_.tgt_vocab_sha256 = vocab_sha256(tgt_vocab);
  size_t unknown = 0;
  train_set_ = encode(train_examples_, opt_.source, src_vocab, opt_.target, tgt_vocab);
  dev_set_ = encode(dev_examples_, opt_.source, src_vocab, opt_.target, tgt_vocab, &unknown);
  // Dev evaluation compares against every reference of a source (grouped once, here).
  dev_refs_ = group_references(dev_examples_, [&](const std::string& t) { return opt_.target.split(t); });
  check_tokens(train_set_, train_examples_, true);
  check_tokens(dev_set_, dev_examples_, false);
  if (unknown) message("dev set: " + std::to_string(unknown) + " source tokens are not in the training vocabulary");

  ModelConfig mc = opt_.model;
  mc.set_vocabularies(src_vocab.size(), tgt_vocab.size());
  if (mc.architecture == Architecture::kRnn) {  // settings a mechanism measures on the data (local-m's "auto")
    const MechanismInfo& info = find_mechanism(mc.rnn.attention.mechanism);
    if (info.fit_to_data) {
      std::vector<std::pair<int, int>> lengths;
      for (const EncodedExample& e : train_set_) lengths.emplace_back(int(e.src.size()), int(e.tgt.size()));
      if (const std::string m = info.fit_to_data(mc.rnn.attention, lengths); !m.empty()) message(m);
    }
  }
  rng_ = Rng(opt_.seed);
  state_.rng = state_.epoch_rng = rng_.state();
  nlohmann::json extra = {{"task", opt_.task},
                          {"training",
                           {{"seed", opt_.seed},
                            {"batch", opt_.batch},
                            {"lr", json_float(opt_.lr)},
                            {"label_smoothing", json_float(opt_.label_smoothing)},
                            {"threads", opt_.threads}}}};
  bundle_ = std::make_unique<Translator>(mc.build(rng_), opt_.source, opt_.target, src_vocab, tgt_vocab, extra);
  params_ = bundle_->model().parameters();
  message("model: " + std::to_string(bundle_->model().parameter_count()) + " parameters; vocabularies " +
          std::to_string(src_vocab.size()) + " (source) and " + std::to_string(tgt_vocab.size()) + " (target); " +
          std::to_string(train_set_.size()) + " training and " + std::to_string(dev_examples_.size()) +
          " dev examples");
  if (comm_.size() > 1 && !opt_.shard_optimizer)
    buckets_ = std::make_unique<GradientBuckets>(params_, comm_, kBucketFloats);
  adam_ = std::make_unique<Adam>(
      params_, AdamOptions{.lr = opt_.lr, .weight_decay = opt_.weight_decay, .clip_norm = opt_.clip_norm},
      opt_.shard_optimizer ? &comm_ : nullptr);
  schedule_ = LrSchedule{parse_schedule(opt_.schedule), opt_.lr, opt_.warmup, opt_.max_steps, opt_.cooldown};
  if (opt_.ema > 0.0f)
    for (const auto& p : params_) ema_.push_back(p.var.value().clone());  // the average starts at the initial weights
}

// The starting model must be this run's model but for settings that change no weight's shape;
// its weights (and the moving average's start) replace the random initialisation. Relative-position
// tables it lacks (--relative-positions added) keep their zeros, with which the model computes
// what the starting model computes.
void Trainer::start_from_model() {
  const std::string what = "--init-from " + opt_.init_from + ": ";
  const Model& from = start_->model();
  if (from.architecture() != bundle_->model().architecture())
    throw std::invalid_argument(what + "the starting model's architecture is " + to_string(from.architecture()) +
                                "; this run trains " + to_string(bundle_->model().architecture()));
  check_vocabularies(what, *start_, "a model continues only on data with the same tokens");
  std::map<std::string, Tensor> weights;
  for (const auto& p : from.parameters()) weights.emplace(p.name, p.var.value());
  size_t added = 0;
  for (const auto& p : params_)
    if (p.name.ends_with(".relative_bias") && weights.emplace(p.name, p.var.value()).second) ++added;
  for (const auto& p : params_) {
    const auto it = weights.find(p.name);
    if (it == weights.end() || it->second.shape() != p.var.shape())
      throw std::invalid_argument(what + "this run's model has '" + p.name + "' " + p.var.shape().str() +
                                  ", the starting model " +
                                  (it == weights.end() ? "has none" : "has " + it->second.shape().str()) +
                                  "; the run's model settings must give the starting model's sizes");
  }
  if (weights.size() != params_.size())
    throw std::invalid_argument(what + "the starting model has " + std::to_string(weights.size()) +
                                " weights, this run's " + std::to_string(params_.size()) +
                                "; the run's model settings must give the starting model's");
  assign_parameters(params_, weights, opt_.init_from);
  for (size_t i = 0; i < ema_.size(); ++i) ema_[i].copy_from(params_[i].var.value());
  message("starting from the weights of " + opt_.init_from +
          (added ? " (" + std::to_string(added) + " relative-position tables it lacks start at zero)" : ""));
  start_.reset();
}

void Trainer::check_vocabularies(const std::string& what, const Translator& other, const std::string& why) const {
  for (auto [side, a, b] : {std::tuple{"source", &other.source_vocab(), &bundle_->source_vocab()},
                            {"target", &other.target_vocab(), &bundle_->target_vocab()}})
    if (a->tokens() != b->tokens())
      throw std::invalid_argument(what + "its " + side + " vocabulary (" + std::to_string(a->size()) +
                                  " tokens) is not the one this run's training data gives (" +
                                  std::to_string(b->size()) + " tokens); " + why);
}

void Trainer::load_teachers() {
  for (const std::string& dir : opt_.teachers) {
    std::error_code ec;
    if (std::filesystem::equivalent(dir, opt_.out, ec))
      throw std::invalid_argument("--teacher " + dir +
                                  " is the --out directory: the run would replace its own teacher; train into "
                                  "another directory");
    try {
      teachers_.push_back(std::make_unique<Translator>(Translator::load(dir, Precision::kFp32)));
      teachers_sha256_.push_back(sha256_hex(read_file(dir + "/" + kManifestFile)));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error("--teacher " + dir + ": " + e.what());
    }
  }
  if (teachers_.empty()) return;
  std::ostringstream m;
  m << "distilling from " << teachers_.size() << " teacher(s), weight " << opt_.teacher_weight;
  if (opt_.teacher_top_k > 0) m << ", their " << opt_.teacher_top_k << " most probable tokens";
  message(m.str());
}

bool Trainer::cache_teachers() {
  if (teachers_.empty() || opt_.teacher_weight == 0.0f) return true;
  const int64_t V = static_cast<int64_t>(bundle_->target_vocab().size());
  const int64_t bytes = TeacherCache::bytes(train_set_, V, opt_.teacher_top_k), mb = (bytes + (1 << 20) - 1) >> 20;
  if (bytes > (opt_.teacher_cache_mb << 20)) {
    const int64_t top8 = TeacherCache::bytes(train_set_, V, 8);
    const std::string hint =
        top8 < bytes && opt_.teacher_cache_mb > 0
            ? "; with --teacher-top-k 8 they would take " + std::to_string((top8 + (1 << 20) - 1) >> 20) + " MB"
            : "";
    message("the teachers' probabilities of the training set would take " + std::to_string(mb) +
            " MB (--teacher-cache-mb " + std::to_string(opt_.teacher_cache_mb) + "): computed for every batch" + hint);
    return true;
  }
  const auto t0 = std::chrono::steady_clock::now();
  try {
    teacher_cache_ = std::make_unique<TeacherCache>(
        train_set_, V, [this](const Batch& b) { return compute_teacher_probabilities(b); }, comm_,
        [this] { return any_rank(cb_.should_stop && cb_.should_stop()); }, 64, opt_.teacher_top_k);
  } catch (const TeacherCache::Stopped&) {
    return false;
  }
  std::ostringstream m;
  m << "the teachers' probabilities of " << train_set_.size() << " training examples computed once (" << mb
    << " MB) in " << std::fixed << std::setprecision(1) << seconds_since(t0) << " s";
  message(m.str());
  return true;
}

Tensor Trainer::teacher_probabilities(const Batch& batch) const {
  return teacher_cache_ ? teacher_cache_->rows(batch) : compute_teacher_probabilities(batch);
}

Tensor Trainer::compute_teacher_probabilities(const Batch& batch) const {
  NoGradScope no_grad;  // inference: no dropout (no Rng), no tape
  Var mean;
  for (const auto& t : teachers_) {
    const Var p = softmax(t->model().logits(batch, nullptr));  // [T*B, V]
    mean = mean.defined() ? add(mean, p) : p;
  }
  Tensor p = scale(mean, 1.0f / static_cast<float>(teachers_.size())).value();
  keep_top_k(p, opt_.teacher_top_k);
  return p;
}

void Trainer::update_ema() {
  const float d = opt_.ema;
  for (size_t i = 0; i < params_.size(); ++i) {
    float* e = ema_[i].data();
    const float* w = params_[i].var.value().data();
    for (int64_t k = 0; k < ema_[i].numel(); ++k) e[k] = d * e[k] + (1.0f - d) * w[k];
  }
}

void Trainer::swap_ema() {
  for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i].var.value(), ema_[i]);
}

void Trainer::message(const std::string& m) const {
  if (cb_.on_message) cb_.on_message(m);
}

double Trainer::elapsed() const { return state_.elapsed_seconds + seconds_since(t0_); }

void Trainer::save_state() {
  const std::vector<NamedParameter> moments = adam_->state();  // sharded: gathered from every rank
  if (!comm_.writer()) return;
  require_finite(params_, state_.step, opt_.out);
  TrainState s = state_;
  s.elapsed_seconds = elapsed();
  s.rng = rng_.state();
  s.adam_steps = adam_->steps();
  std::vector<NamedParameter> tensors;
  std::map<std::string, const Tensor*> view;
  for (const auto& p : params_) tensors.push_back({"param." + p.name, p.var});
  for (const auto& m : moments) tensors.push_back({"adam." + m.name, m.var});
  for (size_t i = 0; i < ema_.size(); ++i) tensors.push_back({"ema." + params_[i].name, Var(ema_[i])});
  for (const auto& t : tensors) view[t.name] = &t.var.value();
  nlohmann::json meta = s;
  meta["version"] = 1, meta["options"] = opt_, meta["tensors_sha256"] = tensors_sha256(view);
  meta["processes"] = comm_.size();
  if (!teachers_sha256_.empty()) meta["teachers_sha256"] = teachers_sha256_;
  save_safetensors(opt_.out + "/" + kTrainStateFile, tensors, {{kStateKey, meta.dump()}});
}

// A resumed run's teachers must be the models it started with (their manifests' SHA-256).
void Trainer::check_teachers_unchanged(const nlohmann::json& meta, const std::string& origin) const {
  const auto teachers = meta.value("teachers_sha256", std::vector<std::string>{});
  for (size_t i = 0; i < teachers.size() && i < teachers_sha256_.size(); ++i)
    if (teachers[i] != teachers_sha256_[i])
      throw std::runtime_error(origin + ": --teacher " + opt_.teachers[i] +
                               " is not the model the run started with (its " + kManifestFile +
                               " changed); with another teacher the resumed run would not be the same run");
}

// A resumed run must be the run that was interrupted: same data, model and optimisation.
void Trainer::restore() {
  const std::string origin = opt_.out + "/" + kTrainStateFile;
  SavedState saved = read_state(opt_.out);
  TrainState s;
  try {
    s = saved.meta.get<TrainState>();
    // Token batches hold at least one example each: at most one batch per example.
    s.validate(opt_.batch_tokens > 0 ? static_cast<int64_t>(train_set_.size())
                                     : (static_cast<int64_t>(train_set_.size()) + opt_.batch - 1) / opt_.batch);
  } catch (const std::exception& e) {
    throw std::runtime_error(origin + ": damaged: " + e.what());
  }
  // Both through TrainOptions, so that a state written by an older attend (whose model settings
  // had other optional fields) compares by meaning, not by spelling.
  nlohmann::json was, now = opt_;
  try {
    was = saved.meta.at("options").get<TrainOptions>();
  } catch (const std::exception& e) {
    throw std::runtime_error(origin + ": bad options in the training state: " + e.what());
  }
  // The budgets, the machine's settings and the plateau rule may change on resume.
  for (const ResumableOption& free : resumable_options()) was.erase(free.key), now.erase(free.key);
  for (const char* free : {"out", "command"}) was.erase(free), now.erase(free);
  if (was != now) {
    std::string diff;
    for (const auto& [k, v] : now.items())
      if (!was.contains(k) || was[k] != v)
        diff += " " + k + " (was " + (was.contains(k) ? was[k].dump() : "unset") + ", now " + v.dump() + ")";
    throw std::invalid_argument(origin + ": cannot resume with different settings:" + diff);
  }
  check_teachers_unchanged(saved.meta, origin);
  for (size_t i = 0; i < s.data_files.size() && i < state_.data_files.size(); ++i)
    if (s.data_files[i] != state_.data_files[i])
      throw std::runtime_error(state_.data_files[i].value("path", "") + ": changed since the run started (" +
                               s.data_files[i].dump() + ", now " + state_.data_files[i].dump() +
                               "); a resumed run must train on the same data. Start a new run with --overwrite");
  if ((!s.src_vocab_sha256.empty() && s.src_vocab_sha256 != state_.src_vocab_sha256) ||
      (!s.tgt_vocab_sha256.empty() && s.tgt_vocab_sha256 != state_.tgt_vocab_sha256))
    throw std::runtime_error(origin + ": the vocabularies built from the data differ from the run's");
  const int processes = saved.meta.value("processes", 1);
  if (processes != comm_.size())
    throw std::invalid_argument(origin + ": this run trained on " + std::to_string(processes) +
                                " process(es); resume it with the same number (mpirun -np " +
                                std::to_string(processes) + "), not " + std::to_string(comm_.size()));
  if (s.finished) resume_finished(s, origin);
  std::error_code ec;
  if (std::filesystem::exists(opt_.out + "/config.json", ec))  // the best model so far, which the run may keep
    CheckpointReader(opt_.out, {"config.json", "src_vocab.json", "tgt_vocab.json", "model.safetensors"});
  const int old_threads = saved.meta.at("options").value("threads", 0);
  if (old_threads != opt_.threads)
    message("resuming with " + std::to_string(opt_.threads) + " threads instead of " + std::to_string(old_threads) +
            ": the result will not be bit-identical to an uninterrupted run");

  std::map<std::string, Tensor> weights, moments, averages;
  for (auto& [name, t] : saved.tensors) {
    if (name.rfind("param.", 0) == 0)
      weights.emplace(name.substr(6), t);
    else if (name.rfind("adam.", 0) == 0)
      moments.emplace(name.substr(5), t);
    else if (name.rfind("ema.", 0) == 0 && !ema_.empty())
      averages.emplace(name.substr(4), t);
    else
      throw std::runtime_error(origin + ": unexpected tensor '" + name + "'");
  }
  require_finite(saved.tensors, origin);
  assign_parameters(params_, weights, origin);
  if (!ema_.empty()) {  // the moving average, in the same layout as the weights
    std::vector<NamedParameter> shadow;
    for (size_t i = 0; i < ema_.size(); ++i) shadow.push_back({params_[i].name, Var(ema_[i])});
    assign_parameters(shadow, averages, origin);
  }
  adam_->load_state(s.adam_steps, moments, origin);
  rng_.set_state(s.rng);
  state_ = std::move(s);
  result_.best = state_.best;
  message("resuming at step " + std::to_string(state_.step) + " (epoch " + std::to_string(state_.epoch) + ", batch " +
          std::to_string(state_.next_batch) + ")");
  note_moved_cooldown(saved.meta.at("options"));
}

// Another --max-steps or --cooldown on resume moves the cooldown, and can take the learning rate
// back up (a run cooled down to its budget and given a larger one): say so, with the numbers.
void Trainer::note_moved_cooldown(const nlohmann::json& saved_options) const {
  LrSchedule before = schedule_;
  before.total = saved_options.value("max_steps", int64_t{0});
  before.cooldown = saved_options.value("cooldown", int64_t{0});
  const int64_t next = state_.step + 1;
  if (before.at(next) == schedule_.at(next)) return;
  std::ostringstream m;
  m << std::setprecision(3) << "the cooldown moved (--max-steps " << opt_.max_steps << ", --cooldown " << opt_.cooldown
    << "; the run had " << before.total << " and " << before.cooldown << "): the learning rate of update " << next
    << " is " << schedule_.at(next) * state_.lr_scale << ", not " << before.at(next) * state_.lr_scale;
  message(m.str());
}

// A run that ended on its budget continues with a larger one; one that ended for any other
// reason (epochs, early stopping, a perfect dev score) has nothing left to do.
void Trainer::resume_finished(TrainState& s, const std::string& origin) const {
  if (!s.stopped_on_budget)
    throw std::runtime_error(origin + ": this run has finished (" + s.stop_reason + "); there is nothing to resume");
  const bool steps_left = opt_.max_steps == 0 || opt_.max_steps > s.step;
  const bool time_left = opt_.max_minutes == 0 || opt_.max_minutes * 60.0 > s.elapsed_seconds;
  if (!steps_left || !time_left)
    throw std::runtime_error(origin + ": this run stopped on its budget (" + s.stop_reason + ", at step " +
                             std::to_string(s.step) + " after " + format_minutes(s.elapsed_seconds) +
                             "); give a larger --max-steps or --max-minutes (0 = no limit) to continue it");
  s.finished = s.stopped_on_budget = false;
  s.stop_reason.clear();
}

// Dev evaluation: greedy decoding, exact match against any of a source's references. A better
// model replaces the saved one as one unit; every --lr-patience stalls in a row halve the learning rate.
// The dev metric that picks the best model and stops the run: --metric, or for "auto" BLEU when
// the outputs are subword sentences and exact match otherwise.
std::string Trainer::dev_metric() const {
  if (opt_.metric != "auto") return opt_.metric;
  return opt_.target.kind == Tokenizer::Kind::kSentencePiece ? "bleu" : "exact";
}

// Teacher-forced loss per target token over the dev set (no dropout, no label smoothing).
double Trainer::dev_loss() const {
  NoGradScope no_grad;
  double total = 0.0;
  int64_t tokens = 0;
  for (const auto& idx : make_batches(dev_set_, opt_.batch, nullptr)) {
    const Batch batch = make_batch(dev_set_, idx);
    total += double(bundle_->model().loss(batch, 0.0f, nullptr).value().item()) * batch.target_tokens();
    tokens += batch.target_tokens();
  }
  return tokens ? total / double(tokens) : 0.0;
}

// This evaluation's weights in out/checkpoints/step-NNNNNNNN (each saved as one unit), and the
// oldest removed beyond --keep-checkpoints.
void Trainer::keep_checkpoint() {
  const std::string root = opt_.out + "/checkpoints";
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(state_.step));
  make_directories(root);
  require_finite(params_, state_.step, opt_.out);
  bundle_->save(root + "/" + name);
  std::vector<std::string> kept;
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) kept.push_back(e.path().string());
  std::sort(kept.begin(), kept.end());  // zero-padded steps: by name is by step
  for (size_t i = 0; i + opt_.keep_checkpoints < kept.size(); ++i) std::filesystem::remove_all(kept[i]);
}

void Trainer::evaluate() {
  // The training speed since the previous evaluation, before this one adds its own time.
  const double rate = window_tokens_ / std::max(1e-9, seconds_since(window_t0_));
  if (!ema_.empty()) {  // the moving average is what is evaluated and saved
    swap_ema();
    try {
      evaluate_weights(rate);
    } catch (...) {
      swap_ema();
      throw;
    }
    swap_ema();
  } else {
    evaluate_weights(rate);
  }
  window_tokens_ = 0.0, window_t0_ = std::chrono::steady_clock::now();
}

void Trainer::evaluate_weights(double tokens_per_second) {
  const ReferenceSet& refs = dev_refs_;
  std::vector<Translation> out = translate_dev(refs.sources);
  std::vector<Tokens> hyps;
  for (auto& t : out) hyps.push_back(t.target_tokens);
  const Scores s = score(hyps, refs.references);
  TrainState& st = state_;
  st.last_eval_step = st.step;
  EvalRecord r;
  r.step = st.step, r.epoch = std::min(st.epoch, opt_.epochs),
  r.train_loss = st.epoch_steps ? st.epoch_loss / st.epoch_steps : 0.0;
  r.dev_exact_match = s.exact_match, r.dev_error_rate = s.error_rate;
  r.metric = dev_metric();
  if (r.metric == "bleu" || r.metric == "chrf") {  // every dev line's output against its own reference
    const LineOutputs l = outputs_per_line(dev_examples_, refs, out);
    r.dev_bleu = corpus_bleu(l.hypotheses, l.references).score;
    r.dev_chrf = corpus_chrf(l.hypotheses, l.references).score;
  }
  if (r.metric == "loss") r.dev_loss = dev_loss();
  r.lr = schedule_.at(st.step) * st.lr_scale, r.elapsed_seconds = elapsed();
  r.tokens_per_second = tokens_per_second;
  r.best = st.best.step == 0 || r.better_than(st.best);  // step 0: no evaluation yet
  if (r.best) {
    st.best = result_.best = r;
    st.stale = 0;
    require_finite(params_, st.step, opt_.out);
    if (comm_.writer()) bundle_->save(opt_.out);  // one unit; only ever replaced by a better model
  } else {
    ++st.stale;
    if (opt_.lr_patience > 0 && st.stale % opt_.lr_patience == 0) st.lr_scale *= 0.5f;
  }
  if (opt_.keep_checkpoints > 0 && comm_.writer()) keep_checkpoint();
  st.metrics += nlohmann::json(r).dump() + "\n";
  if (comm_.writer()) write_file_atomic(opt_.out + "/metrics.jsonl", st.metrics);
  if (cb_.on_eval) cb_.on_eval(r);
  if (r.metric == "exact" && s.exact_match >= 1.0) {
    st.stop_reason = "dev exact match reached 100%";
    stop_ = true;
  } else if (st.stale >= opt_.patience) {
    st.stop_reason = "no dev improvement in " + std::to_string(opt_.patience) + " evaluations";
    stop_ = true;
  }
}

// The epoch's batch order comes from the RNG as it was when the epoch began; a resumed run
// replays that shuffle and then takes up the RNG where the interrupted run left it.
void Trainer::begin_epoch() {
  if (state_.next_batch == 0) {
    state_.epoch_loss = 0.0;
    state_.epoch_steps = 0;
    state_.epoch_rng = rng_.state();
  }
  // Every process shuffles alike: a model that samples (hard attention) draws from the RNG as
  // many times as its shard has rows, so the processes' generators part; rank 0's decides.
  if (comm_.size() > 1) comm_.broadcast(state_.epoch_rng.data(), static_cast<int64_t>(state_.epoch_rng.size()));
  const std::array<uint64_t, 4> now = rng_.state();
  rng_.set_state(state_.epoch_rng);
  const int N = comm_.size();  // a global batch: N shards of --batch sentences (or --batch-tokens)
  batches_ = opt_.batch_tokens > 0 ? make_token_batches(train_set_, opt_.batch_tokens * N, &rng_)
                                   : make_batches(train_set_, opt_.batch * N, &rng_);
  if (state_.next_batch > 0) rng_.set_state(now);
  if (comm_.size() > 1) {  // a check that costs one exchange per epoch: the shards must partition
    std::string order;
    for (const auto& b : batches_)
      for (int i : b) order += std::to_string(i) + ",";
    comm_.require_same("the epoch's batch order", sha256_hex(order));
  }
}

bool Trainer::step() {
  TrainState& st = state_;
  if (st.next_batch >= batches_.size()) return false;
  // The update's batches (--accum: up to that many, fewer at the end of the epoch); each
  // batch's mean loss is weighted by its share of their target tokens, so that the gradient is
  // that of the mean over every token.
  // With several processes, each trains on its shard and the sums run over every rank's.
  std::vector<Batch> group;
  int64_t group_tokens = 0;
  for (int taken = 0; taken < opt_.accum && st.next_batch < batches_.size(); ++taken) {
    const std::vector<int> mine = comm_.size() > 1 ? shard(batches_[st.next_batch]) : batches_[st.next_batch];
    ++st.next_batch;
    if (mine.empty()) continue;  // fewer examples than processes at the end of an epoch
    group.push_back(make_batch(train_set_, mine));
    group_tokens += group.back().target_tokens();
  }
  comm_.allreduce_sum(&group_tokens, 1);
  const bool weighted = group.size() > 1 || comm_.size() > 1;
  double loss_sum = 0.0;
  if (buckets_) buckets_->begin();
  for (const Batch& batch : group) {
    Tape tape;
    // The last backward of the update finishes each gradient: its exchange starts from there.
    if (buckets_ && &batch == &group.back()) tape.on_grad_ready([this](Node* leaf) { buckets_->ready(leaf); });
    TapeScope scope(tape);
    const Tensor teacher = teachers_.empty() || opt_.teacher_weight == 0.0f ? Tensor() : teacher_probabilities(batch);
    const CrossEntropyOptions targets{.label_smoothing = opt_.label_smoothing,
                                      .soft_targets = teacher.defined() ? &teacher : nullptr,
                                      .soft_weight = opt_.teacher_weight};
    Var loss = bundle_->model().loss(batch, targets, &rng_);
    const float weight = float(batch.target_tokens()) / float(std::max<int64_t>(group_tokens, 1));
    if (weighted) loss = scale(loss, weight);
    const float value = loss.value().item();
    loss_sum += value;
    if (!std::isfinite(value)) break;
    tape.backward(loss);
  }
  if (comm_.size() > 1) {
    const auto r0 = std::chrono::steady_clock::now();
    if (buckets_) buckets_->finish();   // (sharded, Adam::step reduce-scatters the gradients)
    comm_.allreduce_sum(&loss_sum, 1);  // after the buckets: every rank starts them in one order
    result_.reduce_seconds += seconds_since(r0);
  }
  const float loss_value = static_cast<float>(loss_sum);
  const int64_t step_tokens = group_tokens;
  ++st.step;
  const float norm = std::isfinite(loss_value) ? adam_->step(schedule_.at(st.step) * st.lr_scale) : NAN;
  adam_->zero_grad();
  if (!std::isfinite(loss_value) || !std::isfinite(norm)) {
    ++st.nonfinite;
    st.lr_scale *= 0.5f;
    message("step " + std::to_string(st.step) + ": non-finite " +
            (std::isfinite(loss_value) ? "gradient norm" : "loss") + "; update skipped, learning rate halved");
    if (st.nonfinite >= opt_.max_nonfinite)
      throw std::runtime_error("training diverged: " + std::to_string(st.nonfinite) +
                               " consecutive non-finite steps, the last at step " + std::to_string(st.step) +
                               " (the best checkpoint in " + opt_.out + " is intact)");
    return true;
  }
  st.nonfinite = 0;
  if (!ema_.empty()) update_ema();
  st.epoch_loss += loss_value;
  ++st.epoch_steps;
  tokens_ += static_cast<double>(step_tokens);
  window_tokens_ += static_cast<double>(step_tokens);
  if (cb_.on_step) {
    const int64_t per_epoch = (static_cast<int64_t>(batches_.size()) + opt_.accum - 1) / opt_.accum;
    TrainProgress p;
    p.epoch = st.epoch, p.epochs = opt_.epochs, p.step = st.step, p.steps_per_epoch = per_epoch;
    p.step_in_epoch = (static_cast<int64_t>(st.next_batch) + opt_.accum - 1) / opt_.accum;
    p.loss = st.epoch_loss / st.epoch_steps;
    p.elapsed_seconds = elapsed();
    p.tokens_per_second = tokens_ / std::max(1e-9, seconds_since(tok_t0_));
    const double per_step = seconds_since(tok_t0_) / std::max<int64_t>(st.step - first_step_, 1);
    p.eta_seconds = per_step * (per_epoch - p.step_in_epoch);
    cb_.on_step(p);
  }
  return true;
}

bool Trainer::after_step() {
  TrainState& st = state_;
  bool saved = false;
  if (opt_.eval_every > 0 && st.step % opt_.eval_every == 0) {
    evaluate();
    save_state();
    saved = true;
  }
  if (!saved && opt_.save_every > 0 && st.step % opt_.save_every == 0) {
    save_state();
    saved = true;
  }
  if (any_rank(cb_.should_stop && cb_.should_stop())) {
    if (!saved) save_state();
    st.stop_reason = "interrupted at step " + std::to_string(st.step);
    result_.interrupted = true;
    return true;
  }
  if (opt_.max_steps > 0 && st.step >= opt_.max_steps) {
    st.stop_reason = "step budget of " + std::to_string(opt_.max_steps) + " updates used";
    st.stopped_on_budget = stop_ = true;
  } else if (any_rank(opt_.max_minutes > 0 && elapsed() > opt_.max_minutes * 60.0)) {
    st.stop_reason = "time budget of " + format_minutes(opt_.max_minutes * 60.0) + " used";
    st.stopped_on_budget = stop_ = true;
  }
  return false;
}

// Per-epoch evaluation, then the state as the next epoch will start (what a kill here resumes).
void Trainer::end_epoch() {
  if (opt_.eval_every != 0 || state_.next_batch != batches_.size() || state_.last_eval_step == state_.step) return;
  evaluate();
  if (stop_) return;
  const TrainState here = state_;
  state_.epoch += 1, state_.next_batch = 0, state_.epoch_rng = rng_.state(), state_.epoch_loss = 0.0,
                     state_.epoch_steps = 0;
  save_state();
  state_ = here;
}

TrainResult Trainer::run() {
  TrainState& st = state_;
  first_step_ = st.step;
  if (!opt_.resume) save_state();  // resumable from the first moment
  if (!cache_teachers()) {         // (minutes for a large set: a stop must not wait for it)
    result_.interrupted = true;
    result_.stop_reason = "interrupted while computing the teachers' probabilities";
    result_.steps = st.step;
    result_.seconds = elapsed();
    return result_;
  }
  tok_t0_ = window_t0_ = std::chrono::steady_clock::now();  // (tokens/s of training steps, not of the cache)
  for (; st.epoch <= opt_.epochs && !stop_; ++st.epoch, st.next_batch = 0) {
    begin_epoch();
    for (auto u0 = std::chrono::steady_clock::now(); !stop_ && step(); u0 = std::chrono::steady_clock::now()) {
      result_.update_seconds += seconds_since(u0);
      ++result_.updates;
      if (after_step()) {
        result_.stop_reason = st.stop_reason;
        result_.steps = st.step;
        result_.seconds = elapsed();
        return result_;
      }
    }
    end_epoch();
    if (stop_) break;  // not ++epoch: a run stopped mid-epoch reports the epoch it was in
  }
  if (st.last_eval_step != st.step) evaluate();  // the steps since the last evaluation count too
  if (st.stop_reason.empty()) st.stop_reason = "ran " + std::to_string(opt_.epochs) + " epochs";
  st.finished = true;
  save_state();
  result_.best = st.best;
  result_.stop_reason = st.stop_reason;
  result_.steps = st.step;
  result_.seconds = elapsed();
  return result_;
}

}  // namespace attend
