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
  napi_value arraybuffer = nullptr;
  if (napi_get_typedarray_info(env_, argv_[0], &type, &length, &data, &arraybuffer, nullptr) != napi_ok ||
      type != napi_float64_array) {
    Fail(env_, kInput, "params: expected a Float64Array");
  }
  if (length == 0 && Detached(env_, arraybuffer)) Fail(env_, kInput, "params: its ArrayBuffer is detached");
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
  b = Buf{};
  const napi_value v = 2 + index < argc_ ? argv_[2 + index] : nullptr;
  if (IsNullish(env_, v)) return;
  b.value = v;
  b.typed = napi_get_typedarray_info(env_, v, &b.type, &b.length, &b.data, &b.arraybuffer, nullptr) == napi_ok;
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
    const Buf& b = bufs_[i];
    if (!b.typed) continue;
    napi_value ok = nullptr;
    bool pinned = false;
    napi_value arg = b.arraybuffer;
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
  ReadParams(false);
  for (size_t i = 0; i < bufs_.size(); ++i) ReadBuffer(i);
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
  if (b.length == 0 && Detached(env_, b.arraybuffer)) Fail(env_, kInput, name.str() + ": its ArrayBuffer is detached");
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
  aliases_[n] = {output, input};
}

void CallArgs::CheckOverlaps() const {
  // The regions as they are to be checked: a declared alias whose two buffers are exactly the same
  // memory becomes one output region (its input is written, so nothing else may overlap it either).
  SmallVec<Region, 12> rs;
  rs.resize(n_regions_);
  size_t n = 0;
  for (size_t i = 0; i < n_regions_; ++i) {
    const Region& r = regions_[i];
    bool merged = false;
    for (size_t k = 0; k < aliases_.size(); ++k) {
      if (r.index != aliases_[k].first) continue;
      for (size_t j = 0; j < n_regions_; ++j) {
        const Region& in = regions_[j];
        if (in.index == aliases_[k].second && in.begin == r.begin && in.end == r.end) merged = true;
      }
    }
    if (merged) continue;  // its input stands for it, as an output
    rs[n] = r;
    for (size_t k = 0; k < aliases_.size(); ++k) {
      if (r.index != aliases_[k].second) continue;
      for (size_t j = 0; j < n_regions_; ++j) {
        const Region& out = regions_[j];
        if (out.index == aliases_[k].first && out.begin == r.begin && out.end == r.end) rs[n].role = Role::kOutput;
      }
    }
    ++n;
  }
  std::sort(rs.data(), rs.data() + n, [](const Region& a, const Region& b) { return a.begin < b.begin; });
  // Sweep in address order: a region overlaps an earlier one iff it starts before the largest end seen.
  size_t last_any = SIZE_MAX, last_out = SIZE_MAX;  // the earlier regions reaching furthest
  for (size_t i = 0; i < n; ++i) {
    const Region& r = rs[i];
    size_t other = SIZE_MAX;
    if (r.role == Role::kOutput && last_any != SIZE_MAX && r.begin < rs[last_any].end) other = last_any;
    if (other == SIZE_MAX && last_out != SIZE_MAX && r.begin < rs[last_out].end) other = last_out;
    if (other != SIZE_MAX) {
      const Region& o = rs[other];
      const Region& out = r.role == Role::kOutput ? r : o;
      const Region& with = r.role == Role::kOutput ? o : r;
      Fail(env_, kInput,
           out.name.str() + ": overlaps the memory of " + with.name.str() +
               ": an output may not share memory with another argument (the gradient may only be the "
               "student's own buffer exactly, written in place)");
    }
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

size_t Dim(napi_env env, double d, Name name) {
  if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0) {
    Fail(env, kShape, name.str() + ": expected a positive integer, got " + Num(d));
  }
  return static_cast<size_t>(d);
}

size_t Elements(napi_env env, size_t rows, size_t cols, size_t elem_bytes) {
  const size_t limit = static_cast<size_t>(PTRDIFF_MAX) / elem_bytes;
  if (rows > limit / cols) {
    Fail(env, kShape, "shape [" + std::to_string(rows) + ", " + std::to_string(cols) + "] is too large");
  }
  return rows * cols;
}

int Choice(napi_env env, double d, int count, const char* code, const char* name) {
  if (!(d >= 0 && d < count) || d != std::floor(d)) {
    Fail(env, code, std::string(name) + ": expected an integer in [0, " + std::to_string(count - 1) + "], got " + Num(d));
  }
  return static_cast<int>(d);
}

double Finite(napi_env env, double d, double lo, bool lo_open, const char* name) {
  if (!std::isfinite(d) || d < lo || (lo_open && d == lo)) {
    Fail(env, kConfig, std::string(name) + ": expected a finite number " + (lo_open ? "> " : ">= ") + Num(lo) + ", got " + Num(d));
  }
  return d;
}

size_t Threads(napi_env env, double d) {
  if (!(d >= 1 && d <= 1024) || d != std::floor(d)) {
    Fail(env, kConfig, "threads: expected an integer in [1, 1024], got " + Num(d));
  }
  return static_cast<size_t>(d);
}

std::string NumStr(double d) { return Num(d); }

}  // namespace kdaddon
