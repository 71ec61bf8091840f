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
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    Node& n = **it;
    if (n.backward && n.grad.defined()) n.backward(n);
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
  for (const Var* v : inputs)
    if (v && v->requires_grad()) return true;
  return false;
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
