#include "engine.h"

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

}  // namespace

size_t block_rows(size_t cols) {
  const size_t c = cols == 0 ? 1 : cols;
  return c >= kBlockElems ? 1 : kBlockElems / c;
}

size_t block_count(size_t rows, size_t cols) {
  const size_t b = block_rows(cols);
  return (rows + b - 1) / b;
}

template <typename T>
KdPartial run_kd(const KernelSet<T>& k, const KdProblem<T>& p) {
  T* scratch = p.grad != nullptr ? scratch_for<T>(kd_scratch_elems(p.cols)) : nullptr;
  const size_t b = block_rows(p.cols);
  KdPartial total;
  for (size_t r0 = 0; r0 < p.rows; r0 += b) {
    const size_t r1 = r0 + b < p.rows ? r0 + b : p.rows;
    const KdPartial part = k.kd_rows(p, r0, r1, scratch);
    total.soft += part.soft;
    total.hard += part.hard;
    total.kept += part.kept;
  }
  return total;
}

template <typename T>
void run_feature(const KernelSet<T>& k, const FeatureLayer<T>* layers, size_t n_layers,
                 size_t rows, double* layer_sums) {
  size_t widest = 1;
  for (size_t l = 0; l < n_layers; ++l) widest = layers[l].cols > widest ? layers[l].cols : widest;
  double* row_out = n_layers == 0 ? nullptr : layers[0].row_out;
  for (size_t l = 0; l < n_layers; ++l) layer_sums[l] = 0.0;
  const size_t b = block_rows(widest);
  for (size_t r0 = 0; r0 < rows; r0 += b) {
    const size_t r1 = r0 + b < rows ? r0 + b : rows;
    if (row_out != nullptr) {
      for (size_t r = r0; r < r1; ++r) row_out[r] = 0.0;
    }
    for (size_t l = 0; l < n_layers; ++l) layer_sums[l] += k.feature_rows(layers[l], r0, r1);
  }
}

template <typename T>
double run_attention(const KernelSet<T>& k, const AttentionProblem<T>& p) {
  const size_t b = block_rows(p.cols);
  double total = 0.0;
  for (size_t r0 = 0; r0 < p.rows; r0 += b) {
    const size_t r1 = r0 + b < p.rows ? r0 + b : p.rows;
    total += k.attention_rows(p, r0, r1);
  }
  return total;
}

template KdPartial run_kd<float>(const KernelSet<float>&, const KdProblem<float>&);
template KdPartial run_kd<double>(const KernelSet<double>&, const KdProblem<double>&);
template void run_feature<float>(const KernelSet<float>&, const FeatureLayer<float>*, size_t,
                                 size_t, double*);
template void run_feature<double>(const KernelSet<double>&, const FeatureLayer<double>*, size_t,
                                  size_t, double*);
template double run_attention<float>(const KernelSet<float>&, const AttentionProblem<float>&);
template double run_attention<double>(const KernelSet<double>&, const AttentionProblem<double>&);

}  // namespace kd
