#include "work.h"

#include <new>
#include <string>
#include <utility>
#include <vector>

namespace kdaddon {

namespace {

// The one failure a kernel run can have: a thread's gradient scratch not allocatable.
constexpr const char* kOutOfMemory = "out of memory: the gradient scratch of a row could not be allocated";

// Runs a Work on the libuv thread pool and settles a promise. It holds references to the call's params
// and buffers until it is destroyed, which is after the pool thread has returned, so no kernel thread
// can touch a buffer the caller has been handed back. The promise is settled with raw N-API calls
// whose status is checked, not node-addon-api's throwing wrappers: when a worker_thread is terminated
// with this work in flight, the completion runs during environment teardown, where JS can no longer
// run and those calls fail harmlessly.
class PoolWorker : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, std::unique_ptr<Work> work, std::vector<Napi::Reference<Napi::Value>> refs,
             size_t params_length, size_t threads, std::shared_ptr<InFlight> in_flight)
      : Napi::AsyncWorker(env, "kdloss"),
        work_(std::move(work)),
        refs_(std::move(refs)),
        params_length_(params_length),
        threads_(threads),
        cancel_(std::make_shared<std::atomic<bool>>(false)),
        in_flight_(std::move(in_flight)) {
    NAPI_THROW_IF_FAILED_VOID(env, napi_create_promise(env, &deferred_, &promise_));
    in_flight_->Add(cancel_);
  }

  ~PoolWorker() override { in_flight_->Remove(cancel_); }

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
    // With several threads the pool thread only waits and the engine's helpers compute (the pool
    // thread computing next to one helper scaled worse: it competes with the main thread's work).
    rc.caller_computes = false;
    try {
      completed_ = work_->Run(rc);
    } catch (const std::bad_alloc&) {
      out_of_memory_ = true;
    }
  }

  void OnWorkComplete(Napi::Env env, napi_status status) override {
    if (status != napi_cancelled) {
      napi_handle_scope scope;
      if (napi_open_handle_scope(env, &scope) == napi_ok) {
        Settle(env);
        napi_close_handle_scope(env, scope);
      }
    }
    Destroy();
  }

 private:
  void Settle(napi_env env) {
    if (out_of_memory_) return Reject(env, kShape, kOutOfMemory);
    if (!completed_) return Reject(env, nullptr, "aborted");
    // The results go into params as the caller holds it now: it must still be a Float64Array of the
    // length it had when the call started.
    napi_value params = refs_.empty() ? nullptr : static_cast<napi_value>(refs_[0].Value());
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* data = nullptr;
    if (params == nullptr || napi_get_typedarray_info(env, params, &type, &length, &data, nullptr, nullptr) != napi_ok ||
        type != napi_float64_array || length != params_length_) {
      return Reject(env, kInput, "params: detached or resized during the call");
    }
    work_->WriteResults(static_cast<double*>(data));
    napi_value undefined = nullptr;
    if (napi_get_undefined(env, &undefined) == napi_ok) napi_resolve_deferred(env, deferred_, undefined);
  }

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
  std::unique_ptr<Work> work_;
  std::vector<Napi::Reference<Napi::Value>> refs_;  // params first, then every buffer
  size_t params_length_;
  size_t threads_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::shared_ptr<InFlight> in_flight_;
  bool completed_ = false;
  bool out_of_memory_ = false;
};

}  // namespace

void InFlight::Add(const std::shared_ptr<std::atomic<bool>>& flag) {
  std::lock_guard<std::mutex> lock(mu_);
  flags_.insert(flag);
}

void InFlight::Remove(const std::shared_ptr<std::atomic<bool>>& flag) {
  std::lock_guard<std::mutex> lock(mu_);
  flags_.erase(flag);
}

void InFlight::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& f : flags_) f->store(true, std::memory_order_relaxed);
}

napi_value RunSync(CallArgs& args, Work& work, size_t threads) {
  args.CheckOverlaps();
  kd::RunControl rc;
  rc.threads = threads;
  try {
    work.Run(rc);
  } catch (const std::bad_alloc&) {
    Fail(args.env(), kShape, kOutOfMemory);
  }
  // No JavaScript has run since the params were last read: the pointer is still the caller's array.
  work.WriteResults(args.params_data());
  return nullptr;
}

napi_value RunAsync(CallArgs& args, std::unique_ptr<Work> work, size_t threads,
                    const std::shared_ptr<InFlight>& in_flight) {
  args.CheckOverlaps();
  auto* worker = new PoolWorker(Napi::Env(args.env()), std::move(work), args.TakeRefs(), args.params_length(),
                                threads, in_flight);
  Napi::Object handle = worker->Handle();
  worker->Queue();
  return handle;
}

}  // namespace kdaddon
