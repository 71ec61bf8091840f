// attend kernels: fp32 matrix products, the one place that calls OpenBLAS and oneDNN's sgemm
// (the faster for products of a few rows, one decoder step: blas.cpp says which). Raw pointers, row-major,
// no allocation of ours.
#pragma once

namespace attend::kernels {

// C[M,N] = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T; all row-major.
// A is [M,K] (or [K,M] when trans_a), B is [K,N] (or [N,K] when trans_b).
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc);

// y[M,N] = x[M,K] w[K,N] + bias[N] on every row, as bias rows then gemm with beta 1 (every
// affine layer and recurrent projection computes it this way, so that fused paths give the ops'
// numbers). bias may be null (no bias); x may be null (a zero input: y = bias, no product).
void affine(int M, int N, int K, const float* x, const float* w, const float* bias, float* y);

// Which product strategy gemm uses: kAuto decides from the shape and the OpenBLAS core; the
// others force one path (for tests: every path must give the same result). kPlain is OpenBLAS
// as it comes (matrix-vector for one row), the reference of the others.
enum class GemmPath { kAuto, kPlain, kSmallKernels, kOneDnn };
void set_gemm_path(GemmPath path);

// Counts the products gemm runs on the calling thread while installed (benchmarks: a training
// step's GFLOP/s in its products against the machine's sgemm rate). Null stops counting.
struct GemmStats {
  long long calls = 0;
  double flops = 0.0, seconds = 0.0;
};
void set_gemm_stats(GemmStats* stats);

// Threads OpenBLAS may use (1 inside our own parallel regions).
void set_blas_threads(int n);
int blas_threads();

}  // namespace attend::kernels
