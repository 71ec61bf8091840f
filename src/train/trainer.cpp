#include "attend/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <cmath>
#include <sstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "attend/data/batch.h"
#include "attend/data/dates.h"
#include "attend/data/tsv.h"
#include "attend/eval/metrics.h"
#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/models/translator.h"
#include "attend/threads.h"
#include "../io/json_field.h"
#include "attend/train/optimizer.h"

namespace attend {

void TrainOptions::validate() const {
  auto bad = [](const std::string& what) { throw std::invalid_argument(what); };
  if (task != "dates" && task != "tsv" && task != "g2p") bad("--task must be dates, g2p or tsv, got '" + task + "'");
  if (task == "tsv" && (train_path.empty() || dev_path.empty())) bad("--task tsv needs --train and --dev files");
  if (task == "g2p" && data_dir.empty() && (train_path.empty() || dev_path.empty()))
    bad("--task g2p needs --data DIR (from attend data cmudict) or --train and --dev");
  if (batch < 1) bad("--batch must be >= 1, got " + std::to_string(batch));
  if (epochs < 1) bad("--epochs must be >= 1, got " + std::to_string(epochs));
  if (threads < 1) bad("--threads must be >= 1, got " + std::to_string(threads));
  if (max_minutes < 0) bad("--max-minutes must be >= 0, got " + std::to_string(max_minutes));
  if (max_steps < 0) bad("--max-steps must be >= 0, got " + std::to_string(max_steps));
  if (!(lr > 0.0f)) bad("--lr must be > 0, got " + std::to_string(lr));
  if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f)) bad("--label-smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  if (patience < 1) bad("--patience must be >= 1, got " + std::to_string(patience));
  if (eval_every < 0) bad("--eval-every must be >= 0, got " + std::to_string(eval_every));
  if (out.empty()) bad("--out must name a directory");
  if (save_every < 0) bad("--save-every must be >= 0, got " + std::to_string(save_every));
  if (max_nonfinite < 1) bad("--max-nonfinite must be >= 1, got " + std::to_string(max_nonfinite));
  parse_schedule(schedule);
}

void to_json(nlohmann::json& j, const TrainOptions& o) {
  j = {{"task", o.task}, {"train_path", o.train_path}, {"dev_path", o.dev_path}, {"data_dir", o.data_dir},
       {"dates_train", o.dates_train}, {"dates_dev", o.dates_dev}, {"dates_test", o.dates_test},
       {"model", o.model}, {"source", o.source}, {"target", o.target}, {"batch", o.batch}, {"epochs", o.epochs},
       {"max_minutes", o.max_minutes}, {"max_steps", o.max_steps}, {"seed", o.seed}, {"threads", o.threads}, {"lr", json_float(o.lr)},
       {"schedule", o.schedule}, {"warmup", o.warmup}, {"clip_norm", json_float(o.clip_norm)}, {"weight_decay", json_float(o.weight_decay)},
       {"label_smoothing", json_float(o.label_smoothing)}, {"patience", o.patience}, {"eval_every", o.eval_every},
       {"max_nonfinite", o.max_nonfinite}, {"save_every", o.save_every}, {"out", o.out}};
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
  j.at("task").get_to(o.task), j.at("train_path").get_to(o.train_path), j.at("dev_path").get_to(o.dev_path);
  j.at("data_dir").get_to(o.data_dir), j.at("dates_train").get_to(o.dates_train);
  j.at("dates_dev").get_to(o.dates_dev), j.at("dates_test").get_to(o.dates_test);
  // The model settings come without vocabulary sizes (the data gives those): read them with the
  // smallest valid sizes, so the rest is validated, then put back the options' unset sizes.
  nlohmann::json model = j.at("model");
  model["src_vocab"] = model["tgt_vocab"] = 5;
  model.get_to(o.model);
  o.model.set_vocabularies(0, 0);
  j.at("source").get_to(o.source), j.at("target").get_to(o.target);
  j.at("batch").get_to(o.batch), j.at("epochs").get_to(o.epochs), j.at("max_minutes").get_to(o.max_minutes);
  o.max_steps = j.value("max_steps", int64_t{0});  // runs saved before the option existed had no step budget
  j.at("seed").get_to(o.seed), j.at("threads").get_to(o.threads), j.at("lr").get_to(o.lr);
  j.at("schedule").get_to(o.schedule), j.at("warmup").get_to(o.warmup), j.at("clip_norm").get_to(o.clip_norm);
  j.at("weight_decay").get_to(o.weight_decay), j.at("label_smoothing").get_to(o.label_smoothing);
  j.at("patience").get_to(o.patience), j.at("eval_every").get_to(o.eval_every);
  j.at("max_nonfinite").get_to(o.max_nonfinite), j.at("save_every").get_to(o.save_every), j.at("out").get_to(o.out);
}

namespace {

constexpr const char* kStateKey = "attend.train_state";

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Data {
  std::vector<Example> train, dev;
};

Data load_data(const TrainOptions& opt) {
  Data d;
  if (opt.task == "dates") {
    dates::Splits s = dates::make_splits(opt.dates_train, opt.dates_dev, opt.dates_test, /*seed=*/20261125);
    d.train = std::move(s.train);
    d.dev = std::move(s.dev);
    make_directories(opt.out);
    write_tsv(opt.out + "/dev.tsv", d.dev);
    write_tsv(opt.out + "/test.tsv", s.test);  // held out: never seen in training or model selection
  } else if (opt.task == "g2p" && !opt.data_dir.empty()) {
    d.train = read_tsv(opt.data_dir + "/train.tsv");
    d.dev = read_tsv(opt.data_dir + "/dev.tsv");
  } else {
    d.train = read_tsv(opt.train_path);
    d.dev = read_tsv(opt.dev_path);
  }
  return d;
}

// Data paths as absolute paths, so a run can be resumed from another working directory.
TrainOptions with_absolute_paths(TrainOptions o) {
  for (std::string* p : {&o.train_path, &o.dev_path, &o.data_dir})
    if (!p->empty()) *p = std::filesystem::absolute(*p).lexically_normal().string();
  return o;
}

// The JSON part of a training state file, and its tensors.
struct SavedState {
  nlohmann::json meta;
  std::map<std::string, Tensor> tensors;
};

SavedState read_state(const std::string& dir) {
  const std::string path = dir + "/" + kTrainStateFile;
  if (!std::filesystem::exists(path))
    throw std::runtime_error(path + ": no training state to resume (runs save one every --save-every steps and at each evaluation)");
  SavedState s;
  std::map<std::string, std::string> metadata;
  s.tensors = parse_safetensors(read_file(path), path, &metadata);
  try {
    if (!metadata.count(kStateKey)) throw std::runtime_error(std::string("no '") + kStateKey + "' metadata");
    s.meta = nlohmann::json::parse(metadata.at(kStateKey));
    if (s.meta.at("version").get<int>() != 1)
      throw std::runtime_error("version " + s.meta.at("version").dump() + " (this attend reads version 1)");
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not an attend training state: " + e.what());
  }
  return s;
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
  for (const auto& e : examples)
    for (const auto& t : tok.split(source ? e.source : e.target)) v.add(t);
  return v;
}

}  // namespace

TrainOptions load_train_options(const std::string& dir) {
  const SavedState s = read_state(dir);
  try {
    TrainOptions o = s.meta.at("options").get<TrainOptions>();
    o.out = dir;
    return o;
  } catch (const std::exception& e) {
    throw std::runtime_error(dir + "/" + kTrainStateFile + ": bad options in the training state: " + e.what());
  }
}

TrainResult train(const TrainOptions& options, const TrainCallbacks& cb) {
  options.validate();
  const TrainOptions opt = with_absolute_paths(options);
  const auto t0 = Clock::now();
  auto message = [&](const std::string& m) {
    if (cb.on_message) cb.on_message(m);
  };
  // A resumed run must be the run that was interrupted: same data, model and optimisation.
  std::optional<SavedState> saved;
  if (opt.resume) {
    saved = read_state(opt.out);
    const std::string origin = opt.out + "/" + kTrainStateFile;
    if (saved->meta.value("finished", false))
      throw std::runtime_error(origin + ": this run has finished (" + saved->meta.value("stop_reason", "") +
                               "); there is nothing to resume");
    nlohmann::json was = saved->meta.at("options"), now = opt;
    for (const char* free : {"max_minutes", "max_steps", "out", "threads", "save_every"}) was.erase(free), now.erase(free);
    if (was != now) {
      std::string diff;
      for (const auto& [k, v] : now.items())
        if (!was.contains(k) || was[k] != v) diff += " " + k + " (was " + (was.contains(k) ? was[k].dump() : "unset") + ", now " + v.dump() + ")";
      throw std::invalid_argument(origin + ": cannot resume with different settings:" + diff);
    }
    if (saved->meta.at("options").at("threads").get<int>() != opt.threads)
      message("resuming with " + std::to_string(opt.threads) + " threads instead of " +
              saved->meta.at("options").at("threads").dump() + ": the result will not be bit-identical to an uninterrupted run");
  }
  set_threads(opt.threads);
  Data data = load_data(opt);
  Vocab src_vocab = build_vocab(data.train, opt.source, true);
  Vocab tgt_vocab = build_vocab(data.train, opt.target, false);
  size_t unknown = 0;
  std::vector<EncodedExample> train_set = encode(data.train, opt.source, src_vocab, opt.target, tgt_vocab);
  std::vector<EncodedExample> dev_set = encode(data.dev, opt.source, src_vocab, opt.target, tgt_vocab, &unknown);
  for (size_t i = 0; i < train_set.size(); ++i)
    if (train_set[i].src.empty() || train_set[i].tgt.empty())
      throw std::runtime_error("training example " + std::to_string(i + 1) + " has no tokens on one side");
  if (unknown) message("dev set: " + std::to_string(unknown) + " source tokens are not in the training vocabulary");

  ModelConfig mc = opt.model;
  mc.set_vocabularies(src_vocab.size(), tgt_vocab.size());
  if (mc.architecture == Architecture::kRnn && mc.rnn.attention == MechanismKind::kLocalM && mc.rnn.position_rate == 0.0f) {
    // local-m's "auto" rate: the output's last token (</s>, step T) should look at the source's
    // last position (S - 1), on average over the training data.
    double positions = 0.0, steps = 0.0;
    for (const EncodedExample& e : train_set) positions += double(e.src.size()) - 1.0, steps += double(e.tgt.size());
    mc.rnn.position_rate = static_cast<float>(std::clamp(positions / std::max(steps, 1.0), 0.01, 1000.0));
    std::ostringstream m;
    m << "local-m: position rate " << mc.rnn.position_rate << " from the training data (p_t = rate * t)";
    message(m.str());
  }
  Rng rng(opt.seed);
  nlohmann::json extra = {{"task", opt.task},
                          {"training", {{"seed", opt.seed}, {"batch", opt.batch}, {"lr", json_float(opt.lr)},
                                        {"label_smoothing", json_float(opt.label_smoothing)}, {"threads", opt.threads}}}};
  Translator bundle(mc.build(rng), opt.source, opt.target, src_vocab, tgt_vocab, extra);
  const Model& model = bundle.model();
  std::vector<NamedParameter> params = model.parameters();
  int64_t n_params = 0;
  for (const auto& p : params) n_params += p.var.value().numel();
  message("model: " + std::to_string(n_params) + " parameters; vocabularies " + std::to_string(src_vocab.size()) +
          " (source) and " + std::to_string(tgt_vocab.size()) + " (target); " + std::to_string(train_set.size()) +
          " training and " + std::to_string(dev_set.size()) + " dev examples");

  Adam adam(params, {.lr = opt.lr, .weight_decay = opt.weight_decay, .clip_norm = opt.clip_norm});
  LrSchedule schedule{parse_schedule(opt.schedule), opt.lr, opt.warmup};

  // Everything below, with the weights, Adam's moments and the RNG, is the training state.
  float lr_scale = 1.0f;  // halved whenever the dev score stalls or a step is not finite
  TrainResult result;
  result.best.dev_exact_match = -1.0;
  std::string metrics_text;
  int stale = 0, nonfinite = 0;
  int64_t step = 0, last_eval_step = -1;
  int epoch = 1;
  size_t next_batch = 0;                  // position in this epoch's batch order
  std::array<uint64_t, 4> epoch_rng{};    // the RNG before this epoch's shuffle
  double epoch_loss = 0.0, elapsed_before = 0.0;
  int64_t epoch_steps = 0;
  bool stop = false;

  auto elapsed = [&] { return elapsed_before + seconds_since(t0); };
  auto save_state = [&](bool finished) {
    auto to_json_record = [](const EvalRecord& r) {
      return nlohmann::json{{"step", r.step}, {"epoch", r.epoch}, {"train_loss", r.train_loss},
                            {"dev_exact_match", r.dev_exact_match}, {"dev_error_rate", r.dev_error_rate},
                            {"lr", r.lr}, {"elapsed_seconds", r.elapsed_seconds}, {"best", r.best}};
    };
    const nlohmann::json meta = {{"version", 1}, {"options", opt}, {"finished", finished},
                                 {"stop_reason", result.stop_reason}, {"step", step}, {"epoch", epoch},
                                 {"next_batch", next_batch}, {"epoch_rng", epoch_rng}, {"rng", rng.state()},
                                 {"adam_steps", adam.steps()}, {"lr_scale", lr_scale}, {"stale", stale},
                                 {"nonfinite", nonfinite}, {"best", to_json_record(result.best)},
                                 {"epoch_loss", epoch_loss}, {"epoch_steps", epoch_steps},
                                 {"last_eval_step", last_eval_step}, {"metrics", metrics_text},
                                 {"elapsed_seconds", elapsed()}};
    require_finite(params, step, opt.out);
    std::vector<NamedParameter> tensors;
    for (const auto& p : params) tensors.push_back({"param." + p.name, p.var});
    for (auto& m : adam.state()) tensors.push_back({"adam." + m.name, m.var});
    save_safetensors(opt.out + "/" + kTrainStateFile, tensors, {{kStateKey, meta.dump()}});
  };

  if (saved) {
    const std::string origin = opt.out + "/" + kTrainStateFile;
    std::map<std::string, Tensor> weights, moments;
    for (auto& [name, t] : saved->tensors) {
      if (name.rfind("param.", 0) == 0) weights.emplace(name.substr(6), t);
      else if (name.rfind("adam.", 0) == 0) moments.emplace(name.substr(5), t);
      else throw std::runtime_error(origin + ": unexpected tensor '" + name + "'");
    }
    assign_parameters(params, weights, origin);
    const nlohmann::json& m = saved->meta;
    try {
      adam.load_state(m.at("adam_steps").get<int64_t>(), moments, origin);
      step = m.at("step"), last_eval_step = m.at("last_eval_step"), epoch = m.at("epoch");
      next_batch = m.at("next_batch"), epoch_rng = m.at("epoch_rng"), lr_scale = m.at("lr_scale");
      stale = m.at("stale"), nonfinite = m.at("nonfinite"), epoch_loss = m.at("epoch_loss");
      epoch_steps = m.at("epoch_steps"), metrics_text = m.at("metrics"), elapsed_before = m.at("elapsed_seconds");
      const nlohmann::json& b = m.at("best");
      EvalRecord& r = result.best;
      r.step = b.at("step"), r.epoch = b.at("epoch"), r.train_loss = b.at("train_loss");
      r.dev_exact_match = b.at("dev_exact_match"), r.dev_error_rate = b.at("dev_error_rate");
      r.lr = b.at("lr"), r.elapsed_seconds = b.at("elapsed_seconds"), r.best = b.at("best");
      rng.set_state(m.at("rng").get<std::array<uint64_t, 4>>());
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(origin + ": damaged training state: " + e.what());
    }
    message("resuming at step " + std::to_string(step) + " (epoch " + std::to_string(epoch) + ", batch " +
            std::to_string(next_batch) + ")");
  }

  // Dev evaluation: greedy decoding, exact match against any of a source's references.
  const ReferenceSet dev_refs = group_references(data.dev, [&](const std::string& t) { return opt.target.split(t); });
  auto evaluate = [&]() {
    std::vector<Translation> out = bundle.translate(dev_refs.sources, DecodeOptions{});
    std::vector<Tokens> hyps;
    for (auto& t : out) hyps.push_back(t.target_tokens);
    return score(hyps, dev_refs.references);
  };
  const int64_t steps_per_epoch = (static_cast<int64_t>(train_set.size()) + opt.batch - 1) / opt.batch;

  auto run_eval = [&]() {
    last_eval_step = step;
    Scores s = evaluate();
    EvalRecord r;
    r.step = step, r.epoch = epoch, r.train_loss = epoch_steps ? epoch_loss / epoch_steps : 0.0;
    r.dev_exact_match = s.exact_match, r.dev_error_rate = s.error_rate;
    r.lr = schedule.at(step) * lr_scale, r.elapsed_seconds = elapsed();
    r.best = s.exact_match > result.best.dev_exact_match ||
             (s.exact_match == result.best.dev_exact_match && s.error_rate < result.best.dev_error_rate);
    if (r.best) {
      result.best = r;
      stale = 0;
      require_finite(params, step, opt.out);
      bundle.save(opt.out);  // atomic, file by file; only ever replaced by a better model
    } else {
      ++stale;
      lr_scale *= 0.5f;
    }
    metrics_text += nlohmann::json{{"step", r.step}, {"epoch", r.epoch}, {"train_loss", r.train_loss},
                                   {"dev_exact_match", r.dev_exact_match}, {"dev_error_rate", r.dev_error_rate},
                                   {"lr", r.lr}, {"elapsed_seconds", r.elapsed_seconds}, {"best", r.best}}
                        .dump() +
                    "\n";
    write_file_atomic(opt.out + "/metrics.jsonl", metrics_text);
    if (cb.on_eval) cb.on_eval(r);
    if (s.exact_match >= 1.0) {
      result.stop_reason = "dev exact match reached 100%";
      stop = true;
    } else if (stale >= opt.patience) {
      result.stop_reason = "no dev improvement in " + std::to_string(opt.patience) + " evaluations";
      stop = true;
    }
  };

  make_directories(opt.out);
  double tokens = 0.0;
  const int64_t first_step = step;
  auto tok_t0 = Clock::now();
  for (; epoch <= opt.epochs && !stop; ++epoch, next_batch = 0) {
    if (next_batch == 0) {
      epoch_loss = 0.0;
      epoch_steps = 0;
      epoch_rng = rng.state();
    }
    // The epoch's batch order comes from the RNG as it was when the epoch began; a resumed run
    // replays that shuffle and then takes up the RNG where the interrupted run left it.
    const std::array<uint64_t, 4> now = rng.state();
    rng.set_state(epoch_rng);
    const std::vector<std::vector<int>> batches = make_batches(train_set, opt.batch, &rng);
    if (next_batch > 0) rng.set_state(now);
    while (next_batch < batches.size() && !stop) {
      Batch batch = make_batch(train_set, batches[next_batch++]);
      float loss_value, norm;
      {
        Tape tape;
        TapeScope scope(tape);
        Var loss = model.loss(batch, opt.label_smoothing, &rng);
        loss_value = loss.value().item();
        if (std::isfinite(loss_value)) tape.backward(loss);
      }
      ++step;
      norm = std::isfinite(loss_value) ? adam.step(schedule.at(step) * lr_scale) : NAN;
      adam.zero_grad();
      if (!std::isfinite(loss_value) || !std::isfinite(norm)) {
        ++nonfinite;
        lr_scale *= 0.5f;
        message("step " + std::to_string(step) + ": non-finite " + (std::isfinite(loss_value) ? "gradient norm" : "loss") +
                "; update skipped, learning rate halved");
        if (nonfinite >= opt.max_nonfinite) {
          throw std::runtime_error("training diverged: " + std::to_string(nonfinite) +
                                   " consecutive non-finite steps, the last at step " + std::to_string(step) +
                                   " (the best checkpoint in " + opt.out + " is intact)");
        }
      } else {
        nonfinite = 0;
        epoch_loss += loss_value;
        ++epoch_steps;
        tokens += batch.target_tokens();
        if (cb.on_step) {
          TrainProgress p;
          p.epoch = epoch, p.epochs = opt.epochs, p.step = step, p.steps_per_epoch = steps_per_epoch;
          p.step_in_epoch = static_cast<int64_t>(next_batch);
          p.loss = epoch_loss / epoch_steps;
          p.elapsed_seconds = elapsed();
          p.tokens_per_second = tokens / std::max(1e-9, seconds_since(tok_t0));
          const double per_step = seconds_since(tok_t0) / std::max<int64_t>(step - first_step, 1);
          p.eta_seconds = per_step * (steps_per_epoch - p.step_in_epoch);
          cb.on_step(p);
        }
      }
      bool saved_now = false;
      if (opt.eval_every > 0 && step % opt.eval_every == 0) {
        run_eval();
        save_state(false);
        saved_now = true;
      }
      if (!saved_now && opt.save_every > 0 && step % opt.save_every == 0) {
        save_state(false);
        saved_now = true;
      }
      if (cb.should_stop && cb.should_stop()) {
        if (!saved_now) save_state(false);
        result.stop_reason = "interrupted at step " + std::to_string(step);
        result.interrupted = true;
        result.steps = step;
        result.seconds = elapsed();
        return result;
      }
      if (opt.max_steps > 0 && step >= opt.max_steps) {
        result.stop_reason = "step budget of " + std::to_string(opt.max_steps) + " updates used";
        stop = true;
      } else if (opt.max_minutes > 0 && elapsed() > opt.max_minutes * 60.0) {
        std::ostringstream minutes;  // 45, not 45.000000
        minutes << opt.max_minutes;
        result.stop_reason = "time budget of " + minutes.str() + " minutes used";
        stop = true;
      }
    }
    if (opt.eval_every == 0 && next_batch == batches.size()) {
      run_eval();
      if (!stop) {  // the next epoch starts from here
        const int e = epoch;
        epoch += 1, next_batch = 0, epoch_rng = rng.state(), epoch_loss = 0.0, epoch_steps = 0;
        save_state(false);
        epoch = e, next_batch = batches.size();
      }
    }
    if (stop) break;  // not ++epoch: a run stopped mid-epoch reports the epoch it was in
  }
  if (last_eval_step != step) run_eval();  // the steps since the last evaluation count too
  if (result.stop_reason.empty()) result.stop_reason = "ran " + std::to_string(opt.epochs) + " epochs";
  save_state(true);
  result.steps = step;
  result.seconds = elapsed();
  return result;
}

}  // namespace attend
