// attend kernels: int8 products for inference, on oneDNN's matmul. Raw pointers,
// row-major; a product allocates nothing (its oneDNN primitive is prepared once per weight).
//
// Quantization is symmetric per row (Wu et al. 2016; CTranslate2's scheme): row r of x is
// q[r, :] = round(x[r, :] / s[r]) with s[r] = max |x[r, :]| / R, so x ~ q * s. Weights are
// kept as [N, K] (each output's weights one row) with one scale per output; activations are
// quantized per row when they arrive. The product sums q_a q_b exactly in int32 and scales
// back: y[m, n] = s_a[m] s_b[n] sum_k q_a[m, k] q_b[n, k] + bias[n].
//
// R is 127, except on CPUs without VNNI: there the int8 instructions add pairs of u8 x s8
// products in int16 with saturation, after shifting one operand (which one is oneDNN's choice,
// it varies with the shape) by +128 to u8: 2 x 255 x 127 > 32767 would make products of large
// values silently wrong. With 7 bits on both sides (R = 63), 2 x 191 x 63 < 32767 and the sums
// stay exact. int8_range() says which; both are tested against the reference
// (DNNL_MAX_CPU_ISA=AVX512_CORE or AVX2 runs the 7-bit path on any machine).
#pragma once

#include <cstdint>
#include <memory>

namespace attend::kernels {

inline constexpr int kInt8MaxK = 1 << 16;  // 127 x 127 x 2^16 < 2^31: the int32 sums cannot overflow

// The largest |q| on this CPU (as oneDNN runs it): 127 with VNNI, else 63.
int int8_range();

// q[M, K], scales[M] from x[M, K] with range R (int8_range(), or another for tests).
// A row of zeros (or of values below 1e-30) gets scale 0; a row holding NaN or an infinity gets
// scale NaN, so that everything computed from it is NaN.
void quantize_rows(const float* x, int64_t M, int K, int R, int8_t* q, float* scales);

// y[M, N] = (qa[M, K] . qb[N, K]^T in int32) * sa[m] * sb[n] + bias[n]: the plain loops the
// oneDNN product is tested against. bias may be null.
void int8_gemm_reference(int64_t M, int N, int K, const int8_t* qa, const float* sa, const int8_t* qb, const float* sb,
                         const float* bias, float* y);

// The same product through oneDNN's matmul, prepared once for one weight (N outputs of K) and
// run for any M; safe to run from several threads at once. Each call runs on the calling thread
// only (oneDNN's OpenMP team is kept to one thread: attend spreads work itself).
class Int8Gemm {
 public:
  Int8Gemm() = default;
  Int8Gemm(int N, int K);  // throws std::invalid_argument unless 1 <= N and 1 <= K <= kInt8MaxK
  // y may not alias qa; y's storage first receives the int32 sums, then the results in place.
  void run(int64_t M, const int8_t* qa, const float* sa, const int8_t* qb, const float* sb, const float* bias,
           float* y) const;
  int n() const { return N_; }
  int k() const { return K_; }

 private:
  struct Primitive;
  std::shared_ptr<const Primitive> primitive_;
  int N_ = 0, K_ = 0;
};

}  // namespace attend::kernels
