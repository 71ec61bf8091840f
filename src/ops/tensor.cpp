#include "attend/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace attend {

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  if (dims.size() > static_cast<size_t>(kMaxDims)) {
    throw std::invalid_argument("Shape: at most " + std::to_string(kMaxDims) + " dims, got " +
                                std::to_string(dims.size()));
  }
  for (int64_t d : dims) {
    if (d < 0) throw std::invalid_argument("Shape: negative dimension " + std::to_string(d));
  }
  ndim_ = static_cast<int>(dims.size());
  std::copy(dims.begin(), dims.end(), dims_.begin());
}

int Shape::normalize(int i) const {
  int j = i < 0 ? i + ndim_ : i;
  if (j < 0 || j >= ndim_) {
    throw std::invalid_argument("Shape: dim " + std::to_string(i) + " out of range for " + str());
  }
  return j;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < ndim_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool Shape::operator==(const Shape& o) const {
  if (ndim_ != o.ndim_) return false;
  for (int i = 0; i < ndim_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

namespace {

// Tensor storage comes from a cache of freed blocks, by size class, so the buffers a training
// step allocates and frees are reused instead of going back to the kernel each time (glibc
// maps and unmaps large blocks, and the page faults cost more than the arithmetic at small
// batch sizes). Size classes are 64-byte multiples up to 4 KiB, then eight per power of two
// (at most 12.5% slack). At most kMaxCachedBytes stay cached; the rest are freed.
class StoragePool {
 public:
  static constexpr size_t kAlign = 64;
  static constexpr size_t kMaxCachedBytes = size_t(1) << 30;

  static size_t size_class(size_t bytes) {
    bytes = std::max(bytes, kAlign);
    if (bytes <= 4096) return (bytes + kAlign - 1) / kAlign * kAlign;
    const int top = 63 - __builtin_clzll(bytes);  // 2^top <= bytes < 2^(top+1)
    const size_t step = size_t(1) << (top - 3);   // eight classes per octave
    return (bytes + step - 1) / step * step;
  }

  void* get(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, bytes);
    if (!p) throw std::bad_alloc();  // (Python: MemoryError; the CLI names it)
    return p;
  }

  void put(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + bytes <= kMaxCachedBytes) {
        free_[bytes].push_back(p);
        cached_ += bytes;
        return;
      }
    }
    std::free(p);
  }

  size_t trim() {
    std::unordered_map<size_t, std::vector<void*>> blocks;
    size_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      bytes = cached_, cached_ = 0;
    }
    for (auto& [size, list] : blocks)
      for (void* p : list) std::free(p);
    return bytes;
  }

 private:
  std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

StoragePool& pool() {
  static StoragePool* p = new StoragePool;  // never destroyed: tensors may be freed during exit
  return *p;
}

std::shared_ptr<float> allocate(int64_t n, bool zero) {
  const size_t bytes = StoragePool::size_class(static_cast<size_t>(n) * sizeof(float));
  void* p = pool().get(bytes);
  if (zero) std::memset(p, 0, bytes);
  return std::shared_ptr<float>(static_cast<float*>(p), [bytes](float* q) { pool().put(q, bytes); });
}

}  // namespace

size_t trim_storage_cache() { return pool().trim(); }

Tensor::Tensor(const Shape& shape) : Tensor(shape, /*zero=*/true) {}
Tensor::Tensor(const Shape& shape, bool zero) : storage_(allocate(shape.numel(), zero)), shape_(shape) {}
Tensor Tensor::empty(const Shape& shape) { return Tensor(shape, /*zero=*/false); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t(shape);
  t.fill(value);
  return t;
}

Tensor Tensor::from(const Shape& shape, const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != shape.numel()) {
    throw std::invalid_argument("Tensor::from: shape " + shape.str() + " needs " + std::to_string(shape.numel()) +
                                " values, got " + std::to_string(values.size()));
  }
  Tensor t = empty(shape);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

float Tensor::item() const {
  if (numel() != 1) throw std::invalid_argument("Tensor::item: tensor of shape " + shape_.str() + " is not one value");
  return data()[0];
}

Tensor Tensor::view(const Shape& shape) const {
  if (shape.numel() != numel()) {
    throw std::invalid_argument("Tensor::view: cannot view " + shape_.str() + " as " + shape.str());
  }
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::narrow(int64_t start, int64_t length) const {
  if (ndim() == 0 || start < 0 || length < 0 || start + length > size(0)) {
    throw std::invalid_argument("Tensor::narrow: rows [" + std::to_string(start) + ", " +
                                std::to_string(start + length) + ") out of range for " + shape_.str());
  }
  std::vector<int64_t> dims = shape_.vec();
  int64_t row = numel() / std::max<int64_t>(size(0), 1);
  dims[0] = length;
  Tensor t = *this;
  t.offset_ += start * row;
  t.shape_ = Shape(dims);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(shape_);
  if (numel()) std::memcpy(t.data(), data(), sizeof(float) * numel());
  return t;
}

void Tensor::fill(float value) { std::fill(data(), data() + numel(), value); }

void Tensor::copy_from(const Tensor& other) {
  if (other.numel() != numel()) {
    throw std::invalid_argument("Tensor::copy_from: " + other.shape().str() + " into " + shape_.str());
  }
  if (numel()) std::memcpy(data(), other.data(), sizeof(float) * numel());
}

void check_same_shape(const Shape& expected, const Shape& got, const char* what) {
  if (expected != got) {
    throw std::invalid_argument(std::string(what) + ": expected shape " + expected.str() + ", got " + got.str());
  }
}

}  // namespace attend
