#include "evaluate.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "attend/data/bible.h"
#include "attend/data/tsv.h"

namespace attend::cli {

namespace {

// A model trained with --task g2p (its config's extra.task).
bool is_g2p(const Translator& tr) {
  const nlohmann::json& extra = tr.extra();
  return extra.contains("task") && extra["task"] == "g2p";
}

// Translation metrics for a model whose outputs are sentences (subword or word tokens): BLEU
// and chrF of every test line's output (one reference each, as sacrebleu scores a test set).
// A G2P model's words of phones are scored as the G2P papers do, by WER and PER only.
bool scores_sentences(const Translator& tr) {
  return tr.target_tokenizer().kind != Tokenizer::Kind::kChar && !is_g2p(tr);
}

SentenceScores sentence_scores(const LineOutputs& l) {
  return {corpus_bleu(l.hypotheses, l.references), corpus_chrf(l.hypotheses, l.references)};
}

// BLEU and chrF of each book a .keys file names (books in the order they first appear).
std::vector<BookScores> book_scores(const std::vector<int>& book_of_line, const LineOutputs& l) {
  std::vector<int> order;
  std::map<int, LineOutputs> by_book;
  for (size_t i = 0; i < book_of_line.size(); ++i) {
    auto [it, fresh] = by_book.try_emplace(book_of_line[i]);
    if (fresh) order.push_back(book_of_line[i]);
    it->second.hypotheses.push_back(l.hypotheses[i]);
    it->second.references.push_back(l.references[i]);
  }
  std::vector<BookScores> out;
  for (int b : order) {
    const LineOutputs& o = by_book.at(b);
    out.push_back({bible::books()[b], o.hypotheses.size(), sentence_scores(o)});
  }
  return out;
}

}  // namespace

EvalReport evaluate_test(const Translator& tr, const EvalRequest& e) {
  const std::vector<Example> lines = read_tsv(e.test);
  std::vector<int> book_of_line;
  if (!e.keys.empty()) book_of_line = bible::read_keys(e.keys, lines.size(), e.test);
  check_length_bounds(e.length_bounds);  // before decoding: a mistake costs no time
  // Several lines with the same source are several references for one input (e.g. CMUdict variants).
  const ReferenceSet set =
      group_references(lines, [&](const std::string& t) { return tr.target_tokenizer().split(t); });
  const std::vector<std::string>& sources = set.sources;
  const std::vector<std::vector<Tokens>>& refs = set.references;
  std::vector<Translation> out = tr.translate(sources, e.decode, e.batch, e.batch_tokens);
  for (size_t i = 0; i < out.size(); ++i)
    if (!out[i].error.empty())
      throw std::runtime_error(e.test + ": source '" + sources[i].substr(0, 60) + "': " + out[i].error +
                               "; no score was computed");
  EvalReport r;
  r.g2p = is_g2p(tr);
  std::vector<Tokens> hyps;
  for (const auto& t : out) {
    hyps.push_back(t.target_tokens);
    r.unknown += t.unknown;
    accumulate(r.alignment, alignment_stats(t.attention));
  }
  r.s = score(hyps, refs);
  if (!e.length_bounds.empty()) {
    std::vector<size_t> lengths;
    for (const auto& t : out) lengths.push_back(t.source_tokens.size());
    r.by_length = score_by_length(lengths, hyps, refs, e.length_bounds);
  }
  if (scores_sentences(tr) || !book_of_line.empty()) {
    const LineOutputs per_line = outputs_per_line(lines, set, out);
    if (scores_sentences(tr)) r.mt = sentence_scores(per_line);
    if (!book_of_line.empty()) r.books = book_scores(book_of_line, per_line);
  }
  for (size_t i = 0; i < out.size(); ++i)
    if (std::find(refs[i].begin(), refs[i].end(), hyps[i]) == refs[i].end())
      r.wrong.emplace_back(sources[i], out[i].text);
  return r;
}

}  // namespace attend::cli
