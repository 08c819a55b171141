// A vector that keeps its first N elements inside itself, for the containers each call fills
// (the state kinds, the arguments, the live tasks): real calls fit, so they allocate nothing.
// Plain data only (trivially copyable elements).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <type_traits>

namespace mamba_state {

template <typename T, size_t N>
class InlineVector {
  static_assert(std::is_trivially_copyable_v<T>, "InlineVector holds plain data");
  static_assert(alignof(T) <= alignof(std::max_align_t), "new[] of bytes must align T");

 public:
  // Not "= default": that would zero the inline storage whenever the vector is value-initialized.
  InlineVector() {}
  InlineVector(const InlineVector& other) { append(other.data(), other.size_); }
  InlineVector& operator=(const InlineVector& other) {
    if (this != &other) {
      size_ = 0;
      append(other.data(), other.size_);
    }
    return *this;
  }

  T* data() { return reinterpret_cast<T*>(heap_ ? heap_.get() : inline_); }
  const T* data() const { return reinterpret_cast<const T*>(heap_ ? heap_.get() : inline_); }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + size_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + size_; }

  void push_back(const T& value) {
    reserve(size_ + 1);
    std::memcpy(static_cast<void*>(data() + size_), &value, sizeof(T));
    ++size_;
  }

  void reserve(size_t wanted) {
    if (wanted <= capacity_) return;
    const size_t capacity = std::max(wanted, 2 * capacity_);
    std::unique_ptr<unsigned char[]> grown(new unsigned char[capacity * sizeof(T)]);
    std::memcpy(grown.get(), data(), size_ * sizeof(T));
    heap_ = std::move(grown);
    capacity_ = capacity;
  }

 private:
  void append(const T* values, size_t count) {
    reserve(size_ + count);
    std::memcpy(static_cast<void*>(data() + size_), values, count * sizeof(T));
    size_ += count;
  }

  alignas(T) unsigned char inline_[N * sizeof(T)];
  std::unique_ptr<unsigned char[]> heap_;
  size_t size_ = 0;
  size_t capacity_ = N;
};

}  // namespace mamba_state
