// The distillation rows: the steps of kd_steps.h over a row range, with the soft and hard terms of
// kd_terms.h. A row takes at most three sweeps over data that is hot in L1/L2: maxima, then exps and
// sums, then (gradient only) the gradient row. The sweep that runs from L1 prefetches the next row, so
// the first sweep of that row does not wait on memory.
#pragma once

#include "divergences.h"

namespace kd {
namespace KD_ISA {

// One kernel per (divergence, hard term, target form, gradient, unit temperature) combination, so the
// inner loops carry no per-element branches. With kSaved: the exps of sweep 2 are saved in the scratch
// rows and read back by the soft term's pass and sweep 3; without kSaved (no scratch), they compute
// them again.
template <class O, Divergence kDiv, HardKind kHard, bool kMatrixTargets, bool kGrad, bool kSaved, bool kUnitTemp>
KdPartial kd_rows_impl(const KdProblem<typename O::Scalar>& P, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  using T = typename O::Scalar;
  using S = T;  // storage type of the inputs
  using Soft = typename SoftTermOf<O, kDiv>::type;
  using Hard = HardTerm<O, kHard, kMatrixTargets, kUnitTemp>;
  using Row = KdRow<O, kMatrixTargets, S>;
  constexpr bool kTargets = kHard != HardKind::kNone;
  constexpr bool kSave = kSaved;
  static_assert(kGrad || Soft::kPass || !kSaved, "scratch without a gradient serves only a soft term's pass");
  // The divergences other than the forward KL take the gradient as a run-time choice (kGrad: the
  // kernel can write one, grad: this call does), sweep every gradient row with kCareful (which differs
  // from the plain sweep only where a row's sums are not finite), and JSD and TVD always read their
  // second pass's exps from the scratch: each instantiation multiplies the kernels' compile time.
  constexpr bool kOneGradSweep = kDiv != Divergence::kKl;
  constexpr bool kTryUnguarded = HasUnguardedExp<O>::value;
  const bool grad = kGrad && P.grad != nullptr;
  const size_t C = P.cols;
  const Soft soft = SoftTermOf<O, kDiv>::make(P);
  const Hard hard(P);
  const SoftmaxExps<O, kUnitTemp> exps(P.temperature);
  // A one-hot lane vector for class-index targets: lane k of load(hot + N - k) is 1.
  T hot[2 * O::N] = {};
  hot[O::N] = 1;

  // Gradients larger than the caches are written with non-temporal stores (see write_row).
  const bool stream_grad = grad && P.rows * C * sizeof(T) >= kStreamBytes;
  // Scratch rows (see the row's exps below) start in the first whole 64-byte line and are padded to
  // whole lines.
  constexpr size_t kLine = 64 / sizeof(T);
  T* const scratch_line = kSave ? scratch + to_boundary(scratch, 64) : nullptr;
  const size_t scratch_stride = (C + kLine - 1) / kLine * kLine;
  KdPartial out;
  PendingRows<Soft, Hard> pending;

  const auto maxima = [&](size_t r) KD_SWEEP_INLINE { return row_maxima<O>(P.student + r * C, P.teacher + r * C, C); };
  // Rows that fit in one block (see exps_sweep) are short enough that a row is mostly one dependency
  // chain (maxima, exps, sums); their maxima are taken one row ahead, before this row's sweep 2, so
  // that chain overlaps the next row's. Wider rows with a gradient take the next row's maxima between
  // this row's sweeps 2 and 3: sweep 1 then follows sweep 2 (and its prefetches) as without a
  // gradient, and the gradient's stores drain while the next row is computed.
  const bool one_block = O::kBlock > 1 && C <= O::N * O::kBlock;
  const bool late_ahead = grad && !one_block;
  Maxima<O> ahead{};
  if ((one_block || late_ahead) && r0 < r1) ahead = maxima(r0);
  for (size_t r = r0; r < r1; ++r) {
    const S* s = P.student + r * C;
    const S* t = P.teacher + r * C;
    T* g = grad ? P.grad + r * C : nullptr;
    Maxima<O> m = ahead;
    if (one_block && r + 1 < r1) ahead = maxima(r + 1);
    if (!row_kept(P, r)) {
      if (P.row_soft) P.row_soft[r] = 0.0;
      if (P.row_hard) P.row_hard[r] = 0.0;
      if (P.argmax) P.argmax[r] = P.argmax[P.rows + r] = -1;
      if (grad) zero_row<O>(g, C);
      if (late_ahead && r + 1 < r1) ahead = maxima(r + 1);
      continue;
    }
    Row row;
    row.s = s;
    row.t = t;
    row.y.y = kMatrixTargets ? P.target_matrix + r * C : nullptr;
    row.y.cls = !kMatrixTargets && kTargets ? static_cast<size_t>(class_of(P, r)) : 0;
    row.y.hot = hot;

    if (!one_block && !late_ahead) m = maxima(r);
    if (P.argmax) {
      P.argmax[r] = first_index_of(s, C, m.s);
      P.argmax[P.rows + r] = first_index_of(t, C, m.t);
    }
    row.vms = O::set1(m.s);
    row.vmt = O::set1(m.t);
    if (kSave) {
      // The saved exps start at the student row's offset within a 64-byte line, so sweep 2's stores
      // and sweep 3's loads are as aligned as the row's own loads (sweep 3 follows the gradient row,
      // which usually shares the student's offset).
      row.et = scratch_line + (reinterpret_cast<uintptr_t>(s) % 64) / sizeof(T);
      row.e1 = row.et + scratch_stride;
      row.es = row.e1 + scratch_stride;
      row.save_e1 = grad;
    }
    // The row whose sweep 1 comes next streams into the cache while this one is computed (sweep 1 would
    // otherwise wait on memory for every line): the next row, or the one after it when maxima are taken
    // one row ahead. Sweep 2 issues it, and with a gradient sweep 3 issues it again: without the second
    // prefetch, sweep 1 still waits on memory for most lines when sweep 3 runs between, and it still
    // helps when the next row's maxima have been taken before sweep 3.
    const size_t pf = one_block ? 2 : 1;
    const bool prefetch_next = r + pf < P.rows;
    const auto prefetch = [&](size_t j) KD_SWEEP_INLINE {
      if (prefetch_next) {
        prefetch_chunk<O>(s + pf * C, j);
        prefetch_chunk<O>(t + pf * C, j);
        if (kMatrixTargets) prefetch_chunk<O>(row.y.y + pf * C, j);
      }
    };

    // Sweep 2. The unguarded exps (AVX-512) give the guarded ones or a value that is not finite (-inf
    // logits, or logits beyond about 1e14 in magnitude), and w differs only where dt - ds is infinite;
    // the exp sums are at most the row length and w is finite for finite logits. So a row whose sums
    // are all finite has exactly the guarded sums, and any other is swept again with the guards (rows
    // with -inf logits take two sweeps 2). The clamps head each exp's dependency chain, so leaving them
    // out where they change nothing is worth the rare second sweep.
    double sums[kSumsLen] = {};
    bool guarded = true;  // whether the row's exps are the guarded ones (they equal the unguarded ones
                          // of a row whose sums are finite)
    if constexpr (kTryUnguarded) {
      exps_sweep<O, false, kSave>(row, C, one_block, exps, soft, hard, prefetch, sums);
      guarded = !__builtin_isfinite(sums[kZs] + sums[kZt] + sums[kW] + sums[kZ1]);
      if (guarded) exps_sweep<O, true, kSave>(row, C, one_block, exps, soft, hard, prefetch, sums);
    } else {
      exps_sweep<O, true, kSave>(row, C, one_block, exps, soft, hard, prefetch, sums);
    }
    hard.fix_sums(sums, s, row.y.cls, m.s);
    if constexpr (Soft::kPass) {
      // The soft term's pass, from the exps sweep 2 saved or computed again as it took them.
      static_assert(kSaved, "a divergence with a second pass always has scratch (see KernelSet::kd_rows)");
      pass_sweep<O, true, true>(row, C, exps, hard, soft, grad, sums);
    }
    if (late_ahead && r + 1 < r1) ahead = maxima(r + 1);
    const bool group_full = pending.add(r, sums, soft, hard);

    if constexpr (kGrad) {
      if (grad) {
        // Sweep 3: grad = gs * dSoft/ds + gh * dHard/ds, from the exps saved in sweep 2 or the same
        // exps computed again (the unguarded ones where sweep 2 found them equal to the guarded
        // ones). A row whose sums are all finite has no NaN or inf in its exps, logits or targets,
        // so a coefficient of 0 makes its term exactly 0; any other row is swept with kCareful.
        const auto sg = soft.grad(sums, P.grad_soft_scale / P.temperature);
        const auto hg = hard.grad(sums, P.grad_hard_scale);
        double all = 0.0;
        for (unsigned i = 0; i < kSumsLen; ++i) all += sums[i];
        const bool careful = !__builtin_isfinite(all);  // includes every row with guarded exps
        if constexpr (kOneGradSweep) {
          grad_sweep<O, kSaved, true, true>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
        } else if constexpr (kSaved) {
          if (careful) {
            grad_sweep<O, true, true, true>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
          } else {
            grad_sweep<O, true, true, false>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
          }
        } else if constexpr (HasUnguardedExp<O>::value) {
          if (guarded) {
            grad_sweep<O, false, true, true>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
          } else if (careful) {
            grad_sweep<O, false, false, true>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
          } else {
            grad_sweep<O, false, false, false>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
          }
        } else if (careful) {
          grad_sweep<O, false, true, true>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
        } else {
          grad_sweep<O, false, true, false>(row, C, exps, hard, sg, hg, g, stream_grad, prefetch);
        }
      }
    }
    if (group_full) pending.finish(P, soft, hard, out);
  }
  pending.finish(P, soft, hard, out);
  if (stream_grad) O::fence();  // order the non-temporal stores before the caller reads them
  return out;
}

template <class O, Divergence kDiv, HardKind kHard, bool kMatrixTargets, bool kGrad, bool kSaved>
KdPartial kd_rows_temp(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  // Only the logits cross-entropy has a unit-temperature shortcut (its exps are the soft term's), and
  // only with the forward KL: the shortcut saves the hard term's own exps, which the other divergences'
  // costlier rows need less (and each instantiation multiplies the kernels' compile time).
  if (kDiv == Divergence::kKl && kHard == HardKind::kCrossEntropyLogits && p.temperature == 1.0) {
    return kd_rows_impl<O, kDiv, kHard, kMatrixTargets, kGrad, kSaved, kDiv == Divergence::kKl>(p, r0, r1, scratch);
  }
  return kd_rows_impl<O, kDiv, kHard, kMatrixTargets, kGrad, kSaved, false>(p, r0, r1, scratch);
}

template <class O, Divergence kDiv, HardKind kHard, bool kMatrixTargets>
KdPartial kd_rows_grad(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  if constexpr (SoftTermOf<O, kDiv>::type::kPass) {  // always with scratch (see KernelSet::kd_rows)
    return kd_rows_temp<O, kDiv, kHard, kMatrixTargets, true, true>(p, r0, r1, scratch);
  } else if constexpr (kDiv != Divergence::kKl) {  // the gradient a run-time choice (see kd_rows_impl)
    return scratch != nullptr ? kd_rows_temp<O, kDiv, kHard, kMatrixTargets, true, true>(p, r0, r1, scratch)
                              : kd_rows_temp<O, kDiv, kHard, kMatrixTargets, true, false>(p, r0, r1, scratch);
  } else {
    if (p.grad == nullptr) return kd_rows_temp<O, kDiv, kHard, kMatrixTargets, false, false>(p, r0, r1, scratch);
    return scratch != nullptr ? kd_rows_temp<O, kDiv, kHard, kMatrixTargets, true, true>(p, r0, r1, scratch)
                              : kd_rows_temp<O, kDiv, kHard, kMatrixTargets, true, false>(p, r0, r1, scratch);
  }
}

template <class O, Divergence kDiv, HardKind kHard>
KdPartial kd_rows_targets(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                          typename O::Scalar* scratch) {
  return p.target_kind == TargetKind::kMatrix ? kd_rows_grad<O, kDiv, kHard, true>(p, r0, r1, scratch)
                                              : kd_rows_grad<O, kDiv, kHard, false>(p, r0, r1, scratch);
}

template <class O, Divergence kDiv>
KdPartial kd_rows_div(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                      typename O::Scalar* scratch) {
  switch (p.hard) {
    case HardKind::kCrossEntropyLogits:
      return kd_rows_targets<O, kDiv, HardKind::kCrossEntropyLogits>(p, r0, r1, scratch);
    case HardKind::kCrossEntropyProbs:
      return kd_rows_targets<O, kDiv, HardKind::kCrossEntropyProbs>(p, r0, r1, scratch);
    case HardKind::kMse:
      return kd_rows_targets<O, kDiv, HardKind::kMse>(p, r0, r1, scratch);
    case HardKind::kNone:
      break;
  }
  return kd_rows_grad<O, kDiv, HardKind::kNone, false>(p, r0, r1, scratch);
}

// The divergences other than the forward KL, compiled in a translation unit of their own per ISA
// (<isa>_div.cc, through kd_rows_other_impl): their instantiations take most of an ISA's compile
// time, which two units let a parallel build share.
KdPartial kd_rows_other(const KdProblem<float>& p, size_t r0, size_t r1, float* scratch);
KdPartial kd_rows_other(const KdProblem<double>& p, size_t r0, size_t r1, double* scratch);

template <class O>
KdPartial kd_rows_other_impl(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                             typename O::Scalar* scratch) {
  switch (p.divergence) {
    case Divergence::kJsd:
      return kd_rows_div<O, Divergence::kJsd>(p, r0, r1, scratch);
    case Divergence::kTvd:
      return kd_rows_div<O, Divergence::kTvd>(p, r0, r1, scratch);
    case Divergence::kReverseKl:
    case Divergence::kKl:
      break;
  }
  return kd_rows_div<O, Divergence::kReverseKl>(p, r0, r1, scratch);
}

template <class O>
KdPartial kd_rows(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                  typename O::Scalar* scratch) {
  if (p.divergence != Divergence::kKl) return kd_rows_other(p, r0, r1, scratch);
  return kd_rows_div<O, Divergence::kKl>(p, r0, r1, scratch);
}

}  // namespace KD_ISA
}  // namespace kd
