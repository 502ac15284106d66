// The steps of a distillation row, shared by every soft and hard term (kd_terms.h) and put together
// in kd_rows.h:
//   1. row_maxima      the student's and the teacher's row maxima (NaN skipped)
//   2. exps_sweep      the exps e^((x - max) / T) of both rows and the row sums the terms keep
//                      (KdSums), the exps saved for the gradient when there is scratch for them
//   3. PendingRows     the finishing of kept rows in groups: their logs taken together, then each
//                      row's soft and hard values added up in row order
//   4. grad_sweep      the gradient row, from the exps saved in step 2 or computed again
// Steps 2 and 4 hand the terms one chunk of a row at a time: ExpChunk (step 2: inputs and exps
// computed) and PassChunk (after step 2: inputs loaded again, exps read back or recomputed where the
// term asks for them). A soft term that needs a second pass over the row once its normalisers are
// known (divergences.h) sweeps PassChunks too, between steps 2 and 3.
#pragma once

#include "sweeps.h"

namespace kd {
namespace KD_ISA {

// ---- rows and their targets ---------------------------------------------------------------------

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

// Index of the first element equal to v (the row maximum), or -1 (rows of NaN only, whose maximum is
// the -inf the reduction starts from, or left as NaN when v is NaN). n <= INT32_MAX (kernels.h).
template <typename S, typename T>
inline int32_t first_index_of(const S* x, size_t n, T v) {
  for (size_t j = 0; j < n; ++j) {
    if (x[j] == v) return static_cast<int32_t>(j);
  }
  return -1;
}

// The target row of a kept row, chunk by chunk: a matrix row, or a class index expanded on the fly
// (the chunk holding the class gets a one-hot lane vector, every other chunk a zero vector), so both
// target forms share the same arithmetic (no cancellation-prone closed forms).
template <class O, bool kMatrix, class S>
struct RowTargets {
  using V = typename O::V;
  const S* y = nullptr;  // matrix targets
  size_t cls = 0;        // index targets (any value: a class outside [0, cols) reads nothing)
  const typename O::Scalar* hot = nullptr;  // 2 O::N lanes, lane O::N is 1, every other 0
  KD_SWEEP_INLINE V at(size_t j, size_t n) const {
    if (kMatrix) return load_in<O>(y + j, n, 0);
    if (cls < j || cls >= j + n) return O::set1(0);
    return loadf<O>(hot + O::N - (cls - j), n, 0);  // lane cls - j of the result is 1
  }
};

// ---- step 1: row maxima -------------------------------------------------------------------------

template <class O>
struct Maxima {
  typename O::Scalar s, t;
};

// The maxima of a student and a teacher row (NaN skipped, see max_into), in two accumulators per
// row, even and odd chunks: with one, each chunk would wait on the previous chunk's max.
template <class O, class S>
KD_SWEEP_INLINE inline Maxima<O> row_maxima(const S* s, const S* t, size_t C) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const T inf = static_cast<T>(INFINITY);
  V vms = O::set1(-inf), vmt = O::set1(-inf), vms2 = vms, vmt2 = vmt;
  size_t j = lead_in<O>(s, C);
  if (j > 0) {
    vms = max_into<O>(load_in<O>(s, j, -inf), vms);
    vmt = max_into<O>(load_in<O>(t, j, -inf), vmt);
  }
  for (; j + 2 * O::N <= C; j += 2 * O::N) {
    vms = max_into<O>(load_in<O>(s + j, O::N, -inf), vms);
    vmt = max_into<O>(load_in<O>(t + j, O::N, -inf), vmt);
    vms2 = max_into<O>(load_in<O>(s + j + O::N, O::N, -inf), vms2);
    vmt2 = max_into<O>(load_in<O>(t + j + O::N, O::N, -inf), vmt2);
  }
  sweep_from<O>(C - j, 0, [&](size_t i, size_t n) KD_SWEEP_INLINE {
    vms2 = max_into<O>(load_in<O>(s + j + i, n, -inf), vms2);
    vmt2 = max_into<O>(load_in<O>(t + j + i, n, -inf), vmt2);
  });
  return {O::reduce_max(max_into<O>(vms2, vms)), O::reduce_max(max_into<O>(vmt2, vmt))};
}

// ---- the row a step works on --------------------------------------------------------------------

// A kept row: its logits, maxima, targets and (gradient with scratch) the rows its exps are saved in.
template <class O, bool kMatrix, class S>
struct KdRow {
  using T = typename O::Scalar;
  using V = typename O::V;
  const S* s = nullptr;
  const S* t = nullptr;
  V vms, vmt;  // the maxima, splatted
  RowTargets<O, kMatrix, S> y;
  T* es = nullptr;  // saved e^(ds/T), e^(dt/T) and (hard terms with their own exps) e^ds
  T* et = nullptr;
  T* e1 = nullptr;
  bool save_e1 = true;  // only the gradient reads e1: a pass divergence's forward leaves it unsaved
};

// e^(d/T) for d = x - max <= 0, as 2^(d * log2(e)/T): the argument rounds once, as d * (1/T) would,
// and 2^y needs no Cody-Waite reduction, so the 1/T costs no multiply of its own. The rounding moves
// each term by at most |d/T| 2^-23 of itself, so by at most 0.37 * 2^-23 of the row's largest term
// (which is 1). With kUnitTemp (T = 1 and a hard term whose exps are the soft term's) the exps stay
// exp(d) itself.
template <class O, bool kUnitTemp>
struct SoftmaxExps {
  typename O::V log2e_t;
  explicit SoftmaxExps(double temperature)
      : log2e_t(O::set1(static_cast<typename O::Scalar>(1.4426950408889634 / temperature))) {}
  template <bool kGuarded>
  KD_SWEEP_INLINE typename O::V at(typename O::V d) const {
    if (kUnitTemp) return softmax_exp<O, kGuarded, false>(d);
    return softmax_exp<O, kGuarded, true>(O::mul(d, log2e_t));
  }
};

// ---- step 2: exps and sums ----------------------------------------------------------------------

// The row sums of sweep 2, by slot: the soft term's and the hard term's (0 where a kernel has no such
// term). Eight, so a row that fits in one block reduces all of them with one sum8.
enum KdSlot : unsigned { kZs, kZt, kW, kZ1, kYsum, kYdot, kDsum, kSlotCount };
constexpr unsigned slot_bit(KdSlot s) { return 1u << s; }
// A row's sums: sweep 2's slots, one more (sum8 writes eight), then the sums of a soft term's second
// pass over the row (see divergences.h).
enum KdPassSlot : unsigned { kPassA = kSlotCount + 1, kPassB, kSumsLen };

template <class O, unsigned kUsed>
struct KdSums {
  RowSum<O> at[kSlotCount];
  KD_SWEEP_INLINE RowSum<O>& operator[](KdSlot s) { return at[s]; }
  KD_SWEEP_INLINE void fold() {
    for (unsigned i = 0; i < kSlotCount; ++i) {
      if (kUsed & (1u << i)) at[i].fold();
    }
  }
};

// One chunk [j, j + n) of a row in sweep 2: its logits, their differences from the row maxima and
// their exps at T (tail lanes: exps 0).
template <class O>
struct ExpChunk {
  using V = typename O::V;
  size_t j, n;
  V xs, ds, dt, es, et;
};

// Sweep 2 over a kept row: each chunk's exps at T, added into the terms' sums by soft.add and
// hard.add, and saved (kSave) for the gradient. Tail lanes are loaded as 0 and their contributions
// zeroed. Guarded: the exps clamp their arguments and the terms mask their products, so -inf logits
// give exact 0s. Unguarded (ops with the unguarded exps only): neither, which gives the same sums for
// every row with finite logits, and a sum that is not finite otherwise (see kd_rows.h).
template <class O, bool kGuarded, bool kSave, class Soft, class Hard, class Row, class Exps, class Prefetch>
KD_SWEEP_INLINE inline void exps_sweep(const Row& row, size_t C, bool one_block, const Exps& exps,
                                       const Soft& soft, const Hard& hard, Prefetch&& prefetch,
                                       double (&out)[kSumsLen]) {
  using V = typename O::V;
  constexpr unsigned kUsed = Soft::kSlots | Hard::kSlots;
  KdSums<O, kUsed> sums;
  const auto terms = [&](size_t j, size_t n) KD_SWEEP_INLINE {
    prefetch(j);
    ExpChunk<O> c;
    c.j = j;
    c.n = n;
    c.xs = load_in<O>(row.s + j, n, 0);
    const V xt = load_in<O>(row.t + j, n, 0);
    c.ds = O::sub(c.xs, row.vms);
    c.dt = O::sub(xt, row.vmt);
    c.es = keepf<O>(exps.template at<kGuarded>(c.ds), n);
    c.et = keepf<O>(exps.template at<kGuarded>(c.dt), n);
    soft.template add<kGuarded>(sums, c);
    if (kSave) {
      storef<O>(row.es + j, n, c.es);
      storef<O>(row.et + j, n, c.et);
    }
    if constexpr (Hard::kOwnExps) {
      const V e1 = hard.template own_exp<kGuarded>(c);
      hard.template add<kGuarded>(sums, c, row, e1);
      if (kSave && row.save_e1) storef<O>(row.e1 + j, n, e1);
    } else {
      hard.template add<kGuarded>(sums, c, row, c.es);
    }
  };
  if (one_block) {
    // The row fits in one block: its V partials are the whole sums, and one sum8 adds up all of their
    // lanes (a narrow row would otherwise spend most of its time widening and reducing each sum).
    sweep<O>(C, row.s, terms);
    if constexpr (O::kBlock > 1) {
      double eight[8];
      O::sum8({sums.at[0].partial(), sums.at[1].partial(), sums.at[2].partial(), sums.at[3].partial(),
               sums.at[4].partial(), sums.at[5].partial(), sums.at[6].partial(), O::set1(0)},
              eight);
      for (unsigned i = 0; i < kSlotCount; ++i) out[i] = eight[i];
    }
  } else {
    sweep_fold<O>(C, row.s, terms, [&]() KD_SWEEP_INLINE { sums.fold(); });
    for (unsigned i = 0; i < kSlotCount; ++i) out[i] = sums.at[i].sum();
  }
}

// ---- after step 2: passes over the row's exps ---------------------------------------------------

// One chunk [j, j + n) of a kept row after sweep 2: its inputs loaded again and its exps read back
// from the saved rows (kSaved) or computed again (kGuarded: as sweep 2 took them), each where a term
// asks for it. Nothing is stored while a chunk is read, so what two terms both ask for is loaded or
// computed once.
template <class O, bool kSaved, bool kGuarded, class Row, class Exps, class Hard>
struct PassChunk {
  using V = typename O::V;
  const Row& row;
  const Exps& exps;
  const Hard& hard;
  size_t j, n;
  KD_SWEEP_INLINE V xs(typename O::Scalar fill = 0) const { return load_in<O>(row.s + j, n, fill); }
  KD_SWEEP_INLINE V ds() const { return O::sub(xs(), row.vms); }
  KD_SWEEP_INLINE V dt() const { return O::sub(load_in<O>(row.t + j, n, 0), row.vmt); }
  KD_SWEEP_INLINE V y() const { return row.y.at(j, n); }
  KD_SWEEP_INLINE V es() const {
    if (kSaved) return loadf<O>(row.es + j, n, 0);
    return keepf<O>(exps.template at<kGuarded>(ds()), n);
  }
  KD_SWEEP_INLINE V et() const {
    if (kSaved) return loadf<O>(row.et + j, n, 0);
    return keepf<O>(exps.template at<kGuarded>(dt()), n);
  }
  // The teacher exps' scratch row, which a soft term's pass may overwrite with a per-class value its
  // gradient reads back (the exps themselves are read before; nothing after the pass reads them).
  KD_SWEEP_INLINE void reuse_et(V v) const {
    static_assert(kSaved, "only saved rows have a teacher exps row to reuse");
    storef<O>(row.et + j, n, v);
  }
  KD_SWEEP_INLINE V reused_et() const {
    static_assert(kSaved, "only saved rows have a teacher exps row to reuse");
    return loadf<O>(row.et + j, n, 0);
  }
  // The hard term's own exps (see Hard::kOwnExps), else the soft term's student exps.
  KD_SWEEP_INLINE V e1() const {
    if constexpr (!Hard::kOwnExps) {
      return es();
    } else if (kSaved) {
      return loadf<O>(row.e1 + j, n, 0);
    } else {
      return keepf<O>(softmax_exp<O, kGuarded, false>(ds()), n);
    }
  }
};

// ---- step 4: the gradient row -------------------------------------------------------------------

// g = the soft term's part plus the hard term's, chunk by chunk (write_row: streamed with stream,
// each(j) called first, which prefetches the next row). kCareful: the row's sums are not all finite
// (see the terms' Grad).
template <class O, bool kSaved, bool kGuarded, bool kCareful, class Row, class Exps, class Hard, class SoftGrad,
          class HardGrad, class G, class Each>
KD_SWEEP_INLINE inline void grad_sweep(const Row& row, size_t C, const Exps& exps, const Hard& hard,
                                       const SoftGrad& soft_grad, const HardGrad& hard_grad, G* g,
                                       bool stream, Each&& each) {
  write_row<O>(g, C, stream, each, [&](size_t j, size_t n) KD_SWEEP_INLINE {
    const PassChunk<O, kSaved, kGuarded, Row, Exps, Hard> c{row, exps, hard, j, n};
    return hard_grad.template at<kCareful>(c, soft_grad.template at<kCareful>(c));
  });
}

// ---- step 3: finishing rows ---------------------------------------------------------------------

// Kept rows are finished in groups: a row's sums are kept until kGroup rows have them, then the logs
// of the whole group are taken together and the per-row losses added up in row order. (For narrow
// rows the logs at the end of each row's dependency chain would otherwise take much of the time.)
template <class Soft, class Hard>
struct PendingRows {
  static constexpr size_t kGroup = 16;
  static constexpr size_t kLogs = Soft::kLogs + Hard::kLogs;  // per row
  struct Row {
    size_t r;
    double sums[kSumsLen];
  };
  Row rows[kGroup];
  double logs[kGroup * kLogs + 1];  // + 1: terms without logs
  size_t n = 0;

  // Adds row r; returns whether the group is full (finish it then).
  bool add(size_t r, const double (&sums)[kSumsLen], const Soft& soft, const Hard& hard) {
    Row& q = rows[n];
    q.r = r;
    for (unsigned i = 0; i < kSumsLen; ++i) q.sums[i] = sums[i];
    soft.log_args(sums, logs + n * kLogs);
    if (Hard::kLogs > 0) hard.log_args(sums, logs + n * kLogs + Soft::kLogs);
    return ++n == kGroup;
  }

  template <typename T>
  void finish(const KdProblem<T>& P, const Soft& soft, const Hard& hard, KdPartial& out) {
    log_inplace(logs, n * kLogs);
    for (size_t k = 0; k < n; ++k) {
      const Row& q = rows[k];
      const double sv = soft.value(q.sums, logs + k * kLogs);
      const double hv = hard.value(q.sums, logs + k * kLogs + Soft::kLogs);
      if (P.row_soft) P.row_soft[q.r] = sv;
      if (P.row_hard) P.row_hard[q.r] = hv;
      out.soft += sv;
      out.hard += hv;
      out.kept += 1.0;
    }
    n = 0;
  }
};

}  // namespace KD_ISA
}  // namespace kd
