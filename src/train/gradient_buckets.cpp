#include "train/gradient_buckets.h"

#include <algorithm>

namespace attend {

GradientBuckets::GradientBuckets(const std::vector<NamedParameter>& params, const Communicator& comm,
                                 int64_t bucket_floats)
    : params_(params), comm_(comm) {
  int64_t filled = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t n = params_[k].var.value().numel();
    if (buckets_.empty() || (filled + n > bucket_floats && filled > 0)) buckets_.emplace_back(), filled = 0;
    buckets_.back().params.push_back(k);
    filled += n;
    bucket_of_[params_[k].var.node()] = buckets_.size() - 1;
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b.params) n += params_[k].var.value().numel();
    b.sums.resize(static_cast<size_t>(n));
  }
}

void GradientBuckets::begin() {
  for (Bucket& b : buckets_) b.waiting = b.params.size();
  started_ = 0;
}

void GradientBuckets::ready(Node* leaf) {
  const auto it = bucket_of_.find(leaf);
  if (it == bucket_of_.end()) return;
  --buckets_[it->second].waiting;
  start_ready_buckets();
  comm_.progress();
}

void GradientBuckets::start_ready_buckets() {
  while (started_ < buckets_.size() && buckets_[started_].waiting == 0) {
    Bucket& b = buckets_[started_++];
    size_t at = 0;
    for (size_t k : b.params) {
      const Tensor& g = params_[k].var.grad_ref();
      std::copy(g.data(), g.data() + g.numel(), b.sums.begin() + static_cast<int64_t>(at));
      at += static_cast<size_t>(g.numel());
    }
    comm_.start_allreduce_sum(b.sums.data(), static_cast<int64_t>(b.sums.size()));
  }
}

void GradientBuckets::finish() {
  for (Bucket& b : buckets_) b.waiting = 0;  // parameters this pass did not use: their gradients are final too
  start_ready_buckets();
  comm_.wait_all();
  for (const Bucket& b : buckets_) {
    size_t at = 0;
    for (size_t k : b.params) {
      Tensor& g = params_[k].var.grad_ref();
      std::copy(b.sums.begin() + static_cast<int64_t>(at), b.sums.begin() + static_cast<int64_t>(at + g.numel()),
                g.data());
      at += static_cast<size_t>(g.numel());
    }
  }
}

}  // namespace attend
