#include "engine.h"

#include <system_error>
#include <thread>
#include <vector>

namespace kd {

namespace {

constexpr size_t kBlockElems = 32768;

// Per-thread scratch for the distillation gradient, grown on demand and reused across calls.
template <typename T>
T* scratch_for(size_t elems) {
  thread_local std::vector<T> buf;
  if (buf.size() < elems) buf.resize(elems);
  return buf.data();
}

bool cancelled(const RunControl& rc) {
  return rc.cancel != nullptr && rc.cancel->load(std::memory_order_relaxed);
}

// Calls f(b) for every block b in [0, n) on up to rc.threads threads (blocks handed out in order by an
// atomic counter; which thread runs a block does not matter, since each block writes its own slot).
// Returns false when cancelled.
template <class F>
bool for_blocks(size_t n, const RunControl& rc, F&& f) {
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (;;) {
      if (cancelled(rc)) return;
      const size_t b = next.fetch_add(1, std::memory_order_relaxed);
      if (b >= n) return;
      f(b);
    }
  };
  const size_t threads = rc.threads < n ? rc.threads : n;
  const size_t first = rc.caller_computes || threads <= 1 ? 1 : 0;
  std::vector<std::thread> helpers;
  if (threads > first) helpers.reserve(threads - first);
  for (size_t i = first; i < threads; ++i) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // no more threads available: the ones we have finish the work
    }
  }
  if (first == 1 || helpers.empty()) work();
  for (std::thread& t : helpers) t.join();
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

size_t block_rows(size_t cols) {
  const size_t c = cols == 0 ? 1 : cols;
  return c >= kBlockElems ? 1 : kBlockElems / c;
}

size_t block_count(size_t rows, size_t cols) {
  const size_t b = block_rows(cols);
  return (rows + b - 1) / b;
}

namespace {

// Runs block(r0, r1) -> Part on every fixed row block and sums the parts in block order.
template <class Part, class F>
bool sum_blocks(size_t rows, size_t cols, const RunControl& rc, Part* total, F&& block) {
  const size_t per = block_rows(cols);
  const size_t n = block_count(rows, cols);
  std::vector<Part> parts(n);
  const bool done = for_blocks(n, rc, [&](size_t b) {
    const Range r = block_range(b, rows, per);
    parts[b] = block(r.r0, r.r1);
  });
  Part sum{};
  for (const Part& part : parts) sum += part;
  *total = sum;
  return done;
}

}  // namespace

template <typename T>
bool run_kd(const KernelSet<T>& k, const KdProblem<T>& p, const RunControl& rc, KdPartial* out) {
  return sum_blocks(p.rows, p.cols, rc, out, [&](size_t r0, size_t r1) {
    T* scratch = p.grad != nullptr ? scratch_for<T>(kd_scratch_elems(p.cols)) : nullptr;
    return k.kd_rows(p, r0, r1, scratch);
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
template bool run_feature<float>(const KernelSet<float>&, const FeatureLayer<float>*, size_t, size_t,
                                 const RunControl&, double*);
template bool run_feature<double>(const KernelSet<double>&, const FeatureLayer<double>*, size_t, size_t,
                                  const RunControl&, double*);
template bool run_attention<float>(const KernelSet<float>&, const AttentionProblem<float>&, const RunControl&,
                                   double*);
template bool run_attention<double>(const KernelSet<double>&, const AttentionProblem<double>&,
                                    const RunControl&, double*);

}  // namespace kd
