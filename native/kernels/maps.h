// Feature-map distances and attention transfer: row kernels over pairs of maps, one sweep per row for
// the value and the gradient (attention adds a sweep for its gradient and one where its moments
// cancel). See sweeps.h for the row machinery and kernels.h for what each kernel computes.
#pragma once

#include <limits>

#include "sweeps.h"

namespace kd {
namespace KD_ISA {

// Float rows whose loss is not finite are computed again in double, element by element, as the js
// backend computes every row: there a float intermediate may have left the float range (|s - t| or
// (s - t)^2, |x|^beta past FLT_MAX) where the exact value, a double, did not. Rows holding inf or NaN
// come here too and keep their inf or NaN. (Double rows have no wider type to go to: their
// intermediates overflow where the js backend's do.)
template <typename S>
constexpr bool kWideFallback = sizeof(S) < sizeof(double);

inline double sign_of(double d) { return d > 0 ? 1.0 : (d < 0 ? -1.0 : (d == 0 ? 0.0 : d)); }

// A feature row in double: sum_j |s - t|^p, and the gradient row grad_scale * p |d|^(p-1) sign(d).
template <int kP, class S, class G>
double feature_row_wide(const S* s, const S* t, size_t C, G* g, double grad_scale) {
  double row = 0.0;
  for (size_t j = 0; j < C; ++j) {
    const double d = static_cast<double>(s[j]) - static_cast<double>(t[j]);
    row += kP == 2 ? d * d : ::fabs(d);
    if (g != nullptr) g[j] = static_cast<G>(grad_scale * kP * (kP == 2 ? d : sign_of(d)));
  }
  return row;
}

template <class O, int kP, bool kGrad>
double feature_rows_impl(const FeatureLayer<typename O::Scalar>& L, size_t r0, size_t r1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const size_t C = L.cols;
  const V scale = O::set1(static_cast<T>(L.grad_scale * kP));  // d|d|^p/dd = p |d|^(p-1) sign(d)
  double total = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const auto* s = L.student + r * C;
    const auto* t = L.teacher + r * C;
    RowSum<O> acc;
    sweep_fold<O>(C, s, [&](size_t j, size_t n) KD_SWEEP_INLINE {
      const V d = O::sub(load_in<O>(s + j, n, 0), load_in<O>(t + j, n, 0));
      acc.add(kP == 2 ? O::mul(d, d) : O::abs(d));
      if (kGrad) store_out<O>(L.grad + r * C + j, n, O::mul(scale, kP == 2 ? d : O::sign(d)));
    }, [&]() KD_SWEEP_INLINE { acc.fold(); });
    double row = acc.sum();
    if (kWideFallback<T> && !__builtin_isfinite(row)) {
      row = feature_row_wide<kP>(s, t, C, kGrad ? L.grad + r * C : nullptr, L.grad_scale);
    }
    if (L.row_out) L.row_out[r] += L.row_weight * row;
    total += row;
  }
  return total;
}

template <class O>
double feature_rows(const FeatureLayer<typename O::Scalar>& L, size_t r0, size_t r1) {
  if (L.p == 1) {
    return L.grad ? feature_rows_impl<O, 1, true>(L, r0, r1) : feature_rows_impl<O, 1, false>(L, r0, r1);
  }
  return L.grad ? feature_rows_impl<O, 2, true>(L, r0, r1) : feature_rows_impl<O, 2, false>(L, r0, r1);
}

// |x|^beta for beta > 0: 0^beta = 0, inf^beta = inf, NaN^beta = NaN. beta 1 (kMode 1) and 2 (kMode 2)
// take exact shortcuts. Other betas: double lanes take pow_pos, whose error does not grow with
// |beta ln|x|| (see vecmath.h); float lanes exp(beta ln|x|), whose error of about |beta ln|x|| 2^-24
// stays inside the float32 tolerance for the maps' usual range (exp(-inf) = 0 gives 0^beta = 0).
template <class O, int kMode>
inline typename O::V abs_pow(typename O::V x, typename O::V beta) {
  if (kMode == 2) return O::mul(x, x);
  const typename O::V ax = O::abs(x);
  if (kMode == 1) return ax;
  if constexpr (sizeof(typename O::Scalar) == 8) {
    return O::pow_pos(ax, beta);
  } else {
    return O::exp(O::mul(beta, O::log(ax)));
  }
}

// |x|^beta / x, the gradient's factor: x for beta 2 and sign(x) for beta 1 (exact; x * x / x would
// underflow), for other betas |x|^beta / x unless |x|^beta is below the normal range (where it lost
// the bits the quotient needs): then sign(x) |x|^(beta - 1). 0 at x = 0 (the subgradient), which a
// NaN of the row's other factor still turns into NaN.
template <int kMode>
inline double pow_ratio(double x, double ps, double beta) {
  if (x == 0.0) return 0.0;
  if (kMode == 2) return x;
  if (kMode == 1) return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x;
  if (!(ps < DBL_MIN)) return ps / x;
  return ::copysign(::pow(::fabs(x), beta - 1.0), x);
}

template <class O, int kMode>
inline typename O::V pow_ratio(typename O::V x, typename O::V ps, typename O::V beta_m1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  if constexpr (kMode == 2) {
    return x;
  } else if constexpr (kMode == 1) {
    return O::sign(x);
  } else if constexpr (O::N == 1) {
    if (x == T(0)) return T(0);
    if (!(ps < std::numeric_limits<T>::min())) return ps / x;
    return O::mul(O::sign(x), abs_pow<O, 0>(x, beta_m1));
  } else {
    const V quotient = O::nz_div(ps, x);
    const V tiny = O::set1(std::numeric_limits<T>::min());
    // Lanes at x = 0 pass; NaN lanes take the second form, which is NaN too.
    const auto ok = O::ge(O::select(O::eq(x, O::set1(T(0))), tiny, ps), tiny);
    if (O::all(ok)) return quotient;
    return O::select(ok, quotient, O::mul(O::sign(x), abs_pow<O, 0>(x, beta_m1)));
  }
}

// The one-sweep form of a row's loss is used while loss >= kAttentionOneSweep * (sum a_s^2 + sum a_t^2);
// below that the difference of moments has cancelled too far and the row takes the exact sweep over
// differences. The moments carry about k * 2^-53 relative error (k grows like the square root of the
// row length), so the one-sweep loss is within k * 2^-53 / ratio of the exact one. For float rows
// that is below the float-rounded exact sweep's own error (about 2^-24 * sqrt(1 / ratio)) down to a
// ratio of 2^-40, where both are noise; double rows keep a margin of 2^4.
template <typename T>
constexpr double kAttentionOneSweep = sizeof(T) == 4 ? 0x1p-40 : 0x1p-4;

// An attention row in double (see kWideFallback), as attention_rows_impl defines it: the loss
// sum_j (a_s - a_t)^2 and, with g, the gradient row.
template <int kMode, class S, class G>
double attention_row_wide(const S* s, const S* t, size_t C, double beta, G* g, double grad_scale) {
  const auto pw = [&](double x) {
    return kMode == 2 ? x * x : kMode == 1 ? ::fabs(x) : ::pow(::fabs(x), beta);
  };
  double Ss = 0.0, St = 0.0;
  for (size_t j = 0; j < C; ++j) {
    Ss += pw(static_cast<double>(s[j]));
    St += pw(static_cast<double>(t[j]));
  }
  const bool norm_s = !(Ss <= 1e-8);  // a NaN sum normalises: the whole row turns NaN
  const double ns = norm_s ? 1.0 / Ss : 1.0, nt = !(St <= 1e-8) ? 1.0 / St : 1.0;
  double row = 0.0, da = 0.0;
  for (size_t j = 0; j < C; ++j) {
    const double as = pw(static_cast<double>(s[j])) * ns;
    const double d = as - pw(static_cast<double>(t[j])) * nt;
    row += d * d;
    da += d * as;
  }
  if (g != nullptr) {
    const double sub = norm_s ? 2.0 * da : 0.0;
    const double outer = grad_scale * beta * ns;
    for (size_t j = 0; j < C; ++j) {
      const double x = static_cast<double>(s[j]);
      const double ps = pw(x);
      const double gk = 2.0 * (ps * ns - pw(static_cast<double>(t[j])) * nt) - sub;
      g[j] = static_cast<G>(outer * pow_ratio<kMode>(x, ps, beta) * gk);
    }
  }
  return row;
}

template <class O, int kMode, bool kGrad>
double attention_rows_impl(const AttentionProblem<typename O::Scalar>& P, size_t r0, size_t r1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const size_t C = P.cols;
  const V beta = O::set1(static_cast<T>(P.beta));
  const bool stream_grad = kGrad && P.rows * C * sizeof(T) >= kStreamBytes;
  double total = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const auto* s = P.student + r * C;
    const auto* t = P.teacher + r * C;
    // Sweep 1, the moments of p = |x|^beta, all accumulated in double (p widened first: a product of
    // two floats is exact there): the row sums (the normalisers), sum p_s^2, sum p_t^2 and sum p_s p_t.
    // Tail lanes load 0, and 0^beta = 0.
    typename O::Acc ss = O::acc_zero(), st = O::acc_zero(), ss2 = O::acc_zero(), st2 = O::acc_zero(),
                    sst = O::acc_zero();
    sweep<O>(C, s, [&](size_t j, size_t n) KD_SWEEP_INLINE {
      const V ps = abs_pow<O, kMode>(load_in<O>(s + j, n, 0), beta);
      const V pt = abs_pow<O, kMode>(load_in<O>(t + j, n, 0), beta);
      ss = O::acc_add(ss, ps);
      st = O::acc_add(st, pt);
      ss2 = O::acc_fma(ss2, ps, ps);
      st2 = O::acc_fma(st2, pt, pt);
      sst = O::acc_fma(sst, ps, pt);
    });
    const double Ss = O::acc_sum(ss), St = O::acc_sum(st);
    // A map is normalised where its sum exceeds 1e-8 (the seed's threshold) or is NaN: a NaN makes its
    // whole row NaN, loss and gradient, as an infinity does.
    const bool norm_s = !(Ss <= 1e-8);
    const double ns = norm_s ? 1.0 / Ss : 1.0, nt = !(St <= 1e-8) ? 1.0 / St : 1.0;
    const double Sss = O::acc_sum(ss2), Stt = O::acc_sum(st2), Sst = O::acc_sum(sst);
    // sum (a_s - a_t)^2 = sum d a_s - sum d a_t, each from the moments; identical rows give exactly 0.
    double da = ns * (ns * Sss - nt * Sst);
    double row = da + nt * (nt * Stt - ns * Sst);
    const double mass = ns * ns * Sss + nt * nt * Stt;
    const V vns = O::set1(static_cast<T>(ns)), vnt = O::set1(static_cast<T>(nt));
    if (!(row >= kAttentionOneSweep<T> * mass && mass <= DBL_MAX)) {
      // Sweep 2 (rows that cancelled, overflowed or hold NaN): the squared differences of the
      // normalised maps, and sum d a_s for the gradient.
      RowSum<O> sq, ga;
      sweep_fold<O>(C, s, [&](size_t j, size_t n) KD_SWEEP_INLINE {
        const V as = O::mul(abs_pow<O, kMode>(load_in<O>(s + j, n, 0), beta), vns);
        const V at = O::mul(abs_pow<O, kMode>(load_in<O>(t + j, n, 0), beta), vnt);
        const V d = O::sub(as, at);
        sq.add(O::mul(d, d));
        if (kGrad) ga.add(O::mul(d, as));
      }, [&]() KD_SWEEP_INLINE {
        sq.fold();
        if (kGrad) ga.fold();
      });
      row = sq.sum();
      da = kGrad ? ga.sum() : 0.0;
    }
    const bool wide = kWideFallback<T> && !__builtin_isfinite(row);
    if (wide) row = attention_row_wide<kMode>(s, t, C, P.beta, kGrad ? P.grad + r * C : nullptr, P.grad_scale);
    if (P.row_out) P.row_out[r] = row / static_cast<double>(C);
    total += row;
    if (kGrad && !wide) {
      // g_k = 2 (a_s,k - a_t,k); dL/dx_k = beta |x_k|^(beta-1) sign(x_k) * ns * (g_k - sum_i g_i a_i)
      // when the row is normalised, else beta |x_k|^(beta-1) sign(x_k) * g_k. At x = 0 the factor
      // |x|^(beta-1) sign(x) is 0 for every beta (the subgradient, also where it is unbounded); a row
      // whose loss is NaN keeps NaN there too.
      const V two = O::set1(static_cast<T>(2.0));
      const V sub_ga = O::set1(static_cast<T>(norm_s ? 2.0 * da : 0.0));
      const V outer = O::set1(static_cast<T>(P.grad_scale * P.beta * ns));
      const V beta_m1 = O::set1(static_cast<T>(P.beta - 1.0));
      write_row<O>(P.grad + r * C, C, stream_grad, [](size_t) KD_SWEEP_INLINE {},
                   [&](size_t j, size_t n) KD_SWEEP_INLINE {
        const V x = load_in<O>(s + j, n, 0);
        const V ps = abs_pow<O, kMode>(x, beta);
        const V as = O::mul(ps, vns);
        const V at = O::mul(abs_pow<O, kMode>(load_in<O>(t + j, n, 0), beta), vnt);
        const V gk = O::sub(O::mul(two, O::sub(as, at)), sub_ga);
        return O::mul(outer, O::mul(pow_ratio<O, kMode>(x, ps, beta_m1), gk));
      });
    }
  }
  if (stream_grad) O::fence();
  return total;
}

template <class O, int kMode>
double attention_rows_mode(const AttentionProblem<typename O::Scalar>& p, size_t r0, size_t r1) {
  return p.grad ? attention_rows_impl<O, kMode, true>(p, r0, r1) : attention_rows_impl<O, kMode, false>(p, r0, r1);
}

template <class O>
double attention_rows(const AttentionProblem<typename O::Scalar>& p, size_t r0, size_t r1) {
  if (p.beta == 2.0) return attention_rows_mode<O, 2>(p, r0, r1);
  if (p.beta == 1.0) return attention_rows_mode<O, 1>(p, r0, r1);
  return attention_rows_mode<O, 0>(p, r0, r1);
}

}  // namespace KD_ISA
}  // namespace kd
