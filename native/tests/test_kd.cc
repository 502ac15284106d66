// Distillation kernel (KernelSet::kd_rows) against the long double reference and, for SIMD variants,
// against the scalar kernels of the same dtype.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "kd_case.h"
#include "reference.h"
#include "test_common.h"
#include "tests.h"

namespace kdt {

namespace {

using kd::HardKind;
using kd::TargetKind;
using namespace kdcase;

constexpr double kTemps[] = {0.05, 0.5, 1.0, 4.0, 100.0};
constexpr double kSigmas[] = {0.3, 1.0, 3.0, 30.0, 1e3, 1e4};

// The target forms tested with each hard loss.
struct TargetForm {
  HardKind hard;
  TargetKind tk;
  bool prob;
};

const TargetForm kForms[] = {
    {HardKind::kNone, TargetKind::kNone, false},
    {HardKind::kNone, TargetKind::kInt32, false},  // ignore_index applies without a hard term too
    {HardKind::kCrossEntropyLogits, TargetKind::kMatrix, false},
    {HardKind::kCrossEntropyLogits, TargetKind::kMatrix, true},
    {HardKind::kCrossEntropyLogits, TargetKind::kInt32, false},
    {HardKind::kCrossEntropyLogits, TargetKind::kUint32, false},
    {HardKind::kCrossEntropyProbs, TargetKind::kMatrix, false},
    {HardKind::kCrossEntropyProbs, TargetKind::kMatrix, true},
    {HardKind::kCrossEntropyProbs, TargetKind::kInt32, false},
    {HardKind::kCrossEntropyProbs, TargetKind::kUint32, false},
    {HardKind::kMse, TargetKind::kMatrix, false},
    {HardKind::kMse, TargetKind::kMatrix, true},
    {HardKind::kMse, TargetKind::kInt32, false},
    {HardKind::kMse, TargetKind::kUint32, false},
};

KdConfig random_config(Rng& rng, size_t cols, size_t max_rows, const TargetForm& f, bool grad,
                       double temperature) {
  KdConfig c;
  c.cols = cols;
  c.rows = 1 + rng.below(max_rows);
  c.temperature = temperature;
  c.hard = f.hard;
  c.tk = f.tk;
  c.prob_targets = f.prob;
  // Label smoothing applies to the cross-entropies only; the other kinds must ignore it.
  c.ls = rng.chance(0.5) ? (rng.chance(0.5) ? 0.1 : 0.35) : 0.0;
  static const double eps[] = {1e-10, 1e-7, 1e-3, 0.05};
  c.eps = eps[rng.below(4)];
  c.mask = rng.chance(0.3);
  c.ignore = (f.tk == TargetKind::kInt32 || f.tk == TargetKind::kUint32) && rng.chance(0.6);
  if (f.tk == TargetKind::kUint32) {
    // A uint32 never equals -100: ignore the all-ones index or a valid class.
    c.ignore_index = rng.chance(0.5) ? 0xffffffffLL : static_cast<int64_t>(rng.below(cols));
  } else {
    c.ignore_index = rng.chance(0.7) ? -100 : static_cast<int64_t>(rng.below(cols));
  }
  c.grad = grad;
  c.row_out = rng.chance(0.7);
  c.argmax = rng.chance(0.5);
  c.adversarial = rng.chance(0.35);
  c.sigma = kSigmas[rng.below(sizeof kSigmas / sizeof kSigmas[0])];
  static const size_t offsets[] = {0, 1, 3, 5};
  c.offset = offsets[rng.below(4)];
  c.gs = rng.chance(0.1) ? 0.0 : rng.uniform(0.2, 3.0);
  c.gh = rng.chance(0.1) ? 0.0 : rng.uniform(0.2, 3.0);
  c.seed = rng.next();
  return c;
}

template <typename T>
size_t suite_kd_dtype(Rng& rng) {
  size_t n = 0;
  // Every width 1..67 (all SIMD tails), every target form, gradient on and off, every temperature.
  // Reduced runs (scale < 1) take a pseudo-random subset.
  size_t combo = 0;
  for (size_t cols = 1; cols <= 67; ++cols) {
    for (const TargetForm& f : kForms) {
      for (int grad = 0; grad < 2; ++grad) {
        for (double temperature : kTemps) {
          if (!sampled(combo++)) continue;
          run_config<T>(random_config(rng, cols, 6, f, grad != 0, temperature));
          ++n;
        }
      }
    }
  }
  // A few wide rows.
  const size_t wide[] = {128, 1000, 4097, 32771, 100000};
  for (size_t cols : wide) {
    for (const TargetForm& f : kForms) {
      if (g_opt.scale < 1.0 && cols > 5000 && !rng.chance(g_opt.scale)) continue;
      run_config<T>(random_config(rng, cols, cols >= 32771 ? 2 : 3, f, rng.chance(0.7),
                                  kTemps[rng.below(5)]));
      ++n;
    }
  }
  return n;
}

// Cross-entropy on logits where some student logits are -inf (a common way to mask classes), in
// the cases where the loss is well defined (PyTorch's cross_entropy agrees): class-index targets
// without smoothing give a finite loss (the -inf classes have probability 0 and no target mass);
// smoothed targets put mass on every class, so the loss is +inf. The gradient is finite throughout.
// (Matrix targets without smoothing that are 0 at a -inf logit are left out: PyTorch gives NaN
// there, 0 * -inf.)
template <typename T>
size_t suite_kd_neg_inf_ce(Rng& rng) {
  struct Form {
    TargetKind tk;
    bool prob;
    double ls;
  };
  const Form forms[] = {{TargetKind::kInt32, false, 0.0},   {TargetKind::kUint32, false, 0.0},
                        {TargetKind::kInt32, false, 0.1},   {TargetKind::kMatrix, false, 0.1},
                        {TargetKind::kMatrix, true, 0.1}};
  size_t n = 0;
  for (size_t cols : {2, 3, 5, 8, 9, 16, 17, 33, 67}) {
    for (const Form& f : forms) {
      KdConfig c = random_config(rng, cols, 3, {HardKind::kCrossEntropyLogits, f.tk, f.prob},
                                 rng.chance(0.5), kTemps[rng.below(5)]);
      c.ls = f.ls;
      c.mask = false;
      c.ignore = false;
      c.forced_kind = static_cast<int>(RowKind::kStudentNegInf);
      run_config<T>(c);
      ++n;
    }
  }
  return n;
}

}  // namespace

void suite_kd() {
  Rng rng(g_opt.seed ^ 0x4b44);
  const size_t nf = suite_kd_dtype<float>(rng);
  const size_t nd = suite_kd_dtype<double>(rng);
  std::printf("  kd: %zu float and %zu double problems\n", nf, nd);
  const size_t ni = suite_kd_neg_inf_ce<float>(rng) + suite_kd_neg_inf_ce<double>(rng);
  std::printf("  kd: %zu problems of cross-entropy on logits with -inf student logits\n", ni);
}

}  // namespace kdt
