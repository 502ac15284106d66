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

// The gradient scratch is bounded: a thread's cache grows to what its calls need, never past
// kd::kScratchCacheBytes; wider rows take the recomputing gradient sweep and leave every cache as it
// was. Each check runs on a fresh thread (whose cache starts empty) and with helpers, and the gradients
// are bitwise those of the kernel with scratch.
template <typename T>
void scratch_case(const kd::KernelSet<T>& k, size_t rows, size_t cols, size_t threads) {
  Rng rng(g_opt.seed ^ (cols * 31 + threads));
  Buffer<T> s(rows * cols, 0), t(rows * cols, 0), got(rows * cols, 0), want(rows * cols, 0);
  Buffer<int32_t> ci(rows, 0);
  for (size_t i = 0; i < rows * cols; ++i) {
    s[i] = static_cast<T>(3 * rng.normal());
    t[i] = static_cast<T>(3 * rng.normal());
  }
  for (size_t r = 0; r < rows; ++r) ci[r] = static_cast<int32_t>(rng.below(cols));
  kd::KdProblem<T> p;
  p.student = s.data();
  p.teacher = t.data();
  p.rows = rows;
  p.cols = cols;
  p.temperature = 2.0;
  p.hard = kd::HardKind::kCrossEntropyLogits;
  p.target_kind = kd::TargetKind::kInt32;
  p.target_index = ci.data();
  p.grad_soft_scale = 0.5;
  p.grad_hard_scale = 0.25;
  // The reference: the kernel over all rows with its own scratch.
  Buffer<T> scratch(kd::kd_scratch_elems(cols), 0);
  p.grad = want.data();
  const kd::KdPartial ref = k.kd_rows(p, 0, rows, scratch.data());
  p.grad = got.data();
  const size_t expect = kd::kd_grad_scratch_bytes(cols, sizeof(T));
  size_t before_total = 0, after_total = 0, own = 0;
  kd::KdPartial out;
  std::thread([&] {
    before_total = kd::scratch_cache_total_bytes();
    kd::RunControl rc;
    rc.threads = threads;
    kd::run_kd(k, p, rc, &out);
    own = kd::scratch_cache_bytes();
    after_total = kd::scratch_cache_total_bytes();
  }).join();
  Case cs(fmt("engine: scratch bound, %s %zux%zu on %zu threads", dtype_name<T>(), rows, cols, threads));
  cs.expect(expect <= kd::kScratchCacheBytes, fmt("scratch %zu within the bound", expect));
  cs.expect(own == expect || (threads > 1 && own == 0),
            fmt("the calling thread's cache holds %zu bytes, expected %zu", own, expect));
  if (expect == 0) {
    cs.expect(after_total == before_total,
              fmt("rows too wide for the cache left every cache as it was (%zu -> %zu bytes)", before_total,
                  after_total));
  }
  cs.exact("soft", 0, ref.soft, out.soft);
  cs.exact("hard", 0, ref.hard, out.hard);
  size_t differ = 0;
  for (size_t i = 0; i < rows * cols; ++i) differ += std::memcmp(&got[i], &want[i], sizeof(T)) == 0 ? 0 : 1;
  cs.expect(differ == 0, fmt("%zu gradient elements differ from the kernel's with scratch", differ));
}

void suite_engine_scratch(const kd::KernelTable& table) {
  // The widest rows whose scratch fits the cache, and one element more.
  size_t fit_f = 1;
  while (kd::kd_grad_scratch_bytes(fit_f * 2, sizeof(float)) != 0) fit_f *= 2;
  while (kd::kd_grad_scratch_bytes(fit_f + 1, sizeof(float)) != 0) ++fit_f;
  for (size_t threads : {size_t{1}, size_t{3}}) {
    scratch_case<float>(table.f32, 40, 100, threads);
    scratch_case<double>(table.f64, 8, 1000, threads);
    scratch_case<float>(table.f32, 3, fit_f, threads);
    scratch_case<float>(table.f32, 3, fit_f + 1, threads);
    scratch_case<double>(table.f64, 2, fit_f, threads);  // twice the bytes: past the bound
  }
  {
    Case cs("engine: the bound's edge");
    cs.expect(kd::kd_grad_scratch_bytes(fit_f, sizeof(float)) <= kd::kScratchCacheBytes &&
                  kd::kd_grad_scratch_bytes(fit_f + 1, sizeof(float)) == 0 &&
                  kd::kd_grad_scratch_bytes(size_t{1} << 40, sizeof(float)) == 0 &&
                  kd::kd_grad_scratch_bytes(SIZE_MAX, sizeof(double)) == 0,
              fmt("rows of %zu floats are the widest with scratch", fit_f));
  }
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

  // A gradient scratch that cannot be allocated (the engine's test hook makes the next request throw,
  // as a failing allocation would): run_kd throws std::bad_alloc from whichever thread failed, after
  // every thread has stopped, and the pool serves the next call.
  for (size_t threads : {size_t{1}, size_t{2}, size_t{3}}) {
    for (bool caller_computes : {true, false}) {
      Buffer<float> grad(Inputs::kRows * Inputs::kCols, 0);
      KdRun failing;
      failing.p.grad = grad.data();
      failing.p.grad_soft_scale = 1.0;
      bool threw = false;
      kd::fail_scratch_allocations_for_tests(1);
      try {
        run_kd_once(k, in, threads, caller_computes, nullptr, &failing);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      kd::fail_scratch_allocations_for_tests(0);
      KdRun after;
      run_kd_once(k, in, threads, caller_computes, nullptr, &after);
      Case cs(fmt("engine: scratch allocation failing on %zu threads (caller %s), then a full call", threads,
                  caller_computes ? "computes" : "waits"));
      cs.expect(threw, "run_kd threw std::bad_alloc");
      check_same(cs, ref, after);
    }
  }

  suite_engine_scratch(kd::best_table());

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
