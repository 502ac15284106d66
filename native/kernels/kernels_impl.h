// The loss kernels, written once over an ISA's Ops<T> (see ops_scalar.h for the interface) and compiled
// once per ISA into namespace kd::KD_ISA. Include this only from an ISA's .cc file, after its ops
// header. Everything here lives in the ISA namespace, so no inline function compiled with one ISA's
// flags can be picked by the linker for another ISA.
//
// Row kernels make at most three sweeps over a row that is hot in L1/L2: max, then exp and the sums,
// then (gradient only) the combination of the exps saved in the first two sweeps.
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

namespace kd {
namespace KD_ISA {

// Calls f(j, n) over [0, cols) in chunks of O::N lanes; the last call may have n < O::N.
template <class O, class F>
inline void sweep(size_t cols, F&& f) {
  size_t j = 0;
  for (; j + O::N <= cols; j += O::N) f(j, O::N);
  if (j < cols) f(j, cols - j);
}

template <class O>
inline typename O::V loadf(const typename O::Scalar* p, size_t n, typename O::Scalar fill) {
  return n == O::N ? O::load(p) : O::load_n(p, n, fill);
}

template <class O>
inline void storef(typename O::Scalar* p, size_t n, typename O::V v) {
  if (n == O::N) {
    O::store(p, v);
  } else {
    O::store_n(p, n, v);
  }
}

template <class O>
inline typename O::V keepf(typename O::V v, size_t n) {
  return n == O::N ? v : O::keep_n(v, n);
}

template <typename T>
inline int64_t class_of(const KdProblem<T>& p, size_t r) {
  if (p.target_kind == TargetKind::kInt32) return static_cast<const int32_t*>(p.target_index)[r];
  return static_cast<const uint32_t*>(p.target_index)[r];
}

template <typename T>
inline bool row_kept(const KdProblem<T>& p, size_t r) {
  if (p.mask != nullptr && p.mask[r] == 0) return false;
  if ((p.target_kind == TargetKind::kInt32 || p.target_kind == TargetKind::kUint32) &&
      class_of(p, r) == p.ignore_index) {
    return false;
  }
  return true;
}

template <class O>
inline void zero_row(typename O::Scalar* g, size_t cols) {
  const typename O::V z = O::set1(0);
  sweep<O>(cols, [&](size_t j, size_t n) { storef<O>(g + j, n, z); });
}

inline double clampd(double x, double lo, double hi) {
  return x < lo ? lo : (x > hi ? hi : x);
}

// One distillation row kernel per (hard loss, target form, gradient) combination, so the inner loops
// carry no per-element branches.
template <class O, HardKind kHard, bool kMatrixTargets, bool kGrad>
KdPartial kd_rows_impl(const KdProblem<typename O::Scalar>& P, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  using T = typename O::Scalar;
  using V = typename O::V;
  using Acc = typename O::Acc;
  const size_t C = P.cols;
  const T inf = static_cast<T>(INFINITY);
  const V inv_t = O::set1(static_cast<T>(1.0 / P.temperature));
  const bool unit_temp = P.temperature == 1.0;
  const double ls = P.label_smoothing;
  const double ls_c = ls / static_cast<double>(C);
  const V eps_lo = O::set1(static_cast<T>(P.epsilon));
  const V eps_hi = O::set1(static_cast<T>(1.0 - P.epsilon));
  // Logs of the clamped predictions are needed element-wise only for matrix targets or smoothing.
  const bool probs_need_logs = kMatrixTargets || ls > 0.0;

  KdPartial out;
  for (size_t r = r0; r < r1; ++r) {
    const T* s = P.student + r * C;
    const T* t = P.teacher + r * C;
    const T* y = kMatrixTargets ? P.target_matrix + r * C : nullptr;
    T* g = kGrad ? P.grad + r * C : nullptr;
    if (!row_kept(P, r)) {
      if (P.row_soft) P.row_soft[r] = 0.0;
      if (P.row_hard) P.row_hard[r] = 0.0;
      if (kGrad) zero_row<O>(g, C);
      continue;
    }
    const int64_t cls = kMatrixTargets || kHard == HardKind::kNone ? -1 : class_of(P, r);

    // Sweep 1: row maxima.
    V vms = O::set1(-inf), vmt = O::set1(-inf);
    sweep<O>(C, [&](size_t j, size_t n) {
      vms = O::max(vms, loadf<O>(s + j, n, -inf));
      vmt = O::max(vmt, loadf<O>(t + j, n, -inf));
    });
    const T ms = O::reduce_max(vms), mt = O::reduce_max(vmt);
    const V vms1 = O::set1(ms), vmt1 = O::set1(mt);

    // Sweep 2: exps and sums. Tail lanes are loaded as 0 and their contributions zeroed.
    Acc zs = O::acc_zero(), zt = O::acc_zero(), w = O::acc_zero();
    Acc z1 = O::acc_zero(), ydot = O::acc_zero(), ysum = O::acc_zero(), dsum = O::acc_zero();
    T* es_out = g;
    T* et_out = scratch;
    T* e1_out = scratch + C;
    sweep<O>(C, [&](size_t j, size_t n) {
      const V xs = loadf<O>(s + j, n, 0), xt = loadf<O>(t + j, n, 0);
      const V ds = O::sub(xs, vms1);
      const V b = O::mul(ds, inv_t);
      const V a = O::mul(O::sub(xt, vmt1), inv_t);
      const V es = keepf<O>(O::exp(b), n);
      const V et = keepf<O>(O::exp(a), n);
      zs = O::acc_add(zs, es);
      zt = O::acc_add(zt, et);
      // Teacher probabilities of exactly 0 contribute exactly 0 (also when a - b is infinite).
      w = O::acc_add(w, O::pos_or_zero(et, O::mul(et, O::sub(a, b))));
      if (kGrad) {
        storef<O>(es_out + j, n, es);
        storef<O>(et_out + j, n, et);
      }
      if (kHard == HardKind::kCrossEntropyLogits) {
        const V e1 = unit_temp ? es : keepf<O>(O::exp(ds), n);
        z1 = O::acc_add(z1, e1);
        dsum = O::acc_add(dsum, keepf<O>(ds, n));
        if (kMatrixTargets) {
          const V yv = loadf<O>(y + j, n, 0);
          ysum = O::acc_add(ysum, yv);
          ydot = O::acc_add(ydot, O::mul(yv, ds));
        }
        if (kGrad && !unit_temp) storef<O>(e1_out + j, n, e1);
      } else if (kHard == HardKind::kCrossEntropyProbs) {
        if (probs_need_logs) {
          const V lp = keepf<O>(O::log(O::min(O::max(xs, eps_lo), eps_hi)), n);
          dsum = O::acc_add(dsum, lp);
          if (kMatrixTargets) {
            const V yv = loadf<O>(y + j, n, 0);
            ydot = O::acc_add(ydot, O::mul(yv, lp));
          }
        }
      } else if (kHard == HardKind::kMse) {
        const V d = kMatrixTargets ? O::sub(xs, loadf<O>(y + j, n, 0)) : xs;
        ydot = O::acc_add(ydot, O::mul(d, d));
      }
    });

    const double Zs = O::acc_sum(zs), Zt = O::acc_sum(zt);
    const double soft = O::acc_sum(w) / Zt + ::log(Zs / Zt);

    double hard = 0.0;
    double ysum_s = 0.0, Z1 = 1.0;  // smoothed target mass and CE normaliser, for the gradient
    if (kHard == HardKind::kCrossEntropyLogits) {
      Z1 = O::acc_sum(z1);
      const double lz1 = ::log(Z1);
      const double ds_sum = O::acc_sum(dsum);
      if (kMatrixTargets) {
        ysum_s = (1.0 - ls) * O::acc_sum(ysum) + ls;
        hard = ysum_s * lz1 - ((1.0 - ls) * O::acc_sum(ydot) + ls_c * ds_sum);
      } else {
        ysum_s = 1.0;
        const double dc = static_cast<double>(s[cls]) - static_cast<double>(ms);
        hard = lz1 - ((1.0 - ls) * dc + ls_c * ds_sum);
      }
    } else if (kHard == HardKind::kCrossEntropyProbs) {
      const double log_sum = probs_need_logs ? O::acc_sum(dsum) : 0.0;
      if (kMatrixTargets) {
        hard = -((1.0 - ls) * O::acc_sum(ydot) + ls_c * log_sum);
      } else {
        const double pc = clampd(static_cast<double>(s[cls]), P.epsilon, 1.0 - P.epsilon);
        hard = -((1.0 - ls) * ::log(pc) + ls_c * log_sum);
      }
    } else if (kHard == HardKind::kMse) {
      double sq = O::acc_sum(ydot);
      if (!kMatrixTargets) {
        const double sc = static_cast<double>(s[cls]);
        sq += 1.0 - 2.0 * sc;  // (s_c - 1)^2 - s_c^2
      }
      hard = sq / static_cast<double>(C);
    }

    if (P.row_soft) P.row_soft[r] = soft;
    if (P.row_hard) P.row_hard[r] = hard;
    out.soft += soft;
    out.hard += hard;
    out.kept += 1.0;

    if (kGrad) {
      // Sweep 3: grad = gs * (p_s - p_t) / T + gh * dHard/ds, from the exps saved in sweep 2.
      const double gs = P.grad_soft_scale / P.temperature;
      const double gh = P.grad_hard_scale;
      const V cs = O::set1(static_cast<T>(gs / Zs));
      const V ct = O::set1(static_cast<T>(-gs / Zt));
      const V c1 = O::set1(static_cast<T>(gh * ysum_s / Z1));
      const V cy = O::set1(static_cast<T>(-gh * (1.0 - ls)));
      const V cu = O::set1(static_cast<T>(-gh * ls_c));  // smoothing mass on every class
      const V c_mse = O::set1(static_cast<T>(2.0 * gh / static_cast<double>(C)));
      const V gh_v = O::set1(static_cast<T>(-gh));
      const V yu = O::set1(static_cast<T>(ls_c));
      const V one_m_ls = O::set1(static_cast<T>(1.0 - ls));
      sweep<O>(C, [&](size_t j, size_t n) {
        V gv = O::fma(cs, loadf<O>(es_out + j, n, 0), O::mul(ct, loadf<O>(et_out + j, n, 0)));
        if (kHard == HardKind::kCrossEntropyLogits) {
          const V e1 = unit_temp ? loadf<O>(es_out + j, n, 0) : loadf<O>(e1_out + j, n, 0);
          gv = O::fma(c1, e1, gv);
          gv = O::add(gv, cu);
          if (kMatrixTargets) gv = O::fma(cy, loadf<O>(y + j, n, 0), gv);
        } else if (kHard == HardKind::kCrossEntropyProbs) {
          const V xs = loadf<O>(s + j, n, static_cast<T>(0.5));
          // d/ds of -y' ln(clamp(s)) = -y'/s inside the clamp range, 0 outside.
          V yv = yu;
          if (kMatrixTargets) yv = O::fma(one_m_ls, loadf<O>(y + j, n, 0), yu);
          gv = O::add(gv, O::in_range_or_zero(xs, eps_lo, eps_hi, O::mul(gh_v, O::div(yv, xs))));
        } else if (kHard == HardKind::kMse) {
          V d = loadf<O>(s + j, n, 0);
          if (kMatrixTargets) d = O::sub(d, loadf<O>(y + j, n, 0));
          gv = O::fma(c_mse, d, gv);
        }
        storef<O>(g + j, n, gv);
      });
      if (!kMatrixTargets && kHard != HardKind::kNone) {
        // The class-index target's one-hot part, added at its single element.
        double fix = 0.0;
        if (kHard == HardKind::kCrossEntropyLogits) {
          fix = -gh * (1.0 - ls);
        } else if (kHard == HardKind::kCrossEntropyProbs) {
          const double sc = static_cast<double>(s[cls]);
          if (sc >= static_cast<double>(static_cast<T>(P.epsilon)) &&
              sc <= static_cast<double>(static_cast<T>(1.0 - P.epsilon))) {
            fix = -gh * (1.0 - ls) / sc;
          }
        } else if (kHard == HardKind::kMse) {
          fix = -2.0 * gh / static_cast<double>(C);
        }
        g[cls] = static_cast<T>(static_cast<double>(g[cls]) + fix);
      }
    }
  }
  return out;
}

template <class O, HardKind kHard, bool kMatrixTargets>
KdPartial kd_rows_grad(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  return p.grad != nullptr ? kd_rows_impl<O, kHard, kMatrixTargets, true>(p, r0, r1, scratch)
                           : kd_rows_impl<O, kHard, kMatrixTargets, false>(p, r0, r1, scratch);
}

template <class O, HardKind kHard>
KdPartial kd_rows_targets(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                          typename O::Scalar* scratch) {
  return p.target_kind == TargetKind::kMatrix ? kd_rows_grad<O, kHard, true>(p, r0, r1, scratch)
                                              : kd_rows_grad<O, kHard, false>(p, r0, r1, scratch);
}

template <class O>
KdPartial kd_rows(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                  typename O::Scalar* scratch) {
  switch (p.hard) {
    case HardKind::kCrossEntropyLogits:
      return kd_rows_targets<O, HardKind::kCrossEntropyLogits>(p, r0, r1, scratch);
    case HardKind::kCrossEntropyProbs:
      return kd_rows_targets<O, HardKind::kCrossEntropyProbs>(p, r0, r1, scratch);
    case HardKind::kMse:
      return kd_rows_targets<O, HardKind::kMse>(p, r0, r1, scratch);
    case HardKind::kNone:
      break;
  }
  return kd_rows_grad<O, HardKind::kNone, false>(p, r0, r1, scratch);
}

template <class O, int kP, bool kGrad>
double feature_rows_impl(const FeatureLayer<typename O::Scalar>& L, size_t r0, size_t r1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const size_t C = L.cols;
  const V scale = O::set1(static_cast<T>(L.grad_scale * kP));  // d|d|^p/dd = p |d|^(p-1) sign(d)
  double total = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const T* s = L.student + r * C;
    const T* t = L.teacher + r * C;
    auto acc = O::acc_zero();
    sweep<O>(C, [&](size_t j, size_t n) {
      const V d = O::sub(loadf<O>(s + j, n, 0), loadf<O>(t + j, n, 0));
      acc = O::acc_add(acc, kP == 2 ? O::mul(d, d) : O::abs(d));
      if (kGrad) storef<O>(L.grad + r * C + j, n, O::mul(scale, kP == 2 ? d : O::sign(d)));
    });
    const double row = O::acc_sum(acc);
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

// |x|^beta with 0^beta = 0; beta 1 and 2 take exact shortcuts.
template <class O>
inline typename O::V abs_pow(typename O::V x, int mode, typename O::V beta) {
  if (mode == 2) return O::mul(x, x);
  const typename O::V ax = O::abs(x);
  if (mode == 1) return ax;
  return O::pos_or_zero(ax, O::exp(O::mul(beta, O::log(ax))));
}

template <class O, bool kGrad>
double attention_rows_impl(const AttentionProblem<typename O::Scalar>& P, size_t r0, size_t r1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const size_t C = P.cols;
  const int mode = P.beta == 2.0 ? 2 : (P.beta == 1.0 ? 1 : 0);
  const V beta = O::set1(static_cast<T>(P.beta));
  double total = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const T* s = P.student + r * C;
    const T* t = P.teacher + r * C;
    // Sweep 1: row sums of |x|^beta (tail lanes load 0, and 0^beta = 0).
    auto ss = O::acc_zero(), st = O::acc_zero();
    sweep<O>(C, [&](size_t j, size_t n) {
      ss = O::acc_add(ss, abs_pow<O>(loadf<O>(s + j, n, 0), mode, beta));
      st = O::acc_add(st, abs_pow<O>(loadf<O>(t + j, n, 0), mode, beta));
    });
    const double Ss = O::acc_sum(ss), St = O::acc_sum(st);
    const bool norm_s = Ss > 1e-8;
    const double ns = norm_s ? 1.0 / Ss : 1.0, nt = St > 1e-8 ? 1.0 / St : 1.0;
    const V vns = O::set1(static_cast<T>(ns)), vnt = O::set1(static_cast<T>(nt));
    // Sweep 2: squared differences of the normalised maps; sum of g_i * a_i for the gradient.
    auto sq = O::acc_zero(), ga = O::acc_zero();
    sweep<O>(C, [&](size_t j, size_t n) {
      const V as = O::mul(abs_pow<O>(loadf<O>(s + j, n, 0), mode, beta), vns);
      const V at = O::mul(abs_pow<O>(loadf<O>(t + j, n, 0), mode, beta), vnt);
      const V d = O::sub(as, at);
      sq = O::acc_add(sq, O::mul(d, d));
      if (kGrad) ga = O::acc_add(ga, O::mul(d, as));
    });
    const double row = O::acc_sum(sq);
    if (P.row_out) P.row_out[r] = row / static_cast<double>(C);
    total += row;
    if (kGrad) {
      // g_k = 2 (a_s,k - a_t,k); dL/dx_k = beta |x_k|^(beta-1) sign(x_k) * ns * (g_k - sum_i g_i a_i)
      // when the row is normalised, else beta |x_k|^(beta-1) sign(x_k) * g_k. At x = 0 the gradient
      // is 0 for every beta (the subgradient, also where |x|^(beta-1) is unbounded).
      const V two = O::set1(static_cast<T>(2.0));
      const V sub_ga = O::set1(static_cast<T>(norm_s ? 2.0 * O::acc_sum(ga) : 0.0));
      const V outer = O::set1(static_cast<T>(P.grad_scale * P.beta * ns));
      T* g = P.grad + r * C;
      sweep<O>(C, [&](size_t j, size_t n) {
        const V x = loadf<O>(s + j, n, 0);
        const V ps = abs_pow<O>(x, mode, beta);
        const V as = O::mul(ps, vns);
        const V at = O::mul(abs_pow<O>(loadf<O>(t + j, n, 0), mode, beta), vnt);
        const V gk = O::sub(O::mul(two, O::sub(as, at)), sub_ga);
        storef<O>(g + j, n, O::mul(outer, O::mul(O::nz_div(ps, x), gk)));
      });
    }
  }
  return total;
}

template <class O>
double attention_rows(const AttentionProblem<typename O::Scalar>& p, size_t r0, size_t r1) {
  return p.grad ? attention_rows_impl<O, true>(p, r0, r1) : attention_rows_impl<O, false>(p, r0, r1);
}

template <class O>
void vexp(const typename O::Scalar* in, typename O::Scalar* out, size_t n) {
  sweep<O>(n, [&](size_t j, size_t k) { storef<O>(out + j, k, O::exp(loadf<O>(in + j, k, 0))); });
}

template <class O>
void vlog(const typename O::Scalar* in, typename O::Scalar* out, size_t n) {
  sweep<O>(n, [&](size_t j, size_t k) { storef<O>(out + j, k, O::log(loadf<O>(in + j, k, 1))); });
}

template <class O>
double vsum(const typename O::Scalar* in, size_t n) {
  auto acc = O::acc_zero();
  sweep<O>(n, [&](size_t j, size_t k) { acc = O::acc_add(acc, loadf<O>(in + j, k, 0)); });
  return O::acc_sum(acc);
}

template <typename T>
KernelSet<T> make_set() {
  using O = Ops<T>;
  return KernelSet<T>{&kd_rows<O>, &feature_rows<O>, &attention_rows<O>, &vexp<O>, &vlog<O>, &vsum<O>};
}

// The table of this ISA; defined once per ISA .cc file.
const KernelTable& table();

inline KernelTable make_table(const char* name) {
  return KernelTable{name, make_set<float>(), make_set<double>()};
}

}  // namespace KD_ISA
}  // namespace kd
