// Runs the row kernels over a whole problem: splits rows into fixed blocks (the partition depends
// only on the shape, never on the thread count), computes blocks on up to `threads` threads, and
// combines block partials in block order, so a result is bitwise the same for every thread count and
// every run. No N-API here either.
#pragma once

#include <atomic>
#include <cstddef>

#include "../kernels/kernels.h"

namespace kd {

// How to run a problem.
struct RunControl {
  size_t threads = 1;                          // threads to use (including the calling one if it computes)
  const std::atomic<bool>* cancel = nullptr;   // checked between blocks; set -> the run stops early
  bool caller_computes = true;                 // false: with threads > 1 the caller only waits
};

// Rows per block for a row width: blocks of about 32 K elements.
size_t block_rows(size_t cols);
size_t block_count(size_t rows, size_t cols);

// Each returns false when cancelled (outputs are then unspecified), and throws std::bad_alloc when a
// thread's gradient scratch cannot be allocated (after every thread of the call has stopped).
template <typename T>
bool run_kd(const KernelSet<T>& k, const KdProblem<T>& p, const RunControl& rc, KdPartial* out);

// Sums of sum_j |s - t|^p for each layer into layer_sums[l]. Every layer's row_out (if any) must
// point at the same per-row buffer, which is overwritten.
template <typename T>
bool run_feature(const KernelSet<T>& k, const FeatureLayer<T>* layers, size_t n_layers, size_t rows,
                 const RunControl& rc, double* layer_sums);

template <typename T>
bool run_attention(const KernelSet<T>& k, const AttentionProblem<T>& p, const RunControl& rc, double* out);

}  // namespace kd
