// attend kernels: scaled-dot-product attention, fused (flash) and plain (reference).
//
// Vaswani et al. 2017, eq. 1: O = softmax(Q Kᵀ · scale) V. The fused path follows
// FlashAttention-2 (Dao 2023, algorithms 1 and 2): query tiles × key tiles, an online softmax
// (running max m and sum l per row), and only O and the per-row log-sum-exp LSE kept; the
// backward pass recomputes the weights from LSE. Tile products go through kernels::gemm
// (OpenBLAS); exp through the vectorised vexp.
//
// Layout, all contiguous row-major (H heads of queries, G = H / Hkv query heads per K/V head):
//   q     [B, H,   T, D]     k, v  [B, Hkv, S, D]     out [B, H, T, D]     lse [B, H, T]
//   bias  [B or 1, H or 1, T, S] (strides 0 for a broadcast dimension)
// The score of query t and key s, before the softmax:
//   x = scale · q_t·k_s;  x = cap · tanh(x / cap) if softcap > 0 (Gemma 2);
//   x += bias[t, s] - slope_h · |diag(t) - s| (ALiBi, Press et al. 2022);
//   x = -inf where s is outside [lo(t), hi(t)), with L = key length of the sequence and
//   diag(t) = t (top-left) or t + L - T (bottom-right):
//   hi = min(L, diag + 1 if causal, diag + window_right + 1 if window_right >= 0),
//   lo = max(0, diag - window_left if window_left >= 0).
// A row with no allowed key (or all -inf) has O = 0 and LSE = -inf, and passes no gradient.
// Dropout (p > 0) drops weights after the softmax with a counter-based hash of
// (seed, b, h, t, s), so the mask does not depend on tiling or threads; LSE is of the
// undropped weights.
#pragma once

#include <cstdint>

namespace attend::kernels {

struct SdpaProblem {
  int B = 0, H = 0, Hkv = 0, T = 0, S = 0, D = 0;
  float scale = 1.0f;
  const int* key_lengths = nullptr;  // [B], each in [0, S]; nullptr = S
  bool causal = false;
  bool bottom_right = false;  // diagonal alignment for causal, window and ALiBi
  int window_left = -1, window_right = -1;
  const float* bias = nullptr;
  int64_t bias_stride_b = 0, bias_stride_h = 0;  // in floats; the [T, S] block is contiguous
  const float* alibi_slopes = nullptr;           // [H]
  float softcap = 0.0f;
  float dropout = 0.0f;
  uint64_t seed = 0;
};

// The allowed key range [lo, hi) of query t in sequence b (empty when lo >= hi).
inline void sdpa_key_range(const SdpaProblem& p, int b, int t, int& lo, int& hi) {
  const int L = p.key_lengths ? p.key_lengths[b] : p.S;
  const int diag = t + (p.bottom_right ? L - p.T : 0);
  hi = L;
  if (p.causal && diag + 1 < hi) hi = diag + 1;
  // In 64 bits: a window of up to INT_MAX positions must not overflow (it means "all of them").
  if (p.window_right >= 0 && int64_t(diag) + p.window_right + 1 < hi)
    hi = static_cast<int>(int64_t(diag) + p.window_right + 1);
  lo = 0;
  if (p.window_left >= 0 && int64_t(diag) - p.window_left > lo) lo = static_cast<int>(int64_t(diag) - p.window_left);
}

// The dropout decision for one weight: true = kept (then scaled by 1 / (1 - p)).
bool sdpa_keep(const SdpaProblem& p, int b, int h, int t, int s);

// Bytes of scratch the fused kernels need per thread.
int64_t sdpa_forward_scratch_floats();
int64_t sdpa_backward_scratch_floats(const SdpaProblem& p);

// out, lse <- attention(q, k, v). `scratch` holds threads × sdpa_forward_scratch_floats().
void sdpa_forward_fused(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out, float* lse,
                        float* scratch);
void sdpa_forward_reference(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out,
                            float* lse);

// Gradients, accumulated (+=) into dq [B,H,T,D], dk, dv [B,Hkv,S,D] and, when not null, dbias
// (the bias's own layout; a broadcast bias gets the sum over what it was broadcast to).
// Fused: `scratch` holds threads × sdpa_backward_scratch_floats(p); parallel over (b, kv head).
void sdpa_backward_fused(const SdpaProblem& p, const float* q, const float* k, const float* v, const float* out,
                         const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias,
                         float* scratch);
void sdpa_backward_reference(const SdpaProblem& p, const float* q, const float* k, const float* v, const float* out,
                             const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias);

// The normalised weights exp(x - LSE) (before dropout) of heads [h0, h1) and query rows
// [t0, t1): w [B, h1 - h0, t1 - t0, S], computed tile by tile from the stored LSE.
void sdpa_weights(const SdpaProblem& p, const float* q, const float* k, const float* lse, int h0, int h1, int t0,
                  int t1, float* w);

// Incremental decoding: one new query per sequence against its cached keys (split-K).
// q [B, H, 1, D]; k, v [B, Hkv, capacity, D] with p.S = capacity, p.T = 1, p.bottom_right and
// p.key_lengths = the cached lengths. Keys are cut into chunks of `chunk`; each (b, kv head,
// chunk) is one parallel item that reads its K and V once for all G heads of the group and
// leaves a partial (max, sum, output) in `partial`; the partials are then merged per head.
int64_t sdpa_decode_partial_floats(const SdpaProblem& p, int chunk);  // for `partial`
int64_t sdpa_decode_scratch_floats(const SdpaProblem& p, int chunk);  // per thread
void sdpa_decode(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out, float* lse,
                 int chunk, float* partial, float* scratch);

}  // namespace attend::kernels
