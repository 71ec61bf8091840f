#include "attend/autograd/variable.h"

#include <stdexcept>

namespace attend {

namespace {
thread_local Tape* g_current_tape = nullptr;
}

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
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
  root.grad_ref().data()[0] += 1.0f;
  for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it) {
    Node& n = **it;
    if (n.backward && n.grad.defined()) n.backward(n);
  }
}

void Tape::clear() {
  // Newest first: a node's inputs are older, so each release frees one node without recursion.
  while (!nodes_.empty()) {
    nodes_.back()->backward = nullptr;
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
