// attend's Python module: NumPy arrays in and out, float32, keyword arguments.
// Build: make (the module lands in build/python); use: PYTHONPATH=build/python /usr/bin/python3.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "attend/attention/attention.h"
#include "attend/attention/mechanism.h"
#include "attend/attention/registry.h"
#include "attend/cpu.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"
#include "attend/ops/shape.h"
#include "attend/models/translator.h"
#include "attend/threads.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/loss.h"
#include "attend/ops/reduce.h"
#include "attend/ops/sdpa.h"

namespace py = pybind11;
using namespace attend;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// An array argument, converted to contiguous float32 by NumPy itself, so that an array too large
// to copy raises NumPy's MemoryError (pybind11's own conversion would turn it into a TypeError
// about the signature) and a value that is no number its ValueError.
struct FloatArg {
  FloatArray array;
};

namespace pybind11::detail {
template <>
struct type_caster<FloatArg> {
  PYBIND11_TYPE_CASTER(FloatArg, const_name("numpy.ndarray[numpy.float32]"));
  bool load(handle src, bool /*convert*/) {
    if (src.is_none()) return false;
    const object a = module_::import("numpy").attr("ascontiguousarray")(src, "float32");  // may raise
    value.array = a.cast<FloatArray>();
    return true;
  }
};
}  // namespace pybind11::detail

namespace {

Tensor to_tensor(const FloatArg& arg, const char* name) {
  const FloatArray& a = arg.array;
  if (a.ndim() > Shape::kMaxDims) {
    throw std::invalid_argument(std::string(name) + ": at most 4 dimensions, got " + std::to_string(a.ndim()));
  }
  std::vector<int64_t> dims(a.shape(), a.shape() + a.ndim());
  Tensor t = Tensor::empty(Shape(dims));  // std::bad_alloc reaches Python as MemoryError
  std::copy(a.data(), a.data() + a.size(), t.data());
  return t;
}

py::array_t<float> to_numpy(const Tensor& t) {
  const std::vector<int64_t> shape = t.shape().vec();
  std::vector<py::ssize_t> dims(shape.begin(), shape.end());
  py::array_t<float> out(dims);
  std::copy(t.data(), t.data() + t.numel(), out.mutable_data());
  return out;
}

// A path from Python: str or os.PathLike (pathlib.Path); bytes paths and NUL characters are
// ValueErrors (a NUL would cut the path short where the operating system reads it).
std::string to_path(const py::object& path, const char* what) {
  const py::object s = py::module_::import("os").attr("fspath")(path);
  if (!py::isinstance<py::str>(s))
    throw std::invalid_argument(std::string(what) + ": the path must be str or os.PathLike of str");
  const std::string out = s.cast<std::string>();
  if (out.find('\0') != std::string::npos)
    throw std::invalid_argument(std::string(what) + ": the path contains a NUL character");
  return out;
}

Tensor to_mask(const py::object& mask, const Var& keys) {
  if (mask.is_none()) return Tensor();
  auto m = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(mask);
  if (!m) throw std::invalid_argument("mask: expected a boolean array of shape [B, S]");
  if (m.ndim() != 2 || m.shape(0) != keys.size(0) || m.shape(1) != keys.size(1)) {
    std::vector<int64_t> dims(m.shape(), m.shape() + m.ndim());
    throw std::invalid_argument("mask has shape " + Shape(dims).str() + ", expected [" + std::to_string(keys.size(0)) +
                                ", " + std::to_string(keys.size(1)) + "] ([B, S])");
  }
  Tensor t = Tensor::empty(Shape{keys.size(0), keys.size(1)});
  for (py::ssize_t i = 0; i < m.size(); ++i) t.data()[i] = m.data()[i] ? 1.0f : 0.0f;
  return t;
}

// The score's parameter arrays (every mechanism has a score); the mechanisms' own arrays and
// options come from the registry.
const std::vector<MechanismArray> kScoreArrays = {{"W", "W", "[Dq, Dk]", {"", ""}},
                                                  {"Wq", "Wq", "[Dq, A]", {"", "attention_dim"}},
                                                  {"Wk", "Wk", "[Dk, A]", {"", "attention_dim"}},
                                                  {"va", "va", "[A]", {"attention_dim"}}};

// Every array keyword a mechanism takes: its score's and its own.
std::vector<MechanismArray> arrays_of(const MechanismInfo& info) {
  std::vector<MechanismArray> arrays = kScoreArrays;
  arrays.insert(arrays.end(), info.arrays.begin(), info.arrays.end());
  return arrays;
}

struct Inputs {
  Var query, keys, values, summary;
  Tensor mask;
  std::shared_ptr<AttentionMechanism> mechanism;
  std::vector<std::pair<std::string, Var>> named;  // everything that gets a gradient
};

// The keyword arguments: the mechanism's options, and parameter arrays (the score's and the
// mechanism's). Array dimensions set the sizes they stand for (A, location's K and R).
AttentionConfig config_from_kwargs(const MechanismInfo& info, const std::string& score, const std::string& normalizer,
                                   const py::kwargs& kwargs, std::map<std::string, Tensor>& given) {
  AttentionConfig c;
  c.mechanism = info.name, c.score = parse_score(score), c.normalizer = parse_normalizer(normalizer);
  const std::vector<MechanismArray> arrays = arrays_of(info);
  for (const auto& [k, v] : kwargs) {
    const std::string key = py::str(k);
    if (const MechanismOption* o = info.option(key)) {
      c.options[key] = o->parse(py::str(v), key);
      continue;
    }
    const auto a = std::find_if(arrays.begin(), arrays.end(), [&](const MechanismArray& x) { return x.kwarg == key; });
    if (a == arrays.end()) {
      if (const std::string who = option_owners(key); !who.empty())
        throw std::invalid_argument(key + " is an option of attention=" + who + ", not of attention='" + info.name +
                                    "'");
      for (const MechanismInfo& other : mechanisms())
        for (const MechanismArray& x : other.arrays)
          if (x.kwarg == key)
            throw std::invalid_argument("attention='" + info.name + "', score='" + score + "' does not use " + key +
                                        " (a parameter of attention='" + other.name + "')");
      throw std::invalid_argument("unknown keyword argument '" + key + "'");
    }
    const Tensor t = to_tensor(v.cast<FloatArg>(), key.c_str());
    for (size_t d = 0; d < a->sizes.size() && d < size_t(t.ndim()); ++d) {
      if (a->sizes[d] == "attention_dim")
        c.attention_dim = static_cast<int>(t.size(d));
      else if (!a->sizes[d].empty())
        c.options[a->sizes[d]] = double(t.size(d));
    }
    given[key] = t;
  }
  return c;
}

Inputs make_inputs(const FloatArg& query, const FloatArg& keys, const FloatArg& values, const std::string& attention,
                   const std::string& score, const std::string& normalizer, const py::object& mask,
                   const std::optional<FloatArg>& summary, const py::kwargs& kwargs, bool requires_grad) {
  Inputs in;
  in.query = Var(to_tensor(query, "query"), requires_grad);
  in.keys = Var(to_tensor(keys, "keys"), requires_grad);
  in.values = Var(to_tensor(values, "values"), requires_grad);
  in.named = {{"query", in.query}, {"keys", in.keys}, {"values", in.values}};
  if (in.query.ndim() != 3 || in.keys.ndim() != 3) {
    throw std::invalid_argument("query must be [B, T, Dq] and keys [B, S, Dk], got " + in.query.shape().str() +
                                " and " + in.keys.shape().str());
  }
  in.mask = to_mask(mask, in.keys);
  check_attention_inputs(in.query, in.keys, in.values, in.mask);
  if (!in.mask.defined()) in.mask = Tensor::full(Shape{in.keys.size(0), in.keys.size(1)}, 1.0f);
  const MechanismInfo& info = find_mechanism(attention);
  std::map<std::string, Tensor> given;
  const AttentionConfig c = config_from_kwargs(info, score, normalizer, kwargs, given);
  Rng rng(0);
  in.mechanism = make_attention(c, static_cast<int>(in.query.size(2)), static_cast<int>(in.keys.size(2)), rng);
  // Every parameter the mechanism has must be given, with its size (a vector for a column).
  const std::vector<MechanismArray> arrays = arrays_of(info);
  for (const auto& p : in.mechanism->parameters()) {
    if (!p.var.requires_grad()) continue;  // buffers (REINFORCE's baseline)
    const auto a =
        std::find_if(arrays.begin(), arrays.end(), [&](const MechanismArray& x) { return x.parameter == p.name; });
    const std::string kwarg = a == arrays.end() ? p.name : a->kwarg;
    if (!given.count(kwarg))
      throw std::invalid_argument("attention='" + attention + "', score='" + score + "' needs " + kwarg + " of shape " +
                                  p.var.shape().str());
    const Tensor& t = given[kwarg];
    if (t.numel() != p.var.value().numel() || (t.shape() != p.var.shape() && t.ndim() != 1))
      throw std::invalid_argument(kwarg + ": expected shape " + p.var.shape().str() + ", got " + t.shape().str());
    Var v = p.var;
    v.value().copy_from(t.view(p.var.shape()));
    if (requires_grad) in.named.emplace_back(kwarg, p.var);
    given.erase(kwarg);
  }
  if (!given.empty())
    throw std::invalid_argument("attention='" + attention + "', score='" + score + "' does not use " +
                                given.begin()->first);
  if (info.needs_summary) {
    if (!summary)
      throw std::invalid_argument("attention='" + info.name + "' needs summary [B, Dq] (the encoder summary)");
    in.summary = Var(to_tensor(*summary, "summary"), requires_grad);
    in.named.emplace_back("summary", in.summary);
  }
  return in;
}

// Runs the mechanism over the T query rows as T decoder steps -> context [B,T,Dv], weights [B,T,S],
// and the accumulated penalty (coverage loss) if any.
struct Outputs {
  Var context, weights, penalty;
};
Outputs run_mechanism(const Inputs& in, bool hard) {  // penalty: the mechanism's extra loss (coverage's)
  const int64_t B = in.query.size(0), T = in.query.size(1), Dq = in.query.size(2);
  if (B == 0 || T == 0)  // no queries: empty results, as attention() gives (attention.h)
    return {Var(Tensor(Shape{B, T, in.values.size(2)})), Var(Tensor(Shape{B, T, in.keys.size(1)})), Var()};
  AttentionMemory mem = in.mechanism->prepare(in.keys, in.values, in.mask, in.summary);
  AttentionState st;
  st.inference = hard;
  Var q_tm = transpose01(in.query);  // [T,B,Dq]
  std::vector<Var> ctx, w;
  for (int64_t t = 0; t < T; ++t) {
    AttentionResult r = in.mechanism->step(reshape(select(q_tm, t), Shape{B, 1, Dq}), mem, st);
    ctx.push_back(r.context);
    w.push_back(r.weights);
  }
  return {concat(ctx, 1), concat(w, 1), in.mechanism->extra_loss(st, {}, 1.0f)};
}

const char* kAttentionDocTemplate = R"doc(
Attention: a weight for every value from the query and its key, and the weighted sum.

    weights[b, t, :] = softmax(score(query[b, t], keys[b, :]) over positions where mask is True)
    context[b, t]    = sum_s weights[b, t, s] * values[b, s]

Shapes: query [B, T, Dq] (T = 1 for one decoder step), keys [B, S, Dk], values [B, S, Dv],
mask [B, S] bool (True = may attend; a row with no True gives zero weights and context).
Returns (context [B, T, Dv], weights [B, T, S]), or only context with return_weights=False.

score: "dot" (q.k, Dq == Dk), "scaled-dot" (q.k / sqrt(Dk)), "general" (q W k, W [Dq, Dk]),
"additive" (va . tanh(q Wq + k Wk), Wq [Dq, A], Wk [Dk, A], va [A]).
normalizer: "softmax", "sparsemax" (Martins & Astudillo 2016) or "entmax15" (Peters et al. 2019);
the sparse ones can give positions exactly zero weight.
attention (the T query rows are T decoder steps, t = 0 .. T-1), with its options and parameter
arrays as keyword arguments (attend.mechanisms() lists them):
@MECHANISMS@
>>> import numpy as np, attend
>>> q = np.ones((1, 1, 2), np.float32); k = np.array([[[1, 0], [1, 2]]], np.float32)
>>> v = np.array([[[10], [20]]], np.float32)
>>> context, weights = attend.attention(q, k, v, score="dot")
>>> weights.astype(float).round(3).tolist()
[[[0.119, 0.881]]]
)doc";

// help(attend.attention): the fixed text with the registry's mechanisms in place of @MECHANISMS@.
const char* attention_doc() {
  static const std::string doc = [] {
    std::string list;
    for (const MechanismInfo& m : mechanisms()) {
      list += "  \"" + m.name + "\"";
      for (const auto& a : m.aliases) list += " (= \"" + a + "\")";
      list += ": " + m.summary + " [" + m.paper + "]";
      for (const auto& o : m.options)
        list += "\n      " + o.key + "=" + o.format(o.default_value) + ": " + o.help + " (" + o.range() + ")";
      for (const auto& a : m.arrays) list += "\n      " + a.kwarg + " " + a.shape;
      if (m.needs_summary) list += "\n      summary [B, Dq]: the encoder summary";
      list += "\n";
    }
    std::string d = kAttentionDocTemplate;
    d.replace(d.find("@MECHANISMS@"), 12, list);
    return d;
  }();
  return doc.c_str();
}

const char* kBackwardDoc = R"doc(
Gradients of attend.attention: given d(loss)/d(context) (and optionally d(loss)/d(weights)),
returns a dict of d(loss)/d(input) for query, keys, values and every score parameter given.

>>> import numpy as np, attend
>>> q = np.ones((1, 1, 2), np.float32); k = np.array([[[1, 0], [1, 2]]], np.float32)
>>> v = np.array([[[10], [20]]], np.float32)
>>> grads = attend.attention_backward(q, k, v, np.ones((1, 1, 1), np.float32), score="dot")
>>> sorted(grads)
['keys', 'query', 'values']
>>> grads["values"].astype(float).round(3).tolist()
[[[0.119], [0.881]]]
)doc";

class PyModel {
 public:
  explicit PyModel(Translator t) : t_(std::move(t)) {}
  static PyModel load(const py::object& dir, const std::optional<std::string>& precision,
                      const std::vector<py::object>& ensemble) {
    auto one = [&](const py::object& d) {
      const std::string path = to_path(d, "Model.load");
      return precision ? Translator::load(path, parse_precision(*precision)) : Translator::load(path);
    };
    Translator t = one(dir);
    for (const py::object& d : ensemble) t.add_ensemble_member(one(d));
    return PyModel(std::move(t));
  }

  std::vector<std::string> translate(const std::vector<std::string>& texts, int beam, int batch) const {
    if (batch < 1) throw std::invalid_argument("translate: batch must be >= 1, got " + std::to_string(batch));
    std::vector<Translation> out;
    {
      py::gil_scoped_release release;
      out = t_.translate(texts, DecodeOptions{.beam = beam}, batch);
    }
    std::vector<std::string> text;
    for (size_t i = 0; i < out.size(); ++i) {
      if (!out[i].error.empty())
        throw std::invalid_argument("translate: input " + std::to_string(i) + ": " + out[i].error);
      text.push_back(out[i].text);
    }
    return text;
  }

  Translation one(const std::string& text, int beam) const {
    std::vector<Translation> out;
    {
      py::gil_scoped_release release;
      out = t_.translate({text}, DecodeOptions{.beam = beam});
    }
    if (!out[0].error.empty()) throw std::invalid_argument(out[0].error);
    return out[0];
  }

  py::array_t<float> align(const std::string& text, int beam) const { return weights(one(text, beam)); }

  static py::array_t<float> weights(const Translation& t) {
    py::array_t<float> w({py::ssize_t(t.attention.size()), py::ssize_t(t.source_tokens.size())});
    for (size_t i = 0; i < t.attention.size(); ++i)
      std::copy(t.attention[i].begin(), t.attention[i].end(), w.mutable_data() + i * t.source_tokens.size());
    return w;
  }

  py::dict alignment(const std::string& text, int beam) const {
    const Translation t = one(text, beam);
    py::dict d;
    d["output"] = t.text;
    d["source_tokens"] = t.source_tokens;
    std::vector<std::string> rows = t.target_tokens;
    if (t.attention.size() > rows.size()) rows.push_back("</s>");  // not when cut at the length limit
    d["target_tokens"] = rows;
    d["weights"] = weights(t);
    if (!t.maps.empty()) {  // a Transformer: every layer's and head's cross-attention, [G, T+1, S]
      const py::ssize_t G = t.maps.size(), R = t.attention.size(), S = t.source_tokens.size();
      py::array_t<float> maps({G, R, S});
      for (py::ssize_t g = 0; g < G; ++g)
        for (py::ssize_t r = 0; r < R; ++r)
          std::copy(t.maps[g][r].begin(), t.maps[g][r].end(), maps.mutable_data() + (g * R + r) * S);
      d["maps"] = maps;
      std::vector<std::string> names;
      for (const AttentionMap& m : t_.model().attention_maps()) names.push_back(m.name);
      d["map_names"] = names;
    }
    const std::vector<std::string> trace = t_.model().trace_names();
    if (!trace.empty() && !t.trace.empty()) {  // e.g. local-p's predicted centre, one per row
      py::dict traced;
      for (size_t k = 0; k < trace.size(); ++k) {
        py::array_t<float> values(py::ssize_t(t.trace.size()));
        for (size_t r = 0; r < t.trace.size(); ++r) values.mutable_data()[r] = t.trace[r][k];
        traced[py::str(trace[k])] = values;
      }
      d["trace"] = traced;
    }
    return d;
  }

  // Teacher-forced loss and logits [B, T, V] for (source, target) pairs, in the given order.
  py::tuple loss(const std::vector<std::string>& sources, const std::vector<std::string>& targets,
                 float label_smoothing) const {
    if (sources.size() != targets.size() || sources.empty()) {
      throw std::invalid_argument("loss: need as many targets as sources (got " + std::to_string(sources.size()) +
                                  " and " + std::to_string(targets.size()) + ")");
    }
    std::vector<Example> ex;
    for (size_t i = 0; i < sources.size(); ++i) ex.push_back({sources[i], targets[i]});
    std::vector<EncodedExample> enc =
        encode(ex, t_.source_tokenizer(), t_.source_vocab(), t_.target_tokenizer(), t_.target_vocab());
    std::vector<int> idx(ex.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int>(i);
    Batch batch = make_batch(enc, idx);
    NoGradScope no_grad;
    Var logits = t_.model().logits(batch, nullptr);  // [T*B, V], time-major
    Var l = cross_entropy(logits, batch.tgt_out, {.ignore_index = Vocab::kPad, .label_smoothing = label_smoothing});
    const int64_t V = logits.size(1);
    py::array_t<float> out({py::ssize_t(batch.B), py::ssize_t(batch.T), py::ssize_t(V)});
    for (int t = 0; t < batch.T; ++t)
      for (int b = 0; b < batch.B; ++b)
        std::copy(logits.value().data() + (int64_t(t) * batch.B + b) * V,
                  logits.value().data() + (int64_t(t) * batch.B + b + 1) * V,
                  out.mutable_data() + (int64_t(b) * batch.T + t) * V);
    return py::make_tuple(l.value().item(), out);
  }

  py::dict parameters() const {
    py::dict d;
    for (const auto& p : t_.model().parameters()) d[py::str(p.name)] = to_numpy(p.var.value());
    return d;
  }

  std::string config() const { return t_.model().config_json().dump(); }
  std::string architecture() const { return to_string(t_.model().architecture()); }
  std::string precision() const { return to_string(t_.precision()); }
  std::vector<std::string> source_vocab() const { return t_.source_vocab().tokens(); }
  std::vector<std::string> target_vocab() const { return t_.target_vocab().tokens(); }

 private:
  Translator t_;
};

// Threads and the vector kernels' instruction set.
void bind_runtime(py::module_& m) {
  m.def("set_threads", &set_threads, py::arg("n"),
        "Threads for matrix products and attention kernels (default 1); n >= 1, else ValueError.");
  m.def("cpu_isas", &cpu_isas, "The instruction sets of the vector kernels this CPU runs, best first.");
  m.def("cpu_isa", &cpu_isa, "The instruction set the vector kernels use (the best, unless set).");
  m.def("set_cpu_isa", &set_cpu_isa, py::arg("name"),
        "Pins the vector kernels to one of cpu_isas() (ValueError otherwise), e.g. for the same numbers on "
        "machines with different instruction sets.");
}

// Translation metrics as sacrebleu computes them.
void bind_metrics(py::module_& m) {
  m.def("tokenize_13a", &tokenize_13a, py::arg("line"),
        "mteval-v13a's tokenization (sacrebleu's default for BLEU).\n\n"
        ">>> import attend\n>>> attend.tokenize_13a('Hello, world!')\n'Hello , world !'");
  m.def(
      "corpus_bleu",
      [](const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
        const BleuScore s = corpus_bleu(hypotheses, references);
        py::dict d;
        d["score"] = s.score, d["precisions"] = s.precisions, d["brevity_penalty"] = s.brevity_penalty;
        d["hyp_len"] = s.hyp_len, d["ref_len"] = s.ref_len, d["signature"] = kBleuSignature;
        return d;
      },
      py::arg("hypotheses"), py::arg("references"),
      "Corpus BLEU (0-100) of one reference per hypothesis, as sacrebleu computes it (13a, exp smoothing).");
  m.def(
      "corpus_chrf",
      [](const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
        py::dict d;
        d["score"] = corpus_chrf(hypotheses, references).score, d["signature"] = kChrfSignature;
        return d;
      },
      py::arg("hypotheses"), py::arg("references"),
      "Corpus chrF (0-100; character 6-grams, beta 2), as sacrebleu computes it.");
}

// The attention mechanisms of the registry: attention, attention_backward, mechanisms.
void bind_mechanisms(py::module_& m) {
  m.def(
      "mechanisms",
      [] {
        py::list out;
        for (const MechanismInfo& info : mechanisms()) {
          py::list options, arrays;
          for (const auto& o : info.options) {
            py::dict d;
            d["key"] = o.key, d["default"] = o.format(o.default_value), d["range"] = o.range(), d["help"] = o.help;
            options.append(d);
          }
          for (const auto& a : info.arrays) arrays.append(py::make_tuple(a.kwarg, a.shape));
          py::dict d;
          d["name"] = info.name, d["aliases"] = info.aliases, d["summary"] = info.summary, d["paper"] = info.paper;
          d["options"] = options, d["arrays"] = arrays, d["additive_only"] = info.additive_only;
          d["needs_summary"] = info.needs_summary;
          out.append(d);
        }
        return out;
      },
      "The attention mechanisms of this build: name, aliases, summary, paper, options (key, default, range,\n"
      "help) and parameter arrays (keyword, shape), as attend.attention takes them.\n\n"
      ">>> import attend\n>>> 'soft' in [m['name'] for m in attend.mechanisms()]\nTrue");
  m.def(
      "attention",
      [](const FloatArg& query, const FloatArg& keys, const FloatArg& values, const std::string& attention,
         const std::string& score, const std::string& normalizer, const py::object& mask,
         const std::optional<FloatArg>& summary, bool hard, bool return_weights,
         const py::kwargs& kwargs) -> py::object {
        Inputs in = make_inputs(query, keys, values, attention, score, normalizer, mask, summary, kwargs, false);
        NoGradScope no_grad;
        Outputs out = run_mechanism(in, hard);
        if (!return_weights) return to_numpy(out.context.value());
        return py::make_tuple(to_numpy(out.context.value()), to_numpy(out.weights.value()));
      },
      attention_doc(), py::arg("query"), py::arg("keys"), py::arg("values"), py::kw_only(),
      py::arg("attention") = default_mechanism(), py::arg("score") = "dot", py::arg("normalizer") = "softmax",
      py::arg("mask") = py::none(), py::arg("summary") = py::none(), py::arg("hard") = false,
      py::arg("return_weights") = true);

  m.def(
      "attention_backward",
      [](const FloatArg& query, const FloatArg& keys, const FloatArg& values, const FloatArg& grad_context,
         const std::optional<FloatArg>& grad_weights, const std::string& attention, const std::string& score,
         const std::string& normalizer, const py::object& mask, const std::optional<FloatArg>& summary,
         const py::kwargs& kwargs) {
        Inputs in = make_inputs(query, keys, values, attention, score, normalizer, mask, summary, kwargs, true);
        Tape tape;
        {
          TapeScope scope(tape);
          Outputs out = run_mechanism(in, /*hard=*/false);
          Tensor gc = to_tensor(grad_context, "grad_context");
          check_same_shape(out.context.shape(), gc.shape(), "grad_context");
          Var total = sum(mul(out.context, Var(gc)));  // d total / d context = grad_context
          if (grad_weights) {
            Tensor gw = to_tensor(*grad_weights, "grad_weights");
            check_same_shape(out.weights.shape(), gw.shape(), "grad_weights");
            total = add(total, sum(mul(out.weights, Var(gw))));
          }
          if (out.penalty.defined()) total = add(total, out.penalty);  // + lambda * coverage loss
          if (out.context.requires_grad()) tape.backward(total);       // else no queries (B or T = 0): zero gradients
        }
        py::dict grads;
        for (const auto& [name, v] : in.named) {
          Tensor g = v.grad().defined() ? v.grad() : Tensor(v.shape());
          if (name == "vp" || name == "Wu") g = g.view(Shape{g.numel()});
          grads[py::str(name)] = to_numpy(g);
        }
        return grads;
      },
      kBackwardDoc, py::arg("query"), py::arg("keys"), py::arg("values"), py::arg("grad_context"), py::kw_only(),
      py::arg("grad_weights") = py::none(), py::arg("attention") = default_mechanism(), py::arg("score") = "dot",
      py::arg("normalizer") = "softmax", py::arg("mask") = py::none(), py::arg("summary") = py::none());
}

// Multi-head scaled-dot-product attention (the fused kernel of ops/sdpa.h).
void bind_sdpa(py::module_& m) {
  auto sdpa_options = [](float scale, const std::optional<std::vector<int>>& key_lengths, bool causal,
                         bool bottom_right, int window_left, int window_right,
                         const std::optional<std::vector<float>>& alibi_slopes, float softcap, float dropout,
                         uint64_t seed, bool reference) {
    SdpaOptions o;
    o.scale = scale, o.causal = causal, o.bottom_right = bottom_right;
    o.window_left = window_left, o.window_right = window_right, o.softcap = softcap, o.dropout = dropout, o.seed = seed;
    if (key_lengths) o.key_lengths = *key_lengths;
    if (alibi_slopes) o.alibi_slopes = *alibi_slopes;
    o.path = reference ? SdpaPath::kReference : SdpaPath::kFused;
    return o;
  };
  m.def(
      "sdpa",
      [sdpa_options](const FloatArg& q, const FloatArg& k, const FloatArg& v, const std::optional<FloatArg>& bias,
                     float scale, const std::optional<std::vector<int>>& key_lengths, bool causal, bool bottom_right,
                     int window_left, int window_right, const std::optional<std::vector<float>>& alibi_slopes,
                     float softcap, float dropout, uint64_t seed, bool reference) {
        const SdpaOptions o = sdpa_options(scale, key_lengths, causal, bottom_right, window_left, window_right,
                                           alibi_slopes, softcap, dropout, seed, reference);
        const Tensor b = bias ? to_tensor(*bias, "bias") : Tensor();
        SdpaResult r = sdpa_forward(to_tensor(q, "q"), to_tensor(k, "k"), to_tensor(v, "v"), o, b);
        return py::make_tuple(to_numpy(r.out), to_numpy(r.lse));
      },
      "Multi-head scaled-dot-product attention, fused (FlashAttention-2 style, O(T·D) memory).\n\n"
      "q [B, H, T, D], k and v [B, Hkv, S, D] (Hkv divides H), bias [B or 1, H or 1, T, S].\n"
      "Returns (out [B, H, T, D], lse [B, H, T]); a row with no allowed key gives zeros and lse = -inf.\n\n"
      ">>> import numpy as np, attend\n"
      ">>> q = k = v = np.ones((1, 2, 3, 4), np.float32)\n"
      ">>> out, lse = attend.sdpa(q, k, v, causal=True)\n"
      ">>> out.shape, lse.shape\n((1, 2, 3, 4), (1, 2, 3))",
      py::arg("q"), py::arg("k"), py::arg("v"), py::kw_only(), py::arg("bias") = py::none(), py::arg("scale") = 0.0f,
      py::arg("key_lengths") = py::none(), py::arg("causal") = false, py::arg("bottom_right") = false,
      py::arg("window_left") = -1, py::arg("window_right") = -1, py::arg("alibi_slopes") = py::none(),
      py::arg("softcap") = 0.0f, py::arg("dropout") = 0.0f, py::arg("seed") = 0, py::arg("reference") = false);
  m.def(
      "sdpa_backward",
      [sdpa_options](const FloatArg& q, const FloatArg& k, const FloatArg& v, const FloatArg& grad_out,
                     const std::optional<FloatArg>& bias, float scale,
                     const std::optional<std::vector<int>>& key_lengths, bool causal, bool bottom_right,
                     int window_left, int window_right, const std::optional<std::vector<float>>& alibi_slopes,
                     float softcap, float dropout, uint64_t seed, bool reference) {
        const SdpaOptions o = sdpa_options(scale, key_lengths, causal, bottom_right, window_left, window_right,
                                           alibi_slopes, softcap, dropout, seed, reference);
        const Tensor b = bias ? to_tensor(*bias, "bias") : Tensor();
        const Tensor tq = to_tensor(q, "q"), tk = to_tensor(k, "k"), tv = to_tensor(v, "v");
        const SdpaResult r = sdpa_forward(tq, tk, tv, o, b);
        const SdpaGrads g = sdpa_backward(tq, tk, tv, r, to_tensor(grad_out, "grad_out"), o, b);
        py::dict grads;
        grads["q"] = to_numpy(g.dq), grads["k"] = to_numpy(g.dk), grads["v"] = to_numpy(g.dv);
        if (bias) grads["bias"] = to_numpy(g.dbias);
        return grads;
      },
      "Gradients of sum(sdpa(...)[0] * grad_out) with respect to q, k, v (and bias): a dict.", py::arg("q"),
      py::arg("k"), py::arg("v"), py::arg("grad_out"), py::kw_only(), py::arg("bias") = py::none(),
      py::arg("scale") = 0.0f, py::arg("key_lengths") = py::none(), py::arg("causal") = false,
      py::arg("bottom_right") = false, py::arg("window_left") = -1, py::arg("window_right") = -1,
      py::arg("alibi_slopes") = py::none(), py::arg("softcap") = 0.0f, py::arg("dropout") = 0.0f, py::arg("seed") = 0,
      py::arg("reference") = false);
}

// A trained model directory.
void bind_model(py::module_& m) {
  py::class_<PyModel>(m, "Model", "A trained model directory (written by `attend train`).")
      .def_static("load", &PyModel::load, py::arg("dir"), py::arg("precision") = py::none(),
                  py::arg("ensemble") = std::vector<py::object>(),
                  "Loads and validates a model directory; precision 'int8' decodes with int8 products (weights "
                  "quantized per output row when loading), 'fp32' in fp32, None as the model was saved. ensemble: "
                  "more model directories that decode with it, each step taking the mean of the models' "
                  "next-token probabilities (same tokenizers and vocabularies).\n\n>>> model = "
                  "attend.Model.load('runs/dates')  # doctest: +SKIP")
      .def_property_readonly("precision", &PyModel::precision, "'fp32' or 'int8': how the model decodes.")
      .def("translate", &PyModel::translate, py::arg("texts"), py::arg("beam") = 5, py::arg("batch") = 64,
           "Outputs for a list of inputs, decoded `batch` inputs at a time (of similar lengths).\n\n"
           ">>> model.translate(['the 3rd of march, 1999'])  # doctest: +SKIP\n"
           "['1999-03-03']")
      .def("align", &PyModel::align, py::arg("text"), py::arg("beam") = 1,
           "Attention weights for one input: rows = output tokens and </s>, columns = source tokens.\n\n"
           ">>> model.align('11/25/26').shape  # doctest: +SKIP\n(11, 8)")
      .def("alignment", &PyModel::alignment, py::arg("text"), py::arg("beam") = 1,
           "The output, its tokens, the source tokens and the weights, as a dict; a Transformer's also has "
           "'maps' [layers*heads, rows, source] and 'map_names'; local-p and local-m models also have 'trace' "
           "{name: one source position per row}, e.g. local-p's predicted centre.")
      .def("loss", &PyModel::loss, py::arg("sources"), py::arg("targets"), py::arg("label_smoothing") = 0.0f,
           "Teacher-forced mean cross-entropy and logits [B, T, V] (T = longest target + </s>).")
      .def("parameters", &PyModel::parameters,
           "Every weight by name, as NumPy arrays (copies; an int8 model's dequantized, as its file stores them).")
      .def_property_readonly("config", &PyModel::config, "The model's config.json 'model' section, as JSON text.")
      .def_property_readonly("architecture", &PyModel::architecture, "'rnn' or 'transformer'.")
      .def_property_readonly("source_vocab", &PyModel::source_vocab)
      .def_property_readonly("target_vocab", &PyModel::target_vocab);
}

// Library errors become the matching Python exceptions with the library's message.
void register_exceptions() {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::runtime_error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace

PYBIND11_MODULE(attend, m) {
  m.doc() = "attend: attention mechanisms for NLP (C++ with a Python interface).";
  bind_runtime(m);
  bind_mechanisms(m);
  bind_sdpa(m);
  bind_metrics(m);
  bind_model(m);
  register_exceptions();
}
