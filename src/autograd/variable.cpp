#include "attend/autograd/variable.h"

#include <algorithm>
#include <stdexcept>

#include "kernels/blas.h"

namespace attend {

namespace {
thread_local Tape* g_current_tape = nullptr;
thread_local Tape* g_running_tape = nullptr;
}  // namespace

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
  node_->leaf_grad = requires_grad;
}

Tape* Tape::current() { return g_current_tape; }

void Tape::backward(Var& root) {
  if (!root.defined() || root.value().numel() != 1) {
    throw std::invalid_argument("Tape::backward: root must be a one-element tensor, got shape " +
                                (root.defined() ? root.shape().str() : std::string("(undefined)")));
  }
  if (!root.requires_grad()) {
    throw std::invalid_argument("Tape::backward: root does not depend on anything that requires grad");
  }
  struct Running {
    Tape* previous = g_running_tape;
    explicit Running(Tape* t) { g_running_tape = t; }
    ~Running() { g_running_tape = previous; }
  } running(this);
  root.grad_ref().data()[0] += 1.0f;
  std::vector<Node*> after_flush;  // ready once the deferred products are added
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    Node& n = **it;
    if (n.backward && n.grad.defined()) n.backward(n);
    if (ready_) report_ready(static_cast<size_t>(nodes_.rend() - it) - 1, after_flush);
    // Nothing reads a node once its backward has run: what it kept for backward (inputs, saved
    // activations) and its gradient go now, so memory falls as the walk proceeds instead of
    // peaking at every activation plus every gradient. A view of a leaf stays until clear():
    // deferred weight gradients (flush_deferred) still add to it. A node the caller holds (the
    // root) keeps its value.
    if (n.leaf_grad) continue;
    n.backward = nullptr;
    n.grad = Tensor();
    it->reset();
  }
  flush_deferred();
  for (Node* leaf : after_flush) ready_(leaf);
}

Tape* Tape::running() { return g_running_tape; }

void Tape::defer_weight_grad(Node* w, const Tensor& x, const Tensor& dy) {
  for (auto& d : deferred_) {
    if (d.w == w) {
      d.terms.emplace_back(x, dy);
      return;
    }
  }
  deferred_.push_back({w, {{x, dy}}});
}

void Tape::flush_deferred() {
  for (auto& d : deferred_) {
    const int64_t K = d.w->value.size(0), O = d.w->value.size(1);
    int64_t N = 0;
    for (const auto& [x, dy] : d.terms) N += x.numel() / K;
    Tensor xs = Tensor::empty(Shape{N, K}), dys = Tensor::empty(Shape{N, O});
    int64_t row = 0;
    for (const auto& [x, dy] : d.terms) {
      const int64_t n = x.numel() / K;
      std::copy(x.data(), x.data() + n * K, xs.data() + row * K);
      std::copy(dy.data(), dy.data() + n * O, dys.data() + row * O);
      row += n;
    }
    // dW += X^T dY over all deferred rows at once
    kernels::gemm(/*trans_a=*/true, /*trans_b=*/false, static_cast<int>(K), static_cast<int>(O), static_cast<int>(N),
                  1.0f, xs.data(), static_cast<int>(K), dys.data(), static_cast<int>(O), 1.0f, d.w->grad_ref().data(),
                  static_cast<int>(O));
  }
  deferred_.clear();
}

void Tape::clear() {
  deferred_.clear();
  first_use_.clear();
  // Newest first: a node's inputs are older, so each release frees one node without recursion.
  while (!nodes_.empty()) {
    if (nodes_.back()) nodes_.back()->backward = nullptr;  // (null: released by backward)
    nodes_.pop_back();
  }
}

TapeScope::TapeScope(Tape& tape) : previous_(g_current_tape) { g_current_tape = &tape; }
TapeScope::~TapeScope() { g_current_tape = previous_; }

NoGradScope::NoGradScope() : previous_(g_current_tape) { g_current_tape = nullptr; }
NoGradScope::~NoGradScope() { g_current_tape = previous_; }

bool needs_grad(std::initializer_list<const Var*> inputs) {
  if (!g_current_tape) return false;
  bool any = false;
  for (const Var* v : inputs)
    if (v && v->requires_grad()) any = true, g_current_tape->note_use(v->node());
  return any;
}

void Tape::note_use(const Node* input) {
  if (!ready_ || !input->leaf_grad) return;
  Node* leaf = input->grad_owner ? input->grad_owner : const_cast<Node*>(input);
  for (const auto& [n, at] : first_use_)
    if (n == leaf) return;
  first_use_.emplace_back(leaf, nodes_.size());  // the index the op about to be recorded gets
}

// The leaves whose earliest reader is op `index`: ready, unless deferred products still add to
// their gradients (then after the flush).
void Tape::report_ready(size_t index, std::vector<Node*>& after_flush) {
  // first_use_ is in increasing index order (noted while recording) and the walk goes down: the
  // leaves of `index` are at its end.
  while (!first_use_.empty() && first_use_.back().second >= index) {
    const auto [leaf, at] = first_use_.back();
    first_use_.pop_back();
    bool deferred = false;
    for (const auto& d : deferred_) deferred = deferred || (d.w->grad_owner ? d.w->grad_owner : d.w) == leaf;
    if (deferred)
      after_flush.push_back(leaf);
    else
      ready_(leaf);
  }
}

Var make_result(Tensor value, bool record, std::function<void(Node&)> backward) {
  Var out;
  out.node_ = std::make_shared<Node>();
  out.node_->value = std::move(value);
  if (record) {
    out.node_->requires_grad = true;
    out.node_->backward = std::move(backward);
    g_current_tape->record(out.node_);
  }
  return out;
}

}  // namespace attend
