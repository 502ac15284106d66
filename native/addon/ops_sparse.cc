// The distillation entry with a sparse top-k teacher: sparseKd(params, async, student, indices, values,
// hardTargets, grad, mask, argmax, rowSoft, rowHard). See native/addon/layout.json for the params and
// native/kernels/sparse.h for the problem.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../engine/engine.h"
#include "../kernels/sparse.h"
#include "ops.h"

namespace kdaddon {

namespace {

using S = kd_layout::SparseKdSlot;
using B = kd_layout::SparseKdBuffer;

static_assert(static_cast<int>(kd::SparseKind::kLogits) == kd_layout::SparseKind::kLogits &&
                  static_cast<int>(kd::SparseKind::kLogprobs) == kd_layout::SparseKind::kLogprobs,
              "SparseKind values differ between sparse.h and layout.json");

// How far above 0 a log-probability, and above 1 a row's probability sum, may be (rounding of
// log-probabilities computed in float32); lib/sparse.ts and the js backend use the same bound.
constexpr double kLogprobSlack = 1e-5;

template <typename T>
class SparseWork final : public Work {
 public:
  SparseWork(const kd::KernelSet<T>& set, const kd::SparseKdProblem<T>& p, size_t kept)
      : set_(&set), p_(p), kept_(kept) {}
  bool Run(const kd::RunControl& rc) override { return kd::run_sparse_kd<T>(*set_, p_, rc, &sums_); }
  void WriteResults(double* params) const override {
    params[S::kSoftSum] = sums_.soft;
    params[S::kHardSum] = sums_.hard;
    params[S::kKept] = static_cast<double>(kept_);
  }

 private:
  const kd::KernelSet<T>* set_;
  kd::SparseKdProblem<T> p_;
  size_t kept_;
  kd::KdPartial sums_;
};

std::string RowName(size_t r) { return "teacher row " + std::to_string(r); }

// The one pass over the teacher's entries before the kernels run: every index is -1 or in [0, cols)
// and appears once in its row (the kernels index the student and the gradient by it), and log
// probabilities are at most 0 with row sums at most 1 (beyond rounding). Every row, kept or not.
template <typename T>
void CheckEntries(napi_env env, const kd::SparseKdProblem<T>& p) {
  const size_t rows = p.kd.rows, cols = p.kd.cols, k = p.k;
  std::vector<uint64_t> seen(k > 1 ? (cols + 63) / 64 : 0);
  for (size_t r = 0; r < rows; ++r) {
    const int32_t* idx = p.indices + r * k;
    const T* val = p.values + r * k;
    double sum = 0.0;
    for (size_t e = 0; e < k; ++e) {
      const int32_t i = idx[e];
      if (i == -1) continue;
      if (i < 0 || static_cast<size_t>(i) >= cols) {
        Fail(env, kInput, RowName(r) + ": indices[" + std::to_string(e) + "] = " + std::to_string(i) +
                              " out of range [0, " + std::to_string(cols) + ") (-1 marks an unused slot)");
      }
      if (!seen.empty()) {
        uint64_t& word = seen[static_cast<size_t>(i) / 64];
        const uint64_t bit = uint64_t{1} << (static_cast<size_t>(i) % 64);
        if (word & bit) Fail(env, kInput, RowName(r) + ": index " + std::to_string(i) + " appears more than once");
        word |= bit;
      }
      if (p.kind == kd::SparseKind::kLogprobs) {
        const double v = static_cast<double>(val[e]);
        if (v > kLogprobSlack) {
          Fail(env, kInput, RowName(r) + ": values[" + std::to_string(e) + "] = " + NumStr(v) +
                                " is not a log-probability (expected <= 0)");
        }
        sum += std::exp(v);
      }
    }
    if (sum > 1.0 + kLogprobSlack) {
      Fail(env, kInput, RowName(r) + ": its probabilities sum to " + NumStr(sum) + ", more than 1");
    }
    for (size_t e = 0; e < k && !seen.empty(); ++e) {
      if (idx[e] >= 0) seen[static_cast<size_t>(idx[e]) / 64] = 0;
    }
  }
}

// Counts the kept rows and checks the class indices (see ops_kd.cc's CheckAndCountRows).
template <typename T>
size_t CountKept(napi_env env, const kd::KdProblem<T>& p) {
  const bool indices = p.target_kind == kd::TargetKind::kInt32 || p.target_kind == kd::TargetKind::kUint32;
  size_t kept = 0;
  for (size_t r = 0; r < p.rows; ++r) {
    if (indices) {
      // (Each branch widened on its own: a conditional of int32_t and uint32_t would be uint32_t.)
      const int64_t c = p.target_kind == kd::TargetKind::kInt32
                            ? static_cast<int64_t>(static_cast<const int32_t*>(p.target_index)[r])
                            : static_cast<int64_t>(static_cast<const uint32_t*>(p.target_index)[r]);
      if (c == p.ignore_index) continue;
      if (c < 0 || static_cast<uint64_t>(c) >= p.cols) {
        Fail(env, kInput, "hardTargets[" + std::to_string(r) + "]: class index " + std::to_string(c) +
                              " out of range [0, " + std::to_string(p.cols) + ")");
      }
    }
    kept += p.mask == nullptr || p.mask[r] != 0;
  }
  return kept;
}

template <typename T>
napi_value SparseTyped(CallArgs& a, const Context& c, size_t rows, size_t cols, size_t k, size_t threads) {
  napi_env env = a.env();
  kd::SparseKdProblem<T> sp;
  kd::KdProblem<T>& p = sp.kd;
  p.rows = rows;
  p.cols = cols;
  sp.k = k;
  if (k > cols) Fail(env, kShape, "teacher: k = " + std::to_string(k) + " entries per row, more than the " + std::to_string(cols) + " columns");
  const size_t n = Elements(env, rows, cols, sizeof(T));
  const size_t nk = Elements(env, rows, k, sizeof(T));
  if (a.Present(B::kArgmax) && cols > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    Fail(env, kShape, "argmax: rows of " + std::to_string(cols) +
                          " columns have indices beyond an Int32Array's range (at most 2147483647 columns)");
  }
  p.student = Floats<T>(a, B::kStudent, {"student"}, n, Role::kInput, false);
  sp.indices = static_cast<const int32_t*>(
      a.Typed(B::kIndices, {"indices"}, napi_int32_array, "Int32Array", nk, Role::kInput, false));
  sp.values = Floats<T>(a, B::kValues, {"values"}, nk, Role::kInput, false);

  p.temperature = Finite(env, a.param(S::kTemperature), 0, true, "temperature");
  const int divergence = Choice(env, a.param(S::kDivergence), kd_layout::Divergence::kCount, kConfig, "divergence");
  if (divergence != kd_layout::Divergence::kKl) {
    Fail(env, kConfig, "divergence: a sparse teacher takes only 'kl' (reverse KL and JSD need the teacher's mass "
                       "everywhere the student has some)");
  }
  sp.kind = static_cast<kd::SparseKind>(Choice(env, a.param(S::kSparseKind), kd_layout::SparseKind::kCount, kConfig, "sparseKind"));
  const int tail = Choice(env, a.param(S::kTail), 2, kConfig, "tail");
  if (tail == 1 && sp.kind != kd::SparseKind::kLogprobs) Fail(env, kConfig, "tail: only log-probabilities have a tail bucket");
  sp.tail = tail == 1;
  p.hard = static_cast<kd::HardKind>(Choice(env, a.param(S::kHardKind), kd_layout::HardKind::kCount, kConfig, "hardKind"));
  p.target_kind =
      static_cast<kd::TargetKind>(Choice(env, a.param(S::kTargetKind), kd_layout::TargetKind::kCount, kInput, "targetKind"));
  p.epsilon = a.param(S::kEpsilon);
  if (!(p.epsilon >= 0 && p.epsilon < 0.5)) Fail(env, kConfig, "epsilon: expected a number in [0, 0.5), got " + NumStr(p.epsilon));
  p.label_smoothing = a.param(S::kLabelSmoothing);
  if (!(p.label_smoothing >= 0 && p.label_smoothing <= 1)) {
    Fail(env, kConfig, "labelSmoothing: expected a number in [0, 1], got " + NumStr(p.label_smoothing));
  }
  const double ignore = a.param(S::kIgnoreIndex);
  if (ignore != std::floor(ignore) || !(std::fabs(ignore) <= 9007199254740991.0)) {
    Fail(env, kConfig, "ignoreIndex: expected a safe integer, got " + NumStr(ignore));
  }
  p.ignore_index = static_cast<int64_t>(ignore);
  const double soft_weight = Finite(env, a.param(S::kSoftWeight), 0, false, "softWeight");
  const double hard_weight = Finite(env, a.param(S::kHardWeight), 0, false, "hardWeight");
  const int reduction = Choice(env, a.param(S::kReduction), kd_layout::Reduction::kCount, kConfig, "reduction");
  const double normalizer = a.param(S::kNormalizer);
  if (!(normalizer == 0 || (std::isfinite(normalizer) && normalizer > 0))) {
    Fail(env, kConfig, "normalizer: expected a finite number > 0 (or 0 for none), got " + NumStr(normalizer));
  }

  switch (p.target_kind) {
    case kd::TargetKind::kMatrix:
      p.target_matrix = Floats<T>(a, B::kHardTargets, {"hardTargets"}, n, Role::kInput, false);
      break;
    case kd::TargetKind::kInt32:
      p.target_index = a.Typed(B::kHardTargets, {"hardTargets"}, napi_int32_array, "Int32Array", rows, Role::kInput, false);
      break;
    case kd::TargetKind::kUint32:
      p.target_index = a.Typed(B::kHardTargets, {"hardTargets"}, napi_uint32_array, "Uint32Array", rows, Role::kInput, false);
      break;
    case kd::TargetKind::kNone:
      if (p.hard != kd::HardKind::kNone) Fail(env, kInput, "hardTargets: a built-in hard loss needs targets");
      break;
  }
  p.mask = static_cast<const uint8_t*>(a.Typed(B::kMask, {"mask"}, napi_uint8_array, "Uint8Array", rows, Role::kInput, true));
  p.row_soft = Floats<double>(a, B::kRowSoft, {"rowSoft"}, rows, Role::kOutput, true);
  p.row_hard = Floats<double>(a, B::kRowHard, {"rowHard"}, rows, Role::kOutput, true);
  p.grad = Floats<T>(a, B::kGrad, {"grad"}, n, Role::kOutput, true);
  // In place over the student where the kernel can keep the entries' logits aside (see run_sparse_kd).
  if (kd::sparse_grad_scratch_bytes(k, sizeof(T)) > 0) a.AllowAlias(B::kGrad, B::kStudent);
  p.argmax = static_cast<int32_t*>(a.Typed(B::kArgmax, {"argmax"}, napi_int32_array, "Int32Array", 2 * rows, Role::kOutput, true));

  CheckEntries(env, sp);
  const size_t kept = CountKept(env, p);
  const double scale = reduction == kd_layout::Reduction::kSum ? 1.0
                       : normalizer > 0                        ? 1.0 / normalizer
                       : kept > 0                              ? 1.0 / static_cast<double>(kept)
                                                               : 0.0;
  p.grad_soft_scale = soft_weight * scale;
  p.grad_hard_scale = hard_weight * scale;
  return Dispatch(a, c, SparseWork<T>(SetOf<T>(*c.table), sp, kept), threads);
}

}  // namespace

Name SparseKdBufferName(size_t index) { return {index < B::kCount ? B::kNames[index] : "buffer", Name::kNoItem}; }

napi_value SparseKd(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  a.ExpectParams(S::kLength);
  const size_t rows = Dim(env, a.param(S::kRows), {"rows"});
  const size_t cols = Dim(env, a.param(S::kCols), {"cols"});
  const size_t k = Dim(env, a.param(S::kK), {"k"});
  const size_t threads = Threads(env, a.param(S::kThreads));
  const int dtype = Choice(env, a.param(S::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? SparseTyped<float>(a, c, rows, cols, k, threads)
                                             : SparseTyped<double>(a, c, rows, cols, k, threads);
}

}  // namespace kdaddon
