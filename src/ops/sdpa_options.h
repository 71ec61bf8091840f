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

}  // namespace attend::detail
