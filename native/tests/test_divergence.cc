// The soft terms besides the forward KL (reverse KL, JSD, TVD): every variant against the long double
// reference and the SIMD variants against scalar, with every hard term and target form, masks, the
// ignore index, label smoothing, the gradient with and without scratch, and rows built around the
// values where a divergence's exact arithmetic matters (+inf reverse KL, underflowing mixtures).
#include <cstdio>
#include <limits>

#include "kd_case.h"
#include "test_common.h"
#include "tests.h"

namespace kdt {

namespace {

using kd::Divergence;
using kd::HardKind;
using kd::TargetKind;
using namespace kdcase;

const Divergence kDivs[] = {Divergence::kReverseKl, Divergence::kJsd, Divergence::kTvd};

struct Form {
  HardKind hard;
  TargetKind tk;
  bool prob;
};

const Form kForms[] = {
    {HardKind::kNone, TargetKind::kNone, false},
    {HardKind::kNone, TargetKind::kInt32, false},
    {HardKind::kCrossEntropyLogits, TargetKind::kInt32, false},
    {HardKind::kCrossEntropyLogits, TargetKind::kMatrix, true},
    {HardKind::kCrossEntropyProbs, TargetKind::kUint32, false},
    {HardKind::kCrossEntropyProbs, TargetKind::kMatrix, false},
    {HardKind::kMse, TargetKind::kMatrix, true},
    {HardKind::kMse, TargetKind::kInt32, false},
};

double draw_beta(Rng& rng) {
  static const double betas[] = {0.5, 0.1, 0.9, 1e-3, 0.999, 1e-30};
  return betas[rng.below(sizeof betas / sizeof betas[0])];
}

KdConfig random_config(Rng& rng, Divergence div, size_t cols, size_t max_rows, const Form& f, bool grad) {
  static const double temps[] = {0.05, 0.5, 1.0, 2.0, 100.0};
  static const double sigmas[] = {0.3, 1.0, 3.0, 30.0, 1e3};
  KdConfig c;
  c.divergence = div;
  c.beta = draw_beta(rng);
  c.cols = cols;
  c.rows = 1 + rng.below(max_rows);
  c.temperature = temps[rng.below(5)];
  c.hard = f.hard;
  c.tk = f.tk;
  c.prob_targets = f.prob;
  c.ls = rng.chance(0.5) ? 0.1 : 0.0;
  c.mask = rng.chance(0.3);
  c.ignore = (f.tk == TargetKind::kInt32 || f.tk == TargetKind::kUint32) && rng.chance(0.6);
  c.ignore_index = f.tk == TargetKind::kUint32 ? 0xffffffffLL : -100;
  c.grad = grad;
  c.row_out = rng.chance(0.7);
  c.argmax = rng.chance(0.3);
  c.adversarial = rng.chance(0.35);
  c.sigma = sigmas[rng.below(5)];
  static const size_t offsets[] = {0, 1, 3};
  c.offset = offsets[rng.below(3)];
  c.gs = rng.chance(0.1) ? 0.0 : rng.uniform(0.2, 3.0);
  c.gh = rng.chance(0.1) ? 0.0 : rng.uniform(0.2, 3.0);
  c.seed = rng.next();
  return c;
}

template <typename T>
size_t suite_random(Rng& rng) {
  size_t n = 0, combo = 0;
  for (Divergence div : kDivs) {
    for (size_t cols = 1; cols <= 67; cols += (cols < 20 ? 1 : 7)) {
      for (const Form& f : kForms) {
        for (int grad = 0; grad < 2; ++grad) {
          if (!sampled(combo++)) continue;
          run_config<T>(random_config(rng, div, cols, 5, f, grad != 0));
          ++n;
        }
      }
    }
    for (size_t cols : {1000, 1025, 4097, 32771}) {
      for (const Form& f : kForms) {
        if (g_opt.scale < 1.0 && cols > 5000 && !rng.chance(g_opt.scale)) continue;
        run_config<T>(random_config(rng, div, cols, cols > 5000 ? 2 : 3, f, rng.chance(0.7)));
        ++n;
      }
    }
  }
  return n;
}

// Rows of chosen values, every variant against the reference (as test_kd.cc's special cases).
struct Row {
  std::vector<double> s, t;
};

template <typename T>
void special(const std::string& what, KdConfig c, const std::vector<Row>& rows) {
  KdData<T> D;
  c.rows = rows.size();
  c.cols = rows[0].s.size();
  c.row_out = c.argmax = true;
  D.cfg = c;
  const size_t C = c.cols, N = c.rows * C;
  D.s.reset(N, c.offset);
  D.t.reset(N, c.offset);
  for (size_t r = 0; r < c.rows; ++r) {
    for (size_t j = 0; j < C; ++j) {
      D.s[r * C + j] = static_cast<T>(rows[r].s[j]);
      D.t[r * C + j] = static_cast<T>(rows[r].t[j]);
    }
  }
  reference(D);
  run_data(D, fmt("kd %s divergence special: %s (%s)", dtype_name<T>(), what.c_str(), describe(c).c_str()));
}

Row random_row(Rng& rng, size_t C, double sigma) {
  Row r;
  for (size_t j = 0; j < C; ++j) {
    r.s.push_back(sigma * rng.normal());
    r.t.push_back(sigma * rng.normal());
  }
  return r;
}

template <typename T>
size_t suite_special(Rng& rng) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  size_t n = 0;
  for (size_t C : {3, 17, 40, 1000}) {
    for (Divergence div : kDivs) {
      KdConfig c;
      c.divergence = div;
      c.beta = div == Divergence::kJsd ? draw_beta(rng) : 0.5;
      c.temperature = rng.chance(0.5) ? 1.0 : 3.0;
      c.grad = true;
      c.seed = rng.next();
      c.offset = rng.below(3);
      std::vector<Row> rows;
      // A teacher logit of -inf (p = 0) where the student has mass: reverse KL +inf, its gradient
      // -inf / NaN; the other divergences stay finite.
      Row a = random_row(rng, C, 1.0);
      a.t[C / 2] = -inf;
      rows.push_back(a);
      // A student logit of -inf (q = 0): every divergence finite, the class's gradient exactly 0.
      Row b = random_row(rng, C, 1.0);
      b.s[C / 3] = -inf;
      rows.push_back(b);
      // Both -inf at one class (p = q = 0, log m = -inf): the class contributes nothing.
      Row d = random_row(rng, C, 1.0);
      d.s[0] = d.t[0] = -inf;
      rows.push_back(d);
      // Probabilities that underflow in both rows at the same class (m underflows: the mixture's
      // log-sum-exp keeps log m finite) and teacher probabilities far below the student's.
      Row u = random_row(rng, C, 1.0);
      for (size_t j = 0; j < C; j += 2) {
        u.s[j] = -200 - 40 * rng.uniform();
        u.t[j] = -230 - 40 * rng.uniform();
      }
      rows.push_back(u);
      // Wide logits (sigma 300: most probabilities underflow, and in float most exps are subnormal).
      rows.push_back(random_row(rng, C, 300.0));
      // Student = teacher: every divergence 0, TVD's subgradient 0.
      Row e = random_row(rng, C, 2.0);
      e.s = e.t;
      rows.push_back(e);
      // NaN in the student row, and a teacher row of -inf only (no distribution): NaN.
      Row f = random_row(rng, C, 1.0);
      f.s[C - 1] = nan;
      rows.push_back(f);
      Row g = random_row(rng, C, 1.0);
      g.t.assign(C, -inf);
      rows.push_back(g);
      special<T>("zeros, underflows, NaN", c, rows);
      ++n;
      // The same rows with the soft term left out of the gradient (its scale 0: absent, not NaN).
      c.gs = 0.0;
      special<T>("zeros, underflows, NaN; soft scale 0", c, rows);
      ++n;
    }
  }
  return n;
}

}  // namespace

void suite_divergence() {
  Rng rng(g_opt.seed ^ 0x44495645);
  const size_t nf = suite_random<float>(rng);
  const size_t nd = suite_random<double>(rng);
  std::printf("  divergence: %zu float and %zu double problems\n", nf, nd);
  const size_t ns = suite_special<float>(rng) + suite_special<double>(rng);
  std::printf("  divergence: %zu problems with zero, underflowing, NaN and infinite probabilities\n", ns);
}

}  // namespace kdt
