#include "engine.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <new>
#include <mutex>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace kd {

namespace {

constexpr size_t kBlockElems = 32768;

std::atomic<size_t> g_failing_scratch{0};  // see fail_scratch_allocations_for_tests
std::atomic<size_t> g_scratch_total{0};    // bytes of every thread's cache

// Throws std::bad_alloc where a test asked the next scratch allocations to fail.
void fail_if_asked() {
  size_t failing = g_failing_scratch.load(std::memory_order_relaxed);
  while (failing > 0 && !g_failing_scratch.compare_exchange_weak(failing, failing - 1, std::memory_order_relaxed)) {
  }
  if (failing > 0) throw std::bad_alloc();
}

// Per-thread scratch for the distillation gradient: one buffer for both element types, grown on
// demand up to kScratchCacheBytes and kept for the thread's later calls (it ends with the thread).
class ScratchCache {
 public:
  ~ScratchCache() {
    ::operator delete(data_);
    g_scratch_total.fetch_sub(size_, std::memory_order_relaxed);
  }
  // At least `bytes` (<= kScratchCacheBytes); throws std::bad_alloc.
  void* get(size_t bytes) {
    fail_if_asked();
    if (bytes > size_) {
      void* bigger = ::operator new(bytes);
      ::operator delete(data_);
      data_ = bigger;
      g_scratch_total.fetch_add(bytes - size_, std::memory_order_relaxed);
      size_ = bytes;
    }
    return data_;
  }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

thread_local ScratchCache t_scratch;

// The calling thread's scratch for a gradient call with rows of `cols` elements of T, or null where it
// would not fit the cache (the kernels then compute the exps again instead of reading them back).
template <typename T>
T* scratch_for(size_t cols) {
  const size_t bytes = kd_grad_scratch_bytes(cols, sizeof(T));
  return bytes == 0 ? nullptr : static_cast<T*>(t_scratch.get(bytes));
}

// The scratch of a divergence with a second pass (JSD, TVD) on rows too wide for the cache: those
// kernels always read the pass's exps back (see KernelSet::kd_rows), so such a call allocates one
// scratch per thread that runs its blocks, for the call only. Each thread claims its slot at its
// first block; the call's id (never reused, unlike an address) tells a thread's claim of this call
// from one of an earlier call.
std::atomic<uint64_t> g_call_ids{0};
struct OversizeClaim {
  uint64_t call = 0;
  void* slot = nullptr;
};
thread_local OversizeClaim t_oversize;

class OversizeScratch {
 public:
  OversizeScratch(size_t slot_bytes, size_t slots)
      : id_(g_call_ids.fetch_add(1, std::memory_order_relaxed) + 1), slot_bytes_(slot_bytes), slots_(slots) {
    fail_if_asked();
    if (slots == 0 || slot_bytes > SIZE_MAX / slots) throw std::bad_alloc();
    data_ = static_cast<unsigned char*>(::operator new(slot_bytes * slots));
  }
  ~OversizeScratch() { ::operator delete(data_); }
  OversizeScratch(const OversizeScratch&) = delete;
  OversizeScratch& operator=(const OversizeScratch&) = delete;

  void* claim() {
    if (t_oversize.call != id_) {
      const size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= slots_) throw std::bad_alloc();  // more threads than for_blocks runs: never
      t_oversize.call = id_;
      t_oversize.slot = data_ + i * slot_bytes_;
    }
    return t_oversize.slot;
  }

 private:
  uint64_t id_;
  size_t slot_bytes_, slots_;
  unsigned char* data_ = nullptr;
  std::atomic<size_t> next_{0};
};

bool cancelled(const RunControl& rc) {
  return rc.cancel != nullptr && rc.cancel->load(std::memory_order_relaxed);
}

// The helper threads of every call in the process: started on first use, grown to the most helpers a
// call has asked for (up to kMaxHelpers), then parked between calls. Starting threads per call costs
// the calling thread tens of microseconds (stack mappings and their cross-core TLB flushes), more
// than a 2-thread split of a 1 ms call can afford. The pool is never destroyed: parked threads end
// with the process.
class HelperPool {
 public:
  static constexpr size_t kMaxHelpers = 64;

  // One call's request: run(ctx, part) for parts [1, parts] on helpers.
  struct Job {
    void (*run)(void* ctx, size_t part);
    void* ctx;
    size_t queued = 0;   // parts no helper has taken yet
    size_t running = 0;  // parts a helper is running
    bool ended = false;  // a part has returned: every block has been taken
  };

  static HelperPool& get() {
    static HelperPool* pool = new HelperPool();
    return *pool;
  }

  // Queues parts 1 .. helpers of job (fewer if the pool cannot grow that far); returns how many.
  size_t post(Job* job, size_t helpers) {
    std::lock_guard<std::mutex> lock(mu_);
    while (threads_ < helpers && threads_ < kMaxHelpers) {
      try {
        std::thread(&HelperPool::loop, this).detach();
      } catch (const std::system_error&) {
        break;  // no more threads available: the parts queued are run by the threads there are
      }
      ++threads_;
    }
    const size_t parts = helpers < threads_ ? helpers : threads_;
    for (size_t p = 1; p <= parts; ++p) queue_.push_back({job, p});
    job->queued += parts;
    if (parts > 0) work_.notify_all();
    return parts;
  }

  // Waits until job has ended (`caller_ended`: its caller has taken every block) and none of its parts
  // is running, then withdraws its parts still queued (behind other calls' parts: nothing is left for
  // them to do).
  void finish(Job* job, bool caller_ended) {
    std::unique_lock<std::mutex> lock(mu_);
    job->ended = job->ended || caller_ended;
    done_.wait(lock, [&] { return (job->ended || job->queued == 0) && job->running == 0; });
    if (job->queued > 0) {
      for (auto it = queue_.begin(); it != queue_.end();) it = it->job == job ? queue_.erase(it) : it + 1;
      job->queued = 0;
    }
  }

 private:
  struct Part {
    Job* job;
    size_t part;
  };

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [&] { return !queue_.empty(); });
      const Part p = queue_.front();
      queue_.pop_front();
      --p.job->queued;
      ++p.job->running;
      lock.unlock();
      p.job->run(p.job->ctx, p.part);
      lock.lock();
      p.job->ended = true;
      if (--p.job->running == 0) done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_, done_;
  std::deque<Part> queue_;
  size_t threads_ = 0;
};

// Calls f(b) for every block b in [0, n) on up to rc.threads threads (the caller and pool helpers) and
// returns false when cancelled. Thread i owns the i-th contiguous share of the blocks and takes them in
// order; a thread that runs out helps with the other shares, from their front. So each thread mostly
// streams one contiguous range of rows, and a slow or late thread still gets help: any one thread alone
// finishes the whole call. Which thread runs a block does not matter to the result: each block writes
// its own slot. An exception from f (std::bad_alloc of the gradient scratch) on any thread stops the
// others at their next block and is rethrown here once no helper still uses the call's state.
template <class F>
bool for_blocks(size_t n, const RunControl& rc, F&& f) {
  const size_t threads = rc.threads < n ? rc.threads : n;
  if (threads <= 1) {  // the caller alone, in block order: nothing to share or to allocate
    for (size_t b = 0; b < n; ++b) {
      if (cancelled(rc)) return false;
      f(b);
    }
    return !cancelled(rc);
  }
  struct Share {
    alignas(64) std::atomic<size_t> next;
    size_t end;
  };
  std::vector<Share> shares(threads);
  for (size_t i = 0; i < shares.size(); ++i) {
    shares[i].next.store(n * i / shares.size(), std::memory_order_relaxed);
    shares[i].end = n * (i + 1) / shares.size();
  }
  using Fn = std::remove_reference_t<F>;
  struct Ctx {
    Ctx(std::vector<Share>* s, const RunControl* r, Fn* fn) : shares(s), rc(r), f(fn) {}
    std::vector<Share>* shares;
    const RunControl* rc;
    Fn* f;
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    std::exception_ptr error;
  } ctx(&shares, &rc, &f);
  const auto work = [](void* c, size_t own) {
    Ctx& x = *static_cast<Ctx*>(c);
    std::vector<Share>& sh = *x.shares;
    try {
      for (size_t k = 0; k < sh.size(); ++k) {
        Share& share = sh[(own + k) % sh.size()];
        for (;;) {
          if (cancelled(*x.rc) || x.failed.load(std::memory_order_relaxed)) return;
          const size_t b = share.next.fetch_add(1, std::memory_order_relaxed);
          if (b >= share.end) break;
          (*x.f)(b);
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(x.error_mu);
      if (!x.error) x.error = std::current_exception();
      x.failed.store(true, std::memory_order_relaxed);
    }
  };
  HelperPool& pool = HelperPool::get();
  HelperPool::Job job{work, &ctx};
  // A caller that only waits (an async call's pool thread) leaves part 0 to a helper too.
  const size_t helpers = rc.caller_computes ? threads - 1 : threads;
  const size_t posted = pool.post(&job, helpers);
  const bool caller_works = rc.caller_computes || posted == 0;
  if (caller_works) work(&ctx, 0);
  pool.finish(&job, caller_works);
  if (ctx.error) std::rethrow_exception(ctx.error);
  return !cancelled(rc);
}

struct Range {
  size_t r0, r1;
};

Range block_range(size_t b, size_t rows, size_t per_block) {
  const size_t r0 = b * per_block;
  return {r0, r0 + per_block < rows ? r0 + per_block : rows};
}

}  // namespace

size_t kd_grad_scratch_bytes(size_t cols, size_t elem_bytes) {
  // cols below the bound also keeps the product from overflowing.
  if (cols > kScratchCacheBytes / elem_bytes) return 0;
  const size_t bytes = kd_scratch_elems(cols) * elem_bytes;
  return bytes <= kScratchCacheBytes ? bytes : 0;
}

size_t sparse_grad_scratch_bytes(size_t k, size_t elem_bytes) {
  return k <= kScratchCacheBytes / elem_bytes ? k * elem_bytes : 0;
}

size_t scratch_cache_bytes() { return t_scratch.size(); }

size_t scratch_cache_total_bytes() { return g_scratch_total.load(std::memory_order_relaxed); }

void fail_scratch_allocations_for_tests(size_t n) { g_failing_scratch.store(n, std::memory_order_relaxed); }

size_t block_rows(size_t cols) {
  const size_t c = cols == 0 ? 1 : cols;
  return c >= kBlockElems ? 1 : kBlockElems / c;
}

size_t block_count(size_t rows, size_t cols) {
  const size_t b = block_rows(cols);
  return (rows + b - 1) / b;
}

namespace {

// Runs block(r0, r1) -> Part on every fixed row block and sums the parts in block order. On one thread
// the blocks run in order and are added as they finish (the same sums in the same order, with no
// per-block slots to allocate: a small call is a few microseconds).
template <class Part, class F>
bool sum_blocks(size_t rows, size_t cols, const RunControl& rc, Part* total, F&& block) {
  const size_t per = block_rows(cols);
  const size_t n = block_count(rows, cols);
  const bool in_order = rc.threads <= 1 || n <= 1;
  std::vector<Part> parts(in_order ? 0 : n);
  Part sum{};
  const bool done = for_blocks(n, rc, [&](size_t b) {
    const Range r = block_range(b, rows, per);
    if (in_order) {
      sum += block(r.r0, r.r1);
    } else {
      parts[b] = block(r.r0, r.r1);
    }
  });
  for (const Part& part : parts) sum += part;
  *total = sum;
  return done;
}

}  // namespace

template <typename T>
bool run_kd(const KernelSet<T>& k, const KdProblem<T>& p, const RunControl& rc, KdPartial* out) {
  const bool needs_pass = divergence_needs_pass(p.divergence);
  const bool wants_scratch = p.grad != nullptr || needs_pass;
  std::unique_ptr<OversizeScratch> oversize;
  if (needs_pass && kd_grad_scratch_bytes(p.cols, sizeof(T)) == 0) {
    // The threads for_blocks runs at most; the columns bound keeps kd_scratch_elems from overflowing.
    const size_t blocks = block_count(p.rows, p.cols);
    const size_t threads = rc.threads < blocks ? rc.threads : blocks;
    if (p.cols > SIZE_MAX / (4 * sizeof(T))) throw std::bad_alloc();
    oversize = std::make_unique<OversizeScratch>(kd_scratch_elems(p.cols) * sizeof(T), threads > 1 ? threads : 1);
  }
  return sum_blocks(p.rows, p.cols, rc, out, [&](size_t r0, size_t r1) {
    T* scratch = !wants_scratch ? nullptr
                 : oversize     ? static_cast<T*>(oversize->claim())
                                : scratch_for<T>(p.cols);
    return k.kd_rows(p, r0, r1, scratch);
  });
}

template <typename T>
bool run_sparse_kd(const KernelSet<T>& k, const SparseKdProblem<T>& p, const RunControl& rc, KdPartial* out) {
  const size_t bytes = p.kd.grad != nullptr ? sparse_grad_scratch_bytes(p.k, sizeof(T)) : 0;
  return sum_blocks(p.kd.rows, p.kd.cols, rc, out, [&](size_t r0, size_t r1) {
    T* scratch = bytes > 0 ? static_cast<T*>(t_scratch.get(bytes)) : nullptr;
    return k.sparse_kd_rows(p, r0, r1, scratch);
  });
}

// Per layer and per block, so it does not fit sum_blocks' single part per block.
template <typename T>
bool run_feature(const KernelSet<T>& k, const FeatureLayer<T>* layers, size_t n_layers, size_t rows,
                 const RunControl& rc, double* layer_sums) {
  size_t widest = 1;
  for (size_t l = 0; l < n_layers; ++l) widest = layers[l].cols > widest ? layers[l].cols : widest;
  double* row_out = n_layers == 0 ? nullptr : layers[0].row_out;
  const size_t per = block_rows(widest);
  const size_t n = block_count(rows, widest);
  std::vector<double> parts(n * n_layers);
  const bool done = for_blocks(n, rc, [&](size_t b) {
    const Range r = block_range(b, rows, per);
    if (row_out != nullptr) {
      for (size_t i = r.r0; i < r.r1; ++i) row_out[i] = 0.0;
    }
    for (size_t l = 0; l < n_layers; ++l) parts[b * n_layers + l] = k.feature_rows(layers[l], r.r0, r.r1);
  });
  for (size_t l = 0; l < n_layers; ++l) layer_sums[l] = 0.0;
  for (size_t b = 0; b < n; ++b) {
    for (size_t l = 0; l < n_layers; ++l) layer_sums[l] += parts[b * n_layers + l];
  }
  return done;
}

template <typename T>
bool run_attention(const KernelSet<T>& k, const AttentionProblem<T>& p, const RunControl& rc, double* out) {
  return sum_blocks(p.rows, p.cols, rc, out, [&](size_t r0, size_t r1) { return k.attention_rows(p, r0, r1); });
}

template bool run_kd<float>(const KernelSet<float>&, const KdProblem<float>&, const RunControl&, KdPartial*);
template bool run_kd<double>(const KernelSet<double>&, const KdProblem<double>&, const RunControl&, KdPartial*);
template bool run_sparse_kd<float>(const KernelSet<float>&, const SparseKdProblem<float>&, const RunControl&,
                                   KdPartial*);
template bool run_sparse_kd<double>(const KernelSet<double>&, const SparseKdProblem<double>&, const RunControl&,
                                    KdPartial*);
template bool run_feature<float>(const KernelSet<float>&, const FeatureLayer<float>*, size_t, size_t,
                                 const RunControl&, double*);
template bool run_feature<double>(const KernelSet<double>&, const FeatureLayer<double>*, size_t, size_t,
                                  const RunControl&, double*);
template bool run_attention<float>(const KernelSet<float>&, const AttentionProblem<float>&, const RunControl&,
                                   double*);
template bool run_attention<double>(const KernelSet<double>&, const AttentionProblem<double>&,
                                    const RunControl&, double*);

}  // namespace kd
