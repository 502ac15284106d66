// Independent long double reference implementations of the row kernels: straightforward formulas
// (log-sum-exp softmax, explicit sums), written from the definitions in kernels.h, not from the
// kernel code. This is the one place for the reference formulas.
//
// Every result comes with a "magnitude": a bound, in units of the working precision's rounding
// error, on how much rounding in any correct finite-precision evaluation may move the result. It is
// the sum of the absolute values of the terms involved, each weighted by its condition (e.g. exp(x)
// computed from an x that carries a relative rounding error has relative error ~|x| u, so terms built
// from exp(x) are weighted by 1 + |x|). Tests accept |got - ref| <= rel * (|ref| + magnitude): a
// well-conditioned result is compared relatively, and cancellation (e.g. a KL divergence of two
// nearly equal distributions) is judged against the size of what cancelled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/kernels.h"
#include "test_common.h"

namespace kdt {

// One distillation row.
struct KdRowIn {
  const LD* s = nullptr;  // student logits (or probabilities for kCrossEntropyProbs)
  const LD* t = nullptr;  // teacher logits
  size_t cols = 0;
  LD temperature = 1;
  kd::Divergence divergence = kd::Divergence::kKl;
  LD beta = 0.5;  // kJsd
  kd::HardKind hard = kd::HardKind::kNone;
  const LD* y = nullptr;  // target row (matrix targets), or null
  int64_t cls = -1;       // class index (index targets), used when y is null
  LD label_smoothing = 0;  // cross-entropy only (MSE ignores it)
  // kCrossEntropyProbs clamp range [epsilon, 1 - epsilon] (1 - epsilon computed in double), compared
  // exactly with the element values; d/ds of -y ln(clamp(s)) is -y/s inside it and 0 outside.
  LD clamp_lo = 1e-10L, clamp_hi = 1 - 1e-10L;
  bool grad = false;
  LD grad_soft_scale = 0, grad_hard_scale = 0;
  // ln of half the element type's smallest subnormal: exp(z) below it is 0 in the element type.
  LD underflow_z = -11400;
  // The element type's unit roundoff: TVD's sign(q - p) is ambiguous where |q - p| is within the
  // rounding of p and q, and the gradient's magnitude then covers either sign.
  LD unit = 0;
};

struct KdRowRef {
  LD soft = 0, soft_mag = 0;  // the divergence at temperature T
  LD hard = 0, hard_mag = 0;  // hard loss of the row
  std::vector<LD> grad, grad_mag;  // soft_scale * dSoft/ds + hard_scale * dHard/ds
};

KdRowRef kd_row_ref(const KdRowIn& in);

// One feature row: sum_j |s - t|^p and grad_scale * d/ds of it.
struct RowRef {
  LD value = 0, mag = 0;
  std::vector<LD> grad, grad_mag;
};

RowRef feature_row_ref(const LD* s, const LD* t, size_t cols, int p, bool grad, LD grad_scale);

// One attention row: a = |x|^beta, divided by its row sum where that sum > 1e-8; value =
// sum_j (a_s - a_t)^2, grad = grad_scale * d(value)/ds (0 where s = 0). `u` is the unit roundoff of
// the element type (used for the second-order part of the magnitude).
RowRef attention_row_ref(const LD* s, const LD* t, size_t cols, LD beta, bool grad, LD grad_scale,
                         LD u);

}  // namespace kdt
