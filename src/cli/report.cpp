#include "report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "attend/attention/registry.h"
#include "attend/data/lines.h"
#include "attend/data/tsv.h"
#include "attend/decode/search.h"
#include "attend/eval/alignment.h"
#include "attend/io/files.h"
#include "attend/models/translator.h"
#include "attend/threads.h"
#include "attend/train/trainer.h"
#include "attend/viz/report.h"
#include "evaluate.h"
#include "output.h"
#include "progress.h"
#include "validators.h"

namespace attend::cli {

CLI::App* add_report_command(CLI::App& app, ReportArgs& a) {
  auto* cmd = app.add_subcommand(
      "report", "Write one self-contained HTML page about models: training curves, settings, attention on samples");
  cmd->add_option("--model", a.models, "Model directory (give several to compare them)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--data", a.data, "Sample inputs: source<TAB>reference per line (or a source alone)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--samples", a.samples, "How many inputs of --data to show (the first ones)")
      ->check(whole(1, 10000))
      ->capture_default_str();
  cmd->add_option("--test", a.test, "Test file (source<TAB>reference): its metrics go on each model's card")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", a.out, "The HTML file to write")->capture_default_str();
  cmd->add_option("--title", a.title, "The page's title (default: the models' names)");
  cmd->add_option("--beam", a.beam, "Beam size for the samples and --test (1 = greedy)")
      ->check(whole(1, 64))
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "Threads for matrix products")->check(whole(1, 8))->capture_default_str();
  return cmd;
}

namespace {

constexpr size_t kMaxNotesPerFile = 10;                // then one line says how many more
constexpr size_t kMaxSampleBytes = size_t(256) << 20;  // of one model's samples in the page
constexpr size_t kDecodeChunk = 64;                    // samples decoded at a time
constexpr uint64_t kMaxMetricsBytes = 64ull << 20;     // metrics.jsonl: a quarter million evaluations fit
constexpr size_t kMaxChartPoints = 2000;               // per model, on each chart

// Warnings: each goes to stderr and to the top of the page.
struct Notes {
  std::vector<std::string> lines;
  void add(const std::string& m) { lines.push_back(m); }
};

// Notes about one file's lines: the first few, then a count of the rest.
struct LineNotes {
  Notes& notes;
  std::string path;
  size_t count = 0;
  void add(const std::string& m) {
    if (++count <= kMaxNotesPerFile) notes.add(m);
  }
  ~LineNotes() {
    if (count > kMaxNotesPerFile)
      notes.add(path + ": " + std::to_string(count - kMaxNotesPerFile) + " more unreadable lines not listed");
  }
};

struct SampleInput {
  std::string source;
  std::vector<std::string> references;  // several for CMUdict's variants; none for a source alone
};

// --data: the first `wanted` distinct sources with their references (lines that repeat a source
// are more references for it). A line without a tab is a source without a reference; a line that
// cannot be read (invalid UTF-8, too long, more than one tab, a blank side) is noted and skipped.
std::vector<SampleInput> read_samples(const std::string& path, size_t wanted, Notes& notes) {
  const std::vector<std::string> lines = split_lines(read_file(path));
  std::vector<SampleInput> out;
  std::map<std::string, size_t> index;
  LineNotes bad{notes, path};
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::string& line = lines[n];
    const std::string where = path + ":" + std::to_string(n + 1) + ": ";
    Example e;
    try {
      check_text_line(line, where, LinesOptions{}.max_line_bytes);
      if (line.find_first_not_of(" \t\r\f\v") == std::string::npos) continue;
      e = line.find('\t') == std::string::npos ? Example{line, "", n + 1} : parse_tsv_line(line, where);
    } catch (const std::exception& ex) {
      bad.add(std::string(ex.what()) + "; skipped");
      continue;
    }
    auto [it, fresh] = index.try_emplace(e.source, out.size());
    if (fresh && out.size() == wanted) break;  // the last sample's further references are read
    if (fresh) out.push_back({e.source, {}});
    if (!e.target.empty()) out[it->second].references.push_back(e.target);
  }
  if (out.size() < wanted)
    notes.add("--samples " + std::to_string(wanted) + ", but " + path + " has " +
              (out.empty() ? std::string("no usable inputs: no attention to show")
                           : "only " + std::to_string(out.size()) + " usable inputs: showing them all"));
  return out;
}

// At most kMaxChartPoints records per model, evenly spaced, with every best one and the last (a
// chart cannot show more, and a browser slows down drawing them).
nlohmann::json thin_records(const nlohmann::json& records, const std::string& path, Notes& notes) {
  if (records.size() <= kMaxChartPoints) return records;
  const size_t every = (records.size() + kMaxChartPoints - 1) / kMaxChartPoints;
  nlohmann::json kept = nlohmann::json::array();
  for (size_t i = 0; i < records.size(); ++i)
    if (i % every == 0 || i + 1 == records.size() || records[i].value("best", false)) kept.push_back(records[i]);
  notes.add(path + ": " + std::to_string(records.size()) + " evaluations; the charts show every " +
            std::to_string(every) + "th, each best one and the last (" + std::to_string(kept.size()) + ")");
  return kept;
}

// DIR/metrics.jsonl as records (each validated and written back in one form); a missing file or
// a bad line is a note.
nlohmann::json read_metrics(const std::string& dir, Notes& notes) {
  nlohmann::json records = nlohmann::json::array();
  const std::string path = dir + "/metrics.jsonl";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    notes.add(dir + ": no metrics.jsonl (attend train writes one at every evaluation): no training curves");
    return records;
  }
  LineNotes bad{notes, path};
  try {
    const std::vector<std::string> lines = split_lines(read_file(path, kMaxMetricsBytes));
    for (size_t n = 0; n < lines.size(); ++n) {
      if (lines[n].empty()) continue;
      try {
        records.push_back(nlohmann::json(nlohmann::json::parse(lines[n]).get<EvalRecord>()));
      } catch (const std::exception& e) {
        bad.add(path + ":" + std::to_string(n + 1) + ": not an evaluation record (" + e.what() + "); skipped");
      }
    }
  } catch (const std::exception& e) {
    notes.add(std::string(e.what()) + ": no training curves");
  }
  return thin_records(records, path, notes);
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string describe_rnn(const Seq2SeqConfig& c) {
  const AttentionConfig& a = c.attention;
  const nlohmann::json names = a;  // the score and normaliser as config.json spells them
  std::string s = "RNN encoder-decoder: " + std::string(c.cell == CellKind::kLstm ? "LSTM" : "GRU") + ", " +
                  std::to_string(c.encoder_layers) + "-layer " + (c.bidirectional ? "bidirectional " : "") +
                  "encoder (" + std::to_string(c.encoder_size()) + (c.bidirectional ? " per direction" : "") +
                  "), decoder " + std::to_string(c.hidden) + ", embeddings " + std::to_string(c.embedding) +
                  "; attention: " + a.canonical_mechanism() + ", " + names.value("score", "") + " score, " +
                  names.value("normalizer", "");
  return s + (c.input_feeding ? "; input feeding" : "") + "; dropout " + format_fixed(c.dropout, 2);
}

std::string describe(const ModelConfig& m) {
  if (m.architecture == Architecture::kRnn) return describe_rnn(m.rnn);
  const TransformerConfig& t = m.transformer;
  return "Transformer: " + std::to_string(t.encoder_layers) + " + " + std::to_string(t.decoder_layers) +
         " layers, C = " + std::to_string(t.dim) + ", " + std::to_string(t.heads) + " heads, feed-forward " +
         std::to_string(t.ffn) + ", " + (t.pre_norm ? "pre-LN" : "post-LN") + ", dropout " +
         format_fixed(t.dropout, 2) + " (attention " + format_fixed(t.attention_dropout, 2) + ", feed-forward " +
         format_fixed(t.activation_dropout, 2) + ")" +
         (t.relative_positions > 0 ? ", encoder relative positions to +-" + std::to_string(t.relative_positions) : "") +
         (t.decoder_relative_positions > 0
              ? ", decoder relative positions to -" + std::to_string(t.decoder_relative_positions)
              : "") +
         (t.share_all_embeddings ? ", one embedding matrix for source, target and output"
          : t.tie_embeddings     ? ", output tied to the target embeddings"
                                 : "");
}

std::string describe(const Tokenizer& t) {
  std::string s = to_string(t.kind);
  if (t.kind == Tokenizer::Kind::kSentencePiece && t.subwords)
    s += " (" + std::to_string(t.subwords->pieces().size()) + " pieces)";
  return s + (t.lowercase ? ", lower-cased" : "");
}

// What the run's training state says: how long it trained and on what. Without one, a note.
void add_training_rows(const std::string& dir, nlohmann::json& card, Notes& notes) {
  std::error_code ec;
  if (!std::filesystem::exists(dir + "/" + kTrainStateFile, ec)) {
    notes.add(dir + ": no " + kTrainStateFile + ": the model card has no training settings");
    return;
  }
  try {
    const nlohmann::json s = load_train_summary(dir);
    card["rows"].push_back(
        {"trained",
         thousands(s["step"].get<int64_t>()) + " updates, epoch " + std::to_string(s["epoch"].get<int>()) + ", " +
             format_duration(s["elapsed_seconds"].get<double>()) +
             (s["stop_reason"].get<std::string>().empty() ? std::string(" (not finished)")
                                                          : "; stopped: " + s["stop_reason"].get<std::string>())});
    for (const auto& f : s["data_files"])
      card["rows"].push_back({"data", f.value("path", "") + " (" + thousands(f.value("bytes", int64_t{0})) +
                                          " bytes, sha256 " + f.value("sha256", "").substr(0, 16) + "...)"});
    const std::string command = s["options"].value("command", "");
    if (!command.empty()) card["rows"].push_back({"command", command});
    card["details"].push_back({"training settings", s["options"].dump(2)});
  } catch (const std::exception& e) {
    notes.add(std::string(e.what()) + ": the model card has no training settings");
  }
}

nlohmann::json model_card(const Translator& tr, const std::string& dir, const nlohmann::json& metrics, Notes& notes) {
  const Model& model = tr.model();
  const nlohmann::json config = model.config_json();
  nlohmann::json card = {{"rows", nlohmann::json::array()}, {"details", nlohmann::json::array()}};
  auto row = [&](const std::string& k, const std::string& v) { card["rows"].push_back({k, v}); };
  row("directory", dir);
  row("architecture", describe(config.get<ModelConfig>()));
  row("parameters", thousands(tr.parameter_count()));
  row("vocabularies", thousands(int64_t(tr.source_vocab().size())) + " source, " +
                          thousands(int64_t(tr.target_vocab().size())) + " target tokens");
  row("tokenizers", "source " + describe(tr.source_tokenizer()) + "; target " + describe(tr.target_tokenizer()));
  if (tr.extra().contains("task") && tr.extra()["task"].is_string()) row("task", tr.extra()["task"].get<std::string>());
  for (auto r = metrics.rbegin(); r != metrics.rend(); ++r)
    if (r->value("best", false)) {
      row("best dev", format_dev_score(r->get<EvalRecord>()) + " at step " + thousands(r->value("step", int64_t{0})));
      break;
    }
  add_training_rows(dir, card, notes);
  card["details"].push_back({"model settings", config.dump(2)});
  std::error_code ec;
  if (std::filesystem::exists(dir + "/checkpoint.json", ec))
    card["details"].push_back(
        {"files (checkpoint.json)", nlohmann::json::parse(read_file(dir + "/checkpoint.json")).dump(2)});
  return card;
}

// Each token's word: SentencePiece pieces grouped into words, else one word per token.
std::vector<int> words_of(const Tokenizer& tok, const std::vector<std::string>& tokens) {
  return (tok.kind == Tokenizer::Kind::kSentencePiece ? group_pieces(tokens) : one_group_per_token(tokens))
      .word_of_piece;
}

// One sample's JSON (viz/report.h); its alignment statistics are added to `overall`.
nlohmann::json sample_json(const Translator& tr, const SampleInput& in, const Translation& t, AlignmentStats& overall) {
  nlohmann::json s = {{"source", in.source}, {"output", t.text}};
  std::string refs;
  for (const std::string& r : in.references) refs += (refs.empty() ? "" : "  |  ") + r;
  s["reference"] = refs;
  if (!t.error.empty()) return s["error"] = t.error, s;
  bool correct = false;
  for (const std::string& r : in.references) correct = correct || tr.target_tokenizer().split(r) == t.target_tokens;
  s["correct"] = in.references.empty() ? nlohmann::json() : nlohmann::json(correct);
  std::vector<std::string> tgt = t.target_tokens;
  if (t.attention.size() > tgt.size()) tgt.push_back("</s>");
  s["src"] = t.source_tokens, s["tgt"] = tgt;
  s["src_words"] = words_of(tr.source_tokenizer(), t.source_tokens);
  s["tgt_words"] = words_of(tr.target_tokenizer(), t.target_tokens);
  try {  // a non-finite weight is an error of this sample, not a picture
    s["weights"] = pack_weights(t.attention);
    s["maps"] = nlohmann::json::array();
    for (const auto& m : t.maps) s["maps"].push_back(pack_weights(m));
  } catch (const std::exception& e) {
    s.erase("weights"), s.erase("maps");
    return s["error"] = std::string("cannot show the attention: ") + e.what(), s;
  }
  const std::vector<std::string> names = tr.model().trace_names();
  for (size_t k = 0; k < names.size() && !t.trace.empty(); ++k) {  // one value per heatmap row
    std::vector<float> values;
    for (const auto& row : t.trace) values.push_back(row.at(k));
    s["trace"][names[k]] = values;
  }
  const AlignmentStats st = alignment_stats(t.attention);
  accumulate(overall, st);
  s["stats"] = {{"monotonicity", st.monotonicity}, {"entropy", st.entropy}, {"diagonality", st.diagonality}};
  return s;
}

// What a sample's weights take in the page (its packed matrices: the bulk of it).
size_t packed_bytes(const nlohmann::json& sample) {
  size_t n = sample.contains("weights") ? sample["weights"]["data"].get_ref<const std::string&>().size() : 0;
  if (sample.contains("maps"))
    for (const auto& m : sample["maps"]) n += m["data"].get_ref<const std::string&>().size();
  return n;
}

void add_samples(const Translator& tr, const std::vector<SampleInput>& inputs, const ReportArgs& a, nlohmann::json& m,
                 Notes& notes) {
  DecodeOptions options;
  options.beam = a.beam;
  AlignmentStats overall;
  size_t failed = 0, shown = 0, bytes = 0;
  // In chunks, each packed before the next is decoded: memory holds one chunk's float weights.
  for (size_t start = 0; start < inputs.size() && bytes <= kMaxSampleBytes; start += kDecodeChunk) {
    std::vector<std::string> sources;
    for (size_t i = start; i < std::min(inputs.size(), start + kDecodeChunk); ++i) sources.push_back(inputs[i].source);
    const std::vector<Translation> out = tr.translate(sources, options);
    for (size_t i = 0; i < out.size() && bytes <= kMaxSampleBytes; ++i, ++shown) {
      m["samples"].push_back(sample_json(tr, inputs[start + i], out[i], overall));
      bytes += packed_bytes(m["samples"].back());
      if (m["samples"].back().contains("error")) ++failed;
    }
  }
  const std::string dir = m["dir"].get<std::string>();
  if (shown < inputs.size())
    notes.add(dir + ": the first " + std::to_string(shown) + " samples already take " + std::to_string(bytes >> 20) +
              " MB of the page; the other " + std::to_string(inputs.size() - shown) + " are left out");
  if (failed)
    notes.add(dir + ": " + std::to_string(failed) + " of " + std::to_string(shown) +
              " samples could not be shown (the page says why for each)");
  m["stats"] = {{"monotonicity", overall.monotonicity},
                {"entropy", overall.entropy},
                {"diagonality", overall.diagonality},
                {"steps", overall.steps},
                {"sentences", shown - failed}};
  for (const AttentionMap& map : tr.model().attention_maps())
    if (tr.model().attention_maps().size() > 1)
      m["maps"].push_back({{"name", map.name}, {"layer", map.layer}, {"head", map.head}});
}

// The test metrics on the model card (--test).
nlohmann::json test_rows(const Translator& tr, const ReportArgs& a, Notes& notes) {
  nlohmann::json rows = nlohmann::json::array();
  try {
    DecodeOptions options;
    options.beam = a.beam;
    const EvalReport r = evaluate_test(tr, {a.test, "", {}, options, 64, 0});
    const std::string pct = "%";
    rows.push_back(
        {"test", a.test + " (" + thousands(int64_t(r.s.sentences)) + " inputs, beam " + std::to_string(a.beam) + ")"});
    rows.push_back({"test exact match", format_fixed(100 * r.s.exact_match, 2) + pct});
    rows.push_back({"test sentence errors (WER)", format_fixed(100 * (1 - r.s.exact_match), 2) + pct});
    rows.push_back({"test token error rate", format_fixed(100 * r.s.error_rate, 2) + pct});
    if (r.mt)
      rows.push_back(
          {"test BLEU / chrF", format_fixed(r.mt->bleu.score, 2) + " / " + format_fixed(r.mt->chrf.score, 2)});
  } catch (const std::exception& e) {
    notes.add(std::string("--test: ") + e.what());
    rows.push_back({"test", std::string("not measured: ") + e.what()});
  }
  return {{"rows", rows}};
}

std::string model_name(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  const std::string base = std::filesystem::path(d).filename().string();
  return base.empty() ? d : base;
}

nlohmann::json model_section(const std::string& dir, const std::vector<SampleInput>& inputs, const ReportArgs& a,
                             Notes& notes) {
  nlohmann::json m = {{"name", model_name(dir)},
                      {"dir", dir},
                      {"maps", nlohmann::json::array()},
                      {"samples", nlohmann::json::array()},
                      {"subwords", false}};
  m["metrics"] = read_metrics(dir, notes);
  std::unique_ptr<Translator> tr;
  try {
    tr = std::make_unique<Translator>(Translator::load(dir));
  } catch (const std::exception& e) {
    m["error"] = std::string("cannot load the model: ") + e.what();
    notes.add(dir + ": " + m["error"].get<std::string>());
    m["card"] = {{"rows", nlohmann::json::array({nlohmann::json::array({"directory", dir})})},
                 {"details", nlohmann::json::array()}};
    add_training_rows(dir, m["card"], notes);
    return m;
  }
  m["card"] = model_card(*tr, dir, m["metrics"], notes);
  m["subwords"] = tr->source_tokenizer().kind == Tokenizer::Kind::kSentencePiece ||
                  tr->target_tokenizer().kind == Tokenizer::Kind::kSentencePiece;
  add_samples(*tr, inputs, a, m, notes);
  if (!a.test.empty()) m["test"] = test_rows(*tr, a, notes);
  return m;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace

nlohmann::json report_data(const ReportArgs& a) {
  set_threads(a.threads);
  Notes notes;
  const std::vector<SampleInput> inputs = read_samples(a.data, static_cast<size_t>(a.samples), notes);
  nlohmann::json data = {{"generated", utc_now()}, {"models", nlohmann::json::array()}};
  std::string names;
  for (const std::string& dir : a.models) {
    data["models"].push_back(model_section(dir, inputs, a, notes));
    names += (names.empty() ? "" : ", ") + data["models"].back()["name"].get<std::string>();
  }
  data["title"] = a.title.empty() ? "attend report: " + names : a.title;
  data["warnings"] = notes.lines;
  return data;
}

namespace {
// --out replaces only a page attend report wrote (a slip of the keyboard must not replace a
// model's weights or a data file); checked before any work is done.
void check_out(const std::string& out) {
  std::error_code ec;
  if (!std::filesystem::exists(out, ec)) return;
  std::string head;
  try {
    head = std::string(MappedFile(out).bytes().substr(0, 4096));  // mapped: only the head is read
  } catch (const std::exception& e) {
    throw std::runtime_error("--out " + out + ": cannot check what it holds: " + e.what());
  }
  if (head.find("<meta name=\"generator\" content=\"attend report\">") == std::string::npos)
    throw std::invalid_argument("--out " + out +
                                " exists and is not a page attend report wrote; refusing to replace it "
                                "(give another --out, or remove the file)");
}
}  // namespace

int run_report(const ReportArgs& a) {
  check_out(a.out);
  const nlohmann::json data = report_data(a);
  for (const auto& w : data["warnings"]) std::fprintf(stderr, "warning: %s\n", w.get<std::string>().c_str());
  const std::string page = report_html(data);
  write_file_atomic(a.out, page);
  size_t samples = 0;
  for (const auto& m : data["models"]) samples += m["samples"].size();
  std::printf("report written to %s (%s bytes): %zu model(s), %zu samples; open it in a browser\n", a.out.c_str(),
              thousands(int64_t(page.size())).c_str(), data["models"].size(), samples);
  check_stdout();
  return 0;
}

}  // namespace attend::cli
