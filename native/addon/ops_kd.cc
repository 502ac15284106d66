// The distillation entry: kd(params, async, student, teacher, hardTargets, mask, rowSoft, rowHard,
// grad, argmax). See native/addon/layout.json for the params.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "../engine/engine.h"
#include "ops.h"

namespace kdaddon {

namespace {

using S = kd_layout::KdSlot;
using B = kd_layout::KdBuffer;

// Kernel enums and the layout's values are the same numbers (the kernels know nothing of the layout).
static_assert(static_cast<int>(kd::HardKind::kCrossEntropyLogits) == kd_layout::HardKind::kCrossEntropyLogits &&
                  static_cast<int>(kd::HardKind::kCrossEntropyProbs) == kd_layout::HardKind::kCrossEntropyProbs &&
                  static_cast<int>(kd::HardKind::kMse) == kd_layout::HardKind::kMse &&
                  static_cast<int>(kd::HardKind::kNone) == kd_layout::HardKind::kNone,
              "HardKind values differ between kernels.h and layout.json");
static_assert(static_cast<int>(kd::Divergence::kKl) == kd_layout::Divergence::kKl &&
                  static_cast<int>(kd::Divergence::kReverseKl) == kd_layout::Divergence::kReverseKl &&
                  static_cast<int>(kd::Divergence::kJsd) == kd_layout::Divergence::kJsd &&
                  static_cast<int>(kd::Divergence::kTvd) == kd_layout::Divergence::kTvd,
              "Divergence values differ between kernels.h and layout.json");
static_assert(static_cast<int>(kd::TargetKind::kMatrix) == kd_layout::TargetKind::kMatrix &&
                  static_cast<int>(kd::TargetKind::kInt32) == kd_layout::TargetKind::kInt32 &&
                  static_cast<int>(kd::TargetKind::kUint32) == kd_layout::TargetKind::kUint32 &&
                  static_cast<int>(kd::TargetKind::kNone) == kd_layout::TargetKind::kNone,
              "TargetKind values differ between kernels.h and layout.json");

template <typename T>
class KdWork final : public Work {
 public:
  KdWork(const kd::KernelSet<T>& set, const kd::KdProblem<T>& p, size_t kept) : set_(&set), p_(p), kept_(kept) {}
  bool Run(const kd::RunControl& rc) override { return kd::run_kd<T>(*set_, p_, rc, &sums_); }
  void WriteResults(double* params) const override {
    params[S::kSoftSum] = sums_.soft;
    params[S::kHardSum] = sums_.hard;
    params[S::kKept] = static_cast<double>(kept_);
  }

 private:
  const kd::KernelSet<T>* set_;
  kd::KdProblem<T> p_;
  size_t kept_;
  kd::KdPartial sums_;
};

// The class index of row r.
template <typename T>
int64_t ClassOf(const kd::KdProblem<T>& p, size_t r) {
  if (p.target_kind == kd::TargetKind::kInt32) return static_cast<const int32_t*>(p.target_index)[r];
  return static_cast<const uint32_t*>(p.target_index)[r];
}

// The one pass over the rows' flags before the kernels run: every class index is checked (the kernels
// index the row by it) and the kept rows are counted (a row is left out by a 0 in the mask, or by a
// class index equal to ignore_index).
template <typename T>
size_t CheckAndCountRows(napi_env env, const kd::KdProblem<T>& p) {
  const bool indices = p.target_kind == kd::TargetKind::kInt32 || p.target_kind == kd::TargetKind::kUint32;
  if (!indices) {
    if (p.mask == nullptr) return p.rows;
    size_t kept = 0;
    for (size_t r = 0; r < p.rows; ++r) kept += p.mask[r] != 0;
    return kept;
  }
  size_t kept = 0;
  for (size_t r = 0; r < p.rows; ++r) {
    const int64_t c = ClassOf(p, r);
    if (c == p.ignore_index) continue;
    if (c < 0 || static_cast<uint64_t>(c) >= p.cols) {
      Fail(env, kInput, "hardTargets[" + std::to_string(r) + "]: class index " + std::to_string(c) +
                            " out of range [0, " + std::to_string(p.cols) + ")");
    }
    kept += p.mask == nullptr || p.mask[r] != 0;
  }
  return kept;
}

template <typename T>
napi_value KdTyped(CallArgs& a, const Context& c, size_t rows, size_t cols, size_t threads) {
  napi_env env = a.env();
  kd::KdProblem<T> p;
  p.rows = rows;
  p.cols = cols;
  const size_t n = Elements(env, rows, cols, sizeof(T));
  if (a.Present(B::kArgmax) && cols > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    Fail(env, kShape, "argmax: rows of " + std::to_string(cols) +
                          " columns have indices beyond an Int32Array's range (at most 2147483647 columns)");
  }
  p.student = Floats<T>(a, B::kStudent, {"student"}, n, Role::kInput, false);
  p.teacher = Floats<T>(a, B::kTeacher, {"teacher"}, n, Role::kInput, false);

  p.temperature = Finite(env, a.param(S::kTemperature), 0, true, "temperature");
  p.divergence =
      static_cast<kd::Divergence>(Choice(env, a.param(S::kDivergence), kd_layout::Divergence::kCount, kConfig, "divergence"));
  const double beta = a.param(S::kBeta);
  if (p.divergence == kd::Divergence::kJsd) {
    if (!(beta > 0 && beta < 1)) Fail(env, kConfig, "beta: expected a number strictly between 0 and 1, got " + NumStr(beta));
    p.beta = beta;
  } else if (beta != 0) {
    Fail(env, kConfig, "beta: only the 'jsd' divergence takes a beta (0 otherwise), got " + NumStr(beta));
  }
  p.hard = static_cast<kd::HardKind>(Choice(env, a.param(S::kHardKind), kd_layout::HardKind::kCount, kConfig, "hardKind"));
  p.target_kind =
      static_cast<kd::TargetKind>(Choice(env, a.param(S::kTargetKind), kd_layout::TargetKind::kCount, kInput, "targetKind"));
  p.epsilon = a.param(S::kEpsilon);
  if (!(p.epsilon >= 0 && p.epsilon < 0.5)) {
    Fail(env, kConfig, "epsilon: expected a number in [0, 0.5), got " + NumStr(p.epsilon));
  }
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
  a.AllowAlias(B::kGrad, B::kStudent);
  p.argmax = static_cast<int32_t*>(a.Typed(B::kArgmax, {"argmax"}, napi_int32_array, "Int32Array", 2 * rows, Role::kOutput, true));

  const size_t kept = CheckAndCountRows(env, p);
  // What the sums are multiplied by: 1 for 'sum'; else 1 / normalizer, or 1 / kept rows (0 when none).
  const double scale = reduction == kd_layout::Reduction::kSum ? 1.0
                       : normalizer > 0                        ? 1.0 / normalizer
                       : kept > 0                              ? 1.0 / static_cast<double>(kept)
                                                               : 0.0;
  p.grad_soft_scale = soft_weight * scale;
  p.grad_hard_scale = hard_weight * scale;
  return Dispatch(a, c, KdWork<T>(SetOf<T>(*c.table), p, kept), threads);
}

}  // namespace

Name KdBufferName(size_t index) { return {index < B::kCount ? B::kNames[index] : "buffer", Name::kNoItem}; }

napi_value Kd(CallArgs& a, const Context& c) {
  napi_env env = a.env();
  a.ExpectParams(S::kLength);
  const size_t rows = Dim(env, a.param(S::kRows), {"rows"});
  const size_t cols = Dim(env, a.param(S::kCols), {"cols"});
  const size_t threads = Threads(env, a.param(S::kThreads));
  const int dtype = Choice(env, a.param(S::kDtype), kd_layout::Dtype::kCount, kInput, "dtype");
  return dtype == kd_layout::Dtype::kFloat32 ? KdTyped<float>(a, c, rows, cols, threads)
                                             : KdTyped<double>(a, c, rows, cols, threads);
}

}  // namespace kdaddon
