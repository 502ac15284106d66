// The distillation kernel's test cases: a problem's configuration, its inputs and their long double
// reference (build), one kernel run (run) and its check against the reference or the scalar run
// (check), and all three over every variant (run_config). Included by test_kd.cc only.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "reference.h"
#include "test_common.h"

namespace kdt {
namespace kdcase {

using kd::HardKind;
using kd::TargetKind;

enum class RowKind {
  kNormal,
  kEqual,             // all student logits equal, all teacher logits equal
  kHugeStudent,       // one student logit 1e15
  kHugeTeacher,       // one teacher logit 1e15
  kStudentNegInf,     // some student logits -inf
  kTeacherNegInf,     // some teacher logits -inf (zero teacher probabilities)
  kTeacherZeroProbs,  // some teacher logits -1e30 (probabilities that underflow to 0)
  kSame,              // student == teacher (KL 0)
  kNear,              // student = teacher * (1 + 1e-3 noise) (cancellation)
  kCount
};

inline const char* row_kind_name(RowKind k) {
  static const char* names[] = {"normal", "equal",   "huge-s", "huge-t", "-inf-s",
                                "-inf-t", "zero-pt", "same",   "near"};
  return names[static_cast<int>(k)];
}

struct KdConfig {
  size_t rows = 1, cols = 1;
  double temperature = 1.0;
  kd::Divergence divergence = kd::Divergence::kKl;
  double beta = 0.5;  // kJsd
  HardKind hard = HardKind::kNone;
  TargetKind tk = TargetKind::kNone;
  bool prob_targets = false;  // matrix targets: probability rows (else one-hot)
  double ls = 0.0, eps = 1e-10;
  bool mask = false, ignore = false, grad = false, row_out = false, adversarial = false;
  bool argmax = false;  // request the argmax output
  double sigma = 1.0;
  size_t offset = 0;
  double gs = 1.0, gh = 1.0;
  int64_t ignore_index = -100;
  uint64_t seed = 0;
  int forced_kind = -1;  // >= 0: every row is of this RowKind
};

inline std::string describe(const KdConfig& c) {
  static const char* hk[] = {"none", "ce-logits", "ce-probs", "mse"};
  static const char* tk[] = {"none", "matrix", "int32", "uint32"};
  static const char* dv[] = {"kl", "reverse-kl", "jsd", "tvd"};
  return fmt("cols=%zu rows=%zu T=%g div=%s beta=%g hard=%s targets=%s%s ls=%g eps=%g mask=%d ignore=%d(%lld) "
             "grad=%d rowout=%d argmax=%d adv=%d sigma=%g off=%zu seed=%llu",
             c.cols, c.rows, c.temperature, dv[static_cast<int>(c.divergence)], c.beta, hk[static_cast<int>(c.hard)], tk[static_cast<int>(c.tk)],
             c.tk == TargetKind::kMatrix ? (c.prob_targets ? "(prob)" : "(one-hot)") : "", c.ls, c.eps,
             c.mask, c.ignore, static_cast<long long>(c.ignore_index), c.grad, c.row_out, c.argmax,
             c.adversarial, c.sigma, c.offset, static_cast<unsigned long long>(c.seed));
}

// Inputs of one problem in the element type, their long double images and the reference results.
template <typename T>
struct KdData {
  KdConfig cfg;
  Buffer<T> s, t, y;
  Buffer<int32_t> ci;
  Buffer<uint32_t> cu;
  Buffer<uint8_t> mask;
  std::vector<LD> ls_, lt_, ly_;
  std::vector<RowKind> kinds;
  std::vector<bool> kept;
  std::vector<int32_t> argmax;  // 2 * rows: first index of each student row's max, then the teacher's
  std::vector<KdRowRef> ref;
  std::vector<LD> grad_floor;  // per row: rel * 1e-6 * max_j grad_mag (underflow of tiny terms)
  LD soft_sum = 0, soft_mag = 0, hard_sum = 0, hard_mag = 0, kept_count = 0;
};

template <typename T>
void make_row(const KdConfig& c, RowKind kind, Rng& rng, T* s, T* t) {
  const size_t C = c.cols;
  const bool probs = c.hard == HardKind::kCrossEntropyProbs;
  // The clamp bounds rounded to T and their neighbours: inside or outside is decided exactly.
  const T lo = static_cast<T>(c.eps), hi = static_cast<T>(1.0 - c.eps);
  const T near_bound[6] = {lo, std::nextafter(lo, T(0)), std::nextafter(lo, T(1)),
                           hi, std::nextafter(hi, T(0)), std::nextafter(hi, T(1))};
  for (size_t j = 0; j < C; ++j) {
    t[j] = static_cast<T>(c.sigma * rng.normal());
    if (!probs) {
      s[j] = static_cast<T>(c.sigma * rng.normal());
      continue;
    }
    // Student "probabilities" for the clamp: inside (0, 1), exactly 0 and 1, at and next to the
    // clamp bounds, below epsilon.
    const double u = rng.uniform();
    s[j] = u < 0.7 ? static_cast<T>(rng.uniform())
         : u < 0.76 ? T(0)
         : u < 0.82 ? T(1)
         : u < 0.94 ? near_bound[rng.below(6)]
         : static_cast<T>(rng.uniform() * c.eps);
  }
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const size_t k = rng.below(C);
  switch (kind) {
    case RowKind::kNormal:
    case RowKind::kCount:
      break;
    case RowKind::kEqual: {
      const T a = static_cast<T>(c.sigma * rng.normal()), b = static_cast<T>(c.sigma * rng.normal());
      for (size_t j = 0; j < C; ++j) {
        s[j] = probs ? T(0.25) : a;
        t[j] = b;
      }
      break;
    }
    case RowKind::kHugeStudent:
      s[k] = static_cast<T>(1e15);
      break;
    case RowKind::kHugeTeacher:
      t[k] = static_cast<T>(1e15);
      break;
    case RowKind::kStudentNegInf:
    case RowKind::kTeacherNegInf: {
      T* x = kind == RowKind::kStudentNegInf ? s : t;
      for (size_t j = 0; j < C; ++j) {
        if (j != k && rng.chance(0.35)) x[j] = neg_inf;
      }
      break;
    }
    case RowKind::kTeacherZeroProbs:
      for (size_t j = 0; j < C; ++j) {
        if (j != k && rng.chance(0.35)) {
          t[j] = static_cast<T>(-1e30);
          // A student logit of -inf where the teacher's probability underflows (the term is +inf) or
          // is exactly 0 (teacher -inf too: the term is absent), so a - b is infinite.
          // (Not with cross-entropy on logits: see suite_kd_neg_inf_ce.)
          if (rng.chance(0.3)) {
            s[j] = probs ? T(0) : c.hard == HardKind::kCrossEntropyLogits ? static_cast<T>(-1e30) : neg_inf;
            if (s[j] == neg_inf && rng.chance(0.5)) t[j] = neg_inf;
          }
        }
      }
      break;
    case RowKind::kSame:
      for (size_t j = 0; j < C; ++j) s[j] = t[j];
      break;
    case RowKind::kNear:
      for (size_t j = 0; j < C; ++j) s[j] = static_cast<T>(t[j] * (1.0 + 1e-3 * rng.normal()));
      break;
  }
}

template <typename T>
void reference(KdData<T>& D);

// Fills D's inputs from D.cfg (random rows of the configured kinds) and computes the reference.
template <typename T>
void build(KdData<T>& D) {
  const KdConfig& c = D.cfg;
  Rng rng(c.seed);
  const size_t R = c.rows, C = c.cols, N = R * C;
  D.s.reset(N, c.offset);
  D.t.reset(N, c.offset);
  D.kinds.assign(R, RowKind::kNormal);
  for (size_t r = 0; r < R; ++r) {
    if (c.forced_kind >= 0) {
      D.kinds[r] = static_cast<RowKind>(c.forced_kind);
    } else if (c.adversarial && rng.chance(0.6)) {
      D.kinds[r] = static_cast<RowKind>(1 + rng.below(static_cast<size_t>(RowKind::kCount) - 1));
      // -inf student logits with cross-entropy on logits: see suite_kd_neg_inf_ce.
      if (D.kinds[r] == RowKind::kStudentNegInf && c.hard == HardKind::kCrossEntropyLogits) {
        D.kinds[r] = RowKind::kTeacherNegInf;
      }
    }
    make_row<T>(c, D.kinds[r], rng, D.s.data() + r * C, D.t.data() + r * C);
  }

  // Class of every row (also when the targets are a matrix: the one-hot position).
  std::vector<int64_t> cls(R);
  for (size_t r = 0; r < R; ++r) cls[r] = static_cast<int64_t>(rng.below(C));
  if (c.tk == TargetKind::kMatrix) {
    D.y.reset(N, c.offset);
    for (size_t r = 0; r < R; ++r) {
      T* y = D.y.data() + r * C;
      if (!c.prob_targets) {
        for (size_t j = 0; j < C; ++j) y[j] = static_cast<T>(static_cast<int64_t>(j) == cls[r]);
        continue;
      }
      double sum = 0;
      std::vector<double> w(C);
      for (size_t j = 0; j < C; ++j) {
        w[j] = rng.chance(0.2) ? 0.0 : rng.uniform();
        sum += w[j];
      }
      for (size_t j = 0; j < C; ++j) y[j] = static_cast<T>(sum > 0 ? w[j] / sum : 1.0 / C);
    }
  } else if (c.tk == TargetKind::kInt32 || c.tk == TargetKind::kUint32) {
    std::vector<bool> ignored(R, false);
    for (size_t r = 0; r < R; ++r) ignored[r] = c.ignore && rng.chance(0.25);
    if (c.tk == TargetKind::kInt32) {
      D.ci.reset(R, c.offset);
      for (size_t r = 0; r < R; ++r) {
        D.ci[r] = ignored[r] ? static_cast<int32_t>(c.ignore_index) : static_cast<int32_t>(cls[r]);
      }
    } else {
      D.cu.reset(R, c.offset);
      for (size_t r = 0; r < R; ++r) {
        D.cu[r] = ignored[r] ? static_cast<uint32_t>(c.ignore_index) : static_cast<uint32_t>(cls[r]);
      }
    }
  }
  if (c.mask) {
    D.mask.reset(R, c.offset);
    for (size_t r = 0; r < R; ++r) D.mask[r] = rng.chance(0.3) ? 0 : static_cast<uint8_t>(1 + rng.below(255));
  }

  reference(D);
}

// The long double images of D's inputs (already filled) and the reference.
template <typename T>
void reference(KdData<T>& D) {
  const KdConfig& c = D.cfg;
  const size_t R = c.rows, C = c.cols, N = R * C;
  D.soft_sum = D.soft_mag = D.hard_sum = D.hard_mag = D.kept_count = 0;
  D.ls_.assign(D.s.data(), D.s.data() + N);
  D.lt_.assign(D.t.data(), D.t.data() + N);
  if (c.tk == TargetKind::kMatrix) D.ly_.assign(D.y.data(), D.y.data() + N);
  D.kept.assign(R, true);
  D.argmax.assign(2 * R, -1);
  D.ref.assign(R, KdRowRef());
  D.grad_floor.assign(R, 0);
  for (size_t r = 0; r < R; ++r) {
    int64_t row_cls = -1;
    if (c.tk == TargetKind::kInt32) row_cls = D.ci[r];
    if (c.tk == TargetKind::kUint32) row_cls = D.cu[r];
    if (c.mask && D.mask[r] == 0) D.kept[r] = false;
    if ((c.tk == TargetKind::kInt32 || c.tk == TargetKind::kUint32) && row_cls == c.ignore_index) {
      D.kept[r] = false;
    }
    if (!D.kept[r]) continue;
    for (int m = 0; m < 2; ++m) {
      // The first index of the largest non-NaN value; -1 where every value is NaN.
      const LD* x = (m == 0 ? D.ls_.data() : D.lt_.data()) + r * C;
      int64_t best = -1;
      for (size_t j = 0; j < C; ++j) {
        if (!std::isnan(x[j]) && (best < 0 || x[j] > x[best])) best = static_cast<int64_t>(j);
      }
      D.argmax[m * R + r] = static_cast<int32_t>(best);
    }
    KdRowIn in;
    in.s = D.ls_.data() + r * C;
    in.t = D.lt_.data() + r * C;
    in.cols = C;
    in.temperature = c.temperature;
    in.divergence = c.divergence;
    in.beta = c.beta;
    in.unit = std::numeric_limits<T>::epsilon() / 2;
    in.hard = c.hard;
    in.y = c.tk == TargetKind::kMatrix ? D.ly_.data() + r * C : nullptr;
    in.cls = row_cls;
    in.label_smoothing = c.ls;
    in.clamp_lo = c.eps;
    in.clamp_hi = 1.0 - c.eps;
    in.grad = c.grad;
    in.grad_soft_scale = c.gs;
    in.grad_hard_scale = c.gh;
    in.underflow_z = std::log(static_cast<LD>(std::numeric_limits<T>::denorm_min()) / 2);
    D.ref[r] = kd_row_ref(in);
    D.soft_sum += D.ref[r].soft;
    D.soft_mag += D.ref[r].soft_mag;
    D.hard_sum += D.ref[r].hard;
    D.hard_mag += D.ref[r].hard_mag;
    D.kept_count += 1;
    if (c.grad) {
      LD m = 0;
      for (LD g : D.ref[r].grad_mag) m = std::max(m, g);
      D.grad_floor[r] = rel_tol<T>() * 1e-6L * m;
    }
  }
}

// Outputs of one kernel run.
template <typename T>
struct KdRun {
  kd::KdPartial part;
  Buffer<double> row_soft, row_hard;
  Buffer<int32_t> argmax;
  Buffer<T> grad, scratch;
  // The same call without scratch (the passes after sweep 2 compute the exps again): bitwise the same.
  // Not for the divergences with a second pass, whose kernels require scratch.
  kd::KdPartial part_nosc;
  Buffer<T> grad_nosc;
};

template <typename T>
void run(const kd::KernelSet<T>& k, const KdData<T>& D, size_t split, KdRun<T>& out) {
  const KdConfig& c = D.cfg;
  kd::KdProblem<T> p;
  p.student = D.s.data();
  p.teacher = D.t.data();
  p.rows = c.rows;
  p.cols = c.cols;
  p.temperature = c.temperature;
  p.divergence = c.divergence;
  p.beta = c.beta;
  p.hard = c.hard;
  p.target_kind = c.tk;
  if (c.tk == TargetKind::kMatrix) p.target_matrix = D.y.data();
  if (c.tk == TargetKind::kInt32) p.target_index = D.ci.data();
  if (c.tk == TargetKind::kUint32) p.target_index = D.cu.data();
  p.ignore_index = c.ignore_index;
  p.mask = c.mask ? D.mask.data() : nullptr;
  p.epsilon = c.eps;
  p.label_smoothing = c.ls;
  if (c.row_out) {
    out.row_soft.reset(c.rows, c.offset);
    out.row_hard.reset(c.rows, c.offset);
    p.row_soft = out.row_soft.data();
    p.row_hard = out.row_hard.data();
  }
  if (c.argmax) {
    out.argmax.reset(2 * c.rows, c.offset);
    p.argmax = out.argmax.data();
  }
  T* scratch = nullptr;
  const bool uses_scratch = c.grad || kd::divergence_needs_pass(c.divergence);
  if (c.grad) {
    out.grad.reset(c.rows * c.cols, c.offset);
    p.grad = out.grad.data();
    p.grad_soft_scale = c.gs;
    p.grad_hard_scale = c.gh;
  }
  if (uses_scratch) {
    out.scratch.reset(kd::kd_scratch_elems(c.cols), c.offset);
    scratch = out.scratch.data();
  }
  const kd::KdPartial a = k.kd_rows(p, 0, split, scratch);
  const kd::KdPartial b = k.kd_rows(p, split, c.rows, scratch);
  out.part.soft = a.soft + b.soft;
  out.part.hard = a.hard + b.hard;
  out.part.kept = a.kept + b.kept;
  if (uses_scratch && !kd::divergence_needs_pass(c.divergence)) {
    if (c.grad) {
      out.grad_nosc.reset(c.rows * c.cols, c.offset);
      p.grad = out.grad_nosc.data();
    }
    p.row_soft = p.row_hard = nullptr;
    p.argmax = nullptr;
    const kd::KdPartial a2 = k.kd_rows(p, 0, split, nullptr);
    const kd::KdPartial b2 = k.kd_rows(p, split, c.rows, nullptr);
    out.part_nosc.soft = a2.soft + b2.soft;
    out.part_nosc.hard = a2.hard + b2.hard;
    out.part_nosc.kept = a2.kept + b2.kept;
  }
}

// Checks a run against the reference (base == nullptr) or against the scalar run `base` with the
// reference's magnitudes.
template <typename T>
void check(Case& cs, const std::string& prefix, const KdData<T>& D, const KdRun<T>& got,
           const KdRun<T>* base) {
  const KdConfig& c = D.cfg;
  const double rel = rel_tol<T>();
  const std::string sfx = base ? "~scalar" : "";
  const std::string k_sum = prefix + "kd.sum" + sfx, k_soft = prefix + "kd.soft" + sfx,
                    k_hard = prefix + "kd.hard" + sfx, k_grad = prefix + "kd.grad" + sfx;
  auto want = [&](LD ref, double base_value) { return base ? static_cast<LD>(base_value) : ref; };

  cs.exact("kept", 0, static_cast<double>(D.kept_count), got.part.kept);
  cs.near(k_sum, "partial.soft", 0, want(D.soft_sum, base ? base->part.soft : 0), D.soft_mag,
          got.part.soft, rel);
  cs.near(k_sum, "partial.hard", 0, want(D.hard_sum, base ? base->part.hard : 0), D.hard_mag,
          got.part.hard, rel);
  for (size_t r = 0; r < c.rows; ++r) {
    const KdRowRef& R = D.ref[r];
    if (c.row_out) {
      if (!D.kept[r]) {
        cs.exact("row_soft(left out)", r, 0.0, got.row_soft[r]);
        cs.exact("row_hard(left out)", r, 0.0, got.row_hard[r]);
      } else {
        cs.near(k_soft, "row_soft", r, want(R.soft, base ? base->row_soft[r] : 0), R.soft_mag,
                got.row_soft[r], rel);
        cs.near(k_hard, "row_hard", r, want(R.hard, base ? base->row_hard[r] : 0), R.hard_mag,
                got.row_hard[r], rel);
      }
    }
    if (!c.grad) continue;
    for (size_t j = 0; j < c.cols; ++j) {
      const size_t i = r * c.cols + j;
      if (!D.kept[r]) {
        if (!cs.exact("grad(left out)", i, 0.0, got.grad[i])) break;
        continue;
      }
      if (!cs.near(k_grad, "grad", i, want(R.grad[j], base ? base->grad[i] : 0), R.grad_mag[j],
                   got.grad[i], rel, D.grad_floor[r])) {
        break;  // one report per row is enough
      }
    }
  }
  if (c.row_out) {
    cs.expect(got.row_soft.check_guard() && got.row_hard.check_guard(), "row output guard overwritten");
  }
  if (c.argmax && base == nullptr) {
    for (size_t i = 0; i < 2 * c.rows; ++i) cs.exact("argmax", i, D.argmax[i], got.argmax[i]);
    cs.expect(got.argmax.check_guard(), "argmax guard overwritten");
  }
  const bool uses_scratch = c.grad || kd::divergence_needs_pass(c.divergence);
  const bool nosc = uses_scratch && !kd::divergence_needs_pass(c.divergence);  // see KdRun::part_nosc
  if (c.grad) cs.expect(got.grad.check_guard(), "grad guard overwritten");
  if (uses_scratch) cs.expect(got.scratch.check_guard(), "scratch guard overwritten");
  if (nosc && base == nullptr) {
    cs.exact("soft (no scratch)", 0, got.part.soft, got.part_nosc.soft);
    cs.exact("hard (no scratch)", 0, got.part.hard, got.part_nosc.hard);
  }
  if (nosc && c.grad && base == nullptr) {
    for (size_t i = 0; i < c.rows * c.cols; ++i) {
      if (std::memcmp(&got.grad[i], &got.grad_nosc[i], sizeof(T)) != 0) {
        cs.exact("grad (no scratch)", i, got.grad[i], got.grad_nosc[i]);
        break;
      }
    }
    cs.expect(got.grad_nosc.check_guard(), "grad guard overwritten (no scratch)");
  }
}

// Every variant on D against the reference (and the SIMD variants against scalar).
template <typename T>
void run_data(const KdData<T>& D, const std::string& what) {
  const KdConfig& cfg = D.cfg;
  const size_t split = cfg.rows == 0 ? 0 : static_cast<size_t>(cfg.seed % (cfg.rows + 1));
  check_variants<T, KdRun<T>>(
      what, [&](const kd::KernelSet<T>& set, KdRun<T>& out) { run(set, D, split, out); },
      [&](Case& cs, const std::string& prefix, const KdRun<T>& got, const KdRun<T>* ref) {
        check<T>(cs, prefix, D, got, ref);
      });
}

template <typename T>
void run_config(const KdConfig& cfg) {
  KdData<T> D;
  D.cfg = cfg;
  build(D);
  std::string what = fmt("kd %s %s", dtype_name<T>(), describe(cfg).c_str());
  if (cfg.adversarial) {
    what += " rows:";
    for (RowKind k : D.kinds) what += std::string(" ") + row_kind_name(k);
  }
  run_data(D, what);
}

}  // namespace kdcase
}  // namespace kdt
