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

// Cross-entropy on logits where some student logits are -inf (a common way to mask classes):
// class-index targets without smoothing give a finite loss (the -inf classes have probability 0 and
// no target mass), as do matrix targets that are 0 there (the kernels leave a target of exactly 0 out,
// where PyTorch's 0 * -inf gives NaN); smoothed targets put mass on every class, so the loss is +inf,
// also at ls = 1 (where PyTorch gives NaN for class indices: the (1 - ls) term is absent here, not
// 0 * -inf). The gradient is finite throughout.
template <typename T>
size_t suite_kd_neg_inf_ce(Rng& rng) {
  struct Form {
    TargetKind tk;
    bool prob;
    double ls;
  };
  const Form forms[] = {{TargetKind::kInt32, false, 0.0},  {TargetKind::kUint32, false, 0.0},
                        {TargetKind::kInt32, false, 0.1},  {TargetKind::kMatrix, false, 0.1},
                        {TargetKind::kMatrix, true, 0.1},  {TargetKind::kMatrix, false, 0.0},
                        {TargetKind::kMatrix, true, 0.0},  {TargetKind::kInt32, false, 1.0},
                        {TargetKind::kMatrix, false, 1.0}, {TargetKind::kMatrix, true, 1.0}};
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

// ---- special values -------------------------------------------------------------------------------

// Rows built around chosen values, every variant against the reference: NaN stays NaN and +-inf is
// what exact arithmetic gives, with a term whose factor is exactly 0 left out (see kd_terms.h).
struct SpecialRow {
  std::vector<double> s, t, y;  // y: the target row (matrix targets)
  int32_t cls = 0;              // index targets
};

template <typename T>
void special_case(const std::string& what, KdConfig c, const std::vector<SpecialRow>& rows) {
  KdData<T> D;
  c.rows = rows.size();
  c.cols = rows[0].s.size();
  c.row_out = c.argmax = true;
  D.cfg = c;
  const size_t C = c.cols, N = c.rows * C;
  D.s.reset(N, c.offset);
  D.t.reset(N, c.offset);
  if (c.tk == TargetKind::kMatrix) D.y.reset(N, c.offset);
  if (c.tk == TargetKind::kInt32) D.ci.reset(c.rows, c.offset);
  for (size_t r = 0; r < c.rows; ++r) {
    for (size_t j = 0; j < C; ++j) {
      D.s[r * C + j] = static_cast<T>(rows[r].s[j]);
      D.t[r * C + j] = static_cast<T>(rows[r].t[j]);
      if (c.tk == TargetKind::kMatrix) D.y[r * C + j] = static_cast<T>(rows[r].y[j]);
    }
    if (c.tk == TargetKind::kInt32) D.ci[r] = rows[r].cls;
  }
  reference(D);
  run_data(D, fmt("kd %s special: %s (%s)", dtype_name<T>(), what.c_str(), describe(c).c_str()));
}

// Random logits (probabilities in (0, 1) for the probability cross-entropy) with one-hot targets.
SpecialRow random_row(Rng& rng, size_t C, bool probs) {
  SpecialRow r;
  for (size_t j = 0; j < C; ++j) {
    r.s.push_back(probs ? rng.uniform(0.01, 0.99) : 2 * rng.normal());
    r.t.push_back(2 * rng.normal());
  }
  r.cls = static_cast<int32_t>(rng.below(C));
  r.y.assign(C, 0.0);
  r.y[static_cast<size_t>(r.cls)] = 1.0;
  return r;
}

template <typename T>
size_t suite_kd_special(Rng& rng) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  size_t n = 0;
  for (size_t C : {4, 37, 1000}) {
    for (double temperature : {1.0, 4.0}) {
      for (double ls : {0.0, 0.1, 1.0}) {
        KdConfig c;
        c.temperature = temperature;
        c.ls = ls;
        c.grad = true;
        c.seed = rng.next();
        c.offset = rng.below(4);
        for (TargetKind tk : {TargetKind::kInt32, TargetKind::kMatrix}) {
          c.tk = tk;
          // The probability cross-entropy with a NaN probability: at the target class (NaN loss and
          // a NaN gradient there), elsewhere (NaN only where smoothing gives it target mass), as
          // CrossEntropyLoss runs it (teacher = student, no soft term in the gradient) and fused.
          c.hard = HardKind::kCrossEntropyProbs;
          for (double gs : {0.0, 1.0}) {
            c.gs = gs;
            std::vector<SpecialRow> rows;
            for (int k = 0; k < 2; ++k) {
              SpecialRow r = random_row(rng, C, true);
              const size_t at = k == 0 ? static_cast<size_t>(r.cls) : (static_cast<size_t>(r.cls) + 1) % C;
              r.s[at] = nan;
              if (gs == 0) r.t = r.s;
              rows.push_back(r);
            }
            special_case<T>("NaN probability", c, rows);
            ++n;
          }
          c.gs = 1.0;
          // Cross-entropy on logits, ls = 1 included: a -inf logit at the target class gives +inf.
          c.hard = HardKind::kCrossEntropyLogits;
          {
            std::vector<SpecialRow> rows;
            for (int k = 0; k < 3; ++k) {
              SpecialRow r = random_row(rng, C, false);
              const size_t at = k == 0 ? static_cast<size_t>(r.cls) : (static_cast<size_t>(r.cls) + 1) % C;
              if (C > 1 || k == 0) r.s[at] = -inf;
              if (k == 2 && tk == TargetKind::kMatrix) {  // a probability row with mass at the -inf class
                for (size_t j = 0; j < C; ++j) r.y[j] = 1.0 / static_cast<double>(C);
              }
              rows.push_back(r);
            }
            special_case<T>("-inf student logit", c, rows);
            ++n;
          }
          if (tk == TargetKind::kMatrix) {
            // NaN and negative target values: NaN stays NaN (unless ls = 1 leaves the targets out),
            // a negative target counts as any other non-zero one.
            for (HardKind hk : {HardKind::kCrossEntropyLogits, HardKind::kCrossEntropyProbs}) {
              c.hard = hk;
              std::vector<SpecialRow> rows;
              for (int k = 0; k < 2; ++k) {
                SpecialRow r = random_row(rng, C, hk == HardKind::kCrossEntropyProbs);
                const size_t other = (static_cast<size_t>(r.cls) + 1) % C;
                r.y[static_cast<size_t>(r.cls)] = k == 0 ? 1.5 : 0.5;
                r.y[other] = k == 0 ? -0.5 : nan;
                rows.push_back(r);
              }
              special_case<T>("NaN and negative targets", c, rows);
              ++n;
            }
          }
        }
        // A class index outside [0, cols) (which the binding refuses) reads nothing: the row has no
        // target mass.
        c.tk = TargetKind::kInt32;
        c.hard = HardKind::kCrossEntropyLogits;
        c.ignore_index = -100;
        std::vector<SpecialRow> rows;
        for (int32_t cls : {static_cast<int32_t>(C), static_cast<int32_t>(C) + 1000, -7, INT32_MIN}) {
          SpecialRow r = random_row(rng, C, false);
          r.cls = cls;
          rows.push_back(r);
        }
        special_case<T>("class index outside the row", c, rows);
        ++n;
      }
    }
    // NaN and +-inf logits in the soft term, every hard kind: rows of NaN only (argmax -1), -inf
    // only, one +inf, NaN in one place, -inf in both rows at one class.
    for (HardKind hk : {HardKind::kNone, HardKind::kCrossEntropyLogits, HardKind::kMse}) {
      KdConfig c;
      c.hard = hk;
      c.tk = hk == HardKind::kNone ? TargetKind::kNone : TargetKind::kMatrix;
      c.temperature = 2.0;
      c.grad = true;
      c.seed = rng.next();
      std::vector<SpecialRow> rows;
      for (int k = 0; k < 5; ++k) {
        SpecialRow r = random_row(rng, C, false);
        const size_t at = static_cast<size_t>(r.cls);
        if (k == 0) r.s.assign(C, nan);
        if (k == 1) r.t.assign(C, -inf);
        if (k == 2) r.s[at] = inf;
        if (k == 3) r.t[at] = nan;
        if (k == 4) r.s[at] = r.t[at] = -inf;
        rows.push_back(r);
      }
      special_case<T>("NaN and infinite logits", c, rows);
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
  const size_t ns = suite_kd_special<float>(rng) + suite_kd_special<double>(rng);
  std::printf("  kd: %zu problems with NaN and infinite values\n", ns);
}

}  // namespace kdt
