#include "reference.h"

#include <algorithm>
#include <cmath>

namespace kdt {

namespace {

constexpr LD kInf = std::numeric_limits<LD>::infinity();

// Softmax of x / T by log-sum-exp: z_j = (x_j - max) / T, logp_j = z_j - log(sum exp(z)).
struct Softmax {
  std::vector<LD> z, p, logp;
  LD lse = 0;
  LD cond = 0;  // sum_j p_j |z_j|: conditioning of the normaliser (see reference.h)
};

// Probabilities whose exp(z_j) is below z_min underflow to exactly 0 in the element type (the kernels
// compute exp(z_j) in it): they count as 0, except against a student log-probability of -inf, where
// the KL's term is +inf in exact arithmetic (a finite teacher logit has a positive probability,
// however small; only a teacher logit of -inf has probability exactly 0).
Softmax softmax(const LD* x, size_t n, LD temperature, LD z_min) {
  Softmax r;
  r.z.resize(n);
  r.p.resize(n);
  r.logp.resize(n);
  LD m = -kInf;
  for (size_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  LD sum = 0;
  for (size_t j = 0; j < n; ++j) {
    r.z[j] = x[j] == -kInf ? -kInf : (x[j] - m) / temperature;
    sum += std::exp(r.z[j]);
  }
  r.lse = std::log(sum);
  for (size_t j = 0; j < n; ++j) {
    r.logp[j] = r.z[j] - r.lse;
    // A row of -inf only (0 / 0), with +inf (inf / inf) or with NaN has no distribution: NaN.
    r.p[j] = !std::isfinite(r.lse) ? NAN : r.z[j] < z_min ? 0 : std::exp(r.logp[j]);
    if (!std::isfinite(r.lse)) r.logp[j] = NAN;
    if (r.p[j] > 0) r.cond += r.p[j] * std::fabs(r.z[j]);
  }
  return r;
}

// p * f with 0 * anything = 0 (a zero probability or weight contributes nothing).
LD wt(LD p, LD f) { return p == 0 ? 0 : p * f; }

// log(e^x + e^y); -inf where both are.
LD log_add_exp(LD x, LD y) {
  const LD hi = std::max(x, y), lo = std::min(x, y);
  return hi == -kInf ? hi : hi + std::log1p(std::exp(lo - hi));
}

// The gradient q (h - K) of a reverse KL or JSD term whose row constant K (the divergence, or
// KL(q || m)) is not finite, in exact arithmetic: NaN on the whole row without a student distribution;
// 0 at a student logit of -inf (q = 0); elsewhere q > 0, however far below the float range, so -inf
// where minus_inf (K = +inf against a finite h) and NaN otherwise (K NaN, or h = +inf as well).
LD not_finite_grad(const Softmax& q, size_t j, bool minus_inf) {
  if (!std::isfinite(q.lse)) return NAN;
  if (q.z[j] == -kInf) return 0;
  return minus_inf ? -kInf : NAN;
}

// The soft term of a row (p = teacher, q = student) into r.soft / r.soft_mag, and d(soft)/ds * T
// with its magnitude into g / g_mag (T, the scale and the absent-term rule are the caller's).
void soft_ref(const KdRowIn& in, const Softmax& q, const Softmax& p, KdRowRef& r, std::vector<LD>& g,
              std::vector<LD>& g_mag) {
  const size_t C = in.cols;
  r.soft = 0;
  r.soft_mag = 1 + q.cond + p.cond;
  LD qz = 0;  // sum q (|zs| + |zt|): the rounding a sum weighted by q carries
  for (size_t j = 0; j < C; ++j) qz += wt(q.p[j], std::fabs(q.z[j]) + std::fabs(p.z[j]));
  // The rounding of an element's p or q (relative), as the kernels take them from exps and sums.
  const auto rnd_p = [&](size_t j) { return 1 + std::fabs(p.z[j]) + p.cond; };
  const auto rnd_q = [&](size_t j) { return 1 + std::fabs(q.z[j]) + q.cond; };
  switch (in.divergence) {
    case kd::Divergence::kKl:
      // KL(p || q) = sum p (log p - log q); gradient q - p.
      for (size_t j = 0; j < C; ++j) {
        const bool underflowed_vs_zero = p.p[j] == 0 && p.z[j] > -kInf && q.logp[j] == -kInf;
        r.soft += underflowed_vs_zero ? kInf : wt(p.p[j], p.logp[j] - q.logp[j]);
        r.soft_mag += wt(p.p[j], std::fabs(p.z[j]) + std::fabs(q.z[j]));
        g[j] = q.p[j] - p.p[j];
        g_mag[j] = wt(q.p[j], rnd_q(j)) + wt(p.p[j], rnd_p(j));
      }
      break;
    case kd::Divergence::kReverseKl:
      // KL(q || p) = sum q (log q - log p); gradient q (h - KL(q || p)), h = log q - log p.
      for (size_t j = 0; j < C; ++j) {
        // A student probability below the float range (finite logit) against a teacher's exact 0: +inf.
        const bool underflowed_vs_zero = q.p[j] == 0 && q.z[j] > -kInf && p.logp[j] == -kInf;
        r.soft += underflowed_vs_zero ? kInf : wt(q.p[j], q.logp[j] - p.logp[j]);
      }
      r.soft_mag += qz;
      for (size_t j = 0; j < C; ++j) {
        g[j] = !std::isfinite(r.soft) ? not_finite_grad(q, j, r.soft == kInf && p.logp[j] != -kInf)
                                      : wt(q.p[j], q.logp[j] - p.logp[j] - r.soft);
        g_mag[j] = wt(q.p[j], rnd_q(j) + std::fabs(q.z[j]) + std::fabs(p.z[j]) + qz + std::fabs(g[j] / q.p[j]));
      }
      break;
    case kd::Divergence::kJsd: {
      // beta KL(p || m) + (1 - beta) KL(q || m), log m = log-sum-exp of log beta + log p and
      // log(1 - beta) + log q; gradient (1 - beta) q (log q - log m - KL(q || m)).
      const LD b = in.beta, lb = std::log(b), l1b = std::log1p(-b);
      std::vector<LD> lm(C);
      LD kp = 0, kq = 0;
      for (size_t j = 0; j < C; ++j) {
        lm[j] = log_add_exp(lb + p.logp[j], l1b + q.logp[j]);
        kp += wt(p.p[j], p.logp[j] - lm[j]);
        kq += wt(q.p[j], q.logp[j] - lm[j]);
        r.soft_mag += wt(p.p[j], rnd_p(j) + std::fabs(p.z[j]) + std::fabs(q.z[j])) +
                      wt(q.p[j], rnd_q(j) + std::fabs(p.z[j]) + std::fabs(q.z[j]));
      }
      r.soft = b * kp + (1 - b) * kq;
      for (size_t j = 0; j < C; ++j) {
        g[j] = !std::isfinite(kq) ? not_finite_grad(q, j, false) : wt(q.p[j], (1 - b) * (q.logp[j] - lm[j] - kq));
        g_mag[j] = wt(q.p[j], (1 - b) * (rnd_q(j) + rnd_p(j) + std::fabs(q.z[j]) + std::fabs(p.z[j]) + qz +
                                         std::fabs(q.logp[j] - lm[j] - kq)));
      }
      break;
    }
    case kd::Divergence::kTvd: {
      // 1/2 sum |p - q|; gradient q (sigma - sum sigma q) / 2, sigma = sign(q - p) (0 where p = q).
      // Where |q - p| is within the rounding of p and q, the kernels may take either sign: such a
      // class moves its own gradient by q and every class's by q_j q_k, which the magnitudes cover.
      std::vector<LD> sigma(C);
      LD sq = 0, amb = 0;
      for (size_t j = 0; j < C; ++j) {
        const LD d = q.p[j] - p.p[j];
        r.soft += std::fabs(d) / 2;
        r.soft_mag += (wt(p.p[j], rnd_p(j)) + wt(q.p[j], rnd_q(j))) / 2;
        sigma[j] = d > 0 ? 1 : d < 0 ? -1 : d == 0 ? 0 : d;
        sq += wt(q.p[j], sigma[j]);
        const LD tol = 16 * in.unit * (wt(p.p[j], rnd_p(j)) + wt(q.p[j], rnd_q(j)));
        if (std::fabs(d) <= tol) amb += q.p[j];
      }
      const LD rel = in.unit > 0 ? in.unit * 100 : 1;  // the magnitudes are judged relative to ~u
      for (size_t j = 0; j < C; ++j) {
        const LD d = q.p[j] - p.p[j];
        const bool a = std::fabs(d) <= 16 * in.unit * (wt(p.p[j], rnd_p(j)) + wt(q.p[j], rnd_q(j)));
        g[j] = wt(q.p[j], (sigma[j] - sq) / 2);
        g_mag[j] = wt(q.p[j], (rnd_q(j) + qz) / 2 + ((a ? 1 : 0) + amb) / rel);
      }
      break;
    }
  }
}

}  // namespace

KdRowRef kd_row_ref(const KdRowIn& in) {
  const size_t C = in.cols;
  KdRowRef r;
  const Softmax S = softmax(in.s, C, in.temperature, in.underflow_z);
  const Softmax Tt = softmax(in.t, C, in.temperature, in.underflow_z);

  std::vector<LD> gsoft(C), gsoft_mag(C);
  soft_ref(in, S, Tt, r, gsoft, gsoft_mag);

  // Targets with label smoothing: y'_j = (1 - ls) y_j + ls / C, y = the row or one-hot(cls); at
  // ls = 1 the targets' term is absent (y'_j = 1 / C whatever y is).
  std::vector<LD> y(C), yp(C);
  LD ysum = 0, ysum_abs = 0;
  for (size_t j = 0; j < C; ++j) {
    y[j] = in.y != nullptr ? in.y[j] : (static_cast<int64_t>(j) == in.cls ? 1 : 0);
    yp[j] = (in.label_smoothing < 1 ? (1 - in.label_smoothing) * y[j] : 0) + in.label_smoothing / static_cast<LD>(C);
    ysum += yp[j];
    ysum_abs += std::fabs(yp[j]);
  }

  std::vector<LD> gh(C, 0), gh_mag(C, 0);  // dHard/ds and its magnitude
  switch (in.hard) {
    case kd::HardKind::kNone:
      break;
    case kd::HardKind::kCrossEntropyLogits: {
      // -sum_j y'_j log_softmax(s)_j at temperature 1, as PyTorch's cross_entropy computes it:
      //   class index: (1 - ls) * (-log_softmax(s)_c) + (ls > 0 ? ls / C * sum_j -log_softmax(s)_j : 0)
      //   matrix:      -sum_j ((1 - ls) y_j + ls / C) log_softmax(s)_j
      // with a term whose factor is exactly 0 absent (a target of 0, (1 - ls) at ls = 1, the uniform
      // term at ls = 0). A -inf student logit with target mass gives +inf; with class indices and
      // ls = 0 the loss stays finite.
      const Softmax Q = softmax(in.s, C, 1, in.underflow_z);
      const LD ls = in.label_smoothing;
      if (in.y == nullptr) {
        if (in.cls >= 0 && static_cast<size_t>(in.cls) < C && ls < 1) {
          r.hard = -(1 - ls) * Q.logp[static_cast<size_t>(in.cls)];
        }
        if (ls > 0) {
          for (size_t j = 0; j < C; ++j) r.hard -= ls / static_cast<LD>(C) * Q.logp[j];
        }
      } else {
        for (size_t j = 0; j < C; ++j) r.hard -= wt(yp[j], Q.logp[j]);
      }
      r.hard_mag = ysum_abs * (1 + std::fabs(Q.lse) + Q.cond);
      for (size_t j = 0; j < C; ++j) {
        r.hard_mag += wt(std::fabs(yp[j]), std::fabs(Q.z[j]));
        gh[j] = ysum * Q.p[j] - yp[j];
        gh_mag[j] = wt(std::fabs(ysum) * Q.p[j], 1 + std::fabs(Q.z[j]) + Q.cond) + std::fabs(yp[j]);
      }
      break;
    }
    case kd::HardKind::kCrossEntropyProbs: {
      // -sum_j y'_j ln(clamp(s_j, eps, 1 - eps)).
      for (size_t j = 0; j < C; ++j) {
        const LD c = std::min(std::max(in.s[j], in.clamp_lo), in.clamp_hi);
        r.hard -= wt(yp[j], std::log(c));
        // ln of a bound rounded to the element type is off by ~u: the "1 +".
        r.hard_mag += wt(std::fabs(yp[j]), 1 + std::fabs(std::log(c)));
        const bool inside = in.s[j] >= in.clamp_lo && in.s[j] <= in.clamp_hi;
        // A NaN probability with target mass: NaN, as its term of the loss.
        gh[j] = inside ? -yp[j] / in.s[j] : (std::isnan(in.s[j]) && yp[j] != 0 ? in.s[j] : 0);
        gh_mag[j] = std::fabs(gh[j]);
      }
      break;
    }
    case kd::HardKind::kMse: {
      // sum_j (s_j - y_j)^2 / C.
      const LD n = static_cast<LD>(C);
      for (size_t j = 0; j < C; ++j) {
        const LD d = in.s[j] - y[j];
        const LD a = std::fabs(in.s[j]) + std::fabs(y[j]);
        r.hard += d * d / n;
        r.hard_mag += a * a / n;
        gh[j] = 2 * d / n;
        gh_mag[j] = 2 * a / n;
      }
      break;
    }
  }

  if (in.grad) {
    // soft_scale * dSoft/ds + hard_scale * dHard/ds; a scale of 0 leaves its term out.
    r.grad.resize(C);
    r.grad_mag.resize(C);
    const LD gs = in.grad_soft_scale / in.temperature, ghs = in.grad_hard_scale;
    for (size_t j = 0; j < C; ++j) {
      r.grad[j] = (gs != 0 ? gs * gsoft[j] : 0) + (ghs != 0 ? ghs * gh[j] : 0);
      r.grad_mag[j] = (gs != 0 ? std::fabs(gs) * gsoft_mag[j] : 0) + (ghs != 0 ? std::fabs(ghs) * gh_mag[j] : 0);
    }
  }
  return r;
}

RowRef feature_row_ref(const LD* s, const LD* t, size_t cols, int p, bool grad, LD grad_scale) {
  RowRef r;
  if (grad) {
    r.grad.resize(cols);
    r.grad_mag.resize(cols);
  }
  for (size_t j = 0; j < cols; ++j) {
    const LD d = s[j] - t[j];
    const LD a = std::fabs(s[j]) + std::fabs(t[j]);  // the subtraction rounds relative to this
    if (p == 1) {
      r.value += std::fabs(d);
      r.mag += a;
    } else {
      r.value += d * d;
      r.mag += a * std::fabs(d) * 2 + d * d;
    }
    if (grad) {
      const LD sign = d > 0 ? 1 : (d < 0 ? -1 : (d == 0 ? 0 : d));
      r.grad[j] = p == 1 ? grad_scale * sign : grad_scale * 2 * d;
      r.grad_mag[j] = p == 1 ? std::fabs(grad_scale) : std::fabs(grad_scale) * 2 * (std::fabs(d) + a);
    }
  }
  return r;
}

namespace {

// |x|^beta per element (0^beta = 0), normalised by the row sum where that sum > 1e-8. cond[j] is the
// relative error scale of a[j] (pow via exp(beta ln|x|) carries ~|beta ln|x|| u, plus the sum's).
struct AttMap {
  std::vector<LD> pw, a, cond;
  LD sum = 0, inv = 1;
  bool normalised = false;
};

AttMap att_map(const LD* x, size_t n, LD beta) {
  AttMap m;
  m.pw.resize(n);
  m.a.resize(n);
  m.cond.resize(n);
  for (size_t j = 0; j < n; ++j) {
    const LD ax = std::fabs(x[j]);
    m.pw[j] = ax == 0 ? 0 : std::pow(ax, beta);
    m.cond[j] = ax == 0 ? 0 : 1 + std::fabs(beta * std::log(ax));
    m.sum += m.pw[j];
  }
  m.normalised = !(m.sum <= 1e-8L);  // a NaN sum normalises: the whole row turns NaN
  m.inv = m.normalised ? 1 / m.sum : 1;
  LD cbar = 0;
  for (size_t j = 0; j < n; ++j) {
    m.a[j] = m.pw[j] * m.inv;
    if (m.normalised) cbar += m.a[j] * m.cond[j];
  }
  for (size_t j = 0; j < n; ++j) m.cond[j] += cbar + 1;
  return m;
}

}  // namespace

RowRef attention_row_ref(const LD* s, const LD* t, size_t cols, LD beta, bool grad, LD grad_scale,
                         LD u) {
  RowRef r;
  const AttMap ms = att_map(s, cols, beta);
  const AttMap mt = att_map(t, cols, beta);
  std::vector<LD> d(cols), e(cols);
  LD e2 = 0;
  for (size_t j = 0; j < cols; ++j) {
    d[j] = ms.a[j] - mt.a[j];
    e[j] = ms.a[j] * ms.cond[j] + mt.a[j] * mt.cond[j];  // error scale of d[j] / u
    r.value += d[j] * d[j];
    r.mag += 2 * std::fabs(d[j]) * e[j];
    e2 += e[j] * e[j];
  }
  r.mag += u * e2;
  if (!grad) return r;

  // value = sum_i (a_i - b_i)^2 with a_i = P_i / S (normalised) or P_i, P_i = |x_i|^beta:
  //   d value / d x_k = beta |x_k|^(beta-1) sign(x_k) / S * (g_k - sum_i g_i a_i)   (normalised)
  //                   = beta |x_k|^(beta-1) sign(x_k) * g_k                          (otherwise)
  // with g_i = 2 (a_i - b_i); 0 at x_k = 0.
  LD ga = 0, ga_mag = 0;
  if (ms.normalised) {
    for (size_t j = 0; j < cols; ++j) {
      ga += 2 * d[j] * ms.a[j];
      ga_mag += 2 * (e[j] * ms.a[j] + std::fabs(d[j]) * ms.a[j] * ms.cond[j]);
    }
  }
  r.grad.resize(cols);
  r.grad_mag.resize(cols);
  for (size_t j = 0; j < cols; ++j) {
    const LD ax = std::fabs(s[j]);
    if (ax == 0) {
      r.grad[j] = 0;
      r.grad_mag[j] = 0;
      continue;
    }
    const LD sign = s[j] > 0 ? 1 : -1;
    const LD outer = grad_scale * beta * std::pow(ax, beta - 1) * sign * ms.inv;
    const LD gk = 2 * d[j] - ga;
    r.grad[j] = outer * gk;
    r.grad_mag[j] = std::fabs(outer) * ((2 * std::fabs(d[j]) + std::fabs(ga)) * (1 + ms.cond[j]) +
                                        2 * e[j] + ga_mag);
  }
  return r;
}

}  // namespace kdt
