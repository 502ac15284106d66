#include "args.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace kdaddon {

void Fail(napi_env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  throw e;
}

std::string Name::str() const {
  return item == kNoItem ? std::string(base) : std::string(base) + "[" + std::to_string(item) + "]";
}

namespace {

// A number as JavaScript prints it, for messages.
std::string Num(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  if (d == std::floor(d) && std::fabs(d) < 1e21) {
    std::snprintf(buf, sizeof buf, "%.0f", d);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", d);
  }
  return buf;
}

size_t ElementBytes(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

const char* TypeName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
  }
  return "typed array";
}

bool IsNullish(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  return v == nullptr || (napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined));
}

bool Detached(napi_env env, napi_value arraybuffer) {
  bool detached = false;
  return arraybuffer != nullptr && napi_is_detached_arraybuffer(env, arraybuffer, &detached) == napi_ok && detached;
}

// Rethrows the JS exception pending after a failed napi call into JS code.
[[noreturn]] void Rethrow(napi_env env) { throw Napi::Error(env, Napi::Error::New(env).Value()); }

}  // namespace

CallArgs::CallArgs(napi_env env, const napi_value* argv, size_t argc, const char* op, size_t min_buffers)
    : env_(env), op_(op), argv_(argv), argc_(argc) {
  if (argc < 2) Fail(env, kInput, std::string(op) + ": expected (params, async, ...buffers)");
  if (napi_get_value_bool(env, argv[1], &async_) != napi_ok) {
    Fail(env, kInput, std::string(op) + ": expected a boolean async flag");
  }
  ReadParams(true);
  bufs_.resize(std::max(argc - 2, min_buffers));
  for (size_t i = 0; i < bufs_.size(); ++i) ReadBuffer(i);
}

void CallArgs::ReadParams(bool copy) {
  napi_typedarray_type type = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env_, argv_[0], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array) {
    Fail(env_, kInput, "params: expected a Float64Array");
  }
  if (length == 0) {
    napi_value arraybuffer = nullptr;
    if (napi_get_typedarray_info(env_, argv_[0], &type, &length, nullptr, &arraybuffer, nullptr) == napi_ok &&
        Detached(env_, arraybuffer)) {
      Fail(env_, kInput, "params: its ArrayBuffer is detached");
    }
  }
  if (copy) {
    params_.resize(length);
    if (length > 0) std::memcpy(params_.data(), data, length * sizeof(double));
  } else if (length != params_.size()) {
    Fail(env_, kInput, "params: its length changed during the call");
  }
  params_data_ = static_cast<double*>(data);
}

void CallArgs::ReadBuffer(size_t index) {
  Buf& b = bufs_[index];
  b = Buf{nullptr, napi_int8_array, 0, nullptr, false};
  const napi_value v = 2 + index < argc_ ? argv_[2 + index] : nullptr;
  if (v == nullptr) return;
  // One call for the common case (a typed array); the ArrayBuffer is asked for only where it is used
  // (an async call's pin, a detached view's message): for a small array it is made on demand.
  if (napi_get_typedarray_info(env_, v, &b.type, &b.length, &b.data, nullptr, nullptr) == napi_ok) {
    b.value = v;
    b.typed = true;
  } else if (!IsNullish(env_, v)) {
    b.value = v;
  }
}

napi_value CallArgs::ArrayBufferOf(size_t index) const {
  napi_value ab = nullptr;
  napi_typedarray_type type;
  size_t length = 0;
  if (napi_get_typedarray_info(env_, bufs_[index].value, &type, &length, nullptr, &ab, nullptr) != napi_ok) return nullptr;
  return ab;
}

void CallArgs::ExpectParams(size_t length) const {
  if (params_.size() != length) {
    Fail(env_, kShape, std::string(op_) + ": params: expected length " + std::to_string(length) + ", got " +
                           std::to_string(params_.size()));
  }
}

void CallArgs::Pin(napi_value pin, Name (*name_of)(size_t index)) {
  napi_value undefined = nullptr;
  napi_get_undefined(env_, &undefined);
  for (size_t i = 0; i < bufs_.size(); ++i) {
    if (!bufs_[i].typed) continue;
    napi_value ok = nullptr;
    bool pinned = false;
    napi_value arg = ArrayBufferOf(i);
    if (napi_call_function(env_, undefined, pin, 1, &arg, &ok) != napi_ok) Rethrow(env_);
    if (napi_get_value_bool(env_, ok, &pinned) != napi_ok || !pinned) {
      Fail(env_, kInput,
           name_of(i).str() +
               ": an async call cannot use a resizable ArrayBuffer (resize() could free memory the call reads); "
               "use a fixed-length ArrayBuffer, a SharedArrayBuffer or the synchronous method");
    }
  }
}

void CallArgs::Resolve() {
  // After a pin (JavaScript) everything is read again; a sync call has run no JavaScript since the
  // first read.
  if (async_) {
    ReadParams(false);
    for (size_t i = 0; i < bufs_.size(); ++i) ReadBuffer(i);
  }
  n_regions_ = 0;
  regions_.resize(bufs_.size() + 1);
  Region& r = regions_[n_regions_++];
  r.begin = reinterpret_cast<uintptr_t>(params_data_);
  r.end = r.begin + params_.size() * sizeof(double);
  r.role = Role::kOutput;
  r.index = kParamsIndex;
  r.name = Name{"params"};
}

void* CallArgs::Typed(size_t index, Name name, napi_typedarray_type type, const char* type_name, size_t length,
                      Role role, bool optional) {
  if (index >= bufs_.size() || bufs_[index].value == nullptr) {
    if (optional) return nullptr;
    Fail(env_, kInput, name.str() + ": expected " + type_name);
  }
  const Buf& b = bufs_[index];
  if (!b.typed) Fail(env_, kInput, name.str() + ": expected " + type_name);
  if (b.type != type) Fail(env_, kInput, name.str() + ": expected " + type_name + ", got " + TypeName(b.type));
  if (b.length == 0 && Detached(env_, ArrayBufferOf(index))) Fail(env_, kInput, name.str() + ": its ArrayBuffer is detached");
  if (b.length != length) {
    Fail(env_, kShape,
         name.str() + ": expected length " + std::to_string(length) + ", got " + std::to_string(b.length));
  }
  Region& r = regions_[n_regions_++];
  r.begin = reinterpret_cast<uintptr_t>(b.data);
  r.end = r.begin + length * ElementBytes(type);
  r.role = role;
  r.index = index;
  r.name = name;
  return b.data;
}

void CallArgs::AllowAlias(size_t output, size_t input) {
  const size_t n = aliases_.size();
  aliases_.resize(n + 1);
  aliases_[n] = Alias{output, input};
}

bool CallArgs::IsAlias(const Region& out, const Region& in) const {
  if (out.begin != in.begin || out.end != in.end) return false;
  for (size_t k = 0; k < aliases_.size(); ++k) {
    if (aliases_[k].out == out.index && aliases_[k].in == in.index) return true;
  }
  return false;
}

void CallArgs::FailOverlap(const Region& out, const Region& with) const {
  Fail(env_, kInput,
       out.name.str() + ": overlaps the memory of " + with.name.str() +
           ": an output may not share memory with another argument (the gradient may only be the "
           "student's own buffer exactly, written in place)");
}

void CallArgs::CheckOverlaps() const {
  const size_t n = n_regions_;
  if (n <= 32) {
    // Every output against every other region. An output declared as an exact alias of an input is
    // allowed to meet it; anything else meeting that input meets the output too, and is caught there.
    for (size_t i = 0; i < n; ++i) {
      const Region& out = regions_[i];
      if (out.role != Role::kOutput) continue;
      for (size_t j = 0; j < n; ++j) {
        const Region& r = regions_[j];
        if (j == i || r.begin >= out.end || out.begin >= r.end || IsAlias(out, r)) continue;
        if (r.role == Role::kOutput && j < i) continue;  // reported from its own turn
        FailOverlap(out, r);
      }
    }
    return;
  }
  // Many regions (a feature loss with many layers): a sweep in address order. An exact alias pair
  // becomes its input region, as an output (the input is written). A region overlaps an earlier one
  // iff it starts before the furthest end seen.
  SmallVec<Region, 12> rs;
  rs.resize(n);
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    bool aliased_out = false, aliased_in = false;
    for (size_t j = 0; j < n; ++j) {
      if (IsAlias(regions_[i], regions_[j])) aliased_out = true;
      if (IsAlias(regions_[j], regions_[i])) aliased_in = true;
    }
    if (aliased_out) continue;
    rs[m] = regions_[i];
    if (aliased_in) rs[m].role = Role::kOutput;
    ++m;
  }
  std::sort(rs.data(), rs.data() + m, [](const Region& a, const Region& b) { return a.begin < b.begin; });
  size_t last_any = SIZE_MAX, last_out = SIZE_MAX;  // the earlier regions reaching furthest
  for (size_t i = 0; i < m; ++i) {
    const Region& r = rs[i];
    if (r.role == Role::kOutput && last_any != SIZE_MAX && r.begin < rs[last_any].end) FailOverlap(r, rs[last_any]);
    if (last_out != SIZE_MAX && r.begin < rs[last_out].end) FailOverlap(rs[last_out], r);
    if (last_any == SIZE_MAX || r.end > rs[last_any].end) last_any = i;
    if (r.role == Role::kOutput && (last_out == SIZE_MAX || r.end > rs[last_out].end)) last_out = i;
  }
}

std::vector<Napi::Reference<Napi::Value>> CallArgs::TakeRefs() const {
  std::vector<Napi::Reference<Napi::Value>> refs;
  refs.reserve(bufs_.size() + 1);
  refs.push_back(Napi::Persistent(Napi::Value(env_, argv_[0])));
  for (size_t i = 0; i < bufs_.size(); ++i) {
    if (bufs_[i].typed) refs.push_back(Napi::Persistent(Napi::Value(env_, bufs_[i].value)));
  }
  return refs;
}

void FailDim(napi_env env, double d, Name name) {
  Fail(env, kShape, name.str() + ": expected a positive integer, got " + Num(d));
}

size_t Elements(napi_env env, size_t rows, size_t cols, size_t elem_bytes) {
  const size_t limit = static_cast<size_t>(PTRDIFF_MAX) / elem_bytes;
  if (rows > limit / cols) {
    Fail(env, kShape, "shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] is too large");
  }
  return rows * cols;
}

void FailChoice(napi_env env, double d, int count, const char* code, const char* name) {
  Fail(env, code, std::string(name) + ": expected an integer in [0, " + std::to_string(count - 1) + "], got " + Num(d));
}

void FailFinite(napi_env env, double d, double lo, bool lo_open, const char* name) {
  Fail(env, kConfig, std::string(name) + ": expected a finite number " + (lo_open ? "> " : ">= ") + Num(lo) + ", got " + Num(d));
}

void FailThreads(napi_env env, double d) {
  Fail(env, kConfig, "threads: expected an integer in [1, 1024], got " + Num(d));
}

std::string NumStr(double d) { return Num(d); }

}  // namespace kdaddon
