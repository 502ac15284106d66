// The cases kd_native_bench times (see bench_cases.h).
#include "bench/bench_cases.h"

#include "engine/engine.h"
#include "kernels/dispatch.h"
#include "kernels/sparse.h"

namespace kdbench {

using kdt::set_of;

namespace {

const char* divergence_name(kd::Divergence d) {
  switch (d) {
    case kd::Divergence::kReverseKl:
      return "reverse-kl";
    case kd::Divergence::kJsd:
      return "jsd";
    case kd::Divergence::kTvd:
      return "tvd";
    case kd::Divergence::kKl:
      break;
  }
  return "kl";
}

}  // namespace

template <typename T>
Case kd_case(Inputs& in, size_t rows, size_t cols, bool onehot, bool grad, kd::Divergence div) {
  const size_t n = rows * cols;
  T* y = onehot ? in.zeros<T>(n) : nullptr;
  int32_t* cls = in.zeros<int32_t>(rows);
  for (size_t r = 0; r < rows; ++r) {
    cls[r] = static_cast<int32_t>((r * 7919) % cols);
    if (onehot) y[r * cols + static_cast<size_t>(cls[r])] = 1;
  }
  const bool saved = in.scratch == ScratchMode::kSaved ||
                     (in.scratch == ScratchMode::kAuto && kd::kd_grad_scratch_bytes(cols, sizeof(T)) != 0);
  // JSD and TVD always take scratch (their kernels read the second pass's exps back).
  const bool pass = kd::divergence_needs_pass(div);
  T* scratch = (grad && saved) || pass ? in.zeros<T>(kd::kd_scratch_elems(cols)) : nullptr;
  kd::KdProblem<T> P;
  P.student = in.normal<T>(n, 3.0, 1);
  P.teacher = in.normal<T>(n, 3.0, 2);
  P.rows = rows;
  P.cols = cols;
  P.temperature = 4.0;
  P.divergence = div;
  P.beta = 0.5;
  P.hard = kd::HardKind::kCrossEntropyLogits;
  if (onehot) {
    P.target_kind = kd::TargetKind::kMatrix;
    P.target_matrix = y;
  } else {
    P.target_kind = kd::TargetKind::kInt32;
    P.target_index = cls;
  }
  if (grad) {
    P.grad = in.zeros<T>(n);
    P.grad_soft_scale = 0.7 * 16.0 / static_cast<double>(rows);
    P.grad_hard_scale = 0.3 / static_cast<double>(rows);
  }
  Case c;
  const std::string name = div == kd::Divergence::kKl ? "kd" : divergence_name(div);
  c.id = name + (grad ? "+grad " : " ") + std::to_string(rows) + "x" + std::to_string(cols) +
         (onehot ? " onehot" : " index") + (sizeof(T) == 4 ? " float32" : " float64") +
         (grad && scratch == nullptr ? " (recompute)" : "");
  c.elements = n;
  c.bytes = 2 * n * sizeof(T) + (onehot ? n * sizeof(T) : rows * 4) + (grad ? n * sizeof(T) : 0);
  c.exps_per_element = 3;
  c.is_double = sizeof(T) == 8;
  c.run = [P, scratch](const kd::KernelTable& table) {
    const kd::KdPartial o = set_of<T>(table).kd_rows(P, 0, P.rows, scratch);
    return o.soft + o.hard;
  };
  return c;
}

// The distillation case with a sparse teacher (k log-probabilities per row with the tail bucket, the
// stored top-k format), the same student, targets and gradient as kd_case: it reads the student once
// per sweep and no teacher row.
template <typename T>
Case sparse_case(Inputs& in, size_t rows, size_t cols, size_t k, bool grad) {
  const size_t n = rows * cols;
  int32_t* cls = in.zeros<int32_t>(rows);
  int32_t* idx = in.zeros<int32_t>(rows * k);
  T* val = in.zeros<T>(rows * k);
  for (size_t r = 0; r < rows; ++r) {
    cls[r] = static_cast<int32_t>((r * 7919) % cols);
    for (size_t e = 0; e < k; ++e) {
      idx[r * k + e] = static_cast<int32_t>((r * 104729 + e * 7919) % cols);  // distinct: 7919 is prime to cols
      val[r * k + e] = static_cast<T>(-2.0 - 0.5 * static_cast<double>(e));
    }
  }
  kd::SparseKdProblem<T> P;
  P.kd.student = in.normal<T>(n, 3.0, 1);
  P.kd.rows = rows;
  P.kd.cols = cols;
  P.kd.temperature = 4.0;
  P.kd.hard = kd::HardKind::kCrossEntropyLogits;
  P.kd.target_kind = kd::TargetKind::kInt32;
  P.kd.target_index = cls;
  P.indices = idx;
  P.values = val;
  P.k = k;
  P.kind = kd::SparseKind::kLogprobs;
  P.tail = true;
  if (grad) {
    P.kd.grad = in.zeros<T>(n);
    P.kd.grad_soft_scale = 0.7 * 16.0 / static_cast<double>(rows);
    P.kd.grad_hard_scale = 0.3 / static_cast<double>(rows);
  }
  T* scratch = grad ? in.zeros<T>(k) : nullptr;
  Case c;
  c.id = std::string(grad ? "sparse+grad " : "sparse ") + std::to_string(rows) + "x" + std::to_string(cols) +
         " k=" + std::to_string(k) + (sizeof(T) == 4 ? " float32" : " float64");
  c.elements = n;
  c.bytes = n * sizeof(T) + rows * k * (4 + sizeof(T)) + rows * 4 + (grad ? n * sizeof(T) : 0);
  c.exps_per_element = grad ? 3 : 2;  // at T, at T = 1 for the hard term; again at T for the gradient
  c.is_double = sizeof(T) == 8;
  c.run = [P, scratch](const kd::KernelTable& table) {
    const kd::KdPartial o = set_of<T>(table).sparse_kd_rows(P, 0, P.kd.rows, scratch);
    return o.soft + o.hard;
  };
  return c;
}

Case feature_case(Inputs& in, size_t layers, size_t rows, size_t cols) {
  std::vector<kd::FeatureLayer<float>> L(layers);
  for (size_t l = 0; l < layers; ++l) {
    L[l].student = in.normal<float>(rows * cols, 1.0, 10 + 2 * l);
    L[l].teacher = in.normal<float>(rows * cols, 1.0, 11 + 2 * l);
    L[l].cols = cols;
    L[l].p = 2;
  }
  Case c;
  c.id = "feature " + std::to_string(layers) + "x" + std::to_string(rows) + "x" + std::to_string(cols) +
         " p2 float32";
  c.elements = layers * rows * cols;
  c.bytes = 2 * c.elements * sizeof(float);
  c.run = [L, rows](const kd::KernelTable& table) {
    double total = 0;
    for (const auto& layer : L) total += table.f32.feature_rows(layer, 0, rows);
    return total;
  };
  return c;
}

Case attention_case(Inputs& in, size_t rows, size_t cols) {
  kd::AttentionProblem<float> P;
  P.student = in.normal<float>(rows * cols, 1.0, 20);
  P.teacher = in.normal<float>(rows * cols, 1.0, 21);
  P.rows = rows;
  P.cols = cols;
  P.beta = 2.0;
  Case c;
  c.id = "attention " + std::to_string(rows) + "x" + std::to_string(cols) + " b2 float32";
  c.elements = rows * cols;
  c.bytes = 2 * c.elements * sizeof(float);
  c.run = [P](const kd::KernelTable& table) { return table.f32.attention_rows(P, 0, P.rows); };
  return c;
}

template Case kd_case<float>(Inputs&, size_t, size_t, bool, bool, kd::Divergence);
template Case kd_case<double>(Inputs&, size_t, size_t, bool, bool, kd::Divergence);
template Case sparse_case<float>(Inputs&, size_t, size_t, size_t, bool);
template Case sparse_case<double>(Inputs&, size_t, size_t, size_t, bool);

}  // namespace kdbench
