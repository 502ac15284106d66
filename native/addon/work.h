// Running a prepared call: synchronously on the calling thread, or on the libuv thread pool with a
// promise that settles only when no thread touches the call's buffers any more.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_set>

#include "../engine/engine.h"
#include "args.h"

namespace kdaddon {

// A call's kernel work: its problem, its run and its results. Sync calls keep it on the stack; async
// calls hand it to the pool worker, which keeps it (and references to every buffer) until it settles.
class Work {
 public:
  virtual ~Work() = default;
  // Computes on the engine; false when cancelled. May throw std::bad_alloc.
  virtual bool Run(const kd::RunControl& rc) = 0;
  // Writes the results into the call's params (on the JS thread, after a complete Run).
  virtual void WriteResults(double* params) const = 0;
};

// Cancellation flags of the calls in flight of one addon instance; an environment cleanup hook (a
// worker_thread terminating, the process exiting) cancels them all.
class InFlight {
 public:
  void Add(const std::shared_ptr<std::atomic<bool>>& flag);
  void Remove(const std::shared_ptr<std::atomic<bool>>& flag);
  void CancelAll();

 private:
  std::mutex mu_;
  std::unordered_set<std::shared_ptr<std::atomic<bool>>> flags_;
};

// Checks the call's buffers for overlaps, runs `work` on `threads` threads and writes its results
// into params; returns undefined.
napi_value RunSync(CallArgs& args, Work& work, size_t threads);

// Checks the call's buffers for overlaps, references them and queues `work` on the libuv pool;
// returns { promise, cancel }. The promise resolves (undefined) once the results are in params, or
// rejects: with "aborted" after cancel() once every thread of the call has stopped, with a coded
// error if params was detached or resized meanwhile.
napi_value RunAsync(CallArgs& args, std::unique_ptr<Work> work, size_t threads,
                    const std::shared_ptr<InFlight>& in_flight);

}  // namespace kdaddon
