// attend kernels: how a oneDNN call (int8_gemm.cpp's matmul, blas.cpp's sgemm) is kept to the
// thread that makes it.
#pragma once

#include <dlfcn.h>

namespace attend::kernels {

// oneDNN runs on an OpenMP team of omp_get_max_threads() threads, a setting of the calling
// thread: one while oneDNN plans or runs a product, so that it runs where it is called
// (attend's own threads split the work), and the caller's setting back afterwards (PyTorch in
// the same Python process reads the same setting). The functions are those of the OpenMP
// runtime libdnnl loaded (libgomp), looked up at run time: attend itself is not built with
// OpenMP. Without them oneDNN picks its own team; the results are the same either way.
class OneOmpThread {
 public:
  OneOmpThread() {
    if (api().set) before_ = api().get(), api().set(1);
  }
  ~OneOmpThread() {
    if (api().set) api().set(before_);
  }
  OneOmpThread(const OneOmpThread&) = delete;
  OneOmpThread& operator=(const OneOmpThread&) = delete;

 private:
  struct Api {
    int (*get)() = nullptr;
    void (*set)(int) = nullptr;
  };
  static const Api& api() {
    static const Api a = [] {
      Api r;
      r.get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
      r.set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
      if (!r.get) r.set = nullptr;
      return r;
    }();
    return a;
  }
  int before_ = 1;
};

}  // namespace attend::kernels
