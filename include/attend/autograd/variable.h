// attend: define-by-run reverse-mode autodiff.
//
// A Var is a node of the computation: a value, a gradient, and (when it was made by an op
// while a Tape was recording) a backward function. Ops record their results on the current
// thread's Tape; Tape::backward walks the tape in reverse creation order, which is a valid
// topological order, so backward is iterative and handles graphs of any depth (unrolled RNNs).
//
// Gradients ACCUMULATE: every backward function adds (+=) into its inputs' grad tensors.
// Nothing here zeroes a parameter's gradient; that is the optimizer's job (Optimizer::zero_grad).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attend/tensor.h"

namespace attend {

struct Node {
  Tensor value;
  Tensor grad;  // allocated on first use by grad_ref(); same shape as value
  bool requires_grad = false;
  // A leaf, or a view of one: no backward function reads this node's gradient, so additions
  // to it may wait until the end of the backward walk (Tape::defer_weight_grad).
  bool leaf_grad = false;
  Node* grad_owner = nullptr;           // a view of a leaf: the leaf whose gradient its gradient views
  std::function<void(Node&)> backward;  // adds d(loss)/d(inputs) given this->grad

  Tensor& grad_ref() {
    if (!grad.defined()) grad = Tensor(value.shape());
    return grad;
  }
};

class Var {
 public:
  Var() = default;
  // A leaf. Parameters are leaves with requires_grad = true.
  explicit Var(Tensor value, bool requires_grad = false);
  // True when the gradient of this Var may be accumulated late (a leaf or a view of one).
  bool leaf_grad() const { return node_ && node_->leaf_grad; }

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const { return node_->value; }
  Tensor& value() { return node_->value; }
  const Shape& shape() const { return node_->value.shape(); }
  int64_t size(int d) const { return node_->value.size(d); }
  int ndim() const { return node_->value.ndim(); }
  bool requires_grad() const { return node_ && node_->requires_grad; }
  // The accumulated gradient; undefined until backward reached this Var.
  const Tensor& grad() const { return node_->grad; }
  // Accumulation target for backward functions (allocated zeroed on first use).
  Tensor& grad_ref() const { return node_->grad_ref(); }
  Node* node() const { return node_.get(); }

 private:
  friend Var make_result(Tensor, bool, std::function<void(Node&)>);
  std::shared_ptr<Node> node_;
};

// The recording of one forward pass. Install with TapeScope; ops then record on it.
inline constexpr int64_t kDeferRows = 32;

class Tape {
 public:
  ~Tape() { clear(); }
  // The tape that ops record on in this thread, or nullptr (inference: nothing is recorded).
  static Tape* current();
  void record(std::shared_ptr<Node> node) { nodes_.push_back(std::move(node)); }
  // Seeds d(root)/d(root) = 1 (root must have one element) and runs every backward in reverse.
  void backward(Var& root);
  // Frees the recorded graph (in reverse order, without recursion).
  void clear();
  // The tape whose backward is running in this thread, or nullptr.
  static Tape* running();
  // For op backward functions: w.grad += x^T dy, for x [N,K], dy [N,O] and w [K,O] a
  // leaf_grad node, done at the end of the walk as one product over every deferred (x, dy)
  // pair of w stacked together. A weight used at every step of an unrolled RNN then costs
  // one pass over its gradient instead of one per step.
  // Worth it for thin products: ops defer when x has fewer than kDeferRows rows.
  void defer_weight_grad(Node* w, const Tensor& x, const Tensor& dy);
  size_t size() const { return nodes_.size(); }
  // Data-parallel training: set before the forward pass, `fn` is called during backward once
  // for every leaf (parameter) the pass used, as soon as no backward function left to run can
  // change its gradient (after the earliest op that used it, or after the deferred products
  // for it), so that its exchange can start while backward goes on.
  void on_grad_ready(std::function<void(Node* leaf)> fn) { ready_ = std::move(fn); }
  // For op authors (needs_grad calls it): the op about to be recorded reads `input`.
  void note_use(const Node* input);

 private:
  void flush_deferred();
  void report_ready(size_t index, std::vector<Node*>& after_flush);
  std::vector<std::shared_ptr<Node>> nodes_;
  std::function<void(Node*)> ready_;
  std::vector<std::pair<Node*, size_t>> first_use_;  // leaf, index of the first op reading it
  struct Deferred {
    Node* w;
    std::vector<std::pair<Tensor, Tensor>> terms;  // (x, dy)
  };
  std::vector<Deferred> deferred_;  // in order of first use: the flush order is deterministic
};

// Makes `tape` the current tape for the lifetime of the scope (restores the previous one).
class TapeScope {
 public:
  explicit TapeScope(Tape& tape);
  ~TapeScope();
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* previous_;
};

// Disables recording for the lifetime of the scope (inference, decoding, evaluation).
class NoGradScope {
 public:
  NoGradScope();
  ~NoGradScope();
  NoGradScope(const NoGradScope&) = delete;
  NoGradScope& operator=(const NoGradScope&) = delete;

 private:
  Tape* previous_;
};

// For op authors: true when an op whose inputs are `inputs` must record a backward.
bool needs_grad(std::initializer_list<const Var*> inputs);
// For op authors: wraps `value` as the op's result. When `record` is true the node gets
// `backward` and is put on the current tape. A view op passes no backward and instead makes
// the result's grad a view of its input's grad (see ops/shape.cpp).
Var make_result(Tensor value, bool record, std::function<void(Node&)> backward);

}  // namespace attend
