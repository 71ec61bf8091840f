#include "blas.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <oneapi/dnnl/dnnl.h>
#include <stdexcept>
#include <string>

#include "onednn_threads.h"

namespace attend::kernels {

namespace {

// OpenBLAS multiplies small problems on its AVX-512 cores with kernels that read the operands
// in place instead of packing them first: measured here (0.3.21, SkylakeX), for A·B when
// M·N·K is at most about 100^3 and for A·Bᵀ when M·N is at most 1024. A product with few rows
// (one decoder step: M = batch) and a wide weight is far past those bounds, so OpenBLAS packs
// the whole weight on every call, which costs as much as the arithmetic. Cut into column
// blocks that each fit, the same product runs 1.5-3x faster at M = 8-16 (bench/gemm_blocking,
// docs/benchmarks.md); from M = 32 on, packing pays for itself again.
constexpr double kSmallProduct = 786432.0;  // A·B: M·N·K bound (3·2^18 < 100^3)
constexpr int kSmallRowsTimesCols = 1024;   // A·Bᵀ: M·N bound
constexpr int kMaxBlockedRows = 16;
// Other products of 2 to 128 rows (one decoder step of a batch, one RNN step) go to oneDNN's
// sgemm, which does not pack the whole weight per call: measured on AMD Zen 4
// (bench/gemm_blocking, docs/benchmarks.md), 1.1-1.4x OpenBLAS's speed there. Larger products
// (a Transformer's training step) stay with OpenBLAS: oneDNN was about 1.05x there, but it
// allocates its packing buffers on every call, and glibc then grows and trims the heap every
// step (about 90 page faults per step where OpenBLAS, with its own buffers, makes none).
constexpr int kMaxOneDnnRows = 128;

GemmPath g_path = GemmPath::kAuto;
thread_local GemmStats* t_stats = nullptr;

bool has_small_kernels() {
  if (g_path != GemmPath::kAuto) return g_path == GemmPath::kSmallKernels;
  static const bool yes = [] {
    const char* core = openblas_get_corename();
    for (const char* c : {"SkylakeX", "Cooperlake", "SapphireRapids"})
      if (core && std::strcmp(core, c) == 0) return true;
    return false;
  }();
  return yes;
}

void sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

// The same product through oneDNN (row-major, like cblas), on the calling thread only.
void onednn_sgemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                  float beta, float* C, int ldc) {
  const OneOmpThread one;
  const dnnl_status_t status = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (status != dnnl_success)
    throw std::runtime_error("oneDNN sgemm of " + std::to_string(M) + " x " + std::to_string(K) + " by " +
                             std::to_string(K) + " x " + std::to_string(N) + " (lda " + std::to_string(lda) + ", ldb " +
                             std::to_string(ldb) + ", ldc " + std::to_string(ldc) + ") failed with status " +
                             std::to_string(int(status)));
}

// kAuto: oneDNN (see above) while OpenBLAS runs on one thread: with more, OpenBLAS splits a
// product across them and oneDNN, kept to the calling thread, would not.
bool use_onednn(int M, bool blocks_apply) {
  if (g_path != GemmPath::kAuto) return g_path == GemmPath::kOneDnn;
  return M >= 2 && M <= kMaxOneDnnRows && !blocks_apply && openblas_get_num_threads() == 1;
}

void gemm_uncounted(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) {
  const bool blocks_apply = M <= kMaxBlockedRows && !trans_a && has_small_kernels();
  if (use_onednn(M, blocks_apply)) return onednn_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (M == 1) {
    // One row: y = alpha op(B)^T a + beta y, a matrix-vector product (faster than sgemm with
    // M = 1 on every core measured: 1.25x on SkylakeX, about 3x on Haswell).
    cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, trans_b ? N : K, trans_b ? K : N, alpha, B, ldb, A,
                trans_a ? lda : 1, beta, C, 1);
    return;
  }
  // Columns per block so that each block qualifies for the small kernels (0 = do not block).
  int block = 0;
  if (blocks_apply) {
    block = trans_b ? kSmallRowsTimesCols / M : static_cast<int>(kSmallProduct / (double(M) * K));
    block = std::max(16, block / 16 * 16);
  }
  if (block == 0 || block >= N) {
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  for (int j = 0; j < N; j += block) {
    const int n = std::min(block, N - j);
    // Columns [j, j+n) of op(B): B + j when B is [K,N], rows j.. (B + j*ldb) when B is [N,K].
    const float* Bj = trans_b ? B + int64_t(j) * ldb : B + j;
    sgemm(trans_a, trans_b, M, n, K, alpha, A, lda, Bj, ldb, beta, C + j, ldc);
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: beta C (OpenBLAS's gemv and oneDNN's sgemm leave C as it was)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        float& c = C[int64_t(i) * ldc + j];
        c = beta == 0.0f ? 0.0f : beta * c;
      }
    return;
  }
  if (!t_stats) return gemm_uncounted(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const auto t0 = std::chrono::steady_clock::now();
  gemm_uncounted(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  t_stats->seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t_stats->flops += 2.0 * M * N * K;
  ++t_stats->calls;
}

void set_gemm_stats(GemmStats* stats) { t_stats = stats; }

void set_gemm_path(GemmPath path) { g_path = path; }

void affine(int M, int N, int K, const float* x, const float* w, const float* bias, float* y) {
  if (bias) {
    for (int m = 0; m < M; ++m) std::copy_n(bias, N, y + int64_t(m) * N);
  } else if (!x) {
    std::fill_n(y, int64_t(M) * N, 0.0f);
  }
  if (x) gemm(false, false, M, N, K, 1.0f, x, K, w, N, bias ? 1.0f : 0.0f, y, N);
}

void set_blas_threads(int n) { openblas_set_num_threads(n); }
int blas_threads() { return openblas_get_num_threads(); }

}  // namespace attend::kernels
