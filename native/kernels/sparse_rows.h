// The distillation rows with a sparse (top-k) teacher (sparse.h): the student row is swept as for a
// dense teacher (its maximum, then its exps at T and the hard term's sums, then the gradient row), with
// no teacher row to read; the teacher's k entries are then taken one by one in double, the same code
// for every ISA. The hard terms, the exps and the row steps are those of kd_terms.h and kd_steps.h.
//
// With d_j = (s_j - max s) / T, Zs = sum_j e^(d_j) over the whole row, and per entry (token i, value v)
// a weight e = e^a (a: below), the soft term is
//   renormalised (logits; logprobs without tail): a = (v - max v) / T for logits, v - max v for
//     logprobs; p = e / Zt with Zt = sum e; KL = sum e (a - d_i) / Zt + log(Zs / Zt)
//   tail (logprobs): a = v, p = e^v, P = sum p, the tail bucket p_out = 1 - P (0 when the entries cover
//     the row), the student's mass outside the entries q_out = Zout / Zs with Zout = Zs - sum e^(d_i);
//     KL = sum p (a - d_i) + (P + p_out) log Zs + p_out (log p_out - log Zout)
// Entries with p = 0 are absent (a -inf log-probability, or a student logit of -inf under no mass).
// Gradient of the soft term: gs (q_j - p_j) on the entries, gs q_j (1 - p_out / q_out) elsewhere
// (gs = grad_soft_scale / T); written as gs q_j (1 - p_out / q_out) for every j in the sweep, then
// corrected at the k entries, which are still in the cache.
#pragma once

#include "kd_terms.h"
#include "sparse.h"

namespace kd {
namespace KD_ISA {

// The one read of a teacher value, widened to double (a 16-bit storage type is added here).
template <typename T>
inline double teacher_value(const T* v, size_t i) {
  return static_cast<double>(v[i]);
}

// The maximum of a student row (NaN skipped, see max_into), in two accumulators (see row_maxima).
template <class O, class S>
KD_SWEEP_INLINE inline typename O::Scalar student_max(const S* s, size_t C) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const T inf = static_cast<T>(INFINITY);
  V m1 = O::set1(-inf), m2 = m1;
  size_t j = lead_in<O>(s, C);
  if (j > 0) m1 = max_into<O>(load_in<O>(s, j, -inf), m1);
  for (; j + 2 * O::N <= C; j += 2 * O::N) {
    m1 = max_into<O>(load_in<O>(s + j, O::N, -inf), m1);
    m2 = max_into<O>(load_in<O>(s + j + O::N, O::N, -inf), m2);
  }
  sweep_from<O>(C - j, 0, [&](size_t i, size_t n) KD_SWEEP_INLINE { m2 = max_into<O>(load_in<O>(s + j + i, n, -inf), m2); });
  return O::reduce_max(max_into<O>(m2, m1));
}

// Sweep 2 over a kept student row: Zs and the hard term's sums (see exps_sweep; the teacher's lanes of
// the chunk are 0 and unused).
template <class O, bool kGuarded, class Hard, class Row, class Exps, class Prefetch>
KD_SWEEP_INLINE inline void student_sweep(const Row& row, size_t C, const Exps& exps, const Hard& hard,
                                          Prefetch&& prefetch, double (&out)[kSlotCount + 1]) {
  constexpr unsigned kUsed = slot_bit(kZs) | Hard::kSlots;
  KdSums<O, kUsed> sums;
  const typename O::V zero = O::set1(0);
  sweep_fold<O>(
      C, row.s,
      [&](size_t j, size_t n) KD_SWEEP_INLINE {
        prefetch(j);
        ExpChunk<O> c;
        c.j = j;
        c.n = n;
        c.xs = load_in<O>(row.s + j, n, 0);
        c.ds = O::sub(c.xs, row.vms);
        c.es = keepf<O>(exps.template at<kGuarded>(c.ds), n);
        c.dt = zero;
        c.et = zero;
        sums[kZs].add(c.es);
        if constexpr (Hard::kOwnExps) {
          hard.template add<kGuarded>(sums, c, row, hard.template own_exp<kGuarded>(c));
        } else {
          hard.template add<kGuarded>(sums, c, row, c.es);
        }
      },
      [&]() KD_SWEEP_INLINE { sums.fold(); });
  for (unsigned i = 0; i < kSlotCount; ++i) out[i] = sums.at[i].sum();
  out[kSlotCount] = 0.0;
}

// The soft term of one kept row from its teacher entries, and what its gradient needs.
struct SparseSoft {
  double value;      // KL(p || q)
  double tail_coef;  // p_out / Zout (0 without a tail bucket of mass)
  double shift;      // p = e^((v - shift) scale) / norm
  double scale;
  double norm;
  int32_t argmax;    // the entry of the largest value (smallest token of ties; NaN skipped), or -1
};

// Whether slot e of a row holds an entry (any index outside [0, cols) is an unused slot).
inline bool in_row(int32_t i, size_t C) { return i >= 0 && static_cast<size_t>(i) < C; }

// The teacher's entries of row r against the student row s (maximum ms, exp sum zs).
template <typename T, class S>
SparseSoft sparse_soft(const SparseKdProblem<T>& P, size_t r, const S* s, double ms, double zs) {
  const size_t C = P.kd.cols, K = P.k;
  const int32_t* idx = P.indices + r * K;
  const T* val = P.values + r * K;
  const double inv_t = 1.0 / P.kd.temperature;
  const bool tail = P.kind == SparseKind::kLogprobs && P.tail;
  SparseSoft out{0.0, 0.0, 0.0, P.kind == SparseKind::kLogits ? inv_t : 1.0, 1.0, -1};
  // The entries' maximum (the renormalised modes' shift, and the argmax), and how many there are.
  double mt = -INFINITY;
  size_t count = 0;
  for (size_t e = 0; e < K; ++e) {
    const int32_t i = idx[e];
    if (!in_row(i, C)) continue;
    ++count;
    const double v = teacher_value(val, e);
    if (v > mt || (v == mt && (out.argmax < 0 || i < out.argmax))) {
      mt = v;
      out.argmax = i;
    }
  }
  out.shift = tail ? 0.0 : mt;
  double zt = 0.0, w = 0.0, ss = 0.0;
  for (size_t e = 0; e < K; ++e) {
    const int32_t i = idx[e];
    if (!in_row(i, C)) continue;
    const double a = (teacher_value(val, e) - out.shift) * out.scale;
    const double pe = ::exp(a);
    const double d = (static_cast<double>(s[i]) - ms) * inv_t;
    zt += pe;
    if (pe != 0.0) w += pe * (a - d);  // no mass: absent (also where d is -inf)
    if (tail) ss += ::exp(d);
  }
  if (!tail) {
    out.norm = zt;
    out.value = w / zt + ::log(zs / zt);
    return out;
  }
  double p_out = count < C ? 1.0 - zt : 0.0;  // no bucket where the entries cover the row
  if (p_out < 0) p_out = 0.0;                  // a sum above 1 by rounding (NaN stays NaN)
  double z_out = zs - ss;
  if (z_out < 0) z_out = 0.0;
  out.value = w + (zt + p_out) * ::log(zs);
  if (p_out != 0.0) {
    out.value += p_out * (::log(p_out) - ::log(z_out));
    out.tail_coef = p_out / z_out;
  }
  return out;
}

// The gradient's corrections at the row's entries (see the top): g_i += gs (e^(d_i) tail_coef - p_i).
// The entries' student logits come from `kept` (kept[e] for slot e, taken before the gradient row was
// written), or from the student row s when kept is null.
template <typename T, class S>
void sparse_grad_entries(const SparseKdProblem<T>& P, size_t r, const S* s, const T* kept, double ms, double gs,
                         const SparseSoft& soft, T* g) {
  const size_t C = P.kd.cols, K = P.k;
  const int32_t* idx = P.indices + r * K;
  const T* val = P.values + r * K;
  const double inv_t = 1.0 / P.kd.temperature;
  for (size_t e = 0; e < K; ++e) {
    const int32_t i = idx[e];
    if (!in_row(i, C)) continue;
    const double p = ::exp((teacher_value(val, e) - soft.shift) * soft.scale) / soft.norm;
    const double si = kept != nullptr ? static_cast<double>(kept[e]) : static_cast<double>(s[i]);
    const double q_part = soft.tail_coef != 0.0 ? ::exp((si - ms) * inv_t) * soft.tail_coef : 0.0;
    const double c = gs * (q_part - p);
    if (c != 0.0) g[i] = static_cast<T>(static_cast<double>(g[i]) + c);
  }
}

// The soft part of the gradient sweep: cs e^(d_j) (with cs == 0 the term is absent; see ForwardKl).
template <class O>
struct SparseSoftGrad {
  typename O::V cs;
  bool on;
  template <bool kCareful, class Chunk>
  KD_SWEEP_INLINE typename O::V at(const Chunk& c) const {
    if (kCareful && !on) return O::set1(0);
    return O::mul(cs, c.es());
  }
};

template <class O, HardKind kHard, bool kMatrixTargets, bool kGrad, bool kUnitTemp>
KdPartial sparse_rows_impl(const SparseKdProblem<typename O::Scalar>& SP, size_t r0, size_t r1,
                           typename O::Scalar* scratch) {
  using T = typename O::Scalar;
  using S = T;  // storage type of the student
  using Hard = HardTerm<O, kHard, kMatrixTargets, kUnitTemp>;
  using Row = KdRow<O, kMatrixTargets, S>;
  using Exps = SoftmaxExps<O, kUnitTemp>;
  constexpr bool kTargets = kHard != HardKind::kNone;
  const KdProblem<T>& P = SP.kd;
  const size_t C = P.cols;
  const Hard hard(P);
  const Exps exps(P.temperature);
  T hot[2 * O::N] = {};
  hot[O::N] = 1;
  KdPartial out;

  for (size_t r = r0; r < r1; ++r) {
    const S* s = P.student + r * C;
    T* g = kGrad ? P.grad + r * C : nullptr;
    if (!row_kept(P, r)) {
      if (P.row_soft) P.row_soft[r] = 0.0;
      if (P.row_hard) P.row_hard[r] = 0.0;
      if (P.argmax) P.argmax[r] = P.argmax[P.rows + r] = -1;
      if (kGrad) zero_row<O>(g, C);
      continue;
    }
    Row row;
    row.s = s;
    row.y.y = kMatrixTargets ? P.target_matrix + r * C : nullptr;
    row.y.cls = !kMatrixTargets && kTargets ? static_cast<size_t>(class_of(P, r)) : 0;
    row.y.hot = hot;
    const T ms = student_max<O>(s, C);
    row.vms = O::set1(ms);
    const bool prefetch_next = r + 1 < P.rows;
    const auto prefetch = [&](size_t j) KD_SWEEP_INLINE {
      if (prefetch_next) {
        prefetch_chunk<O>(s + C, j);
        if (kMatrixTargets) prefetch_chunk<O>(row.y.y + C, j);
      }
    };
    // The unguarded exps where the ops have them, swept again with the guards when a sum is not finite
    // (see kd_rows.h).
    double sums[kSlotCount + 1];
    bool guarded = true;
    if constexpr (HasUnguardedExp<O>::value) {
      student_sweep<O, false>(row, C, exps, hard, prefetch, sums);
      guarded = !__builtin_isfinite(sums[kZs] + sums[kZ1]);
      if (guarded) student_sweep<O, true>(row, C, exps, hard, prefetch, sums);
    } else {
      student_sweep<O, true>(row, C, exps, hard, prefetch, sums);
    }
    hard.fix_sums(sums, s, row.y.cls, ms);
    const SparseSoft soft = sparse_soft(SP, r, s, static_cast<double>(ms), sums[kZs]);
    double logs[1] = {1.0};
    if (Hard::kLogs > 0) {
      hard.log_args(sums, logs);
      logs[0] = ::log(logs[0]);
    }
    const double hv = hard.value(sums, logs);
    if (P.row_soft) P.row_soft[r] = soft.value;
    if (P.row_hard) P.row_hard[r] = hv;
    if (P.argmax) {
      P.argmax[r] = first_index_of(s, C, ms);
      P.argmax[P.rows + r] = soft.argmax;
    }
    out.soft += soft.value;
    out.hard += hv;
    out.kept += 1.0;

    if constexpr (kGrad) {
      // The soft part gs q_j (1 - p_out / q_out) = gs e^(d_j) (1 / Zs - tail_coef) over the whole row,
      // then the entries' corrections. Rows whose sums are not all finite are swept with kCareful (see
      // kd_rows.h): a term whose coefficient is exactly 0 stays absent.
      const double gs = P.grad_soft_scale / P.temperature;
      if (scratch != nullptr && gs != 0.0) {
        const int32_t* idx = SP.indices + r * SP.k;
        for (size_t e = 0; e < SP.k; ++e) scratch[e] = in_row(idx[e], C) ? s[idx[e]] : T(0);
      }
      const SparseSoftGrad<O> sg{O::set1(static_cast<T>(gs * (1.0 / sums[kZs] - soft.tail_coef))), gs != 0.0};
      const auto hg = hard.grad(sums, P.grad_hard_scale);
      double all = soft.value;
      for (unsigned i = 0; i < kSlotCount; ++i) all += sums[i];
      const bool careful = !__builtin_isfinite(all);
      const auto none = [](size_t) KD_SWEEP_INLINE {};
      const auto sweep3 = [&](auto guarded_c, auto careful_c) KD_SWEEP_INLINE {
        constexpr bool kG = decltype(guarded_c)::value, kC = decltype(careful_c)::value;
        // Plain stores: the entries' corrections read the row back from the cache.
        write_row<O>(g, C, false, none, [&](size_t j, size_t n) KD_SWEEP_INLINE {
          const PassChunk<O, false, kG, Row, Exps, Hard> c{row, exps, hard, j, n};
          return hg.template at<kC>(c, sg.template at<kC>(c));
        });
      };
      using Yes = std::true_type;
      using No = std::false_type;
      bool swept = false;
      if constexpr (HasUnguardedExp<O>::value) {
        if (!guarded) {
          if (careful) {
            sweep3(No{}, Yes{});
          } else {
            sweep3(No{}, No{});
          }
          swept = true;
        }
      }
      if (!swept) {
        if (careful) {
          sweep3(Yes{}, Yes{});
        } else {
          sweep3(Yes{}, No{});
        }
      }
      if (gs != 0.0) sparse_grad_entries(SP, r, s, scratch, static_cast<double>(ms), gs, soft, g);
    }
  }
  return out;
}

template <class O, HardKind kHard, bool kMatrixTargets, bool kGrad>
KdPartial sparse_rows_temp(const SparseKdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                    typename O::Scalar* scratch) {
  if (kHard == HardKind::kCrossEntropyLogits && p.kd.temperature == 1.0) {
    return sparse_rows_impl<O, kHard, kMatrixTargets, kGrad, true>(p, r0, r1, scratch);
  }
  return sparse_rows_impl<O, kHard, kMatrixTargets, kGrad, false>(p, r0, r1, scratch);
}

template <class O, HardKind kHard, bool kMatrixTargets>
KdPartial sparse_rows_grad(const SparseKdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                    typename O::Scalar* scratch) {
  return p.kd.grad != nullptr ? sparse_rows_temp<O, kHard, kMatrixTargets, true>(p, r0, r1, scratch)
                              : sparse_rows_temp<O, kHard, kMatrixTargets, false>(p, r0, r1, scratch);
}

template <class O, HardKind kHard>
KdPartial sparse_rows_targets(const SparseKdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                    typename O::Scalar* scratch) {
  return p.kd.target_kind == TargetKind::kMatrix ? sparse_rows_grad<O, kHard, true>(p, r0, r1, scratch)
                                                 : sparse_rows_grad<O, kHard, false>(p, r0, r1, scratch);
}

template <class O>
KdPartial sparse_kd_rows(const SparseKdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                    typename O::Scalar* scratch) {
  switch (p.kd.hard) {
    case HardKind::kCrossEntropyLogits:
      return sparse_rows_targets<O, HardKind::kCrossEntropyLogits>(p, r0, r1, scratch);
    case HardKind::kCrossEntropyProbs:
      return sparse_rows_targets<O, HardKind::kCrossEntropyProbs>(p, r0, r1, scratch);
    case HardKind::kMse:
      return sparse_rows_targets<O, HardKind::kMse>(p, r0, r1, scratch);
    case HardKind::kNone:
      break;
  }
  return sparse_rows_grad<O, HardKind::kNone, false>(p, r0, r1, scratch);
}

}  // namespace KD_ISA
}  // namespace kd
