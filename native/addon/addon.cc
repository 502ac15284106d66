// The N-API addon: one instance per JavaScript environment (main thread and each worker_thread).
// Its compute entries follow one call convention, entry(params, async, ...buffers), laid out in
// native/addon/layout.json; args.h converts and checks the arguments, ops_*.cc build the kernel
// problems, work.h runs them. Errors are JS Errors carrying the `code` of the TypeScript wrapper's
// typed errors (ERR_KD_INPUT, ERR_KD_SHAPE, ERR_KD_CONFIG). lib/backend/native.ts is the intended
// caller; nothing a caller passes can make the addon touch memory it was not handed.
//
//   kd, sparseKd, feature, attention   (params: Float64Array, async: boolean, ...buffers)
//       sync: writes the results into params, returns undefined. async: returns { promise, cancel };
//       the promise resolves once the results are in params; cancel() stops the work between row
//       blocks and the promise rejects with "aborted" once no thread of the call runs any more.
//       Async calls need setup() first.
//   setup({ pin })           once, by the loader: pin(arrayBuffer) -> boolean makes a buffer safe to
//       read from other threads until the call settles (false: it cannot be, the call is refused).
//   info()                   { isa, compiled: string[], capabilities: { avx2, avx512, neon } }
//   vecmath(op, input, output)  op 'exp' | 'log' element-wise into output (same dtype and length),
//       'sum' -> the sum of input (output ignored); for tests and the benchmark's roofline.
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "../kernels/dispatch.h"
#include "args.h"
#include "ops.h"
#include "work.h"

namespace kdaddon {
namespace {

constexpr char kKdName[] = "kd";
constexpr char kFeatureName[] = "feature";
constexpr char kAttentionName[] = "attention";
constexpr char kSparseKdName[] = "sparseKd";

class KdAddon : public Napi::Addon<KdAddon> {
 public:
  KdAddon(Napi::Env env, Napi::Object exports) {
    std::string why;
    context_.table = kd::active_table(&why);
    if (context_.table == nullptr) Fail(env, kConfig, why);
    context_.in_flight = std::make_shared<InFlight>();
    // Cancels this environment's work in flight when it is torn down; the hook owns its reference.
    auto* hook_ref = new std::shared_ptr<InFlight>(context_.in_flight);
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
                             InstanceMethod("setup", &KdAddon::Setup),
                         });
    // The compute entries are raw callbacks (see Entry), with this instance as their data.
    const napi_property_descriptor compute[] = {
        {"kd", nullptr, &Entry<kKdName, kd_layout::KdBuffer::kCount, &Kd, &KdBufferName>, nullptr, nullptr, nullptr,
         napi_default, this},
        {"feature", nullptr, &Entry<kFeatureName, kd_layout::FeatureBuffer::kCount, &Feature, &FeatureBufferName>,
         nullptr, nullptr, nullptr, napi_default, this},
        {"attention", nullptr,
         &Entry<kAttentionName, kd_layout::AttentionBuffer::kCount, &Attention, &AttentionBufferName>, nullptr,
         nullptr, nullptr, napi_default, this},
        {"sparseKd", nullptr,
         &Entry<kSparseKdName, kd_layout::SparseKdBuffer::kCount, &SparseKd, &SparseKdBufferName>, nullptr, nullptr,
         nullptr, napi_default, this},
    };
    NAPI_THROW_IF_FAILED_VOID(env, napi_define_properties(env, exports, sizeof(compute) / sizeof(compute[0]), compute));
  }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", context_.table->name);
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

  Napi::Value Setup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!pin_.IsEmpty()) Fail(env, kConfig, "setup: already done");
    if (info.Length() != 1 || !info[0].IsObject()) Fail(env, kInput, "setup: expected ({ pin })");
    const Napi::Value pin = info[0].As<Napi::Object>().Get("pin");
    if (!pin.IsFunction()) Fail(env, kInput, "setup: pin: expected a function");
    pin_ = Napi::Persistent(pin.As<Napi::Function>());
    return env.Undefined();
  }

  Napi::Value VecMath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() != 3 || !info[0].IsString()) Fail(env, kInput, "vecmath: expected (op, input, output)");
    const std::string op = info[0].As<Napi::String>().Utf8Value();
    // The same conversion as the compute entries, over (dtype-carrying) input and output.
    napi_value argv[4] = {nullptr, nullptr, info[1], info[2]};
    napi_value params = Napi::Float64Array::New(env, 0);
    argv[0] = params;
    argv[1] = Napi::Boolean::New(env, false);
    CallArgs a(env, argv, 4, "vecmath", 2);
    a.Resolve();
    const Buf& in = a.buffer(0);
    const bool f32 = in.typed && in.type == napi_float32_array;
    const size_t n = in.length;
    const void* x = f32 ? static_cast<const void*>(Floats<float>(a, 0, {"input"}, n, Role::kInput, false))
                        : static_cast<const void*>(Floats<double>(a, 0, {"input"}, n, Role::kInput, false));
    if (op == "sum") {
      return Napi::Number::New(env, f32 ? context_.table->f32.sum(static_cast<const float*>(x), n)
                                        : context_.table->f64.sum(static_cast<const double*>(x), n));
    }
    if (op != "exp" && op != "log") Fail(env, kInput, "op: expected 'exp', 'log' or 'sum'");
    // Element-wise: the output may be the input itself, not a shifted view of it.
    void* y = f32 ? static_cast<void*>(Floats<float>(a, 1, {"output"}, n, Role::kOutput, false))
                  : static_cast<void*>(Floats<double>(a, 1, {"output"}, n, Role::kOutput, false));
    a.AllowAlias(1, 0);
    a.CheckOverlaps();
    const bool is_exp = op == "exp";
    if (f32) {
      (is_exp ? context_.table->f32.exp : context_.table->f32.log)(static_cast<const float*>(x), static_cast<float*>(y), n);
    } else {
      (is_exp ? context_.table->f64.exp : context_.table->f64.log)(static_cast<const double*>(x), static_cast<double*>(y), n);
    }
    return env.Undefined();
  }

  // A compute entry as a raw napi_callback (this instance is its data): node-addon-api's CallbackInfo
  // calls napi_get_cb_info twice and copies more than 6 arguments into a heap array; this reads them
  // onto the stack with one call (two for calls with many buffers). Runs the conversion, the pin of
  // async calls, and `Op`; turns the Napi::Error thrown by Fail (or by a pin) into a JS exception.
  template <const char* Name, size_t MinBuffers, napi_value (*Op)(CallArgs&, const Context&),
            kdaddon::Name (*BufferName)(size_t)>
  static napi_value Entry(napi_env env, napi_callback_info cbinfo) {
    SmallVec<napi_value, 12> argv;
    argv.resize(12);
    size_t argc = 12;
    void* data = nullptr;
    if (napi_get_cb_info(env, cbinfo, &argc, argv.data(), nullptr, &data) != napi_ok) return nullptr;
    if (argc > 12) {
      argv.resize(argc);
      if (napi_get_cb_info(env, cbinfo, &argc, argv.data(), nullptr, nullptr) != napi_ok) return nullptr;
    }
    auto* self = static_cast<KdAddon*>(data);
    try {
      CallArgs a(env, argv.data(), argc, Name, MinBuffers);
      if (a.async()) {
        if (self->pin_.IsEmpty()) Fail(env, kConfig, std::string(Name) + ": async calls need setup() first");
        a.Pin(self->pin_.Value(), BufferName);
      }
      a.Resolve();
      return Op(a, self->context_);
    } catch (const Napi::Error& e) {
      // In an environment being torn down (a worker_thread terminating) nothing can be thrown into
      // JS any more, and nothing may leave this C callback: the exception is dropped.
      try {
        e.ThrowAsJavaScriptException();
      } catch (...) {
      }
      return nullptr;
    } catch (...) {
      napi_throw_error(env, nullptr, "kdloss: unexpected native exception");
      return nullptr;
    }
  }

  Context context_;
  Napi::FunctionReference pin_;
};

}  // namespace
}  // namespace kdaddon

using kdaddon::KdAddon;
NODE_API_ADDON(KdAddon)
