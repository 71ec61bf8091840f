// attend train (internal): the gradients' exchange of data-parallel training, overlapped with
// backward. The parameters, last first (backward finishes the last layers first), are grouped
// into buckets of about `bucket_floats` values; a bucket's non-blocking all-reduce starts as soon
// as backward has finished every parameter in it (Tape::on_grad_ready) and every bucket before
// it has started, so that all ranks start the same exchanges in the same order whatever order
// their own backward finishes in.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "attend/nn/module.h"
#include "attend/train/communicator.h"

namespace attend {

class GradientBuckets {
 public:
  GradientBuckets(const std::vector<NamedParameter>& params, const Communicator& comm, int64_t bucket_floats);
  void begin();            // before the backward pass
  void ready(Node* leaf);  // backward is done with this parameter (others are ignored)
  void finish();           // after it: starts what is left, waits, puts the sums in the gradients
  int buckets() const { return static_cast<int>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<float> sums;     // their gradients, flat, reduced in place
    size_t waiting = 0;          // parameters backward has not finished yet
  };
  void start_ready_buckets();
  std::vector<NamedParameter> params_;
  const Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const Node*, size_t> bucket_of_;  // parameter node -> bucket
  size_t started_ = 0;                                 // buckets started, in order
};

}  // namespace attend
