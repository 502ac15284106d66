// kdloss kernel layer: plain C++ over raw pointers and sizes. Nothing here knows about N-API.
//
// Every kernel works on a half-open row range [r0, r1) of a row-major matrix and returns partial sums
// for that range, so callers can split work into fixed row blocks (threads, async workers) and combine
// the partials in a fixed order. Kernels allocate nothing; where a kernel can use row-sized scratch the
// caller passes it.
//
// Kernels trust their arguments: the binding validates shapes, lengths and class indices before any
// kernel runs, and no kernel checks them again. The one exception guards memory, not semantics: a
// class index is used as an offset into the student row, so a kept row whose index is outside
// [0, cols) (which the binding refuses) makes the kernel read nothing; the row then counts as having no
// target mass.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kd {

// Hard-target loss fused into the distillation kernel.
enum class HardKind : int32_t {
  kNone = 0,                // no hard term (alpha == 1, or a user-written loss computed in JS)
  kCrossEntropyLogits = 1,  // -sum(y * log_softmax(s)) per row (PyTorch cross_entropy)
  kCrossEntropyProbs = 2,   // -sum(y * ln(clamp(s, eps, 1 - eps))) per row (the seed's form)
  kMse = 3,                 // sum((s - y)^2) / cols per row
};

// The soft term's divergence between p = softmax(teacher / T) and q = softmax(student / T).
enum class Divergence : int32_t {
  kKl = 0,         // KL(p || q)
  kReverseKl = 1,  // KL(q || p)
  kJsd = 2,        // beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q
  kTvd = 3,        // 1/2 sum |p - q|
};

// Whether a divergence takes a second pass over each row once its normalisers are known (see
// kd_scratch_elems: such rows use the scratch also without a gradient).
inline bool divergence_needs_pass(Divergence d) { return d == Divergence::kJsd || d == Divergence::kTvd; }

enum class TargetKind : int32_t {
  kNone = 0,
  kMatrix = 1,  // rows x cols one-hot or probability rows
  kInt32 = 2,   // one int32 class index per row
  kUint32 = 3,  // one uint32 class index per row
};

template <typename T>
struct KdProblem {
  const T* student = nullptr;  // rows * cols logits
  const T* teacher = nullptr;  // rows * cols logits
  size_t rows = 0;
  size_t cols = 0;
  double temperature = 1.0;
  Divergence divergence = Divergence::kKl;
  double beta = 0.5;  // kJsd only: in (0, 1)
  HardKind hard = HardKind::kNone;
  TargetKind target_kind = TargetKind::kNone;
  const T* target_matrix = nullptr;  // rows * cols, when target_kind == kMatrix
  const void* target_index = nullptr;  // rows indices, when target_kind is kInt32 / kUint32 (kept
                                       // rows: in [0, cols), see above)
  int64_t ignore_index = -100;         // rows whose class index equals this are left out
  const uint8_t* mask = nullptr;       // rows entries or null; 0 leaves the row out
  double epsilon = 1e-10;              // clamp for kCrossEntropyProbs
  double label_smoothing = 0.0;        // cross-entropy label smoothing in [0, 1]

  // Optional outputs.
  double* row_soft = nullptr;  // rows: the divergence of each row (unscaled), 0 for rows left out
  double* row_hard = nullptr;  // rows: hard loss of each row, 0 for rows left out
  int32_t* argmax = nullptr;   // 2 * rows: first index of each student row's max, then the teacher's
                               // (NaN skipped; -1 for rows left out and rows of NaN only). Requires
                               // cols <= INT32_MAX (the binding refuses wider rows when argmax is
                               // asked for: an index past INT32_MAX would not fit).
  T* grad = nullptr;           // rows * cols: soft_scale * dSoft/ds + hard_scale * dHard/ds
  double grad_soft_scale = 0.0;
  double grad_hard_scale = 0.0;
};

// Partial sums over a row range.
struct KdPartial {
  double soft = 0.0;  // sum of per-row divergences over kept rows
  double hard = 0.0;  // sum of per-row hard loss over kept rows
  double kept = 0.0;  // number of kept rows

  KdPartial& operator+=(const KdPartial& o) {
    soft += o.soft;
    hard += o.hard;
    kept += o.kept;
    return *this;
  }
};

// One feature layer: rows x cols student and teacher features.
template <typename T>
struct FeatureLayer {
  const T* student = nullptr;
  const T* teacher = nullptr;
  size_t cols = 0;
  int p = 2;                 // 1 or 2
  double* row_out = nullptr; // if set: row_out[r] += row_weight * sum_j |s - t|^p
  double row_weight = 0.0;
  T* grad = nullptr;         // if set: rows * cols, grad_scale * d(sum_j |s - t|^p)/ds
  double grad_scale = 0.0;
};

// Attention maps: a = |x|^beta, each row divided by its sum where that sum > 1e-8.
template <typename T>
struct AttentionProblem {
  const T* student = nullptr;
  const T* teacher = nullptr;
  size_t rows = 0;
  size_t cols = 0;
  double beta = 2.0;
  double* row_out = nullptr;  // if set: row_out[r] = sum_j (a_s - a_t)^2 / cols
  T* grad = nullptr;          // if set: rows * cols, grad_scale * d(sum_j (a_s - a_t)^2)/ds
  double grad_scale = 0.0;
};

template <typename T>
struct SparseKdProblem;  // sparse.h

// Row-range entry points of one ISA for one element type.
template <typename T>
struct KernelSet {
  // scratch: at least kd_scratch_elems(cols) elements, or null where p.grad is null too or the rows
  // are too wide for the engine's scratch cache. With scratch, the passes after the sums read back the
  // exps the sums were taken from; without, they compute them again (the same values: results are
  // bitwise the same either way). A divergence that needs a second pass (divergence_needs_pass) always
  // gets scratch: its kernels have no path that computes the exps again, which would double their
  // instantiations (and compile time) for rows wider than any vocabulary in use.
  KdPartial (*kd_rows)(const KdProblem<T>& p, size_t r0, size_t r1, T* scratch);
  // Returns sum over rows [r0, r1) of sum_j |s - t|^p.
  double (*feature_rows)(const FeatureLayer<T>& layer, size_t r0, size_t r1);
  // Returns sum over rows [r0, r1) of sum_j (a_s - a_t)^2.
  double (*attention_rows)(const AttentionProblem<T>& p, size_t r0, size_t r1);
  // Element-wise vector math, exposed for tests and the roofline benchmark.
  void (*exp)(const T* in, T* out, size_t n);
  void (*log)(const T* in, T* out, size_t n);
  void (*exp2_nonpos)(const T* in, T* out, size_t n);  // 2^y for y <= 0 (the KD soft term's exps)
  // Plain sum of n elements (memory roofline).
  double (*sum)(const T* in, size_t n);
  // out[i] = |in[i]|^beta (beta > 0) as attention_rows takes it for a beta other than 1 and 2 (tests).
  void (*abs_pow)(const T* in, T* out, size_t n, double beta);
  // The distillation rows with a sparse top-k teacher (sparse.h). scratch: null, or (with p.kd.grad) at
  // least p.k elements, where each row's entry logits are kept aside so that the gradient may be
  // written over the student; without it the gradient must not overlap the student.
  KdPartial (*sparse_kd_rows)(const SparseKdProblem<T>& p, size_t r0, size_t r1, T* scratch);
};

// Three rows of exps, each padded to whole 64-byte lines, and up to two lines of slack: the kernel
// starts them at the first line boundary, plus the student row's offset within a line (kd_rows_impl).
inline size_t kd_scratch_elems(size_t cols) { return 3 * (cols + 16) + 32; }

struct KernelTable {
  const char* name;  // "scalar", "avx2", "avx512", "neon"
  KernelSet<float> f32;
  KernelSet<double> f64;
};

}  // namespace kd
