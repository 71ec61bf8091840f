#include "int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "onednn_threads.h"

namespace attend::kernels {

namespace {

// y[n] = float(acc[n]) * s * sb[n] + bias[n] over one row, the int32 sums read from y's own
// storage (memcpy: the bytes are an int32 until they are overwritten).
void dequantize_row(int N, float s, const float* sb, const float* bias, float* y) {
  for (int n = 0; n < N; ++n) {
    int32_t acc;
    std::memcpy(&acc, y + n, sizeof acc);
    y[n] = static_cast<float>(acc) * s * sb[n] + (bias ? bias[n] : 0.0f);
  }
}

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

}  // namespace

int int8_range() {
  static const int range = [] {
    // oneDNN's ISA values are bit sets: each VNNI level adds one bit to the level below it.
    const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const unsigned vnni512 = dnnl_cpu_isa_avx512_core_vnni & ~unsigned(dnnl_cpu_isa_avx512_core);
    const unsigned vnni256 = dnnl_cpu_isa_avx2_vnni & ~unsigned(dnnl_cpu_isa_avx2);
    return (isa & (vnni512 | vnni256)) != 0 ? 127 : 63;
  }();
  return range;
}

void quantize_rows(const float* x, int64_t M, int K, int R, int8_t* q, float* scales) {
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    int8_t* out = q + m * K;
    float top = 0.0f, probe = 0.0f;  // probe: NaN when the row holds a NaN or an infinity
    for (int k = 0; k < K; ++k) top = std::max(top, std::fabs(row[k])), probe += row[k] * 0.0f;
    if (probe != probe) {
      scales[m] = std::nanf("");
      std::fill_n(out, K, int8_t{0});
      continue;
    }
    if (top < 1e-30f) {
      scales[m] = 0.0f;
      std::fill_n(out, K, int8_t{0});
      continue;
    }
    const float inv = static_cast<float>(R) / top, limit = static_cast<float>(R);
    for (int k = 0; k < K; ++k) out[k] = static_cast<int8_t>(std::clamp(std::nearbyint(row[k] * inv), -limit, limit));
    scales[m] = top / static_cast<float>(R);
  }
}

void int8_gemm_reference(int64_t M, int N, int K, const int8_t* qa, const float* sa, const int8_t* qb, const float* sb,
                         const float* bias, float* y) {
  for (int64_t m = 0; m < M; ++m) {
    float* row = y + m * N;
    for (int n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int k = 0; k < K; ++k) acc += int32_t(qa[m * K + k]) * int32_t(qb[int64_t(n) * K + k]);
      std::memcpy(row + n, &acc, sizeof acc);
    }
    dequantize_row(N, sa[m], sb, bias, row);
  }
}

struct Int8Gemm::Primitive {
  dnnl::matmul matmul;
  dnnl::memory::desc weights;
  uint64_t id;  // unique over the process: the key of the threads' prepared arguments
};

namespace {

// A thread's oneDNN arguments for one product at one M, made once and pointed at each call's
// buffers (set_data_handle): making them costs about as much as a small product.
struct Arguments {
  int64_t M = -1;
  dnnl::memory src, weights, dst;
  std::unordered_map<int, dnnl::memory> map;
};

Arguments& thread_arguments(uint64_t id) {
  thread_local std::unordered_map<uint64_t, Arguments> cache;
  if (cache.size() > 4096 && !cache.count(id)) cache.clear();  // bounded: reloaded models leave theirs behind
  return cache[id];
}

std::atomic<uint64_t> g_next_id{1};

}  // namespace

Int8Gemm::Int8Gemm(int N, int K) : N_(N), K_(K) {
  if (N < 1 || K < 1 || K > kInt8MaxK)
    throw std::invalid_argument("int8 product: " + std::to_string(N) + " outputs of " + std::to_string(K) +
                                " inputs (need N >= 1 and 1 <= K <= " + std::to_string(kInt8MaxK) + ")");
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const dnnl::memory::dim any = DNNL_RUNTIME_DIM_VAL;
  const dnnl::memory::desc src({any, K}, dt::s8, tag::ab), dst({any, N}, dt::s32, tag::ab);
  const dnnl::memory::desc weights({K, N}, dt::s8, tag::ba);  // [N, K] row-major, read as [K, N]
  const OneOmpThread one;
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst), cpu_engine());
  primitive_ = std::make_shared<const Primitive>(Primitive{dnnl::matmul(pd), weights, g_next_id++});
}

void Int8Gemm::run(int64_t M, const int8_t* qa, const float* sa, const int8_t* qb, const float* sb, const float* bias,
                   float* y) const {
  if (M == 0) return;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const OneOmpThread one;
  dnnl::stream& stream = thread_stream();
  const dnnl::engine& engine = cpu_engine();
  Arguments& a = thread_arguments(primitive_->id);
  if (a.M != M) {
    a.src = dnnl::memory({{M, K_}, dt::s8, tag::ab}, engine, DNNL_MEMORY_NONE);
    a.weights = dnnl::memory(primitive_->weights, engine, DNNL_MEMORY_NONE);
    a.dst = dnnl::memory({{M, N_}, dt::s32, tag::ab}, engine, DNNL_MEMORY_NONE);
    a.map = {{DNNL_ARG_SRC, a.src}, {DNNL_ARG_WEIGHTS, a.weights}, {DNNL_ARG_DST, a.dst}};
    a.M = M;
  }
  a.src.set_data_handle(const_cast<int8_t*>(qa));
  a.weights.set_data_handle(const_cast<int8_t*>(qb));
  a.dst.set_data_handle(y);
  primitive_->matmul.execute(stream, a.map);
  stream.wait();
  for (int64_t m = 0; m < M; ++m) dequantize_row(N_, sa[m], sb, bias, y + m * N_);
}

}  // namespace attend::kernels
