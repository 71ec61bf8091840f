// attend ops, internal: the checks of SdpaOptions that full attention (sdpa.cpp) and one-query
// decoding over a cache (kv_cache.cpp) share.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

#include "attend/ops/sdpa.h"
#include "kernels/flash_attention.h"

namespace attend::detail {

// Puts scale, left window, ALiBi slopes and soft-capping of `o` into `p` (whose H and D are
// set), throwing std::invalid_argument that starts with `who` for a bad value.
inline void set_shared_options(kernels::SdpaProblem& p, const SdpaOptions& o, const std::string& who) {
  auto bad = [&](const std::string& m) { throw std::invalid_argument(who + ": " + m); };
  p.scale = o.scale != 0.0f ? o.scale : 1.0f / std::sqrt(static_cast<float>(p.D));
  if (!std::isfinite(p.scale)) bad("scale must be finite, got " + std::to_string(o.scale));
  if (o.window_left < -1) bad("window_left must be >= 0 or -1 (unbounded), got " + std::to_string(o.window_left));
  p.window_left = o.window_left;
  if (!o.alibi_slopes.empty()) {
    if (static_cast<int>(o.alibi_slopes.size()) != p.H)
      bad(std::to_string(o.alibi_slopes.size()) + " ALiBi slopes for " + std::to_string(p.H) + " heads");
    p.alibi_slopes = o.alibi_slopes.data();
  }
  if (!(o.softcap >= 0.0f) || !std::isfinite(o.softcap)) bad("softcap must be >= 0, got " + std::to_string(o.softcap));
  p.softcap = o.softcap;
}

// Points `p` (whose B, H, T and S are set) at `bias` when it is given: [B or 1, H or 1, T, S],
// a broadcast dimension read with stride 0.
inline void set_bias(kernels::SdpaProblem& p, const Tensor& bias, const std::string& who) {
  if (!bias.defined()) return;
  const Shape& s = bias.shape();
  if (s.ndim() != 4 || (s[0] != 1 && s[0] != p.B) || (s[1] != 1 && s[1] != p.H) || s[2] != p.T || s[3] != p.S)
    throw std::invalid_argument(who + ": bias must be [B or 1, H or 1, T, S] = [" + std::to_string(p.B) + " or 1, " +
                                std::to_string(p.H) + " or 1, " + std::to_string(p.T) + ", " + std::to_string(p.S) +
                                "], got " + s.str());
  p.bias = bias.data();
  p.bias_stride_h = s[1] == 1 ? 0 : int64_t(p.T) * p.S;
  p.bias_stride_b = s[0] == 1 ? 0 : s[1] * int64_t(p.T) * p.S;
}

}  // namespace attend::detail
