// The N-API binding: converts JS values to kernel problems, checks every type and length itself (it
// trusts nothing the caller says), and runs the engine, on the calling thread or on the libuv pool.
// Errors are JS Errors carrying the same `code` as the TypeScript wrapper's typed errors
// (ERR_KD_INPUT, ERR_KD_SHAPE, ERR_KD_CONFIG).
//
// Raw API (the wrapper in lib/backend/native.ts is its only intended caller). Every compute function
// takes a thread count (>= 1) and, last, `async` (boolean). Sync calls return as noted; async calls
// return { promise, cancel }: the promise settles when the work is done (outputs written), cancel()
// stops it between row blocks (the promise then rejects with "aborted"). Every buffer an async call
// reads or writes stays referenced until it settles.
//   kd(student, teacher, targets, mask, rowSoft, rowHard, grad, argmax, io, async)
//     io = Float64Array(15): read [0] rows, [1] cols, [2] targetKind, [3] threads, [4] temperature,
//     [5] hardKind, [6] epsilon, [7] labelSmoothing, [8] ignoreIndex, [9] gradSoftScale,
//     [10] gradHardScale, [11] present: bit k set when optional argument k (mask, rowSoft, rowHard,
//     grad, argmax) is passed (the others are not looked at); written [12] soft, [13] hard, [14] kept.
//     argmax = Int32Array(2 * rows) <- student row argmax, then teacher row argmax.
//     The numbers travel in one typed array because each N-API value costs a call of its own, and a
//     small distillation call is latency-bound.
//   feature(rows, p, students[], teachers[], cols: Float64Array, rowWeights: Float64Array,
//           rowOut, grads[] | null, gradScales: Float64Array | null, layerSums: Float64Array,
//           threads, async)
//   attention(student, teacher, rows, cols, beta, rowOut, grad, gradScale, threads, async)
//     -> sum of squared differences (async: the promise's value)
//   info() -> { isa, compiled: string[], capabilities: { avx2, avx512, neon } }
//   vecmath(op, input, output) -> op 'exp' | 'log' element-wise into output (same dtype and length),
//     'sum' -> the sum of input (output ignored); for tests and the benchmark's roofline
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../engine/engine.h"
#include "../kernels/dispatch.h"

namespace {

constexpr const char* kInput = "ERR_KD_INPUT";
constexpr const char* kShape = "ERR_KD_SHAPE";
constexpr const char* kConfig = "ERR_KD_CONFIG";
// The one failure a kernel run can have: a thread's gradient scratch (three rows) not allocatable.
constexpr const char* kOutOfMemory = "rows too wide for this machine: the gradient scratch of a row could not be allocated";

// Names of the compute calls, for messages (template arguments of KdAddon::Entry).
constexpr char kKdName[] = "kd";
constexpr char kFeatureName[] = "feature";
constexpr char kAttentionName[] = "attention";

[[noreturn]] void Fail(Napi::Env env, const char* code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Value().Set("code", Napi::String::New(env, code));
  throw e;
}

enum class DType { kF32, kF64 };

const char* DTypeName(DType d) { return d == DType::kF32 ? "Float32Array" : "Float64Array"; }

template <typename T>
constexpr DType DTypeOf() {
  return sizeof(T) == 4 ? DType::kF32 : DType::kF64;
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

struct FloatArg {
  DType dtype;
  void* data;
  size_t length;
};

// One typed array argument, read with a single napi_get_typedarray_info call.
struct TypedArg {
  napi_typedarray_type type;
  size_t length;
  void* data;
};

// True for null or undefined, with one napi_typeof (Napi::Value's IsNull() || IsUndefined() makes two).
bool IsNullish(napi_env env, napi_value v) {
  napi_valuetype t = napi_undefined;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}

// Argument conversion for one call. When `pins` is set (async calls), every typed array accepted is referenced there so it outlives the call.
// Each value costs one N-API call where possible (napi_get_typedarray_info, napi_get_value_double
// report a wrong type themselves); names are only turned into strings on failure.
class Args {
 public:
  Args(napi_env env, std::vector<Napi::ObjectReference>* pins) : env_(env), pins_(pins) {}

  TypedArg Typed(napi_value v, const char* name) const {
    TypedArg t{};
    napi_value buffer = nullptr;
    if (napi_get_typedarray_info(env_, v, &t.type, &t.length, &t.data, &buffer, nullptr) != napi_ok) {
      Fail(env_, kInput, std::string(name) + ": expected a typed array");
    }
    // Only an empty view can sit on a detached buffer.
    bool detached = false;
    if (t.length == 0 && napi_is_detached_arraybuffer(env_, buffer, &detached) == napi_ok && detached) {
      Fail(env_, kInput, std::string(name) + ": its ArrayBuffer is detached");
    }
    if (pins_ != nullptr) pins_->push_back(Napi::Persistent(Napi::Object(env_, v)));
    return t;
  }

  // A typed array of one element type and exact length.
  void* TypedOfType(napi_value v, const char* name, napi_typedarray_type type, const char* type_name,
                    size_t length) const {
    const TypedArg t = Typed(v, name);
    if (t.type != type) Fail(env_, kInput, std::string(name) + ": expected " + type_name);
    CheckLength(name, t.length, length);
    return t.data;
  }


  FloatArg Floats(napi_value v, const char* name) const { return FloatsFrom(Typed(v, name), name); }

  FloatArg FloatsFrom(const TypedArg& t, const char* name) const {
    if (t.type == napi_float32_array) return {DType::kF32, t.data, t.length};
    if (t.type == napi_float64_array) return {DType::kF64, t.data, t.length};
    Fail(env_, kInput, std::string(name) + ": expected a Float32Array or Float64Array");
  }

  // A float array of the given dtype and exact length, or (if optional and null/undefined) nullptr.
  void* FloatsOf(napi_value v, const char* name, DType dtype, size_t length, bool optional) const {
    if (optional && IsNullish(env_, v)) return nullptr;
    return Checked(Floats(v, name), name, dtype, length);
  }

  // The data of `a` after checking its dtype and exact length.
  void* Checked(const FloatArg& a, const char* name, DType dtype, size_t length) const {
    if (a.dtype != dtype) {
      Fail(env_, kInput,
           std::string(name) + ": expected " + DTypeName(dtype) + " like the other inputs, got " + DTypeName(a.dtype));
    }
    CheckLength(name, a.length, length);
    return a.data;
  }

  template <typename T>
  T* TypedOf(napi_value v, const char* name, size_t length, bool optional) const {
    return static_cast<T*>(FloatsOf(v, name, DTypeOf<T>(), length, optional));
  }

  double* F64(napi_value v, const char* name, size_t length, bool optional) const {
    return TypedOf<double>(v, name, length, optional);
  }

  void CheckLength(const char* name, size_t actual, size_t expected) const {
    if (actual != expected) {
      Fail(env_, kShape,
           std::string(name) + ": expected length " + std::to_string(expected) + ", got " + std::to_string(actual));
    }
  }

  double Number(napi_value v, const char* name) const {
    double d = 0;
    if (napi_get_value_double(env_, v, &d) != napi_ok) Fail(env_, kInput, std::string(name) + ": expected a number");
    return d;
  }

  bool Bool(napi_value v, const char* name) const {
    bool b = false;
    if (napi_get_value_bool(env_, v, &b) != napi_ok) Fail(env_, kInput, std::string(name) + ": expected a boolean");
    return b;
  }

  // A positive integer dimension.
  size_t Dim(napi_value v, const char* name) const { return Dim(Number(v, name), name); }
  size_t Dim(double d, const char* name) const {
    if (!(d >= 1) || d != std::floor(d) || d > 9007199254740991.0) {
      Fail(env_, kShape, std::string(name) + ": expected a positive integer, got " + Napi::Value(Napi::Number::New(env_, d)).ToString().Utf8Value());
    }
    return static_cast<size_t>(d);
  }

  size_t Elements(size_t rows, size_t cols) const {
    if (cols != 0 && rows > std::numeric_limits<size_t>::max() / cols) Fail(env_, kShape, "shape too large");
    return rows * cols;
  }

 private:
  napi_env env_;
  std::vector<Napi::ObjectReference>* pins_;
};

// Cancellation flags of the work in flight, shared by the addon instance and its workers; an
// environment cleanup hook (worker_threads terminating, process exit) cancels them all.
class InFlight {
 public:
  void Add(const std::shared_ptr<std::atomic<bool>>& flag) {
    std::lock_guard<std::mutex> lock(mu_);
    flags_.insert(flag);
  }
  void Remove(const std::shared_ptr<std::atomic<bool>>& flag) {
    std::lock_guard<std::mutex> lock(mu_);
    flags_.erase(flag);
  }
  void CancelAll() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& f : flags_) f->store(true, std::memory_order_relaxed);
  }

 private:
  std::mutex mu_;
  std::unordered_set<std::shared_ptr<std::atomic<bool>>> flags_;
};

// What a call computes: returns false when cancelled; `value` receives the scalar result if any.
using Work = std::function<bool(const kd::RunControl& rc, double* value)>;

// Runs a Work on the libuv thread pool and settles a promise; holds the call's buffers until then.
// The promise is settled with raw N-API calls whose status is checked, not with node-addon-api's
// throwing wrappers: when a worker_thread is terminated with this work in flight, the completion runs
// during environment teardown where JS can no longer run, and the calls then fail harmlessly.
class LossWorker : public Napi::AsyncWorker {
 public:
  LossWorker(Napi::Env env, Work work, std::vector<Napi::ObjectReference> pins, size_t threads,
             std::shared_ptr<InFlight> in_flight)
      : Napi::AsyncWorker(env, "kdloss"),
        work_(std::move(work)),
        pins_(std::move(pins)),
        threads_(threads),
        cancel_(std::make_shared<std::atomic<bool>>(false)),
        in_flight_(std::move(in_flight)) {
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_promise(env, &deferred_, &promise_));
    in_flight_->Add(cancel_);
  }

  ~LossWorker() override { in_flight_->Remove(cancel_); }

  // { promise, cancel } for JS; call once, right after construction (same handle scope).
  Napi::Object Handle() {
    Napi::Env env = Env();
    Napi::Object h = Napi::Object::New(env);
    h.Set("promise", Napi::Value(env, promise_));
    std::shared_ptr<std::atomic<bool>> flag = cancel_;
    h.Set("cancel", Napi::Function::New(env, [flag](const Napi::CallbackInfo& info) {
            flag->store(true, std::memory_order_relaxed);
            return info.Env().Undefined();
          }));
    return h;
  }

 protected:
  void Execute() override {
    kd::RunControl rc;
    rc.threads = threads_;
    rc.cancel = cancel_.get();
    // With several threads the libuv thread only waits and the engine's helpers compute: measured here
    // on KD 4096x1000 with 2 threads, 1.65x to 1.72x one thread, against 1.43x to 1.53x with the libuv
    // thread computing next to one helper.
    rc.caller_computes = false;
    try {
      completed_ = work_(rc, &value_);
    } catch (const std::bad_alloc&) {
      out_of_memory_ = true;
    }
  }

  void OnWorkComplete(Napi::Env env, napi_status status) override {
    if (status != napi_cancelled) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) == napi_ok) {
        napi_value v = nullptr;
        if (out_of_memory_) {
          Reject(env, kShape, kOutOfMemory);
        } else if (completed_) {
          if (napi_create_double(env, value_, &v) == napi_ok) napi_resolve_deferred(env, deferred_, v);
        } else {
          Reject(env, nullptr, "aborted");
        }
        napi_close_handle_scope(env, scope);
      }
    }
    Destroy();
  }

 private:
  // Rejects the promise with an Error of this message and code (none when null).
  void Reject(napi_env env, const char* code, const char* message) {
    napi_value c = nullptr, msg = nullptr, err = nullptr;
    if ((code == nullptr || napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c) == napi_ok) &&
        napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, c, msg, &err) == napi_ok) {
      napi_reject_deferred(env, deferred_, err);
    }
  }

  napi_deferred deferred_ = nullptr;
  napi_value promise_ = nullptr;
  Work work_;
  std::vector<Napi::ObjectReference> pins_;
  size_t threads_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::shared_ptr<InFlight> in_flight_;
  double value_ = 0.0;
  bool completed_ = false;
  bool out_of_memory_ = false;
};

}  // namespace

class KdAddon : public Napi::Addon<KdAddon> {
 public:
  KdAddon(Napi::Env env, Napi::Object exports) : in_flight_(std::make_shared<InFlight>()) {
    std::string why;
    table_ = kd::active_table(&why);
    if (table_ == nullptr) Fail(env, kConfig, why);
    // Cancels this environment's work in flight when it is torn down; the hook owns its reference.
    auto* hook_ref = new std::shared_ptr<InFlight>(in_flight_);
    napi_add_env_cleanup_hook(
        env,
        [](void* arg) {
          auto* ref = static_cast<std::shared_ptr<InFlight>*>(arg);
          (*ref)->CancelAll();
          delete ref;
        },
        hook_ref);
    DefineAddon(exports, {
                             InstanceMethod("info", &KdAddon::Info),
                             InstanceMethod("vecmath", &KdAddon::VecMath),
                         });
    // The compute calls are raw callbacks (see Entry), with this instance as their data.
    const napi_property_descriptor compute[] = {
        {"kd", nullptr, &KdAddon::Entry<10, kKdName, &KdAddon::Kd>, nullptr, nullptr, nullptr, napi_default, this},
        {"feature", nullptr, &KdAddon::Entry<12, kFeatureName, &KdAddon::Feature>, nullptr, nullptr, nullptr, napi_default, this},
        {"attention", nullptr, &KdAddon::Entry<10, kAttentionName, &KdAddon::Attention>, nullptr, nullptr, nullptr, napi_default,
         this},
    };
    NAPI_THROW_IF_FAILED_VOID(env, napi_define_properties(env, exports, 3, compute));
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
    const Args a(env, nullptr);
    const std::string op = info[0].As<Napi::String>().Utf8Value();
    const FloatArg in = a.Floats(info[1], "input");
    const bool f32 = in.dtype == DType::kF32;
    if (op == "sum") {
      return Napi::Number::New(env, f32 ? table_->f32.sum(static_cast<const float*>(in.data), in.length)
                                        : table_->f64.sum(static_cast<const double*>(in.data), in.length));
    }
    if (op != "exp" && op != "log") Fail(env, kInput, "op: expected 'exp', 'log' or 'sum'");
    void* out = a.FloatsOf(info[2], "output", in.dtype, in.length, false);
    const bool is_exp = op == "exp";
    if (f32) {
      (is_exp ? table_->f32.exp : table_->f32.log)(static_cast<const float*>(in.data), static_cast<float*>(out),
                                                   in.length);
    } else {
      (is_exp ? table_->f64.exp : table_->f64.log)(static_cast<const double*>(in.data), static_cast<double*>(out),
                                                   in.length);
    }
    return env.Undefined();
  }

  // Shared tail of every compute call: checks `threads`, then runs `work` now (returning its value if
  // `returns_value`; nullptr is undefined) or, when `pins` is set, hands it to a LossWorker. A template
  // so the sync path calls the lambda directly, without a heap-allocated std::function.
  template <typename F>
  napi_value Dispatch(napi_env env, double threads, std::vector<Napi::ObjectReference>* pins, F&& work,
                      bool returns_value) {
    if (!(threads >= 1 && threads <= 1024) || threads != std::floor(threads)) {
      Fail(env, kConfig, "threads: expected an integer in [1, 1024]");
    }
    if (pins != nullptr) {
      auto* worker = new LossWorker(Napi::Env(env), Work(std::forward<F>(work)), std::move(*pins),
                                    static_cast<size_t>(threads), in_flight_);
      Napi::Object handle = worker->Handle();
      worker->Queue();
      return handle;
    }
    kd::RunControl rc;
    rc.threads = static_cast<size_t>(threads);
    double value = 0.0;
    try {
      work(rc, &value);
    } catch (const std::bad_alloc&) {
      Fail(env, kShape, kOutOfMemory);
    }
    return returns_value ? napi_value(Napi::Number::New(env, value)) : nullptr;
  }

  using Pins = std::vector<Napi::ObjectReference>;
  // A compute call after Entry: its arguments, their converter, and the pins of an async call (else
  // nullptr).
  using Method = napi_value (KdAddon::*)(napi_env, const napi_value*, const Args&, Pins*);

  // The entry of a compute call with `Arity` arguments, as a raw napi_callback (this instance is its
  // data): node-addon-api's CallbackInfo calls napi_get_cb_info twice and copies more than 6 arguments
  // into a heap array; this reads them onto the stack with one call. Checks the arity, reads the
  // `async` flag (the last argument), runs `M`, and turns the Napi::Error thrown by Fail into a JS
  // exception, as node-addon-api's wrappers do.
  template <size_t Arity, const char* Name, Method M>
  static napi_value Entry(napi_env env, napi_callback_info cbinfo) {
    napi_value argv[Arity];
    size_t argc = Arity;
    void* self = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv, nullptr, &self) != napi_ok) return nullptr;
    try {
      if (argc != Arity) Fail(env, kInput, std::string(Name) + ": expected " + std::to_string(Arity) + " arguments");
      bool async = false;
      if (napi_get_value_bool(env, argv[Arity - 1], &async) != napi_ok) {
        Fail(env, kInput, std::string(Name) + ": expected a boolean async flag");
      }
      Pins pins;
      Pins* pinned = async ? &pins : nullptr;
      return (static_cast<KdAddon*>(self)->*M)(env, argv, Args(env, pinned), pinned);
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();
      return nullptr;
    }
  }

  // Layout of kd's io buffer (see the top of this file).
  enum KdIo : size_t { kRows, kCols, kTargetKind, kThreads, kTemperature, kHardKind, kEpsilon, kLabelSmoothing,
                       kIgnoreIndex, kGradSoftScale, kGradHardScale, kPresent, kSoft, kHard, kKept, kKdIoLength };
  // Bits of io[kPresent].
  enum KdOptional : int { kHasMask = 1, kHasRowSoft = 2, kHasRowHard = 4, kHasGrad = 8, kHasArgmax = 16 };

  napi_value Kd(napi_env env, const napi_value* argv, const Args& a, Pins* pins) {
    const FloatArg student = a.Floats(argv[0], "student");
    double* io = a.F64(argv[8], "io", kKdIoLength, false);
    return student.dtype == DType::kF32 ? KdTyped<float>(env, argv, a, student, io, pins)
                                        : KdTyped<double>(env, argv, a, student, io, pins);
  }

  template <typename T>
  napi_value KdTyped(napi_env env, const napi_value* argv, const Args& a, const FloatArg& student, double* io,
                     Pins* pins) {
    kd::KdProblem<T> p;
    p.rows = a.Dim(io[kRows], "rows");
    p.cols = a.Dim(io[kCols], "cols");
    const size_t n = a.Elements(p.rows, p.cols);
    p.student = static_cast<const T*>(a.Checked(student, "student", DTypeOf<T>(), n));
    p.teacher = a.TypedOf<T>(argv[1], "teacher", n, false);

    const double* params = io + kTemperature;
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

    const double kind = io[kTargetKind];
    if (!(kind == 0 || kind == 1 || kind == 2 || kind == 3)) Fail(env, kInput, "targetKind: expected 0..3");
    p.target_kind = static_cast<kd::TargetKind>(static_cast<int32_t>(kind));
    if (p.target_kind == kd::TargetKind::kMatrix) {
      p.target_matrix = a.TypedOf<T>(argv[2], "targets", n, false);
    } else if (p.target_kind != kd::TargetKind::kNone) {
      const bool is_i32 = p.target_kind == kd::TargetKind::kInt32;
      const TypedArg ta = a.Typed(argv[2], "targets");
      if (ta.type != (is_i32 ? napi_int32_array : napi_uint32_array)) {
        Fail(env, kInput, std::string("targets: expected ") + (is_i32 ? "an Int32Array" : "a Uint32Array"));
      }
      if (ta.length != p.rows) {
        Fail(env, kShape, "targets: expected " + std::to_string(p.rows) + " class indices, got " +
                              std::to_string(ta.length));
      }
      p.target_index = ta.data;
      CheckClasses(env, p);
    } else if (p.hard != kd::HardKind::kNone) {
      Fail(env, kInput, "targets: a built-in hard loss needs targets");
    }

    const double present = io[kPresent];
    if (!(present >= 0 && present <= 31) || present != std::floor(present)) {
      Fail(env, kInput, "io[11]: expected the optional-argument bits 0..31");
    }
    const int has = static_cast<int>(present);
    if (has & kHasMask) {
      p.mask = static_cast<const uint8_t*>(a.TypedOfType(argv[3], "mask", napi_uint8_array, "a Uint8Array", p.rows));
    }
    if (has & kHasRowSoft) p.row_soft = a.F64(argv[4], "rowSoft", p.rows, false);
    if (has & kHasRowHard) p.row_hard = a.F64(argv[5], "rowHard", p.rows, false);
    if (has & kHasGrad) p.grad = a.TypedOf<T>(argv[6], "grad", n, false);
    if (has & kHasArgmax) {
      p.argmax = static_cast<int32_t*>(a.TypedOfType(argv[7], "argmax", napi_int32_array, "an Int32Array", 2 * p.rows));
    }

    const kd::KernelSet<T>& set = SetOf<T>(*table_);
    auto work = [&set, p, io](const kd::RunControl& rc, double*) {
      kd::KdPartial r;
      if (!kd::run_kd<T>(set, p, rc, &r)) return false;
      io[kSoft] = r.soft;
      io[kHard] = r.hard;
      io[kKept] = r.kept;
      return true;
    };
    return Dispatch(env, io[kThreads], pins, work, false);
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

  napi_value Feature(napi_env env, const napi_value* argv, const Args& a, Pins* pins) {
    const Napi::Value students(env, argv[2]);
    if (!students.IsArray() || students.As<Napi::Array>().Length() == 0) {
      Fail(env, kInput, "studentFeatures: expected a non-empty array");
    }
    const FloatArg first = a.Floats(students.As<Napi::Array>().Get(0u), "studentFeatures[0]");
    return first.dtype == DType::kF32 ? FeatureTyped<float>(env, argv, a, pins) : FeatureTyped<double>(env, argv, a, pins);
  }

  template <typename T>
  napi_value FeatureTyped(napi_env env, const napi_value* argv, const Args& a, Pins* pins) {
    const size_t rows = a.Dim(argv[0], "rows");
    const double pv = a.Number(argv[1], "pNorm");
    if (pv != 1 && pv != 2) Fail(env, kConfig, "pNorm: expected 1 or 2");
    const Napi::Array students(env, argv[2]);
    const Napi::Value teachers_arg(env, argv[3]);
    if (!teachers_arg.IsArray()) Fail(env, kInput, "teacherFeatures: expected an array");
    const Napi::Array teachers = teachers_arg.As<Napi::Array>();
    const size_t layers = students.Length();
    if (teachers.Length() != layers) {
      Fail(env, kShape, "teacherFeatures: expected " + std::to_string(layers) + " layers, got " +
                            std::to_string(teachers.Length()));
    }
    const double* cols = a.F64(argv[4], "cols", layers, false);
    const double* weights = a.F64(argv[5], "rowWeights", layers, false);
    double* row_out = a.F64(argv[6], "rowOut", rows, true);
    const Napi::Value grads(env, argv[7]);
    const bool has_grads = !IsNullish(env, grads);
    if (has_grads && (!grads.IsArray() || grads.As<Napi::Array>().Length() != layers)) {
      Fail(env, kInput, "grads: expected an array with one buffer per layer");
    }
    const double* scales = has_grads ? a.F64(argv[8], "gradScales", layers, false) : nullptr;
    double* sums = a.F64(argv[9], "layerSums", layers, false);

    std::vector<kd::FeatureLayer<T>> ls(layers);
    for (size_t l = 0; l < layers; ++l) {
      const std::string idx = "[" + std::to_string(l) + "]";
      const uint32_t li = static_cast<uint32_t>(l);
      const double c = cols[l];
      if (!(c >= 1) || c != std::floor(c) || c > 9007199254740991.0) {
        Fail(env, kShape, "cols" + idx + ": expected a positive integer");
      }
      kd::FeatureLayer<T>& L = ls[l];
      L.cols = static_cast<size_t>(c);
      const size_t n = a.Elements(rows, L.cols);
      L.student = a.TypedOf<T>(students.Get(li), ("studentFeatures" + idx).c_str(), n, false);
      L.teacher = a.TypedOf<T>(teachers.Get(li), ("teacherFeatures" + idx).c_str(), n, false);
      L.p = static_cast<int>(pv);
      L.row_out = row_out;
      L.row_weight = weights[l];
      if (has_grads) {
        L.grad = a.TypedOf<T>(grads.As<Napi::Array>().Get(li), ("grads" + idx).c_str(), n, false);
        L.grad_scale = scales[l];
      }
    }
    const kd::KernelSet<T>& set = SetOf<T>(*table_);
    auto work = [&set, ls = std::move(ls), rows, sums](const kd::RunControl& rc, double*) {
      return kd::run_feature<T>(set, ls.data(), ls.size(), rows, rc, sums);
    };
    return Dispatch(env, a.Number(argv[10], "threads"), pins, std::move(work), false);
  }

  napi_value Attention(napi_env env, const napi_value* argv, const Args& a, Pins* pins) {
    const FloatArg student = a.Floats(argv[0], "student");
    return student.dtype == DType::kF32 ? AttentionTyped<float>(env, argv, a, student, pins)
                                        : AttentionTyped<double>(env, argv, a, student, pins);
  }

  template <typename T>
  napi_value AttentionTyped(napi_env env, const napi_value* argv, const Args& a, const FloatArg& student, Pins* pins) {
    kd::AttentionProblem<T> p;
    p.rows = a.Dim(argv[2], "rows");
    p.cols = a.Dim(argv[3], "cols");
    const size_t n = a.Elements(p.rows, p.cols);
    p.student = static_cast<const T*>(a.Checked(student, "student", DTypeOf<T>(), n));
    p.teacher = a.TypedOf<T>(argv[1], "teacher", n, false);
    p.beta = a.Number(argv[4], "beta");
    if (!(std::isfinite(p.beta) && p.beta > 0)) Fail(env, kConfig, "beta: expected a finite number > 0");
    p.row_out = a.F64(argv[5], "rowOut", p.rows, true);
    p.grad = a.TypedOf<T>(argv[6], "grad", n, true);
    p.grad_scale = a.Number(argv[7], "gradScale");
    const kd::KernelSet<T>& set = SetOf<T>(*table_);
    auto work = [&set, p](const kd::RunControl& rc, double* value) { return kd::run_attention<T>(set, p, rc, value); };
    return Dispatch(env, a.Number(argv[8], "threads"), pins, work, true);
  }

  const kd::KernelTable* table_ = nullptr;
  std::shared_ptr<InFlight> in_flight_;
};

NODE_API_ADDON(KdAddon)
