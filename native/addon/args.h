// Argument conversion of one compute call: entry(params: Float64Array, async: boolean, ...buffers),
// the call convention of native/addon/layout.json.
//
// The binding trusts nothing the caller says. It reads its arguments with N-API calls that run no
// JavaScript (napi_get_typedarray_info, napi_get_value_*: never a getter, a Proxy trap or valueOf)
// and copies the params. Only then, for async calls, it runs the loader's pin helper on every buffer
// (which marks it untransferable and refuses resizable ArrayBuffers). Raw pointers and lengths are
// taken after that, from a fresh read of every buffer, so no user code runs between taking a pointer
// and handing it to a kernel. Every accepted buffer is registered with its role; an output may not
// overlap any other buffer (one declared exact alias, the gradient written over the student, aside).
#pragma once

#include <napi.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace kdaddon {

// Error codes shared with the TypeScript wrapper's typed errors.
constexpr const char* kInput = "ERR_KD_INPUT";
constexpr const char* kShape = "ERR_KD_SHAPE";
constexpr const char* kConfig = "ERR_KD_CONFIG";

// Throws a JS Error carrying `code` (turned into a JS exception by the entry point).
[[noreturn]] void Fail(napi_env env, const char* code, const std::string& msg);

// A vector that keeps up to N elements inline: calls with few buffers allocate nothing. Its inline
// elements are left uninitialised until written (T is trivial).
template <typename T, size_t N>
class SmallVec {
  static_assert(std::is_trivially_default_constructible<T>::value, "SmallVec leaves its elements uninitialised");

 public:
  // Keeps the first min(n, size()) elements.
  void resize(size_t n) {
    if (n > N) {
      if (n_ <= N) heap_.assign(inline_.begin(), inline_.begin() + n_);
      heap_.resize(n);
    } else if (n_ > N) {
      std::copy(heap_.begin(), heap_.begin() + n, inline_.begin());
    }
    n_ = n;
  }
  size_t size() const { return n_; }
  T* data() { return n_ > N ? heap_.data() : inline_.data(); }
  const T* data() const { return n_ > N ? heap_.data() : inline_.data(); }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }

 private:
  std::array<T, N> inline_;
  std::vector<T> heap_;
  size_t n_ = 0;
};

// An argument's name for messages: `base`, or `base[item]`; turned into a string only on failure.
struct Name {
  static constexpr size_t kNoItem = ~size_t{0};
  const char* base;
  size_t item;
  Name() = default;
  Name(const char* b, size_t i = kNoItem) : base(b), item(i) {}  // NOLINT: names convert from strings
  std::string str() const;
};

// One buffer argument as last read.
struct Buf {
  napi_value value;  // the argument; nullptr where it is null or undefined
  napi_typedarray_type type;
  size_t length;  // elements
  void* data;
  bool typed;  // value is a typed array (else whatever it is, it is refused where used)
};

// What a registered buffer is to the call: read only, or written.
enum class Role { kInput, kOutput };

class CallArgs {
 public:
  // Reads params (argv[0]), the async flag (argv[1]) and the buffer arguments (at least
  // `min_buffers`; missing ones read as absent). Runs no JavaScript. `argv` must outlive this object.
  CallArgs(napi_env env, const napi_value* argv, size_t argc, const char* op, size_t min_buffers);

  napi_env env() const { return env_; }
  const char* op() const { return op_; }
  bool async() const { return async_; }

  // The params as copied at the call.
  size_t params_length() const { return params_.size(); }
  double param(size_t slot) const { return params_[slot]; }
  // Fails unless params has exactly `length` slots.
  void ExpectParams(size_t length) const;
  size_t buffer_count() const { return bufs_.size(); }

  // Async calls: runs `pin` (the loader's helper) on every buffer's ArrayBuffer; a false return (a
  // resizable ArrayBuffer) is an InputError naming the buffer (`name_of(index)`).
  void Pin(napi_value pin, Name (*name_of)(size_t index));
  // Async calls: re-reads params and every buffer after the pins (pointers and lengths come from this
  // read only). Then starts the overlap check's registry.
  void Resolve();

  // Buffer `index` after Resolve(), checked for type and exact length and registered for the overlap
  // check; nullptr when `optional` and absent.
  void* Typed(size_t index, Name name, napi_typedarray_type type, const char* type_name, size_t length,
              Role role, bool optional);
  bool Present(size_t index) const { return bufs_[index].value != nullptr; }
  const Buf& buffer(size_t index) const { return bufs_[index]; }

  // Declares that output buffer `output` may be exactly buffer `input` (same address and bytes): the
  // kernels write each element after their last read of it.
  void AllowAlias(size_t output, size_t input);
  // Fails if an output (the params array, which receives the results, is one) overlaps another
  // registered buffer, except the declared exact alias.
  void CheckOverlaps() const;

  // Async calls: references that keep every buffer and the params array alive until the call settles.
  std::vector<Napi::Reference<Napi::Value>> TakeRefs() const;
  // The params data as of the last Resolve().
  double* params_data() const { return params_data_; }

 private:
  struct Region {
    uintptr_t begin, end;
    Role role;
    size_t index;  // buffer index, or kParamsIndex
    Name name;
  };
  static constexpr size_t kParamsIndex = ~size_t{0};

  void ReadBuffer(size_t index);
  void ReadParams(bool copy);
  bool IsAlias(const Region& out, const Region& in) const;
  [[noreturn]] void FailOverlap(const Region& out, const Region& with) const;
  napi_value ArrayBufferOf(size_t index) const;

  napi_env env_;
  const char* op_;
  const napi_value* argv_;
  size_t argc_;
  bool async_ = false;
  double* params_data_ = nullptr;
  SmallVec<double, 24> params_;
  SmallVec<Buf, 10> bufs_;
  SmallVec<Region, 12> regions_;
  size_t n_regions_ = 0;
  struct Alias {
    size_t out, in;  // buffer indices
  };
  SmallVec<Alias, 2> aliases_;
};

// The failures of the checks below, out of line (the checks themselves are on every call's path).
[[noreturn]] void FailDim(napi_env env, double d, Name name);
[[noreturn]] void FailChoice(napi_env env, double d, int count, const char* code, const char* name);
[[noreturn]] void FailFinite(napi_env env, double d, double lo, bool lo_open, const char* name);
[[noreturn]] void FailThreads(napi_env env, double d);

// A positive integer dimension (at most 2^53 - 1) read from a param.
inline size_t Dim(napi_env env, double d, Name name) {
  if (!(d >= 1 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d))) FailDim(env, d, name);
  return static_cast<size_t>(d);
}
// rows * cols, failing with a ShapeError when the product or its bytes overflow.
size_t Elements(napi_env env, size_t rows, size_t cols, size_t elem_bytes);
// A param naming a choice: an integer in [0, count).
inline int Choice(napi_env env, double d, int count, const char* code, const char* name) {
  if (!(d >= 0 && d < count) || d != static_cast<double>(static_cast<int>(d))) FailChoice(env, d, count, code, name);
  return static_cast<int>(d);
}
// A finite param >= lo (> lo when lo_open); a ConfigError otherwise.
inline double Finite(napi_env env, double d, double lo, bool lo_open, const char* name) {
  if (!(d >= lo && d <= 1.7976931348623157e308) || (lo_open && d == lo)) FailFinite(env, d, lo, lo_open, name);
  return d;
}
// The threads param: an integer in [1, 1024].
inline size_t Threads(napi_env env, double d) {
  if (!(d >= 1 && d <= 1024) || d != static_cast<double>(static_cast<int>(d))) FailThreads(env, d);
  return static_cast<size_t>(d);
}
// A number as JavaScript prints it.
std::string NumStr(double d);

}  // namespace kdaddon
