// The soft terms besides the forward KL (kd_terms.h): reverse KL, the generalized Jensen-Shannon
// divergence and the total variation distance, as policies of the same interface (see kd_terms.h),
// plus the second pass over a row that JSD and TVD need once the row's normalisers are known.
//
// With p = et / Zt and q = es / Zs (the exps of sweep 2 over their sums), a soft term with kPass
// provides pass(sums, grad), whose add(a, b, c) adds a PassChunk's terms into the two pass sums (kPassA,
// kPassB); value and grad read them with sweep 2's sums. The pass reads the exps back from the
// scratch rows where the row has them (kd_rows.h gives pass divergences scratch also without a
// gradient), else computes them again as sweep 2 did.
//
// Zeros are exact as for the forward KL: a probability of exactly 0 contributes exactly 0 to every
// sum and gradient term it weights (also where its log is -inf), NaN stays NaN, and a row where q > 0
// at a class with p = 0 has a reverse KL of +inf.
#pragma once

#include <math.h>

#include <limits>

#include "kd_terms.h"

namespace kd {
namespace KD_ISA {

// KL(q || p) = sum q (log q - log p) = w / (T Zs) + log(Zt / Zs), w = sum es (ds - dt).
// Gradient: gs q (h - KL(q || p)) with h = log q - log p, i.e. gs / (T Zs) es (ds - dt - w / Zs).
template <class O>
struct ReverseKl {
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
    // Student probabilities of exactly 0 (ds = -inf) contribute exactly 0 (guarded: also where ds - dt
    // is infinite); q > 0 against a teacher logit of -inf gives +inf, also where q is below the float
    // range (es = 0, ds finite): its 0 * inf stays NaN here and value() reads it as +inf, as
    // ForwardKl does.
    if constexpr (kGuarded) {
      const V minus_inf = O::set1(-std::numeric_limits<T>::infinity());
      sums[kW].add(O::pos_or_zero(O::sub(c.ds, minus_inf), O::mul(c.es, O::sub(c.ds, c.dt))));
    } else {
      sums[kW].add_prod(c.es, O::sub(c.ds, c.dt));
    }
  }
  void log_args(const double* sums, double* logs) const { logs[0] = sums[kZt] / sums[kZs]; }
  static double w_of(const double* sums) {
    return __builtin_isnan(sums[kW]) && !__builtin_isnan(sums[kZs] + sums[kZt]) ? HUGE_VAL : sums[kW];
  }
  double value(const double* sums, const double* logs) const { return w_of(sums) / temperature / sums[kZs] + logs[0]; }

  // The product is masked where es is 0 in every row, not only the careful ones: a student logit of
  // -inf leaves the sums finite (its es is 0) while its ds - dt is -inf.
  // Careful rows: a NaN Zs (a NaN or +inf student logit) makes every q NaN, so the whole row is NaN
  // (as the forward KL's). A KL of +inf (or NaN) makes each term q (h - KL) -inf (or NaN) wherever
  // q > 0, which is wherever the student logit is not -inf, also where q is below the float range
  // (es 0, or c es 0): those lanes take c (ds - dt - k) without the factor es, whose sign is q's.
  struct Grad {
    V c, k;
    bool on, nan_zs, finite_k;
    template <bool kCareful, class C>
    KD_SWEEP_INLINE V at(const C& ch) const {
      if (kCareful) {
        if (!on) return O::set1(0);
        if (nan_zs) return O::set1(std::numeric_limits<T>::quiet_NaN());
        if (!finite_k) {
          const V ds = ch.ds();
          const V minus_inf = O::set1(-std::numeric_limits<T>::infinity());
          return O::pos_or_zero(O::sub(ds, minus_inf), O::mul(c, O::sub(O::sub(ds, ch.dt()), k)));
        }
      }
      const V es = ch.es();
      return O::where_nonzero(es, O::mul(O::mul(c, es), O::sub(O::sub(ch.ds(), ch.dt()), k)));
    }
  };
  Grad grad(const double* sums, double gs) const {
    // A NaN Zt (a NaN or +inf teacher logit) makes every p, so every h, NaN: the KL's w, whose terms
    // at q = 0 are left out, may be finite all the same.
    const double k = __builtin_isnan(sums[kZt]) ? NAN : w_of(sums) / sums[kZs];
    return Grad{O::set1(static_cast<T>(gs / temperature / sums[kZs])), O::set1(static_cast<T>(k)), gs != 0.0,
                __builtin_isnan(sums[kZs]) != 0, __builtin_isfinite(k) != 0};
  }
};

// beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q. The pass sums are
// A = sum beta p (log p - log m) and B = sum (1 - beta) q (log q - log m) (the value is A + B), with
// log p = dt / T - log Zt, log q = ds / T - log Zs, and log m the log of the mixture where that is a
// normal number, else (an underflow, or 0) the log-sum-exp of log beta + log p and
// log(1 - beta) + log q, which stays finite while either log is (no epsilon, no 0 * -inf).
// Gradient: gs (1 - beta) q (log q - log m - KL(q || m)), KL(q || m) = B / (1 - beta).
template <class O>
struct Jsd {
  using T = typename O::Scalar;
  using V = typename O::V;
  static constexpr unsigned kSlots = slot_bit(kZs) | slot_bit(kZt);
  static constexpr size_t kLogs = 0;
  static constexpr bool kPass = true;
  double temperature, beta;

  template <bool kGuarded, class Sums>
  KD_SWEEP_INLINE void add(Sums& sums, const ExpChunk<O>& c) const {
    sums[kZs].add(c.es);
    sums[kZt].add(c.et);
  }
  void log_args(const double*, double*) const {}
  double value(const double* sums, const double*) const { return sums[kPassA] + sums[kPassB]; }

  // The row's constants and log m.
  struct Mix {
    V bp, cq, inv_t, lzt, lzs, lb, l1b;  // beta / Zt, (1 - beta) / Zs, 1 / T, log Zt, log Zs, log beta,
                                         // log(1 - beta)
    KD_SWEEP_INLINE V lp(V dt) const { return O::sub(O::mul(dt, inv_t), lzt); }
    KD_SWEEP_INLINE V lq(V ds) const { return O::sub(O::mul(ds, inv_t), lzs); }
    // log m for lanes [0, n), from the exps and the logs of p and q.
    KD_SWEEP_INLINE V log_m(V et, V es, V lp, V lq, size_t n) const {
      const V m = O::add(O::mul(et, bp), O::mul(es, cq));
      constexpr T kMinNormal = sizeof(T) == 4 ? static_cast<T>(FLT_MIN) : static_cast<T>(DBL_MIN);
      if constexpr (O::N == 1) {
        return m >= kMinNormal ? O::log(m) : lse(O::add(lb, lp), O::add(l1b, lq));
      } else {
        // The lanes that are not normal (tail lanes: m = 0) are replaced below or masked out of every
        // sum, so the log needs no fix-ups of its own.
        V lm = O::log_normal(m);
        const V one = O::set1(1);
        const V chk = n == O::N ? m : O::add(m, O::sub(one, O::keep_n(one, n)));
        const auto normal = O::ge(chk, O::set1(kMinNormal));
        if (!O::all(normal)) lm = O::select(normal, lm, lse(O::add(lb, lp), O::add(l1b, lq)));
        return lm;
      }
    }
    // log(e^x + e^y); -inf where both are -inf, NaN where either is NaN (max and min would drop it).
    // Out of line: only rows with underflowing mixtures take it, and its exp and log would otherwise
    // be compiled into every pass and gradient sweep.
    __attribute__((noinline)) static V lse(V x, V y) {
      const V hi = O::max(x, y), lo = O::min(x, y);
      const V l = O::add(hi, O::log(O::add(O::set1(1), O::exp_nonpos(O::sub(lo, hi)))));
      if constexpr (O::N == 1) {
        return O::keep_nan(x, O::keep_nan(y, hi == -static_cast<T>(INFINITY) ? hi : l));
      } else {
        return O::keep_nan(x, O::keep_nan(y, O::select(O::eq(hi, O::set1(-static_cast<T>(INFINITY))), hi, l)));
      }
    }
  };
  Mix mix(const double* sums) const {
    const auto s = [](double x) { return O::set1(static_cast<T>(x)); };
    return Mix{s(beta / sums[kZt]),       s((1.0 - beta) / sums[kZs]), s(1.0 / temperature), s(::log(sums[kZt])),
               s(::log(sums[kZs])),        s(::log(beta)),               s(::log1p(-beta))};
  }

  struct Pass {
    Mix mx;
    bool keep;  // keep log q - log m for the gradient
    template <class C>
    KD_SWEEP_INLINE void add(RowSum<O>& a, RowSum<O>& b, const C& c) const {
      const V et = c.et(), es = c.es();
      const V lp = mx.lp(c.dt()), lq = mx.lq(c.ds());
      const V lm = mx.log_m(et, es, lp, lq, c.n);
      const V lqm = O::sub(lq, lm);
      a.add_prod_where_nonzero(et, O::mul(et, mx.bp), O::sub(lp, lm));
      b.add_prod_where_nonzero(es, O::mul(es, mx.cq), lqm);
      // The gradient reads log q - log m back instead of taking log m again.
      if (keep) c.reuse_et(lqm);
    }
  };
  Pass pass(const double* sums, bool grad) const { return Pass{mix(sums), grad}; }

  // Careful rows: a NaN Zs (a NaN or +inf student logit) makes every q NaN, so the whole row is NaN
  // (as the forward KL's), not only where es is nonzero. A NaN KL(q || m) (a NaN p) makes the term
  // NaN wherever q > 0, i.e. wherever the student logit is not -inf, also where es underflowed.
  struct Grad {
    V c, kq;
    bool on, nan_zs, finite_kq;
    template <bool kCareful, class C>
    KD_SWEEP_INLINE V at(const C& ch) const {
      if (kCareful) {
        if (!on) return O::set1(0);
        if (nan_zs) return O::set1(std::numeric_limits<T>::quiet_NaN());
        if (!finite_kq) {
          const V minus_inf = O::set1(-std::numeric_limits<T>::infinity());
          return O::pos_or_zero(O::sub(ch.ds(), minus_inf), O::set1(std::numeric_limits<T>::quiet_NaN()));
        }
      }
      const V es = ch.es();
      return O::where_nonzero(es, O::mul(O::mul(c, es), O::sub(ch.reused_et(), kq)));
    }
  };
  Grad grad(const double* sums, double gs) const {
    return Grad{O::set1(static_cast<T>(gs * (1.0 - beta) / sums[kZs])),
                O::set1(static_cast<T>(sums[kPassB] / (1.0 - beta))), gs != 0.0, __builtin_isnan(sums[kZs]) != 0,
                __builtin_isfinite(sums[kPassB]) != 0};
  }
};

// 1/2 sum |p - q|. Pass sums: A = sum |q - p|, B = sum sigma q with sigma = sign(q - p) (0 where
// p = q: the subgradient 0; B is taken only for a gradient). Gradient: gs / 2 q (sigma - B).
template <class O>
struct Tvd {
  using T = typename O::Scalar;
  using V = typename O::V;
  static constexpr unsigned kSlots = slot_bit(kZs) | slot_bit(kZt);
  static constexpr size_t kLogs = 0;
  static constexpr bool kPass = true;

  template <bool kGuarded, class Sums>
  KD_SWEEP_INLINE void add(Sums& sums, const ExpChunk<O>& c) const {
    sums[kZs].add(c.es);
    sums[kZt].add(c.et);
  }
  void log_args(const double*, double*) const {}
  double value(const double* sums, const double*) const { return 0.5 * sums[kPassA]; }

  struct Pass {
    V izs, izt;
    bool grad;  // B serves only the gradient
    template <class C>
    KD_SWEEP_INLINE void add(RowSum<O>& a, RowSum<O>& b, const C& c) const {
      const V q = O::mul(c.es(), izs);
      const V d = O::sub(q, O::mul(c.et(), izt));
      a.add(O::abs(d));
      if (grad) b.add(O::mul(O::sign(d), q));
    }
  };
  Pass pass(const double* sums, bool grad) const {
    return Pass{O::set1(static_cast<T>(1.0 / sums[kZs])), O::set1(static_cast<T>(1.0 / sums[kZt])), grad};
  }

  struct Grad {
    V izs, izt, c, b;
    bool on;
    template <bool kCareful, class C>
    KD_SWEEP_INLINE V at(const C& ch) const {
      if (kCareful && !on) return O::set1(0);
      const V es = ch.es();
      const V sigma = O::sign(O::sub(O::mul(es, izs), O::mul(ch.et(), izt)));
      return O::mul(O::mul(c, es), O::sub(sigma, b));
    }
  };
  Grad grad(const double* sums, double gs) const {
    const Pass p = pass(sums, true);
    return Grad{p.izs, p.izt, O::set1(static_cast<T>(0.5 * gs / sums[kZs])), O::set1(static_cast<T>(sums[kPassB])),
                gs != 0.0};
  }
};

// The soft term of a divergence.
template <class O, Divergence kDiv>
struct SoftTermOf;
template <class O>
struct SoftTermOf<O, Divergence::kKl> {
  using type = ForwardKl<O>;
  static type make(const KdProblem<typename O::Scalar>& p) { return type{p.temperature}; }
};
template <class O>
struct SoftTermOf<O, Divergence::kReverseKl> {
  using type = ReverseKl<O>;
  static type make(const KdProblem<typename O::Scalar>& p) { return type{p.temperature}; }
};
template <class O>
struct SoftTermOf<O, Divergence::kJsd> {
  using type = Jsd<O>;
  static type make(const KdProblem<typename O::Scalar>& p) { return type{p.temperature, p.beta}; }
};
template <class O>
struct SoftTermOf<O, Divergence::kTvd> {
  using type = Tvd<O>;
  static type make(const KdProblem<typename O::Scalar>&) { return type{}; }
};

// The second pass of a soft term with kPass over a kept row, after sweep 2 (see PassChunk for kSaved
// and kGuarded): its two sums into sums[kPassA], sums[kPassB].
template <class O, bool kSaved, bool kGuarded, class Soft, class Row, class Exps, class Hard>
KD_SWEEP_INLINE inline void pass_sweep(const Row& row, size_t C, const Exps& exps, const Hard& hard,
                                       const Soft& soft, bool grad, double (&sums)[kSumsLen]) {
  const auto ps = soft.pass(sums, grad);
  RowSum<O> a, b;
  sweep_fold<O>(
      C, row.s,
      [&](size_t j, size_t n) KD_SWEEP_INLINE {
        const PassChunk<O, kSaved, kGuarded, Row, Exps, Hard> c{row, exps, hard, j, n};
        ps.add(a, b, c);
      },
      [&]() KD_SWEEP_INLINE {
        a.fold();
        b.fold();
      });
  sums[kPassA] = a.sum();
  sums[kPassB] = b.sum();
}

}  // namespace KD_ISA
}  // namespace kd
