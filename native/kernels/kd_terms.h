// The terms of a distillation row: the soft term (a divergence between the teacher's and the
// student's softmax at temperature T) and the hard term (a loss against the targets), as policies the
// steps of kd_steps.h call. A new divergence is a new soft term; the maxima, the exps, the hard terms,
// the finishing and the gradient write are shared.
//
// A soft term provides:
//   kSlots                       the sweep-2 sums it keeps (slot_bit of KdSlot: kZs, kZt, kW)
//   add<kGuarded>(sums, c)       sweep 2: adds the terms of ExpChunk c (c.es, c.et: e^(d/T) with
//                                d = x - max; c.ds, c.dt); guarded: masks products that would be NaN
//                                only because of an exact 0 times an infinite log
//   kLogs, log_args(sums, logs)  the arguments of the logs its value needs (taken with the group's)
//   value(sums, logs)            the row's soft loss
//   grad(sums, gs).at<kCareful>(c)  the gradient's soft part at PassChunk c (c.es(), c.et(), c.ds()
//                                ...), gs = grad_soft_scale / T; kCareful (rows whose sums are not all
//                                finite): a term with a coefficient of exactly 0 stays absent even
//                                where the chunk holds NaN or inf (elsewhere the 0 coefficient does it)
//   kPass                        whether it takes a second pass over the row (divergences.h)
// A divergence that needs its normalisers before its sums (JSD's log of the mixture, TVD's |p - q|)
// takes that pass over PassChunks between sweep 2 and the finishing (divergences.h).
//
// A hard term provides the same (its slots kZ1, kYsum, kYdot, kDsum; add also gets the row, for its
// targets, and e1, its own exps at T = 1 when kOwnExps, else the soft term's student exps), plus
// fix_sums (sums taken directly after the sweep).
#pragma once

#include <math.h>

#include <limits>

#include "kd_steps.h"

namespace kd {
namespace KD_ISA {

// ---- soft terms ---------------------------------------------------------------------------------

// KL(p_t || p_s) = sum p_t (log p_t - log p_s) = w / (T Zt) + log(Zs / Zt), with Zs, Zt the sums of
// the exps and w = sum et (dt - ds). Gradient: gs (p_s - p_t).
template <class O>
struct ForwardKl {
  using T = typename O::Scalar;
  using V = typename O::V;
  static constexpr unsigned kSlots = slot_bit(kZs) | slot_bit(kZt) | slot_bit(kW);
  static constexpr size_t kLogs = 1;
  static constexpr bool kPass = false;
  double temperature;

  template <bool kGuarded, class Sums>
  KD_SWEEP_INLINE void add(Sums& sums, const ExpChunk<O>& c) const {
    sums[kZs].add(c.es);
    sums[kZt].add(c.et);
    // w = sum et (dt - ds), divided by T once per row. Guarded: a teacher probability of exactly 0
    // (dt = -inf) contributes exactly 0, also against ds = -inf. One that is positive but below the
    // float range (et = 0 with dt finite) against a student probability of 0 (ds = -inf) is +inf in
    // exact arithmetic: its 0 * inf stays NaN here, and value() reads a NaN w beside NaN-free
    // normalisers as that +inf (no other NaN reaches w without reaching Zs or Zt).
    if constexpr (kGuarded) {
      const V minus_inf = O::set1(-std::numeric_limits<T>::infinity());
      sums[kW].add(O::pos_or_zero(O::sub(c.dt, minus_inf), O::mul(c.et, O::sub(c.dt, c.ds))));
    } else {
      sums[kW].add_prod(c.et, O::sub(c.dt, c.ds));
    }
  }
  void log_args(const double* sums, double* logs) const { logs[0] = sums[kZs] / sums[kZt]; }
  double value(const double* sums, const double* logs) const {
    const double w = __builtin_isnan(sums[kW]) && !__builtin_isnan(sums[kZs] + sums[kZt]) ? HUGE_VAL : sums[kW];
    return w / temperature / sums[kZt] + logs[0];
  }

  // With gs == 0 the term is absent from the gradient (0, not 0 times a NaN of the row's exps).
  struct Grad {
    V cs, ct;
    bool on;
    template <bool kCareful, class C>
    KD_SWEEP_INLINE V at(const C& c) const {
      if (kCareful && !on) return O::set1(0);
      return O::fma(cs, c.es(), O::mul(ct, c.et()));
    }
  };
  Grad grad(const double* sums, double gs) const {
    return Grad{O::set1(static_cast<T>(gs / sums[kZs])), O::set1(static_cast<T>(-gs / sums[kZt])), gs != 0.0};
  }
};

// ---- hard terms ---------------------------------------------------------------------------------

// The clamp of the probability cross-entropy, [eps, 1 - eps] (1 - eps rounded to double), as T bounds
// rounded inwards (so "inside" is decided exactly for T inputs) plus the logs of the exact bounds (what
// a clamped element contributes).
template <typename T>
struct ProbClamp {
  T lo = 0, hi = 0, log_lo = 0, log_hi = 0;
  ProbClamp() = default;  // unused bounds (kernels without the probability cross-entropy)
  explicit ProbClamp(double eps) {
    const double top = 1.0 - eps;
    lo = static_cast<T>(eps);
    if (static_cast<double>(lo) < eps) lo = static_cast<T>(sizeof(T) == 4 ? ::nextafterf(lo, 1.0f) : ::nextafter(lo, 1.0));
    hi = static_cast<T>(top);
    if (static_cast<double>(hi) > top) hi = static_cast<T>(sizeof(T) == 4 ? ::nextafterf(hi, 0.0f) : ::nextafter(hi, 0.0));
    log_lo = static_cast<T>(::log(eps));
    log_hi = static_cast<T>(::log(top));  // the bound as PyTorch and the js backend compute it
  }
};

// The hard terms, with targets y (a matrix row or a class index) smoothed to y' = (1 - ls) y + ls / C
// for the cross-entropies:
//   kCrossEntropyLogits  sum y' * -log_softmax(s) = Y' log Z1 - sum y' ds, Z1 = sum e^ds, Y' = sum y'
//   kCrossEntropyProbs   -sum y' ln(clamp(s, eps, 1 - eps))
//   kMse                 sum (s - y)^2 / C
// A term with a factor of exactly 0 is absent, not 0 times its other factor: the targets' term at
// ls = 1 (the loss is then the uniform one, whatever y is, also where y meets a -inf logit), the
// uniform term at ls = 0, and each target of exactly 0 (y' = 0 at a -inf logit or a NaN probability
// contributes 0). Everything else follows IEEE arithmetic: NaN stays NaN (a NaN probability where y' is
// not 0, a NaN target), -inf logits with target mass give +inf.
template <class O, HardKind kHard, bool kMatrix, bool kUnitTemp>
struct HardTerm {
  using T = typename O::Scalar;
  using V = typename O::V;
  static constexpr bool kCeLogits = kHard == HardKind::kCrossEntropyLogits;
  static constexpr bool kCeProbs = kHard == HardKind::kCrossEntropyProbs;
  static constexpr bool kMse = kHard == HardKind::kMse;
  static constexpr unsigned kSlots =
      kCeLogits ? slot_bit(kZ1) | slot_bit(kDsum) | (kMatrix ? slot_bit(kYsum) | slot_bit(kYdot) : 0u)
      : kCeProbs ? slot_bit(kDsum) | slot_bit(kYdot)
      : kMse     ? slot_bit(kYdot)
                 : 0u;
  static constexpr size_t kLogs = kCeLogits ? 1 : 0;  // log Z1
  // The cross-entropy on logits at T != 1 takes its own exps e^ds (at T = 1 they are the soft term's).
  static constexpr bool kOwnExps = kCeLogits && !kUnitTemp;

  size_t cols;
  double ls, ls_c;  // label smoothing (cross-entropies only) and ls / C
  bool targets_enter;  // ls < 1: the targets' term is present
  // Only the probability cross-entropy clamps (the bounds cost two C library logs per call).
  ProbClamp<T> clamp;
  V c_lo, c_hi, c_log_lo, c_log_hi;

  explicit HardTerm(const KdProblem<T>& P)
      : cols(P.cols),
        ls(kMse ? 0.0 : P.label_smoothing),
        ls_c(ls / static_cast<double>(P.cols)),
        targets_enter(ls < 1.0),
        clamp(kCeProbs ? ProbClamp<T>(P.epsilon) : ProbClamp<T>()),
        c_lo(O::set1(clamp.lo)),
        c_hi(O::set1(clamp.hi)),
        c_log_lo(O::set1(clamp.log_lo)),
        c_log_hi(O::set1(clamp.log_hi)) {}

  template <bool kGuarded>
  KD_SWEEP_INLINE V own_exp(const ExpChunk<O>& c) const {
    return keepf<O>(softmax_exp<O, kGuarded, false>(c.ds), c.n);
  }

  template <bool kGuarded, class Sums, class Row>
  KD_SWEEP_INLINE void add(Sums& sums, const ExpChunk<O>& c, const Row& row, V e1) const {
    if constexpr (kCeLogits) {
      sums[kZ1].add(e1);
      sums[kDsum].add(keepf<O>(c.ds, c.n));
      if (kMatrix) {  // class indices: see fix_sums
        const V yv = row.y.at(c.j, c.n);
        sums[kYsum].add(yv);
        sums[kYdot].add_prod_where_nonzero(yv, yv, c.ds);  // y = 0 at a -inf logit contributes 0, not NaN
      }
    } else if constexpr (kCeProbs) {
      // ln(clamp(s)): the log inside the clamp range, the exact bound's log outside it, NaN for NaN.
      const V xs = c.xs;
      const V inside = O::in_range_or_zero(xs, c_lo, c_hi, O::log(O::min(O::max(xs, c_lo), c_hi)));
      const V clamped = O::add(inside, O::add(O::pos_or_zero(O::sub(c_lo, xs), c_log_lo),
                                              O::pos_or_zero(O::sub(xs, c_hi), c_log_hi)));
      const V lp = keepf<O>(O::keep_nan(xs, clamped), c.n);
      sums[kDsum].add(lp);
      const V yp = row.y.at(c.j, c.n);
      sums[kYdot].add_prod_where_nonzero(yp, yp, lp);
    } else if constexpr (kMse) {
      const V d = O::sub(c.xs, row.y.at(c.j, c.n));
      sums[kYdot].add(O::mul(d, d));
    }
  }

  // A class index's one-hot sums of the logits cross-entropy have one term: sum y = 1 and sum y ds =
  // the class's ds, the very values the lane sums would give (every other lane adds 0), without their
  // three operations and the class test in every chunk. A class outside [0, cols) (which the binding
  // refuses) reads nothing and leaves the row without target mass, as its lanes would.
  template <class S>
  void fix_sums(double* sums, const S* s, size_t cls, T ms) const {
    if (kCeLogits && !kMatrix) {
      sums[kYsum] = cls < cols ? 1.0 : 0.0;
      sums[kYdot] = cls < cols ? static_cast<double>(static_cast<T>(s[cls] - ms)) : 0.0;
    }
  }

  // Y', the smoothed target mass, for the logits cross-entropy and its gradient.
  double ysum_s(const double* sums) const { return targets_enter ? (1.0 - ls) * sums[kYsum] + ls : ls; }
  // sum y' d for d the row's ds (logits) or ln(clamp(s)) (probabilities), without the absent terms.
  double ydot_s(const double* sums) const {
    return (targets_enter ? (1.0 - ls) * sums[kYdot] : 0.0) + (ls > 0.0 ? ls_c * sums[kDsum] : 0.0);
  }

  void log_args(const double* sums, double* logs) const {
    if (kCeLogits) logs[0] = sums[kZ1];
  }
  double value(const double* sums, const double* logs) const {
    if (kCeLogits) {
      return ysum_s(sums) * logs[0] - ydot_s(sums);
    } else if (kCeProbs) {
      return -ydot_s(sums);
    } else if (kMse) {
      return sums[kYdot] / static_cast<double>(cols);
    }
    return 0.0;
  }

  // gh * dHard/ds added to the soft part gv, at PassChunk c; with gh == 0 the term is absent (see the
  // soft term's Grad for kCareful). Everything a chunk needs is held by value: the gradient's stores
  // could otherwise alias it, and it would be loaded again for every chunk.
  struct Grad {
    V c1, cy, cu, c_mse, gh_v, yu, one_m_ls, c_lo, c_hi;
    bool on, targets_enter;
    template <bool kCareful, class C>
    KD_SWEEP_INLINE V at(const C& c, V gv) const {
      if (kCareful && !on) return gv;
      if constexpr (kCeLogits) {
        const V g = O::add(O::fma(c1, c.e1(), gv), cu);
        return kCareful && !targets_enter ? g : O::fma(cy, c.y(), g);
      } else if constexpr (kCeProbs) {
        // d/ds of -y' ln(clamp(s)) = -y'/s inside the clamp range, 0 outside; NaN at a NaN s with y'
        // (such a row's sums are NaN, so it is swept with kCareful).
        const V xs = c.xs(static_cast<T>(0.5));
        const V yv = kCareful && !targets_enter ? yu : O::fma(one_m_ls, c.y(), yu);
        // (-gh y') / s: the quotient last, so a tiny s overflows only where the whole term does.
        V d = O::in_range_or_zero(xs, c_lo, c_hi, O::div(O::mul(gh_v, yv), xs));
        if constexpr (kCareful) d = O::where_nonzero(yv, O::keep_nan(xs, d));
        return O::add(gv, d);
      } else if constexpr (kMse) {
        return O::fma(c_mse, O::sub(c.xs(), c.y()), gv);
      } else {
        return gv;
      }
    }
  };
  Grad grad(const double* sums, double gh) const {
    const double z1 = kCeLogits ? sums[kZ1] : 1.0;
    const double ys = kCeLogits ? ysum_s(sums) : 0.0;
    return Grad{O::set1(static_cast<T>(gh * ys / z1)),
                O::set1(static_cast<T>(-gh * (1.0 - ls))),
                O::set1(static_cast<T>(-gh * ls_c)),  // smoothing mass on every class
                O::set1(static_cast<T>(2.0 * gh / static_cast<double>(cols))),
                O::set1(static_cast<T>(-gh)),
                O::set1(static_cast<T>(ls_c)),
                O::set1(static_cast<T>(1.0 - ls)),
                c_lo,
                c_hi,
                gh != 0.0,
                targets_enter};
  }
};

}  // namespace KD_ISA
}  // namespace kd
