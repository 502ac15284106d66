// Engine suite: the row-block runner (native/engine) and its helper-thread pool, driven by several
// caller threads at once with every thread count and both caller modes (the sync caller computes, an
// async worker only waits). Every result must be bitwise the one thread's; cancelled calls and calls
// whose scratch cannot be allocated must return (or throw) and leave the pool working. Under the sanitizer build this is also the pool's race and leak test.
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "kernels/dispatch.h"
#include "test_common.h"
#include "tests.h"

namespace kdt {
namespace {

// One KD problem over shared inputs (rows of 100 classes: 327 rows per block, 10 blocks) with its own
// per-row output.
struct KdRun {
  kd::KdProblem<float> p;
  std::vector<double> row_soft;
  kd::KdPartial total;
  bool done = false;
};

struct Inputs {
  static constexpr size_t kRows = 3000, kCols = 100;
  Buffer<float> s{kRows * kCols, 0}, t{kRows * kCols, 0};
  Buffer<int32_t> ci{kRows, 0};
  Inputs() {
    Rng rng(g_opt.seed ^ 0xe9);
    for (size_t i = 0; i < kRows * kCols; ++i) {
      s[i] = static_cast<float>(3 * rng.normal());
      t[i] = static_cast<float>(3 * rng.normal());
    }
    for (size_t r = 0; r < kRows; ++r) ci[r] = static_cast<int32_t>(rng.below(kCols));
  }
};

void run_kd_once(const kd::KernelSet<float>& k, const Inputs& in, size_t threads, bool caller_computes,
                 const std::atomic<bool>* cancel, KdRun* out) {
  kd::KdProblem<float>& p = out->p;
  p.student = in.s.data();
  p.teacher = in.t.data();
  p.rows = Inputs::kRows;
  p.cols = Inputs::kCols;
  p.temperature = 2.0;
  p.hard = kd::HardKind::kCrossEntropyLogits;
  p.target_kind = kd::TargetKind::kInt32;
  p.target_index = in.ci.data();
  out->row_soft.assign(Inputs::kRows, -1.0);
  p.row_soft = out->row_soft.data();
  kd::RunControl rc;
  rc.threads = threads;
  rc.cancel = cancel;
  rc.caller_computes = caller_computes;
  out->done = kd::run_kd(k, p, rc, &out->total);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void check_same(Case& cs, const KdRun& ref, const KdRun& got) {
  cs.expect(got.done, "the call completed");
  cs.exact("soft", 0, ref.total.soft, got.total.soft);
  cs.exact("hard", 0, ref.total.hard, got.total.hard);
  cs.exact("kept", 0, ref.total.kept, got.total.kept);
  size_t differ = 0;
  for (size_t r = 0; r < Inputs::kRows; ++r) differ += same_bits(ref.row_soft[r], got.row_soft[r]) ? 0 : 1;
  cs.expect(differ == 0, fmt("%zu rows of row_soft differ from the 1-thread run", differ));
}

}  // namespace

void suite_engine() {
  const kd::KernelSet<float>& k = kd::best_table().f32;
  const Inputs in;
  KdRun ref;
  run_kd_once(k, in, 1, true, nullptr, &ref);
  {
    Case cs("engine: 1-thread reference");
    cs.expect(ref.done && ref.total.kept == Inputs::kRows, "the reference call completed with every row");
  }

  // Every thread count, alone and from concurrent callers.
  const size_t counts[] = {2, 3, 8, 16};
  for (size_t threads : counts) {
    for (bool caller_computes : {true, false}) {
      KdRun got;
      run_kd_once(k, in, threads, caller_computes, nullptr, &got);
      Case cs(fmt("engine: %zu threads, caller %s", threads, caller_computes ? "computes" : "waits"));
      check_same(cs, ref, got);
    }
  }
  const size_t callers = 6, calls = scaled(12, 3);
  std::vector<std::vector<KdRun>> runs(callers, std::vector<KdRun>(calls));
  std::vector<std::thread> pool;
  for (size_t c = 0; c < callers; ++c) {
    pool.emplace_back([&, c] {
      for (size_t i = 0; i < calls; ++i) run_kd_once(k, in, counts[(c + i) % 4], (c + i) % 2 == 0, nullptr, &runs[c][i]);
    });
  }
  for (std::thread& th : pool) th.join();
  for (size_t c = 0; c < callers; ++c) {
    for (size_t i = 0; i < calls; ++i) {
      Case cs(fmt("engine: concurrent caller %zu call %zu (%zu threads)", c, i, counts[(c + i) % 4]));
      check_same(cs, ref, runs[c][i]);
    }
  }

  // A gradient scratch that cannot be allocated (rows of 2^40 columns: 12 TB of scratch; nothing is
  // read before the allocation): run_kd throws std::bad_alloc from whichever thread failed, after every
  // thread has stopped, and the pool serves the next call. Not under ASan, whose operator new reports
  // an impossible size as an error and aborts instead of throwing.
#ifndef KD_TEST_SANITIZE
  for (size_t threads : {size_t{1}, size_t{2}, size_t{3}}) {
    for (bool caller_computes : {true, false}) {
      float dummy[1] = {0.0f};
      kd::KdProblem<float> p;
      p.student = p.teacher = dummy;
      p.rows = 8;
      p.cols = size_t{1} << 40;
      p.grad = dummy;
      kd::RunControl rc;
      rc.threads = threads;
      rc.caller_computes = caller_computes;
      kd::KdPartial out;
      bool threw = false;
      try {
        kd::run_kd(k, p, rc, &out);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      KdRun after;
      run_kd_once(k, in, threads, caller_computes, nullptr, &after);
      Case cs(fmt("engine: scratch allocation failing on %zu threads (caller %s), then a full call", threads,
                  caller_computes ? "computes" : "waits"));
      cs.expect(threw, "run_kd threw std::bad_alloc");
      check_same(cs, ref, after);
    }
  }
#endif

  // Cancelled before it starts: returns false at once. Cancelled while running (from another thread):
  // returns (either way) and the pool still serves the next call.
  {
    std::atomic<bool> cancel{true};
    KdRun got;
    run_kd_once(k, in, 3, false, &cancel, &got);
    Case cs("engine: call cancelled before it starts");
    cs.expect(!got.done, "run_kd returned false");
  }
  for (size_t i = 0; i < scaled(20, 4); ++i) {
    std::atomic<bool> cancel{false};
    KdRun got;
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(50 * i));
      cancel.store(true);
    });
    run_kd_once(k, in, 2 + i % 3, i % 2 == 0, &cancel, &got);
    canceller.join();
    KdRun after;
    run_kd_once(k, in, 2 + i % 3, i % 2 == 1, nullptr, &after);
    Case cs(fmt("engine: cancelled mid-call %zu, then a full call", i));
    check_same(cs, ref, after);
  }
}

}  // namespace kdt
