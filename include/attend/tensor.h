// attend: float32 tensors.
//
// Shape notation used throughout attend (STYLE.md): B batch, S source length, T target length,
// H heads / hidden size, D head or model dim, E embedding dim, V vocabulary, A attention dim.
//
// A Tensor is a contiguous row-major float32 array of up to four dimensions. Storage is
// 64-byte aligned and shared: copies of a Tensor, view() and narrow() alias the same memory,
// clone() makes a deep copy. Shape errors throw std::invalid_argument with the shapes.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace attend {

class Shape {
 public:
  static constexpr int kMaxDims = 4;

  Shape() = default;  // a scalar: ndim 0, numel 1
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);

  int ndim() const { return ndim_; }
  // Negative indices count from the end, as in NumPy.
  int64_t operator[](int i) const { return dims_[normalize(i)]; }
  int64_t numel() const;
  std::vector<int64_t> vec() const { return {dims_.begin(), dims_.begin() + ndim_}; }
  std::string str() const;  // "[2, 3, 4]"
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  int normalize(int i) const;  // throws for out-of-range dims

 private:
  std::array<int64_t, kMaxDims> dims_{};
  int ndim_ = 0;
};

class Tensor {
 public:
  Tensor() = default;                   // undefined (no storage)
  explicit Tensor(const Shape& shape);  // zero-filled
  static Tensor zeros(const Shape& shape) { return Tensor(shape); }
  // Uninitialised storage, for outputs that a kernel writes in full before anyone reads them.
  static Tensor empty(const Shape& shape);
  static Tensor full(const Shape& shape, float value);
  static Tensor from(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float value) { return full(Shape{}, value); }

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.ndim(); }
  int64_t size(int d) const { return shape_[d]; }
  int64_t numel() const { return shape_.numel(); }

  float* data() { return storage_.get() + offset_; }
  const float* data() const { return storage_.get() + offset_; }
  float item() const;  // the single value of a one-element tensor

  // Same storage, new shape with the same number of elements.
  Tensor view(const Shape& shape) const;
  // Rows [start, start + length) of dimension 0, sharing storage.
  Tensor narrow(int64_t start, int64_t length) const;
  Tensor clone() const;
  void fill(float value);
  void zero() { fill(0.0f); }
  void copy_from(const Tensor& other);  // same numel; copies values
  std::vector<float> to_vector() const { return {data(), data() + numel()}; }

 private:
  Tensor(const Shape& shape, bool zero);
  std::shared_ptr<float> storage_;
  int64_t offset_ = 0;
  Shape shape_;
};

// Throws std::invalid_argument("<what>: expected <a>, got <b>") when shapes differ.
void check_same_shape(const Shape& expected, const Shape& got, const char* what);

// Freed tensors' memory is kept for reuse (up to 1 GiB, by size class). This gives it back:
// after loading a model, whose file's copies and released fp32 weights will not be needed again.
// Returns the bytes freed.
size_t trim_storage_cache();

}  // namespace attend
