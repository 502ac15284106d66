// Runs the row kernels over a whole problem: splits rows into fixed blocks (the partition depends
// only on the shape, never on the thread count) and combines block partials in block order, so a
// result is bitwise the same however the blocks are scheduled. No N-API here either.
#pragma once

#include <cstddef>
#include <vector>

#include "../kernels/kernels.h"

namespace kd {

// Rows per block for a row width: blocks of about 32 K elements.
size_t block_rows(size_t cols);
size_t block_count(size_t rows, size_t cols);

template <typename T>
KdPartial run_kd(const KernelSet<T>& k, const KdProblem<T>& p);

// Sums of sum_j |s - t|^p for each layer into layer_sums[l]. Every layer's row_out (if any) must
// point at the same per-row buffer, which is overwritten.
template <typename T>
void run_feature(const KernelSet<T>& k, const FeatureLayer<T>* layers, size_t n_layers,
                 size_t rows, double* layer_sums);

template <typename T>
double run_attention(const KernelSet<T>& k, const AttentionProblem<T>& p);

}  // namespace kd
