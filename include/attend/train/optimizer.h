// attend train: Adam / AdamW with global gradient-norm clipping, and learning-rate schedules.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "attend/nn/module.h"

namespace attend {

class Communicator;

struct AdamOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled (AdamW, Loshchilov & Hutter 2019) when > 0
  float clip_norm = 5.0f;     // global L2 norm of all gradients is clipped to this; <= 0 disables
};

// Adam (Kingma & Ba 2015) over a fixed list of parameters.
//
// Sharded (ZeRO stage 1, Rajbhandari et al. 2020; `attend train --shard-optimizer`): with a
// communicator of N > 1 processes, the parameters are seen as one flat vector cut into N
// contiguous shares. step() takes each rank's own (unreduced) gradients, reduce-scatters them,
// updates this rank's share with the moments it alone keeps (1/N of them), and all-gathers the
// weights; the clipping norm is all-reduced. The same arithmetic per element as unsharded,
// where step() expects the gradients already summed over ranks.
class Adam {
 public:
  Adam(std::vector<NamedParameter> params, AdamOptions options, const Communicator* shard = nullptr);
  ~Adam();
  // Clips, updates every parameter with a gradient at learning rate `lr`, and returns the
  // gradient norm before clipping. A non-finite norm updates nothing. Does not zero gradients.
  // Sharded: a collective (every rank calls it), and every parameter takes part.
  float step(float lr);
  void zero_grad();
  int64_t steps() const { return t_; }
  // Moments, for resumable checkpoints: "m.<name>" and "v.<name>" (sharing the optimizer's
  // storage; sharded, gathered from every rank: a collective, copies).
  std::vector<NamedParameter> state() const;
  // Restores what state() and steps() returned; missing or mis-shaped moments throw, naming
  // `origin`. Sharded, each rank keeps its share of them.
  void load_state(int64_t steps, const std::map<std::string, Tensor>& moments, const std::string& origin);

 private:
  struct Share;
  float step_sharded(float lr);
  std::vector<NamedParameter> params_;
  std::vector<Tensor> m_, v_;  // unsharded
  std::unique_ptr<Share> share_;
  AdamOptions opt_;
  int64_t t_ = 0;
};

// Learning rate of update `step` (1, 2, ...): linear warm-up, then constant or inverse-square-root
// decay; with a cooldown, the last `cooldown` updates of a budget of `total` take that rate
// linearly down towards zero (1/cooldown of it at the last update; warmup-stable-decay, Zhai et
// al. 2022; Haegele et al. 2024).
struct LrSchedule {
  enum class Kind { kConstant, kInverseSqrt };
  Kind kind = Kind::kConstant;
  float base = 1e-3f;
  int64_t warmup = 0;
  int64_t total = 0;     // the budget the cooldown ends with (0 = none)
  int64_t cooldown = 0;  // <= total
  float at(int64_t step) const;
};
LrSchedule::Kind parse_schedule(const std::string& name);  // "constant" | "inverse-sqrt"

}  // namespace attend
