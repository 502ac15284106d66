// The N-API binding: converts JS values to kernel problems, checks every type and length itself (it
// trusts nothing the caller says), and runs the engine. Errors are JS Errors carrying the same `code`
// as the TypeScript wrapper's typed errors (ERR_KD_INPUT, ERR_KD_SHAPE, ERR_KD_CONFIG).
//
// Raw API (the wrapper in lib/backend/native.ts is its only intended caller):
//   kd(student, teacher, rows, cols, targets, targetKind, mask, params, rowSoft, rowHard, grad, out)
//     params = Float64Array [temperature, hardKind, epsilon, labelSmoothing, ignoreIndex,
//                            gradSoftScale, gradHardScale]; out = Float64Array(3) <- [soft, hard, kept]
//   feature(rows, p, students[], teachers[], cols: Float64Array, rowWeights: Float64Array,
//           rowOut, grads[] | null, gradScales: Float64Array | null, layerSums: Float64Array)
//   attention(student, teacher, rows, cols, beta, rowOut, grad, gradScale) -> sum of squared diffs
//   info() -> { isa, compiled: string[], capabilities: { avx2, avx512, neon } }
//   vecmath(op, input, output) -> op 'exp' | 'log' element-wise into output (same dtype and length),
//     'sum' -> the sum of input (output ignored); for tests and the benchmark's roofline
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../engine/engine.h"
#include "../kernels/dispatch.h"

namespace {

[[noreturn]] void Fail(Napi::Env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  throw e;
}

constexpr const char* kInput = "ERR_KD_INPUT";
constexpr const char* kShape = "ERR_KD_SHAPE";
constexpr const char* kConfig = "ERR_KD_CONFIG";

enum class DType { kF32, kF64 };

const char* DTypeName(DType d) { return d == DType::kF32 ? "Float32Array" : "Float64Array"; }

struct FloatArg {
  DType dtype;
  void* data;
  size_t length;
};

Napi::TypedArray TypedArg(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray()) Fail(env, kInput, std::string(name) + ": expected a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.ArrayBuffer().IsDetached()) Fail(env, kInput, std::string(name) + ": its ArrayBuffer is detached");
  return ta;
}

FloatArg FloatArray(Napi::Env env, const Napi::Value& v, const char* name) {
  Napi::TypedArray ta = TypedArg(env, v, name);
  if (ta.TypedArrayType() == napi_float32_array) {
    Napi::Float32Array a = ta.As<Napi::Float32Array>();
    return {DType::kF32, a.Data(), a.ElementLength()};
  }
  if (ta.TypedArrayType() == napi_float64_array) {
    Napi::Float64Array a = ta.As<Napi::Float64Array>();
    return {DType::kF64, a.Data(), a.ElementLength()};
  }
  Fail(env, kInput, std::string(name) + ": expected a Float32Array or Float64Array");
}

bool IsNullish(const Napi::Value& v) { return v.IsNull() || v.IsUndefined(); }

// A float array of the given dtype and exact length, or (if optional and null/undefined) nullptr.
void* FloatArrayOf(Napi::Env env, const Napi::Value& v, const char* name, DType dtype, size_t length,
                   bool optional) {
  if (optional && IsNullish(v)) return nullptr;
  const FloatArg a = FloatArray(env, v, name);
  if (a.dtype != dtype) {
    Fail(env, kInput, std::string(name) + ": expected " + DTypeName(dtype) + " like the other inputs, got " +
                          DTypeName(a.dtype));
  }
  if (a.length != length) {
    Fail(env, kShape, std::string(name) + ": expected length " + std::to_string(length) + ", got " +
                          std::to_string(a.length));
  }
  return a.data;
}

double* F64Out(Napi::Env env, const Napi::Value& v, const char* name, size_t length, bool optional) {
  return static_cast<double*>(FloatArrayOf(env, v, name, DType::kF64, length, optional));
}

// A non-negative integer that fits in size_t and whose products with other dimensions are checked by
// the caller.
size_t Dim(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) Fail(env, kInput, std::string(name) + ": expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0) {
    Fail(env, kShape, std::string(name) + ": expected a positive integer, got " + v.ToString().Utf8Value());
  }
  return static_cast<size_t>(d);
}

size_t Elements(Napi::Env env, size_t rows, size_t cols) {
  if (cols != 0 && rows > std::numeric_limits<size_t>::max() / cols) Fail(env, kShape, "shape too large");
  return rows * cols;
}

double Number(Napi::Env env, const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) Fail(env, kInput, std::string(name) + ": expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

template <typename T>
const kd::KernelSet<T>& SetOf(const kd::KernelTable& t);
template <>
const kd::KernelSet<float>& SetOf<float>(const kd::KernelTable& t) {
  return t.f32;
}
template <>
const kd::KernelSet<double>& SetOf<double>(const kd::KernelTable& t) {
  return t.f64;
}

}  // namespace

class KdAddon : public Napi::Addon<KdAddon> {
 public:
  KdAddon(Napi::Env env, Napi::Object exports) {
    std::string why;
    table_ = kd::active_table(&why);
    if (table_ == nullptr) Fail(env, kConfig, why);
    DefineAddon(exports, {
                             InstanceMethod("kd", &KdAddon::Kd),
                             InstanceMethod("feature", &KdAddon::Feature),
                             InstanceMethod("attention", &KdAddon::Attention),
                             InstanceMethod("info", &KdAddon::Info),
                             InstanceMethod("vecmath", &KdAddon::VecMath),
                         });
  }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", table_->name);
    const std::vector<std::string> names = kd::compiled_isas();
    Napi::Array compiled = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); ++i) compiled.Set(static_cast<uint32_t>(i), names[i]);
    o.Set("compiled", compiled);
    const kd::Capabilities& c = kd::capabilities();
    Napi::Object caps = Napi::Object::New(env);
    caps.Set("avx2", c.avx2);
    caps.Set("avx512", c.avx512);
    caps.Set("neon", c.neon);
    o.Set("capabilities", caps);
    return o;
  }

  Napi::Value VecMath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString()) Fail(env, kInput, "vecmath: expected (op, input, output)");
    const std::string op = info[0].As<Napi::String>().Utf8Value();
    const FloatArg in = FloatArray(env, info[1], "input");
    if (op == "sum") {
      const double s = in.dtype == DType::kF32 ? table_->f32.sum(static_cast<const float*>(in.data), in.length)
                                               : table_->f64.sum(static_cast<const double*>(in.data), in.length);
      return Napi::Number::New(env, s);
    }
    if (op != "exp" && op != "log") Fail(env, kInput, "op: expected 'exp', 'log' or 'sum'");
    void* out = FloatArrayOf(env, info[2], "output", in.dtype, in.length, false);
    const bool is_exp = op == "exp";
    if (in.dtype == DType::kF32) {
      (is_exp ? table_->f32.exp : table_->f32.log)(static_cast<const float*>(in.data), static_cast<float*>(out),
                                                   in.length);
    } else {
      (is_exp ? table_->f64.exp : table_->f64.log)(static_cast<const double*>(in.data), static_cast<double*>(out),
                                                   in.length);
    }
    return env.Undefined();
  }

  Napi::Value Kd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 12) Fail(env, kInput, "kd: expected 12 arguments");
    const FloatArg student = FloatArray(env, info[0], "student");
    if (student.dtype == DType::kF32) return KdTyped<float>(info);
    return KdTyped<double>(info);
  }

  template <typename T>
  Napi::Value KdTyped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const DType dt = sizeof(T) == 4 ? DType::kF32 : DType::kF64;
    kd::KdProblem<T> p;
    p.rows = Dim(env, info[2], "rows");
    p.cols = Dim(env, info[3], "cols");
    const size_t n = Elements(env, p.rows, p.cols);
    p.student = static_cast<const T*>(FloatArrayOf(env, info[0], "student", dt, n, false));
    p.teacher = static_cast<const T*>(FloatArrayOf(env, info[1], "teacher", dt, n, false));

    const double* params = F64Out(env, info[7], "params", 7, false);
    p.temperature = params[0];
    if (!(std::isfinite(p.temperature) && p.temperature > 0)) {
      Fail(env, kConfig, "temperature: expected a finite number > 0, got " + std::to_string(p.temperature));
    }
    const double hard = params[1];
    if (!(hard == 0 || hard == 1 || hard == 2 || hard == 3)) Fail(env, kConfig, "hardKind: expected 0..3");
    p.hard = static_cast<kd::HardKind>(static_cast<int32_t>(hard));
    p.epsilon = params[2];
    if (!(p.epsilon >= 0 && p.epsilon < 0.5)) Fail(env, kConfig, "epsilon: expected a number in [0, 0.5)");
    p.label_smoothing = params[3];
    if (!(p.label_smoothing >= 0 && p.label_smoothing <= 1)) {
      Fail(env, kConfig, "labelSmoothing: expected a number in [0, 1]");
    }
    const double ignore = params[4];
    if (ignore != std::floor(ignore) || !(std::fabs(ignore) < 9007199254740992.0)) {
      Fail(env, kConfig, "ignoreIndex: expected an integer");
    }
    p.ignore_index = static_cast<int64_t>(ignore);
    p.grad_soft_scale = params[5];
    p.grad_hard_scale = params[6];

    const Napi::Value kind_v = info[5];
    const double kind = Number(env, kind_v, "targetKind");
    if (!(kind == 0 || kind == 1 || kind == 2 || kind == 3)) Fail(env, kInput, "targetKind: expected 0..3");
    p.target_kind = static_cast<kd::TargetKind>(static_cast<int32_t>(kind));
    if (p.target_kind == kd::TargetKind::kMatrix) {
      p.target_matrix = static_cast<const T*>(FloatArrayOf(env, info[4], "targets", dt, n, false));
    } else if (p.target_kind != kd::TargetKind::kNone) {
      Napi::TypedArray ta = TypedArg(env, info[4], "targets");
      const bool is_i32 = p.target_kind == kd::TargetKind::kInt32;
      if (ta.TypedArrayType() != (is_i32 ? napi_int32_array : napi_uint32_array)) {
        Fail(env, kInput, std::string("targets: expected ") + (is_i32 ? "an Int32Array" : "a Uint32Array"));
      }
      if (ta.ElementLength() != p.rows) {
        Fail(env, kShape, "targets: expected " + std::to_string(p.rows) + " class indices, got " +
                              std::to_string(ta.ElementLength()));
      }
      p.target_index = is_i32 ? static_cast<const void*>(ta.As<Napi::Int32Array>().Data())
                              : static_cast<const void*>(ta.As<Napi::Uint32Array>().Data());
      CheckClasses(env, p);
    } else if (p.hard != kd::HardKind::kNone) {
      Fail(env, kInput, "targets: a built-in hard loss needs targets");
    }

    if (!IsNullish(info[6])) {
      Napi::TypedArray m = TypedArg(env, info[6], "mask");
      if (m.TypedArrayType() != napi_uint8_array) Fail(env, kInput, "mask: expected a Uint8Array");
      if (m.ElementLength() != p.rows) {
        Fail(env, kShape, "mask: expected length " + std::to_string(p.rows) + ", got " +
                              std::to_string(m.ElementLength()));
      }
      p.mask = m.As<Napi::Uint8Array>().Data();
    }
    p.row_soft = F64Out(env, info[8], "rowSoft", p.rows, true);
    p.row_hard = F64Out(env, info[9], "rowHard", p.rows, true);
    p.grad = static_cast<T*>(FloatArrayOf(env, info[10], "grad", dt, n, true));
    double* out = F64Out(env, info[11], "out", 3, false);

    const kd::KdPartial r = kd::run_kd<T>(SetOf<T>(*table_), p);
    out[0] = r.soft;
    out[1] = r.hard;
    out[2] = r.kept;
    return env.Undefined();
  }

  template <typename T>
  static void CheckClasses(Napi::Env env, const kd::KdProblem<T>& p) {
    for (size_t r = 0; r < p.rows; ++r) {
      // Two statements: a conditional expression would convert both sides to uint32_t.
      int64_t c = static_cast<const uint32_t*>(p.target_index)[r];
      if (p.target_kind == kd::TargetKind::kInt32) c = static_cast<const int32_t*>(p.target_index)[r];
      if (c == p.ignore_index) continue;
      if (c < 0 || static_cast<uint64_t>(c) >= p.cols) {
        Fail(env, kInput, "targets[" + std::to_string(r) + "]: class index " + std::to_string(c) +
                              " out of range [0, " + std::to_string(p.cols) + ")");
      }
    }
  }

  Napi::Value Feature(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 10) Fail(env, kInput, "feature: expected 10 arguments");
    if (!info[2].IsArray() || info[2].As<Napi::Array>().Length() == 0) {
      Fail(env, kInput, "studentFeatures: expected a non-empty array");
    }
    const FloatArg first = FloatArray(env, info[2].As<Napi::Array>().Get(0u), "studentFeatures[0]");
    if (first.dtype == DType::kF32) return FeatureTyped<float>(info);
    return FeatureTyped<double>(info);
  }

  template <typename T>
  Napi::Value FeatureTyped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const DType dt = sizeof(T) == 4 ? DType::kF32 : DType::kF64;
    const size_t rows = Dim(env, info[0], "rows");
    const double pv = Number(env, info[1], "pNorm");
    if (pv != 1 && pv != 2) Fail(env, kConfig, "pNorm: expected 1 or 2");
    if (!info[3].IsArray()) Fail(env, kInput, "teacherFeatures: expected an array");
    Napi::Array students = info[2].As<Napi::Array>();
    Napi::Array teachers = info[3].As<Napi::Array>();
    const size_t layers = students.Length();
    if (teachers.Length() != layers) {
      Fail(env, kShape, "teacherFeatures: expected " + std::to_string(layers) + " layers, got " +
                            std::to_string(teachers.Length()));
    }
    const double* cols = F64Out(env, info[4], "cols", layers, false);
    const double* weights = F64Out(env, info[5], "rowWeights", layers, false);
    double* row_out = F64Out(env, info[6], "rowOut", rows, true);
    const bool has_grads = !IsNullish(info[7]);
    if (has_grads && (!info[7].IsArray() || info[7].As<Napi::Array>().Length() != layers)) {
      Fail(env, kInput, "grads: expected an array with one buffer per layer");
    }
    const double* scales = has_grads ? F64Out(env, info[8], "gradScales", layers, false) : nullptr;
    double* sums = F64Out(env, info[9], "layerSums", layers, false);

    std::vector<kd::FeatureLayer<T>> ls(layers);
    for (size_t l = 0; l < layers; ++l) {
      const std::string idx = "[" + std::to_string(l) + "]";
      const double c = cols[l];
      if (!(c >= 1) || c != std::floor(c) || c > 9007199254740991.0) {
        Fail(env, kShape, "cols" + idx + ": expected a positive integer");
      }
      kd::FeatureLayer<T>& L = ls[l];
      L.cols = static_cast<size_t>(c);
      const size_t n = Elements(env, rows, L.cols);
      L.student = static_cast<const T*>(
          FloatArrayOf(env, students.Get(static_cast<uint32_t>(l)), ("studentFeatures" + idx).c_str(), dt, n, false));
      L.teacher = static_cast<const T*>(
          FloatArrayOf(env, teachers.Get(static_cast<uint32_t>(l)), ("teacherFeatures" + idx).c_str(), dt, n, false));
      L.p = static_cast<int>(pv);
      L.row_out = row_out;
      L.row_weight = weights[l];
      if (has_grads) {
        L.grad = static_cast<T*>(FloatArrayOf(env, info[7].As<Napi::Array>().Get(static_cast<uint32_t>(l)),
                                              ("grads" + idx).c_str(), dt, n, false));
        L.grad_scale = scales[l];
      }
    }
    kd::run_feature<T>(SetOf<T>(*table_), ls.data(), ls.size(), rows, sums);
    return env.Undefined();
  }

  Napi::Value Attention(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 8) Fail(env, kInput, "attention: expected 8 arguments");
    const FloatArg student = FloatArray(env, info[0], "student");
    if (student.dtype == DType::kF32) return AttentionTyped<float>(info);
    return AttentionTyped<double>(info);
  }

  template <typename T>
  Napi::Value AttentionTyped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const DType dt = sizeof(T) == 4 ? DType::kF32 : DType::kF64;
    kd::AttentionProblem<T> p;
    p.rows = Dim(env, info[2], "rows");
    p.cols = Dim(env, info[3], "cols");
    const size_t n = Elements(env, p.rows, p.cols);
    p.student = static_cast<const T*>(FloatArrayOf(env, info[0], "student", dt, n, false));
    p.teacher = static_cast<const T*>(FloatArrayOf(env, info[1], "teacher", dt, n, false));
    p.beta = Number(env, info[4], "beta");
    if (!(std::isfinite(p.beta) && p.beta > 0)) Fail(env, kConfig, "beta: expected a finite number > 0");
    p.row_out = F64Out(env, info[5], "rowOut", p.rows, true);
    p.grad = static_cast<T*>(FloatArrayOf(env, info[6], "grad", dt, n, true));
    p.grad_scale = Number(env, info[7], "gradScale");
    return Napi::Number::New(env, kd::run_attention<T>(SetOf<T>(*table_), p));
  }

  const kd::KernelTable* table_ = nullptr;
};

NODE_API_ADDON(KdAddon)
