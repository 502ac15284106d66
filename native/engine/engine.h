// Runs the row kernels over a whole problem: splits rows into fixed blocks (the partition depends
// only on the shape, never on the thread count), computes blocks on up to `threads` threads, and
// combines block partials in block order, so a result is bitwise the same for every thread count and
// every run. No N-API here either.
#pragma once

#include <atomic>
#include <cstddef>

#include "../kernels/kernels.h"
#include "../kernels/sparse.h"

namespace kd {

// How to run a problem.
struct RunControl {
  size_t threads = 1;                          // threads to use (including the calling one if it computes)
  const std::atomic<bool>* cancel = nullptr;   // checked between blocks; set -> the run stops early
  bool caller_computes = true;                 // false: with threads > 1 the caller only waits
};

// The distillation gradient's scratch (kd_scratch_elems: three rows of exps; also used without a
// gradient by the divergences whose rows take a second pass, JSD and TVD) comes from a per-thread
// cache that grows to the largest scratch a call has needed, up to kScratchCacheBytes, and is kept for
// the thread's later calls (allocating it per call would cost more than a wide row's whole gradient:
// every fresh page is a fault). Rows whose scratch would exceed it take the kernels' gradient sweep
// that computes the exps again (no scratch at all), except with JSD and TVD, whose kernels always read
// their second pass's exps back: such a call allocates one scratch per thread it runs on, for the call
// only (kd_scratch_elems(cols) elements each; rows wider than 349,000 floats or 174,000 doubles). So
// the engine keeps at most kScratchCacheBytes per thread that has run a gradient call (the callers'
// threads and the pool's helpers), whatever the shapes. Reading the exps back beats computing them again while the three rows stay in the caches;
// once they spill to memory, recomputing is faster. 4 MiB is the scratch of rows of up to 349,000
// floats or 174,000 doubles: every language-model vocabulary up to 256k tokens in float32, 131072 in
// float64.
constexpr size_t kScratchCacheBytes = size_t{4} << 20;

// The scratch a gradient call uses per thread for rows of `cols` elements of `elem_bytes` bytes: the
// kernels' kd_scratch_elems(cols) elements, or 0 where that exceeds kScratchCacheBytes.
size_t kd_grad_scratch_bytes(size_t cols, size_t elem_bytes);

// The calling thread's scratch cache in bytes (0 before its first gradient call), and every thread's.
size_t scratch_cache_bytes();
size_t scratch_cache_total_bytes();

// Tests only: the next n scratch requests (on any thread) throw std::bad_alloc, as an allocation that
// fails would.
void fail_scratch_allocations_for_tests(size_t n);

// Rows per block for a row width: blocks of about 32 K elements.
size_t block_rows(size_t cols);
size_t block_count(size_t rows, size_t cols);

// Each returns false when cancelled (outputs are then unspecified), and throws std::bad_alloc when a
// thread's gradient scratch cannot be allocated (after every thread of the call has stopped).
template <typename T>
bool run_kd(const KernelSet<T>& k, const KdProblem<T>& p, const RunControl& rc, KdPartial* out);

// run_kd with a sparse teacher. A gradient call keeps each row's entry logits aside in the thread's
// scratch cache (k elements: the gradient may be written over the student before the entries'
// corrections read them), where k elements fit in kScratchCacheBytes; sparse_grad_scratch_bytes says
// whether they do (else 0, and the gradient must not be the student).
size_t sparse_grad_scratch_bytes(size_t k, size_t elem_bytes);
template <typename T>
bool run_sparse_kd(const KernelSet<T>& k, const SparseKdProblem<T>& p, const RunControl& rc, KdPartial* out);

// Sums of sum_j |s - t|^p for each layer into layer_sums[l]. Every layer's row_out (if any) must
// point at the same per-row buffer, which is overwritten.
template <typename T>
bool run_feature(const KernelSet<T>& k, const FeatureLayer<T>* layers, size_t n_layers, size_t rows,
                 const RunControl& rc, double* layer_sums);

template <typename T>
bool run_attention(const KernelSet<T>& k, const AttentionProblem<T>& p, const RunControl& rc, double* out);

}  // namespace kd
