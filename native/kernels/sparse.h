// The sparse (top-k) teacher problem of the distillation kernel: the student stays a dense rows x cols
// logit matrix, the teacher is each row's k largest entries as (index, value) pairs. Kernel-level and
// ISA-independent, like kernels.h (whose KernelSet only declares it).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace kd {

// What a sparse teacher's values are.
enum class SparseKind : int32_t {
  kLogits = 0,    // raw logits of the row's tokens: p = softmax(v / T) over the row's entries
  kLogprobs = 1,  // log-probabilities at T over the whole vocabulary (see tail)
};

// A distillation problem with a sparse teacher. `kd` holds everything a dense teacher's problem does
// (student, shape, temperature, hard term, targets, mask, outputs, gradient scales) except the teacher
// itself (kd.teacher is unused). With p the teacher's distribution over the row's entries (plus the
// tail bucket) and q the full-vocabulary softmax of the student at T, the soft term of a kept row is
// KL(p || q) over the support; see docs/sparse-teachers.md for the formulas.
//
// The kernels read an index only where it is in [0, cols): any other value (-1 marks an unused slot) is
// an unused slot. The binding refuses indices outside [0, cols) other than -1, and repeated indices
// within a row (they would count a token twice), before any kernel runs.
template <typename T>
struct SparseKdProblem {
  KdProblem<T> kd;
  const int32_t* indices = nullptr;  // rows * k
  const T* values = nullptr;         // rows * k, read one element at a time (sparse_rows.h: teacher_value)
  size_t k = 0;
  SparseKind kind = SparseKind::kLogits;
  // kLogprobs only: the teacher's mass outside the row's entries, 1 - sum p, is one more bucket,
  // compared with the student's mass outside the same tokens; false: p renormalised over the entries.
  bool tail = false;
};

}  // namespace kd
