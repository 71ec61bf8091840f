#include "attend/train/trainer.h"

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "attend/data/batch.h"
#include "attend/data/dates.h"
#include "attend/data/tsv.h"
#include "attend/eval/metrics.h"
#include "attend/io/files.h"
#include "attend/models/translator.h"
#include "attend/train/optimizer.h"
#include "../kernels/blas.h"

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
  if (!(lr > 0.0f)) bad("--lr must be > 0, got " + std::to_string(lr));
  if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f)) bad("--label-smoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  if (patience < 1) bad("--patience must be >= 1, got " + std::to_string(patience));
  if (eval_every < 0) bad("--eval-every must be >= 0, got " + std::to_string(eval_every));
  if (out.empty()) bad("--out must name a directory");
  parse_schedule(schedule);
}

namespace {

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

Vocab build_vocab(const std::vector<Example>& examples, const Tokenizer& tok, bool source) {
  Vocab v;
  for (const auto& e : examples)
    for (const auto& t : tok.split(source ? e.source : e.target)) v.add(t);
  return v;
}

}  // namespace

TrainResult train(const TrainOptions& opt, const TrainCallbacks& cb) {
  opt.validate();
  const auto t0 = Clock::now();
  auto message = [&](const std::string& m) {
    if (cb.on_message) cb.on_message(m);
  };
  kernels::set_blas_threads(opt.threads);
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

  Seq2SeqConfig mc = opt.model;
  mc.src_vocab = src_vocab.size();
  mc.tgt_vocab = tgt_vocab.size();
  Rng rng(opt.seed);
  nlohmann::json extra = {{"task", opt.task},
                          {"training", {{"seed", opt.seed}, {"batch", opt.batch}, {"lr", opt.lr},
                                        {"label_smoothing", opt.label_smoothing}, {"threads", opt.threads}}}};
  Translator bundle(Seq2Seq(mc, rng), opt.source, opt.target, src_vocab, tgt_vocab, extra);
  const Seq2Seq& model = bundle.model();
  std::vector<NamedParameter> params = model.parameters();
  int64_t n_params = 0;
  for (const auto& p : params) n_params += p.var.value().numel();
  message("model: " + std::to_string(n_params) + " parameters; vocabularies " + std::to_string(src_vocab.size()) +
          " (source) and " + std::to_string(tgt_vocab.size()) + " (target); " + std::to_string(train_set.size()) +
          " training and " + std::to_string(dev_set.size()) + " dev examples");

  Adam adam(params, {.lr = opt.lr, .weight_decay = opt.weight_decay, .clip_norm = opt.clip_norm});
  LrSchedule schedule{parse_schedule(opt.schedule), opt.lr, opt.warmup};
  float lr_scale = 1.0f;  // halved whenever the dev score stalls

  // Dev evaluation: greedy decoding, exact match against any of a source's references.
  const ReferenceSet dev_refs = group_references(data.dev, [&](const std::string& t) { return opt.target.split(t); });
  auto evaluate = [&]() {
    std::vector<Translation> out = bundle.translate(dev_refs.sources, DecodeOptions{});
    std::vector<Tokens> hyps;
    for (auto& t : out) hyps.push_back(t.target_tokens);
    return score(hyps, dev_refs.references);
  };

  TrainResult result;
  result.best.dev_exact_match = -1.0;
  std::string metrics_text;
  int stale = 0, nonfinite = 0;
  int64_t step = 0;
  const int64_t steps_per_epoch = (static_cast<int64_t>(train_set.size()) + opt.batch - 1) / opt.batch;
  bool stop = false;
  double epoch_loss = 0.0;
  int64_t epoch_steps = 0;
  int epoch = 0;

  int64_t last_eval_step = -1;
  auto run_eval = [&]() {
    last_eval_step = step;
    Scores s = evaluate();
    EvalRecord r;
    r.step = step, r.epoch = epoch, r.train_loss = epoch_steps ? epoch_loss / epoch_steps : 0.0;
    r.dev_exact_match = s.exact_match, r.dev_error_rate = s.error_rate;
    r.lr = schedule.at(step) * lr_scale, r.elapsed_seconds = seconds_since(t0);
    r.best = s.exact_match > result.best.dev_exact_match ||
             (s.exact_match == result.best.dev_exact_match && s.error_rate < result.best.dev_error_rate);
    if (r.best) {
      result.best = r;
      stale = 0;
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
  auto tok_t0 = Clock::now();
  for (epoch = 1; epoch <= opt.epochs && !stop; ++epoch) {
    epoch_loss = 0.0;
    epoch_steps = 0;
    const std::vector<std::vector<int>> batches = make_batches(train_set, opt.batch, &rng);
    for (size_t bi = 0; bi < batches.size() && !stop; ++bi) {
      Batch batch = make_batch(train_set, batches[bi]);
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
        message("step " + std::to_string(step) + ": non-finite " + (std::isfinite(loss_value) ? "gradient" : "loss") +
                "; update skipped, learning rate halved");
        if (nonfinite >= opt.max_nonfinite) {
          throw std::runtime_error("training diverged: " + std::to_string(nonfinite) +
                                   " consecutive non-finite steps, the last at step " + std::to_string(step) +
                                   " (the best checkpoint in " + opt.out + " is intact)");
        }
        continue;
      }
      nonfinite = 0;
      epoch_loss += loss_value;
      ++epoch_steps;
      tokens += batch.target_tokens();
      if (cb.on_step) {
        TrainProgress p;
        p.epoch = epoch, p.epochs = opt.epochs, p.step = step, p.steps_per_epoch = steps_per_epoch;
        p.step_in_epoch = static_cast<int64_t>(bi) + 1;
        p.loss = epoch_loss / epoch_steps;
        p.elapsed_seconds = seconds_since(t0);
        p.tokens_per_second = tokens / std::max(1e-9, seconds_since(tok_t0));
        const double per_step = seconds_since(tok_t0) / std::max<int64_t>(step, 1);
        p.eta_seconds = per_step * (steps_per_epoch - p.step_in_epoch);
        cb.on_step(p);
      }
      if (opt.eval_every > 0 && step % opt.eval_every == 0) run_eval();
      if (opt.max_minutes > 0 && seconds_since(t0) > opt.max_minutes * 60.0) {
        result.stop_reason = "time budget of " + std::to_string(opt.max_minutes) + " minutes used";
        stop = true;
      }
    }
    if (opt.eval_every == 0) run_eval();
  }
  if (last_eval_step != step) run_eval();  // the steps since the last evaluation count too
  if (result.stop_reason.empty()) result.stop_reason = "ran " + std::to_string(opt.epochs) + " epochs";
  result.steps = step;
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace attend
