// What the two distillation entries (kd in ops_kd.cc, sparseKd in ops_sparse.cc) read and check
// alike: the hard term's settings, the weights and the reduction, the targets and the optional
// buffers, and the one pass over the rows that checks class indices and counts the kept rows. S and B
// are an entry's generated slot and buffer enums (layout.h), which name these alike.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "ops.h"

namespace kdaddon {

// The weights and the reduction of a distillation call (ReadKdCommon), which become the kernel's
// gradient scales once the kept rows are counted (SetGradScales).
struct KdReduction {
  double soft_weight = 0, hard_weight = 0, normalizer = 0;
  int reduction = 0;
};

// An argmax output holds column indices in an Int32Array: rows of more columns than it can index are
// refused before any buffer is read.
template <class B>
void CheckArgmaxCols(CallArgs& a, size_t cols) {
  if (a.Present(B::kArgmax) && cols > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    Fail(a.env(), kShape, "argmax: rows of " + std::to_string(cols) +
                              " columns have indices beyond an Int32Array's range (at most 2147483647 columns)");
  }
}

// Everything of p but the logits, the temperature and the divergence, which each entry reads itself;
// n = rows * cols. The gradient buffer is read, not allowed to alias the student (the entry decides).
template <class S, class B, typename T>
KdReduction ReadKdCommon(CallArgs& a, kd::KdProblem<T>& p, size_t n) {
  napi_env env = a.env();
  const size_t rows = p.rows;
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
  KdReduction r;
  r.soft_weight = Finite(env, a.param(S::kSoftWeight), 0, false, "softWeight");
  r.hard_weight = Finite(env, a.param(S::kHardWeight), 0, false, "hardWeight");
  r.reduction = Choice(env, a.param(S::kReduction), kd_layout::Reduction::kCount, kConfig, "reduction");
  r.normalizer = a.param(S::kNormalizer);
  if (!(r.normalizer == 0 || (std::isfinite(r.normalizer) && r.normalizer > 0))) {
    Fail(env, kConfig, "normalizer: expected a finite number > 0 (or 0 for none), got " + NumStr(r.normalizer));
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
  p.argmax = static_cast<int32_t*>(a.Typed(B::kArgmax, {"argmax"}, napi_int32_array, "Int32Array", 2 * rows, Role::kOutput, true));
  return r;
}

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

// The gradient scales: the weights times what the sums are multiplied by, 1 for 'sum'; else
// 1 / normalizer, or 1 / kept rows (0 when none).
template <typename T>
void SetGradScales(kd::KdProblem<T>& p, const KdReduction& r, size_t kept) {
  const double scale = r.reduction == kd_layout::Reduction::kSum ? 1.0
                       : r.normalizer > 0                          ? 1.0 / r.normalizer
                       : kept > 0                                  ? 1.0 / static_cast<double>(kept)
                                                                   : 0.0;
  p.grad_soft_scale = r.soft_weight * scale;
  p.grad_hard_scale = r.hard_weight * scale;
}

}  // namespace kdaddon
