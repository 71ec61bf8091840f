#include "flash_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "blas.h"
#include "counter_random.h"
#include "parallel.h"
#include "vec_math.h"

namespace attend::kernels {

namespace {

// Tile sizes: Br query rows × Bc keys (measured best of 32-128 × 128-256 on this machine,
// bench/sdpa_bench). The score tile (64 × 128 floats = 32 KiB) and the K/V tiles it reads
// (2 × 128 × D floats) stay in L2 while a query tile is processed.
constexpr int Br = 64, Bc = 128;
constexpr int kShortCausalRows = 32;  // forward query tile when causal and T <= 768 (measured)

int key_length(const SdpaProblem& p, int b) { return p.key_lengths ? p.key_lengths[b] : p.S; }

int64_t q_offset(const SdpaProblem& p, int b, int h, int t) { return ((int64_t(b) * p.H + h) * p.T + t) * p.D; }
int64_t kv_offset(const SdpaProblem& p, int b, int h, int s) {
  const int g = h / (p.H / p.Hkv);
  return ((int64_t(b) * p.Hkv + g) * p.S + s) * p.D;
}
const float* bias_row(const SdpaProblem& p, int b, int h, int t) {
  return p.bias ? p.bias + b * p.bias_stride_b + h * p.bias_stride_h + int64_t(t) * p.S : nullptr;
}

// Scores x[0, c) of query t against keys s0.. (x holds scale · q·k on entry) -> the final
// logits: soft-capping, bias, ALiBi, and -inf outside [lo, hi). If `capped` is given, it
// receives tanh(x / cap) (the soft-capping's derivative needs it).
void finish_scores(const SdpaProblem& p, int b, int h, int t, int s0, int c, int lo, int hi, float* x,
                   float* capped = nullptr) {
  if (p.softcap > 0.0f) {
    const float inv = 1.0f / p.softcap;
    for (int j = 0; j < c; ++j) x[j] *= inv;
    vtanh(x, x, c);
    if (capped) std::memcpy(capped, x, sizeof(float) * c);
    for (int j = 0; j < c; ++j) x[j] *= p.softcap;
  }
  if (const float* br = bias_row(p, b, h, t)) {
    for (int j = 0; j < c; ++j) x[j] += br[s0 + j];
  }
  if (p.alibi_slopes) {
    const float slope = p.alibi_slopes[h];
    const int diag = t + (p.bottom_right ? key_length(p, b) - p.T : 0);
    for (int j = 0; j < c; ++j) x[j] -= slope * static_cast<float>(std::abs(diag - (s0 + j)));
  }
  for (int j = 0; j < std::min(c, lo - s0); ++j) x[j] = -INFINITY;
  for (int j = std::max(0, hi - s0); j < c; ++j) x[j] = -INFINITY;
}

// Rows [t0, t0 + r) of one (b, h): their key ranges and the union [kmin, kmax).
struct RowRanges {
  int lo[Br], hi[Br];
  int kmin, kmax;
  RowRanges(const SdpaProblem& p, int b, int t0, int r) {
    kmin = p.S, kmax = 0;
    for (int i = 0; i < r; ++i) {
      sdpa_key_range(p, b, t0 + i, lo[i], hi[i]);
      if (lo[i] < hi[i]) kmin = std::min(kmin, lo[i]), kmax = std::max(kmax, hi[i]);
    }
  }
};

}  // namespace

bool sdpa_keep(const SdpaProblem& p, int b, int h, int t, int s) {
  const uint64_t index = ((uint64_t(b) * p.H + h) * p.T + t) * p.S + s;
  const uint64_t x = counter_draw(p.seed, index);
  return static_cast<float>(x >> 40) * (1.0f / 16777216.0f) >= p.dropout;
}

int64_t sdpa_forward_scratch_floats() { return int64_t(Br) * Bc + 2 * Br; }
int64_t sdpa_backward_scratch_floats(const SdpaProblem& p) { return 3 * int64_t(Br) * Bc + int64_t(p.H / p.Hkv) * p.T; }

// ---------------------------------------------------------------------------------------------
// Forward. FlashAttention-2, algorithm 1: for each query tile, over the key tiles:
//   X = scale·Q Kᵀ (+ cap, bias, ALiBi, mask); m' = max(m, rowmax X); P = exp(X - m');
//   l = e^(m - m')·l + rowsum P;  O = e^(m - m')·O + P V;  finally O /= l, LSE = m + log l.

void sdpa_forward_fused(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out, float* lse,
                        float* scratch) {
  // Causal rows end at the diagonal: at short lengths, where the diagonal blocks are a large
  // share of the work, shorter query tiles waste less (T = 512: ~62 vs ~60 GFLOP/s; longer
  // sequences prefer the larger products of 64-row tiles).
  const int br = p.causal && p.T <= 768 ? kShortCausalRows : Br;
  const int q_tiles = (p.T + br - 1) / br;
  const float keep_scale = p.dropout > 0.0f ? 1.0f / (1.0f - p.dropout) : 1.0f;
  const double work = 4.0 * p.B * p.H * p.T * p.S * p.D;  // Q Kᵀ and P V
  parallel_for(
      int64_t(p.B) * p.H * q_tiles,
      [&](int64_t item, int thread) {
        const int b = static_cast<int>(item / (int64_t(p.H) * q_tiles));
        const int h = static_cast<int>(item / q_tiles % p.H);
        const int t0 = static_cast<int>(item % q_tiles) * br, r = std::min(br, p.T - t0);
        float* X = scratch + thread * sdpa_forward_scratch_floats();  // [Br, Bc] scores, then weights
        float* m = X + Br * Bc;                                       // [Br] running max
        float* l = m + Br;                                            // [Br] running sum
        const float* Q = q + q_offset(p, b, h, t0);                   // [r, D]
        float* O = out + q_offset(p, b, h, t0);                       // [r, D]
        const RowRanges rows(p, b, t0, r);
        std::fill(O, O + int64_t(r) * p.D, 0.0f);
        std::fill(m, m + r, -INFINITY);
        std::fill(l, l + r, 0.0f);
        for (int s0 = rows.kmin; s0 < rows.kmax; s0 += Bc) {
          const int c = std::min(Bc, rows.kmax - s0);
          const float* K = k + kv_offset(p, b, h, s0);                                                 // [c, D]
          const float* V = v + kv_offset(p, b, h, s0);                                                 // [c, D]
          gemm(/*trans_a=*/false, /*trans_b=*/true, r, c, p.D, p.scale, Q, p.D, K, p.D, 0.0f, X, Bc);  // X [r, c]
          for (int i = 0; i < r; ++i) {
            float* x = X + i * Bc;
            finish_scores(p, b, h, t0 + i, s0, c, rows.lo[i], rows.hi[i], x);
            const float tile_max = vmax(x, c);  // NaN if a score is NaN: it must reach the output
            const float m_new = std::isnan(tile_max) || std::isnan(m[i]) ? NAN : std::max(m[i], tile_max);
            if (m_new == -INFINITY) {  // nothing allowed yet in this row
              std::fill(x, x + c, 0.0f);
              continue;
            }
            const float alpha = std::exp(m[i] - m_new);  // 0 on the first allowed tile
            l[i] = alpha * l[i] + vexp_shifted_sum(x, m_new, x, c);
            m[i] = m_new;
            if (alpha != 1.0f) {
              float* o = O + int64_t(i) * p.D;
              for (int d = 0; d < p.D; ++d) o[d] *= alpha;
            }
            if (p.dropout > 0.0f) {
              for (int j = 0; j < c; ++j) x[j] = sdpa_keep(p, b, h, t0 + i, s0 + j) ? x[j] * keep_scale : 0.0f;
            }
          }
          gemm(/*trans_a=*/false, /*trans_b=*/false, r, p.D, c, 1.0f, X, Bc, V, p.D, 1.0f, O, p.D);  // O += P V
        }
        float* L = lse + (int64_t(b) * p.H + h) * p.T + t0;
        for (int i = 0; i < r; ++i) {
          float* o = O + int64_t(i) * p.D;
          if (l[i] != 0.0f) {  // (NaN too: a NaN input gives a NaN output, not the zeros below)
            const float inv = 1.0f / l[i];
            for (int d = 0; d < p.D; ++d) o[d] *= inv;
            L[i] = m[i] + std::log(l[i]);
          } else {  // no allowed key: defined as zeros
            std::fill(o, o + p.D, 0.0f);
            L[i] = -INFINITY;
          }
        }
      },
      work);
}

// The references' raw scores of one query: x[s] = scale · q_t·k_s for every key, in double.
namespace {
void scaled_dots(const SdpaProblem& p, const float* qt, const float* k, int b, int h, float* x) {
  for (int s = 0; s < p.S; ++s) {
    const float* ks = k + kv_offset(p, b, h, s);
    double dot = 0.0;
    for (int d = 0; d < p.D; ++d) dot += double(qt[d]) * ks[d];
    x[s] = static_cast<float>(dot * p.scale);
  }
}
}  // namespace

// The oracle: one query at a time, whole rows, double accumulation.
void sdpa_forward_reference(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out,
                            float* lse) {
  std::vector<float> x(p.S);
  std::vector<double> acc(p.D);
  for (int b = 0; b < p.B; ++b)
    for (int h = 0; h < p.H; ++h)
      for (int t = 0; t < p.T; ++t) {
        const float* qt = q + q_offset(p, b, h, t);
        scaled_dots(p, qt, k, b, h, x.data());
        int lo, hi;
        sdpa_key_range(p, b, t, lo, hi);
        finish_scores(p, b, h, t, 0, p.S, lo, hi, x.data());
        const float mx = vmax(x.data(), p.S);  // NaN if any score is NaN
        float* o = out + q_offset(p, b, h, t);
        float& L = lse[(int64_t(b) * p.H + h) * p.T + t];
        if (mx == -INFINITY) {
          std::fill(o, o + p.D, 0.0f);
          L = -INFINITY;
          continue;
        }
        double sum = 0.0;
        for (int s = 0; s < p.S; ++s) sum += x[s] == -INFINITY ? 0.0 : std::exp(double(x[s]) - mx);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int s = 0; s < p.S; ++s) {
          if (x[s] == -INFINITY) continue;
          double w = std::exp(double(x[s]) - mx) / sum;
          if (p.dropout > 0.0f) w = sdpa_keep(p, b, h, t, s) ? w / (1.0 - p.dropout) : 0.0;
          const float* vs = v + kv_offset(p, b, h, s);
          for (int d = 0; d < p.D; ++d) acc[d] += w * vs[d];
        }
        for (int d = 0; d < p.D; ++d) o[d] = static_cast<float>(acc[d]);
        L = static_cast<float>(mx + std::log(sum));
      }
}

// ---------------------------------------------------------------------------------------------
// Backward. FlashAttention-2, algorithm 2, one (b, kv head) per item so that dK, dV (and dQ of
// the group's heads) have a single writer. With Di = rowsum(dO ∘ O) and z the dropout factor
// (keep / (1 - p), or 1):
//   forward was X -> P = exp(X - LSE) -> O = (P ∘ z) V
//   dV += (P ∘ z)ᵀ dO;  dP = (dO Vᵀ) ∘ z;  dX = P ∘ (dP - Di);  dbias = dX;
//   dX *= 1 - tanh²  (soft-capping);  dQ += scale · dX K;  dK += scale · dXᵀ Q.

void sdpa_backward_fused(const SdpaProblem& p, const float* q, const float* k, const float* v, const float* out,
                         const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias,
                         float* scratch) {
  const int G = p.H / p.Hkv;
  const int q_tiles = (p.T + Br - 1) / Br;
  const float keep_scale = p.dropout > 0.0f ? 1.0f / (1.0f - p.dropout) : 1.0f;
  const double work = 10.0 * p.B * p.H * p.T * p.S * p.D;  // Q Kᵀ again, dV, dP, dQ, dK
  parallel_for(
      int64_t(p.B) * p.Hkv,
      [&](int64_t item, int thread) {
        const int b = static_cast<int>(item / p.Hkv), g = static_cast<int>(item % p.Hkv);
        float* P = scratch + thread * sdpa_backward_scratch_floats(p);  // [Br, Bc] weights
        float* dX = P + Br * Bc;                                        // [Br, Bc] dP, then dX
        float* C = dX + Br * Bc;                                        // [Br, Bc] tanh(x / cap)
        float* Di = C + Br * Bc;                                        // [G, T]
        for (int j = 0; j < G; ++j) {
          const int h = g * G + j;
          for (int t = 0; t < p.T; ++t) {
            const float* o = out + q_offset(p, b, h, t);
            const float* d_o = dout + q_offset(p, b, h, t);
            float acc = 0.0f;
            for (int d = 0; d < p.D; ++d) acc += o[d] * d_o[d];
            Di[j * p.T + t] = acc;
          }
        }
        const int L = key_length(p, b);
        for (int s0 = 0; s0 < L; s0 += Bc) {
          const int c = std::min(Bc, L - s0);
          const float* K = k + kv_offset(p, b, g * G, s0);  // [c, D]
          const float* V = v + kv_offset(p, b, g * G, s0);
          float* dK = dk + kv_offset(p, b, g * G, s0);
          float* dV = dv + kv_offset(p, b, g * G, s0);
          for (int j = 0; j < G; ++j) {
            const int h = g * G + j;
            for (int qt = 0; qt < q_tiles; ++qt) {
              const int t0 = qt * Br, r = std::min(Br, p.T - t0);
              const RowRanges rows(p, b, t0, r);
              if (rows.kmax <= s0 || rows.kmin >= s0 + c) continue;  // no allowed pair in this tile
              const float* Q = q + q_offset(p, b, h, t0);
              const float* dO = dout + q_offset(p, b, h, t0);
              float* dQ = dq + q_offset(p, b, h, t0);
              const float* Lr = lse + (int64_t(b) * p.H + h) * p.T + t0;
              gemm(false, true, r, c, p.D, p.scale, Q, p.D, K, p.D, 0.0f, P, Bc);  // X [r, c]
              gemm(false, true, r, c, p.D, 1.0f, dO, p.D, V, p.D, 0.0f, dX, Bc);   // dO Vᵀ [r, c]
              for (int i = 0; i < r; ++i) {
                float* x = P + i * Bc;
                float* dx = dX + i * Bc;
                const int t = t0 + i;
                if (Lr[i] == -INFINITY) {  // a fully masked row: no weights, no gradient
                  std::fill(x, x + c, 0.0f);
                  std::fill(dx, dx + c, 0.0f);
                  continue;
                }
                finish_scores(p, b, h, t, s0, c, rows.lo[i], rows.hi[i], x, C + i * Bc);
                vexp_shifted_sum(x, Lr[i], x, c);  // P = exp(X - LSE)
                const float di = Di[j * p.T + t];
                if (p.dropout > 0.0f) {
                  for (int jj = 0; jj < c; ++jj) {
                    const float z = sdpa_keep(p, b, h, t, s0 + jj) ? keep_scale : 0.0f;
                    dx[jj] = x[jj] * (dx[jj] * z - di);  // dX = P ∘ (dP - Di)
                    x[jj] *= z;                          // P ∘ z, for dV
                  }
                } else {
                  for (int jj = 0; jj < c; ++jj) dx[jj] = x[jj] * (dx[jj] - di);
                }
                if (dbias) {
                  float* db = dbias + ((int64_t(b) * p.H + h) * p.T + t) * p.S + s0;
                  for (int jj = 0; jj < c; ++jj) db[jj] += dx[jj];
                }
                if (p.softcap > 0.0f) {
                  const float* th = C + i * Bc;
                  for (int jj = 0; jj < c; ++jj) dx[jj] *= 1.0f - th[jj] * th[jj];
                }
              }
              gemm(true, false, c, p.D, r, 1.0f, P, Bc, dO, p.D, 1.0f, dV, p.D);      // dV += (P∘z)ᵀ dO
              gemm(false, false, r, p.D, c, p.scale, dX, Bc, K, p.D, 1.0f, dQ, p.D);  // dQ += scale dX K
              gemm(true, false, c, p.D, r, p.scale, dX, Bc, Q, p.D, 1.0f, dK, p.D);   // dK += scale dXᵀ Q
            }
          }
        }
      },
      work);
}

void sdpa_backward_reference(const SdpaProblem& p, const float* q, const float* k, const float* v, const float* out,
                             const float* lse, const float* dout, float* dq, float* dk, float* dv, float* dbias) {
  std::vector<float> x(p.S), th(p.S);
  for (int b = 0; b < p.B; ++b)
    for (int h = 0; h < p.H; ++h)
      for (int t = 0; t < p.T; ++t) {
        const float Lt = lse[(int64_t(b) * p.H + h) * p.T + t];
        if (Lt == -INFINITY) continue;
        const float* qt = q + q_offset(p, b, h, t);
        const float* o = out + q_offset(p, b, h, t);
        const float* d_o = dout + q_offset(p, b, h, t);
        float* dqt = dq + q_offset(p, b, h, t);
        scaled_dots(p, qt, k, b, h, x.data());
        int lo, hi;
        sdpa_key_range(p, b, t, lo, hi);
        finish_scores(p, b, h, t, 0, p.S, lo, hi, x.data(), th.data());
        double di = 0.0;
        for (int d = 0; d < p.D; ++d) di += double(o[d]) * d_o[d];
        for (int s = 0; s < p.S; ++s) {
          if (x[s] == -INFINITY) continue;
          const double w = std::exp(double(x[s]) - Lt);
          const double z = p.dropout > 0.0f ? (sdpa_keep(p, b, h, t, s) ? 1.0 / (1.0 - p.dropout) : 0.0) : 1.0;
          const float* ks = k + kv_offset(p, b, h, s);
          const float* vs = v + kv_offset(p, b, h, s);
          float* dks = dk + kv_offset(p, b, h, s);
          float* dvs = dv + kv_offset(p, b, h, s);
          double dpw = 0.0;
          for (int d = 0; d < p.D; ++d) dpw += double(d_o[d]) * vs[d];
          double dx = w * (dpw * z - di);
          if (dbias) dbias[((int64_t(b) * p.H + h) * p.T + t) * p.S + s] += static_cast<float>(dx);
          if (p.softcap > 0.0f) dx *= 1.0 - double(th[s]) * th[s];
          for (int d = 0; d < p.D; ++d) {
            dvs[d] += static_cast<float>(w * z * d_o[d]);
            dqt[d] += static_cast<float>(p.scale * dx * ks[d]);
            dks[d] += static_cast<float>(p.scale * dx * qt[d]);
          }
        }
      }
}

// ---------------------------------------------------------------------------------------------

void sdpa_weights(const SdpaProblem& p, const float* q, const float* k, const float* lse, int h0, int h1, int t0,
                  int t1, float* w) {
  const int nh = h1 - h0, nt = t1 - t0;
  const double work = 2.0 * p.B * nh * nt * p.S * p.D;  // Q Kᵀ
  parallel_for(
      int64_t(p.B) * nh,
      [&](int64_t item, int) {
        const int b = static_cast<int>(item / nh), h = h0 + static_cast<int>(item % nh);
        float* W = w + item * int64_t(nt) * p.S;  // [nt, S]
        for (int r0 = 0; r0 < nt; r0 += Br) {
          const int r = std::min(Br, nt - r0);
          const int t = t0 + r0;
          gemm(false, true, r, p.S, p.D, p.scale, q + q_offset(p, b, h, t), p.D, k + kv_offset(p, b, h, 0), p.D, 0.0f,
               W + int64_t(r0) * p.S, p.S);
          for (int i = 0; i < r; ++i) {
            float* x = W + int64_t(r0 + i) * p.S;
            const float Lt = lse[(int64_t(b) * p.H + h) * p.T + t + i];
            int lo, hi;
            sdpa_key_range(p, b, t + i, lo, hi);
            finish_scores(p, b, h, t + i, 0, p.S, lo, hi, x);
            if (Lt == -INFINITY)
              std::fill(x, x + p.S, 0.0f);
            else
              vexp_shifted_sum(x, Lt, x, p.S);
          }
        }
      },
      work);
}

// ---------------------------------------------------------------------------------------------
// Decoding. Split-K ("flash-decoding"): item (b, g, chunk) computes, for the G query heads of kv
// head g, X = scale·Q_g K_cᵀ [G, n], m_c = rowmax X, P = exp(X - m_c), l_c = rowsum P and
// O_c = P V_c [G, D]; merging: M = max_c m_c, O = Σ_c e^(m_c - M) O_c / Σ_c e^(m_c - M) l_c.

int64_t sdpa_decode_partial_floats(const SdpaProblem& p, int chunk) {
  const int64_t chunks = (p.S + chunk - 1) / chunk;
  return int64_t(p.B) * p.H * chunks * (p.D + 2);
}
int64_t sdpa_decode_scratch_floats(const SdpaProblem& p, int chunk) { return int64_t(p.H / p.Hkv) * chunk; }

void sdpa_decode(const SdpaProblem& p, const float* q, const float* k, const float* v, float* out, float* lse,
                 int chunk, float* partial, float* scratch) {
  const int G = p.H / p.Hkv;
  const int chunks = (p.S + chunk - 1) / chunk;
  auto part = [&](int b, int h, int c) { return partial + ((int64_t(b) * p.H + h) * chunks + c) * (p.D + 2); };
  const double work = 4.0 * p.B * p.H * p.S * p.D;  // q Kᵀ and p V, one query per head
  parallel_for(
      int64_t(p.B) * p.Hkv * chunks,
      [&](int64_t item, int thread) {
        const int b = static_cast<int>(item / (int64_t(p.Hkv) * chunks));
        const int g = static_cast<int>(item / chunks % p.Hkv), c = static_cast<int>(item % chunks);
        int lo, hi;
        sdpa_key_range(p, b, 0, lo, hi);
        const int s0 = std::max(lo, c * chunk), s1 = std::min(hi, (c + 1) * chunk);
        if (s0 >= s1) {  // nothing of this chunk is visible
          for (int j = 0; j < G; ++j) part(b, g * G + j, c)[p.D] = -INFINITY;
          return;
        }
        const int n = s1 - s0;
        float* X = scratch + thread * sdpa_decode_scratch_floats(p, chunk);  // [G, n]
        const float* Q = q + q_offset(p, b, g * G, 0);                       // [G, D]: the group's heads are adjacent
        const float* K = k + kv_offset(p, b, g * G, s0);
        const float* V = v + kv_offset(p, b, g * G, s0);
        gemm(false, true, G, n, p.D, p.scale, Q, p.D, K, p.D, 0.0f, X, n);
        for (int j = 0; j < G; ++j) {
          float* x = X + int64_t(j) * n;
          finish_scores(p, b, g * G + j, 0, s0, n, lo, hi, x);
          const float m = vmax(x, n);
          float* pc = part(b, g * G + j, c);
          pc[p.D] = m;
          pc[p.D + 1] = m == -INFINITY ? 0.0f : vexp_shifted_sum(x, m, x, n);
          if (m == -INFINITY) std::fill(x, x + n, 0.0f);
        }
        // O_c [G, D] = P [G, n] V_c [n, D], into each head's partial (stride D + 2).
        for (int j = 0; j < G; ++j)
          gemm(false, false, 1, p.D, n, 1.0f, X + int64_t(j) * n, n, V, p.D, 0.0f, part(b, g * G + j, c), p.D);
      },
      work);
  for (int b = 0; b < p.B; ++b)
    for (int h = 0; h < p.H; ++h) {
      float M = -INFINITY;
      for (int c = 0; c < chunks; ++c) M = std::isnan(part(b, h, c)[p.D]) ? NAN : std::max(M, part(b, h, c)[p.D]);
      float* o = out + q_offset(p, b, h, 0);
      float& L = lse[int64_t(b) * p.H + h];
      std::fill(o, o + p.D, 0.0f);
      if (M == -INFINITY) {
        L = -INFINITY;
        continue;
      }
      float total = 0.0f;
      for (int c = 0; c < chunks; ++c) {
        const float* pc = part(b, h, c);
        if (pc[p.D] == -INFINITY) continue;
        const float w = std::exp(pc[p.D] - M);
        total += w * pc[p.D + 1];
        for (int d = 0; d < p.D; ++d) o[d] += w * pc[d];
      }
      for (int d = 0; d < p.D; ++d) o[d] /= total;
      L = M + std::log(total);
    }
}

}  // namespace attend::kernels
