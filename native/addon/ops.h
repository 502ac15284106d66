// The compute entries: each reads its params (the layout of native/addon/layout.h), checks and
// converts its buffers into a kernel problem, and runs it through RunSync / RunAsync.
#pragma once

#include <napi.h>

#include <memory>
#include <utility>

#include "../kernels/kernels.h"
#include "args.h"
#include "layout.h"
#include "work.h"

namespace kdaddon {

// What every entry needs besides its arguments.
struct Context {
  const kd::KernelTable* table;
  std::shared_ptr<InFlight> in_flight;
};

napi_value Kd(CallArgs& a, const Context& c);
napi_value Feature(CallArgs& a, const Context& c);
napi_value Attention(CallArgs& a, const Context& c);
napi_value SparseKd(CallArgs& a, const Context& c);

// Names of each entry's buffers (by position), for messages.
Name KdBufferName(size_t index);
Name FeatureBufferName(size_t index);
Name AttentionBufferName(size_t index);
Name SparseKdBufferName(size_t index);

// The typed array type of a float element type.
template <typename T>
struct FloatArray;
template <>
struct FloatArray<float> {
  static constexpr napi_typedarray_type kType = napi_float32_array;
  static constexpr const char* kName = "Float32Array";
};
template <>
struct FloatArray<double> {
  static constexpr napi_typedarray_type kType = napi_float64_array;
  static constexpr const char* kName = "Float64Array";
};

template <typename T>
const kd::KernelSet<T>& SetOf(const kd::KernelTable& t);
template <>
inline const kd::KernelSet<float>& SetOf<float>(const kd::KernelTable& t) {
  return t.f32;
}
template <>
inline const kd::KernelSet<double>& SetOf<double>(const kd::KernelTable& t) {
  return t.f64;
}

// Float buffer `index` of element type T.
template <typename T>
T* Floats(CallArgs& a, size_t index, Name name, size_t length, Role role, bool optional) {
  return static_cast<T*>(a.Typed(index, name, FloatArray<T>::kType, FloatArray<T>::kName, length, role, optional));
}

// Runs a prepared Work now or on the pool.
template <class W>
napi_value Dispatch(CallArgs& a, const Context& c, W&& work, size_t threads) {
  if (a.async()) return RunAsync(a, std::make_unique<std::decay_t<W>>(std::forward<W>(work)), threads, c.in_flight);
  return RunSync(a, work, threads);
}

}  // namespace kdaddon
