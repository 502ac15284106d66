// The loss kernels, written once over an ISA's Ops<T> (see ops_scalar.h for the interface) and compiled
// once per ISA into namespace kd::KD_ISA. Include this only from an ISA's .cc file, after its ops
// header. Everything here lives in the ISA namespace, so no inline function compiled with one ISA's
// flags can be picked by the linker for another ISA.
//
// A distillation row takes at most three sweeps over a row that is hot in L1/L2: max, then exp and the
// sums, then (gradient only) the combination of the exps saved in the first two sweeps. An attention
// row takes one (the moments of its maps), one more for the gradient, and one more where the moments
// cancel (see attention_rows_impl). The sweep that runs
// from L1 prefetches the next row, so the first sweep of that row does not wait on memory. Row sums
// are V partials over blocks of O::kBlock vectors (float lanes for float), widened into O::Acc
// (double) once per block; the scalar reference (kBlock == 1) accumulates every element in double.
#pragma once

#include <float.h>
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "kernels.h"

// Forces the sweeps and their per-chunk lambdas inline at every call (GCC otherwise keeps an
// out-of-line copy for the tail call, and the row sums such a lambda updates then live in memory
// instead of registers).
#if defined(__GNUC__)
#define KD_SWEEP_INLINE __attribute__((always_inline))
#else
#define KD_SWEEP_INLINE
#endif

namespace kd {
namespace KD_ISA {

// Outputs of at least this many bytes are streamed past the caches.
constexpr size_t kStreamBytes = size_t{4} << 20;

// Rows of at least this many vectors are swept from the first vector-aligned element of their lead
// array (see lead_in).
constexpr size_t kAlignMinVectors = 16;

// The elements of T before the first `bytes`-aligned address at or after p (p aligned to T, bytes a
// power of two): the vector size for sweeps, a cache line for the KD scratch rows.
template <typename T>
inline size_t to_boundary(const T* p, size_t bytes) {
  const size_t mis = reinterpret_cast<uintptr_t>(p) % bytes;
  return mis == 0 ? 0 : (bytes - mis) / sizeof(T);
}

// The elements before p's first vector-aligned one.
template <class O>
inline size_t to_aligned(const typename O::Scalar* p) {
  return to_boundary(p, O::N * sizeof(typename O::Scalar));
}

// The elements before the first vector-aligned one of the row at lead (0 for short rows and the
// scalar ops): sweeps take them as a first, partial chunk, so every later full-width load of the lead
// array is aligned. A misaligned 64-byte load spans two cache lines; measured on the AMD EPYC (Zen 5)
// this was built on, the AVX-512 feature kernel streamed 3x256x4096 floats 1.5x faster aligned. Other
// arrays of the row gain too when they share the lead's alignment (as equal-sized allocations do).
template <class O>
inline size_t lead_in(const typename O::Scalar* lead, size_t cols) {
  return O::N == 1 || cols < kAlignMinVectors * O::N ? 0 : to_aligned<O>(lead);
}

// Calls f(j, n) over [0, cols) in chunks of at most O::N lanes: [0, head) (head clamped to cols), full
// chunks, then the rest.
template <class O, class F>
KD_SWEEP_INLINE inline void sweep_from(size_t cols, size_t head, F&& f) {
  size_t j = head < cols ? head : cols;
  if (j > 0) f(0, j);
  for (; j + O::N <= cols; j += O::N) f(j, O::N);
  if (j < cols) f(j, cols - j);
}

// sweep_from the lead-in of the row at lead (see lead_in).
template <class O, class F>
KD_SWEEP_INLINE inline void sweep(size_t cols, const typename O::Scalar* lead, F&& f) {
  sweep_from<O>(cols, lead_in<O>(lead, cols), f);
}

// Like sweep, and calls fold() after every O::kBlock full chunks (the first block also holds the
// lead-in) and after the last chunk: row sums are kept as V partials (float lanes for float) over a
// block and widened into the O::Acc accumulators by fold(), once per block.
template <class O, class F, class G>
KD_SWEEP_INLINE inline void sweep_fold(size_t cols, const typename O::Scalar* lead, F&& f, G&& fold) {
  if constexpr (O::kBlock == 1) {
    // Partials are not kept (see RowSum): a plain sweep, the reference's own loop.
    sweep<O>(cols, lead, f);
  } else {
    constexpr size_t kStep = O::N * O::kBlock;
    size_t j = lead_in<O>(lead, cols);
    if (j > 0) f(0, j);
    for (; j + kStep <= cols; j += kStep) {
      for (size_t b = 0; b < kStep; b += O::N) f(j + b, O::N);
      fold();
    }
    if (j < cols) {
      for (; j + O::N <= cols; j += O::N) f(j, O::N);
      if (j < cols) f(j, cols - j);
      fold();
    }
  }
}

// Whether the ops provide fma_where_pos(c, a, b, acc) = acc + a * b where c > 0, else acc (AVX-512).
template <class O, class = void>
struct HasMaskedFma : std::false_type {};
template <class O>
struct HasMaskedFma<O, decltype(void(O::fma_where_pos(O::set1(0), O::set1(0), O::set1(0), O::set1(0))))>
    : std::true_type {};

// Whether the ops provide exp_nonpos_unguarded / exp2_nonpos_unguarded (AVX-512; see vecmath.h).
template <class O, class = void>
struct HasUnguardedExp : std::false_type {};
template <class O>
struct HasUnguardedExp<O, decltype(void(O::exp2_nonpos_unguarded(O::set1(0))))> : std::true_type {};

// exp_nonpos, or exp2_nonpos with kBase2; guarded, or their unguarded forms.
template <class O, bool kGuarded, bool kBase2>
KD_SWEEP_INLINE inline typename O::V softmax_exp(typename O::V x) {
  if constexpr (kGuarded) {
    return kBase2 ? O::exp2_nonpos(x) : O::exp_nonpos(x);
  } else {
    return kBase2 ? O::exp2_nonpos_unguarded(x) : O::exp_nonpos_unguarded(x);
  }
}

// A row sum: a V partial over the current block and the row's accumulator. With kBlock == 1 (the
// scalar ops) every value goes straight into the accumulator, the plain double accumulation of the
// reference, in the same expression form (so the compiler contracts it the same way too).
template <class O>
struct RowSum {
  typename O::V part = O::set1(0);
  typename O::Acc acc = O::acc_zero();
  void add(typename O::V v) {
    if constexpr (O::kBlock == 1) {
      acc = O::acc_add(acc, v);
    } else {
      part = O::add(part, v);
    }
  }
  void fold() {
    if constexpr (O::kBlock != 1) {
      acc = O::acc_add(acc, part);
      part = O::set1(0);
    }
  }
  // Adds a * b (SIMD ops only).
  void add_prod(typename O::V a, typename O::V b) {
    static_assert(O::kBlock != 1, "the scalar reference keeps the guarded sums");
    part = O::fma(a, b, part);
  }
  // Adds a * b in the lanes where c > 0; the others add nothing, also where a * b is NaN. Fused where
  // the ops have a masked FMA (AVX-512: two operations instead of four).
  void add_prod_where_pos(typename O::V c, typename O::V a, typename O::V b) {
    if constexpr (O::kBlock == 1) {
      acc = O::acc_add(acc, O::pos_or_zero(c, O::mul(a, b)));
    } else if constexpr (HasMaskedFma<O>::value) {
      part = O::fma_where_pos(c, a, b, part);
    } else {
      part = O::add(part, O::pos_or_zero(c, O::mul(a, b)));
    }
  }
  double sum() const { return O::acc_sum(acc); }
  // The V partial, i.e. the whole row's sum when the row fit in one block and fold() was never called.
  typename O::V partial() const { return part; }
};

// Prefetches the cache line holding element j of row p (one call per line: the first chunk that
// starts in a line issues it). Forced inline: GCC judges a function holding only a prefetch to have no
// effect and drops calls to it.
template <class O>
KD_SWEEP_INLINE inline void prefetch_chunk(const typename O::Scalar* p, size_t j) {
  constexpr size_t kLine = 64 / sizeof(typename O::Scalar);
  if (O::N >= kLine || j % kLine < O::N) __builtin_prefetch(p + j, 0, 3);
}

// max(x, acc) lane-wise, ignoring NaN in x (acc, started at -inf, never holds NaN): the maximum of the
// non-NaN values, whatever order they come in.
template <class O>
inline typename O::V max_into(typename O::V x, typename O::V acc) {
  return O::max(x, acc);
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

// Writes the row g[0, cols) chunk by chunk, g[j, j + n) = value(j, n), calling each(j) first. With
// stream, the sweep starts at g's first vector-aligned element, whatever the row's width, and full
// chunks go out as non-temporal stores: a gradient row is written once and not read here, so its lines
// need not be fetched into the cache first (the caller fences).
template <class O, class Each, class Value>
KD_SWEEP_INLINE inline void write_row(typename O::Scalar* g, size_t cols, bool stream, Each&& each,
                                      Value&& value) {
  const size_t head = stream ? to_aligned<O>(g) : lead_in<O>(g, cols);
  sweep_from<O>(cols, head, [&](size_t j, size_t n) KD_SWEEP_INLINE {
    each(j);
    if (stream && n == O::N) {
      O::stream(g + j, value(j, n));
    } else {
      storef<O>(g + j, n, value(j, n));
    }
  });
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
  sweep<O>(cols, g, [&](size_t j, size_t n) KD_SWEEP_INLINE { storef<O>(g + j, n, z); });
}

// Index of the first element equal to v (the row maximum), or -1 (rows of NaN only, whose maximum is
// the -inf the reduction starts from, or left as NaN when v is NaN).
template <typename T>
inline int32_t first_index_of(const T* x, size_t n, T v) {
  for (size_t j = 0; j < n; ++j) {
    if (x[j] == v) return static_cast<int32_t>(j);
  }
  return -1;
}

// x[i] = ln x[i] for i < n: vector logs where the ISA has double lanes (a row's logs sit at the end of
// its dependency chain, so for narrow rows taking them one row at a time leaves the core waiting on
// their latency); the scalar reference keeps the C library's log.
inline void log_inplace(double* x, size_t n) {
  using D = Ops<double>;
  if constexpr (D::N >= 2) {
    sweep<D>(n, x, [&](size_t j, size_t k) KD_SWEEP_INLINE {
      storef<D>(x + j, k, D::log(loadf<D>(x + j, k, 1.0)));
    });
  } else {
    for (size_t i = 0; i < n; ++i) x[i] = ::log(x[i]);
  }
}

// The clamp of the probability cross-entropy, [eps, 1 - eps] (1 - eps rounded to double), as T bounds rounded
// inwards (so "inside" is decided exactly for T inputs) plus the logs of the exact bounds (what a
// clamped element contributes).
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

// One distillation row kernel per (hard loss, target form, gradient, unit temperature) combination, so
// the inner loops carry no per-element branches. Class-index targets are expanded on the fly: the chunk holding the
// class gets a one-hot lane vector, every other chunk a zero vector, so both target forms share the
// same arithmetic (no cancellation-prone closed forms); only the logits cross-entropy's forward sums
// of an index, whose one term is exact either way, are taken directly.
template <class O, HardKind kHard, bool kMatrixTargets, bool kGrad, bool kUnitTemp>
KdPartial kd_rows_impl(const KdProblem<typename O::Scalar>& P, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  using T = typename O::Scalar;
  using V = typename O::V;
  constexpr bool kTargets = kHard != HardKind::kNone;
  const size_t C = P.cols;
  const T inf = static_cast<T>(INFINITY);
  const V zero = O::set1(0);
  // The soft term's exps e^(d/T) are taken as 2^(d * log2(e)/T) (see soft_exp below).
  const V log2e_t = O::set1(static_cast<T>(1.4426950408889634 / P.temperature));
  const double ls = kHard == HardKind::kMse ? 0.0 : P.label_smoothing;
  const double ls_c = ls / static_cast<double>(C);
  // Only the probability cross-entropy clamps (the bounds cost two C library logs per call).
  const ProbClamp<T> clamp = kHard == HardKind::kCrossEntropyProbs ? ProbClamp<T>(P.epsilon) : ProbClamp<T>();
  const V c_lo = O::set1(clamp.lo), c_hi = O::set1(clamp.hi);
  const V c_log_lo = O::set1(clamp.log_lo), c_log_hi = O::set1(clamp.log_hi);
  // A one-hot lane vector for class-index targets: lane k of load(hot + N - k) is 1.
  T hot[2 * O::N] = {};
  hot[O::N] = 1;

  // Gradients larger than the caches are written with non-temporal stores (see sweep 3).
  const bool stream_grad = kGrad && P.rows * C * sizeof(T) >= kStreamBytes;
  // Scratch rows (see sweep 2) start in the first whole 64-byte line and are padded to whole lines.
  constexpr size_t kLine = 64 / sizeof(T);
  T* const scratch_line = scratch + to_boundary(scratch, 64);
  const size_t scratch_stride = (C + kLine - 1) / kLine * kLine;
  KdPartial out;

  // Rows are finished in groups: a row's sums are kept until kGroup rows have them, then the logs of
  // the whole group are taken together and the per-row losses added up in row order. (For narrow rows
  // the two logs at the end of each row's dependency chain were half of the time.)
  constexpr size_t kGroup = 16;
  constexpr size_t kLogs = kHard == HardKind::kCrossEntropyLogits ? 2 : 1;  // Zs / Zt (and Z1) per row
  struct Pending {
    size_t row;
    double zt, w, ysum_s, ydot, dsum;
  };
  Pending pending[kGroup];
  double logs[kGroup * kLogs];
  size_t n_pending = 0;
  const auto finish_pending = [&]() {
    log_inplace(logs, n_pending * kLogs);
    for (size_t k = 0; k < n_pending; ++k) {
      const Pending& q = pending[k];
      const double soft = q.w / q.zt + logs[k * kLogs];
      double hard = 0.0;
      if (kHard == HardKind::kCrossEntropyLogits) {
        // Without smoothing the uniform term is absent (not 0 * sum, which is NaN for -inf logits).
        hard = q.ysum_s * logs[k * kLogs + 1] - ((1.0 - ls) * q.ydot + (ls > 0.0 ? ls_c * q.dsum : 0.0));
      } else if (kHard == HardKind::kCrossEntropyProbs) {
        hard = -((1.0 - ls) * q.ydot + (ls > 0.0 ? ls_c * q.dsum : 0.0));
      } else if (kHard == HardKind::kMse) {
        hard = q.ydot / static_cast<double>(C);
      }
      if (P.row_soft) P.row_soft[q.row] = soft;
      if (P.row_hard) P.row_hard[q.row] = hard;
      out.soft += soft;
      out.hard += hard;
      out.kept += 1.0;
    }
    n_pending = 0;
  };
  // Sweep 1: row maxima (NaN skipped, see max_into), in two accumulators per row, even and odd chunks:
  // with one, each chunk waited on the previous chunk's max (measured: KD 4096x1000 2% faster).
  struct Maxima {
    T s, t;
  };
  const auto maxima = [&](size_t r) KD_SWEEP_INLINE -> Maxima {
    const T* s = P.student + r * C;
    const T* t = P.teacher + r * C;
    V vms = O::set1(-inf), vmt = O::set1(-inf), vms2 = vms, vmt2 = vmt;
    size_t j = lead_in<O>(s, C);
    if (j > 0) {
      vms = max_into<O>(O::load_n(s, j, -inf), vms);
      vmt = max_into<O>(O::load_n(t, j, -inf), vmt);
    }
    for (; j + 2 * O::N <= C; j += 2 * O::N) {
      vms = max_into<O>(O::load(s + j), vms);
      vmt = max_into<O>(O::load(t + j), vmt);
      vms2 = max_into<O>(O::load(s + j + O::N), vms2);
      vmt2 = max_into<O>(O::load(t + j + O::N), vmt2);
    }
    sweep_from<O>(C - j, 0, [&](size_t i, size_t n) KD_SWEEP_INLINE {
      vms2 = max_into<O>(loadf<O>(s + j + i, n, -inf), vms2);
      vmt2 = max_into<O>(loadf<O>(t + j + i, n, -inf), vmt2);
    });
    return {O::reduce_max(max_into<O>(vms2, vms)), O::reduce_max(max_into<O>(vmt2, vmt))};
  };
  // Rows that fit in one block (see sweep 2) are short enough that a row is mostly one dependency chain
  // (maxima, exps, sums); their maxima are taken one row ahead, before this row's sweep 2, so that
  // chain overlaps the next row's. Wider rows with a gradient take the next row's maxima between this
  // row's sweeps 2 and 3: sweep 1 then follows sweep 2 (and its prefetches) as without a gradient,
  // and the gradient's stores drain while the next row is computed (measured: forward + gradient
  // 5% to 18% faster on KD 4096x1000).
  const bool one_block = O::kBlock > 1 && C <= O::N * O::kBlock;
  const bool late_ahead = kGrad && !one_block;
  Maxima ahead{};
  if ((one_block || late_ahead) && r0 < r1) ahead = maxima(r0);
  for (size_t r = r0; r < r1; ++r) {
    const T* s = P.student + r * C;
    const T* t = P.teacher + r * C;
    T* g = kGrad ? P.grad + r * C : nullptr;
    Maxima m = ahead;
    if (one_block && r + 1 < r1) ahead = maxima(r + 1);
    if (!row_kept(P, r)) {
      if (P.row_soft) P.row_soft[r] = 0.0;
      if (P.row_hard) P.row_hard[r] = 0.0;
      if (P.argmax) P.argmax[r] = P.argmax[P.rows + r] = -1;
      if (kGrad) zero_row<O>(g, C);
      if (late_ahead && r + 1 < r1) ahead = maxima(r + 1);
      continue;
    }
    const T* ym = kMatrixTargets ? P.target_matrix + r * C : nullptr;
    const size_t cls = !kMatrixTargets && kTargets ? static_cast<size_t>(class_of(P, r)) : 0;
    // Targets of chunk [j, j + n).
    auto yvec = [&](size_t j, size_t n) KD_SWEEP_INLINE -> V {
      if (kMatrixTargets) return loadf<O>(ym + j, n, 0);
      if (cls < j || cls >= j + n) return zero;
      return loadf<O>(hot + O::N - (cls - j), n, 0);
    };

    if (!one_block && !late_ahead) m = maxima(r);
    const T ms = m.s, mt = m.t;
    if (P.argmax) {
      P.argmax[r] = first_index_of(s, C, ms);
      P.argmax[P.rows + r] = first_index_of(t, C, mt);
    }
    const V vms1 = O::set1(ms), vmt1 = O::set1(mt);

    // The saved exps start at the student row's offset within a 64-byte line, so sweep 2's stores and
    // sweep 3's loads are as aligned as the row's own loads (sweep 3 follows the gradient row, which
    // usually shares the student's offset).
    T* et_out = scratch_line + (reinterpret_cast<uintptr_t>(s) % 64) / sizeof(T);
    T* e1_out = et_out + scratch_stride;
    T* es_out = e1_out + scratch_stride;
    // The row whose sweep 1 comes next streams into the cache while this one is computed (sweep 1 would
    // otherwise wait on memory for every line): the next row, or the one after it when maxima are taken
    // one row ahead. Sweep 2 issues it, and with a gradient sweep 3 issues it again: measured here,
    // without the second prefetch sweep 1 still waited on memory for most lines (KD 4096x1000 forward +
    // gradient took 2.35x the forward time, 1.77x with it), and it still helps (by 8%) when the next
    // row's maxima have been taken before sweep 3.
    const size_t pf = one_block ? 2 : 1;
    const bool prefetch_next = r + pf < P.rows;
    const auto prefetch = [&](size_t j) KD_SWEEP_INLINE {
      if (prefetch_next) {
        prefetch_chunk<O>(s + pf * C, j);
        prefetch_chunk<O>(t + pf * C, j);
        if (kMatrixTargets) prefetch_chunk<O>(ym + pf * C, j);
      }
    };
    // The row's sums: zs, zt, w, z1, ysum, ydot, dsum (0 where this kernel has no such term).
    double sums[8];
    // Sweep 2: exps and sums, into sums. Tail lanes are loaded as 0 and their contributions zeroed.
    // Guarded: the exps clamp their arguments and w's products are masked, so -inf logits give exact
    // 0s. Unguarded (ops with the unguarded exps only): neither, which gives the same sums for every
    // row with finite logits, and a sum that is not finite otherwise (see below).
    const auto sweep2 = [&](auto guarded) KD_SWEEP_INLINE {
      constexpr bool kGuarded = decltype(guarded)::value;
      RowSum<O> zs, zt, w, z1, ydot, ysum, dsum;
      const auto fold = [&]() KD_SWEEP_INLINE {
        zs.fold();
        zt.fold();
        w.fold();
        if (kHard == HardKind::kCrossEntropyLogits) {
          z1.fold();
          ysum.fold();
        }
        if (kTargets) ydot.fold();
        if (kHard == HardKind::kCrossEntropyLogits || kHard == HardKind::kCrossEntropyProbs) dsum.fold();
      };
      // e^(d/T) for d = x - max <= 0: 2^(d * log2(e)/T). The argument rounds once, as d * (1/T) would,
      // and 2^y needs no Cody-Waite reduction, so the 1/T costs no multiply of its own (measured: KD
      // float32 4096x1000 10-12% faster than exp(d * (1/T))). The rounding moves each term by at most
      // |d/T| 2^-23 of itself, so by at most 0.37 * 2^-23 of the row's largest term (which is 1). With
      // the logits cross-entropy at T = 1 the exps are also the hard term's, and stay exp(d) itself.
      const auto soft_exp = [&](V d) KD_SWEEP_INLINE -> V {
        if (kUnitTemp) return softmax_exp<O, kGuarded, false>(d);
        return softmax_exp<O, kGuarded, true>(O::mul(d, log2e_t));
      };
      const auto terms = [&](size_t j, size_t n) KD_SWEEP_INLINE {
        prefetch(j);
        const V xs = loadf<O>(s + j, n, 0), xt = loadf<O>(t + j, n, 0);
        const V ds = O::sub(xs, vms1);
        const V dt = O::sub(xt, vmt1);
        const V es = keepf<O>(soft_exp(ds), n);
        const V et = keepf<O>(soft_exp(dt), n);
        zs.add(es);
        zt.add(et);
        // w = sum et (dt - ds), divided by T once per row. Teacher probabilities of exactly 0 contribute
        // exactly 0 (guarded: also when dt - ds is infinite).
        if constexpr (kGuarded) {
          w.add_prod_where_pos(et, et, O::sub(dt, ds));
        } else {
          w.add_prod(et, O::sub(dt, ds));
        }
        if (kGrad) {
          storef<O>(es_out + j, n, es);
          storef<O>(et_out + j, n, et);
        }
        if (kHard == HardKind::kCrossEntropyLogits) {
          V e1 = es;
          if constexpr (!kUnitTemp) e1 = keepf<O>(softmax_exp<O, kGuarded, false>(ds), n);
          z1.add(e1);
          dsum.add(keepf<O>(ds, n));
          if (kMatrixTargets) {  // class indices: see below the sweep
            const V yv = yvec(j, n);
            ysum.add(yv);
            ydot.add_prod_where_pos(yv, yv, ds);  // y = 0 at a -inf logit contributes 0, not NaN
          }
          if (kGrad && !kUnitTemp) storef<O>(e1_out + j, n, e1);
        } else if (kHard == HardKind::kCrossEntropyProbs) {
          // ln(clamp(s)): the log inside the clamp range, the exact bound's log outside it.
          const V inside = O::in_range_or_zero(xs, c_lo, c_hi, O::log(O::min(O::max(xs, c_lo), c_hi)));
          const V lp = keepf<O>(O::add(inside, O::add(O::pos_or_zero(O::sub(c_lo, xs), c_log_lo),
                                                      O::pos_or_zero(O::sub(xs, c_hi), c_log_hi))),
                                n);
          dsum.add(lp);
          const V yp = yvec(j, n);
          ydot.add_prod_where_pos(yp, yp, lp);
        } else if (kHard == HardKind::kMse) {
          const V d = O::sub(xs, yvec(j, n));
          ydot.add(O::mul(d, d));
        }
      };
      if (one_block) {
        // The row fits in one block: its V partials are the whole sums, and one sum8 adds up all of their
        // lanes (a narrow row would otherwise spend most of its time widening and reducing each sum).
        sweep<O>(C, s, terms);
        if constexpr (O::kBlock > 1) {
          O::sum8({zs.partial(), zt.partial(), w.partial(), z1.partial(), ysum.partial(), ydot.partial(),
                   dsum.partial(), zero},
                  sums);
        }
      } else {
        sweep_fold<O>(C, s, terms, fold);
        const RowSum<O>* all[7] = {&zs, &zt, &w, &z1, &ysum, &ydot, &dsum};
        for (size_t i = 0; i < 7; ++i) sums[i] = all[i]->sum();
      }
    };
    if constexpr (HasUnguardedExp<O>::value) {
      // The unguarded exps give the guarded ones or a value that is not finite (-inf logits, or logits
      // beyond about 1e14 in magnitude), and w differs only where dt - ds is infinite; the exp sums are
      // at most the row length and w is finite for finite logits. So a row whose sums are all finite
      // has exactly the guarded sums, and any other is swept again with the guards (rows with -inf
      // logits take two sweeps 2). Measured: KD float32 4096x1000 6% faster than always guarded, 9%
      // on rows in cache (interleaved runs): the clamps head each exp's dependency chain.
      sweep2(std::false_type{});
      if (!__builtin_isfinite(sums[0] + sums[1] + sums[2] + sums[3])) sweep2(std::true_type{});
    } else {
      sweep2(std::true_type{});
    }

    if (kHard == HardKind::kCrossEntropyLogits && !kMatrixTargets) {
      // A class index's one-hot sums have one term: sum y = 1 and sum y ds = the class's ds, the very
      // values the lane sums would give (every other lane adds 0), without their three operations and
      // the class test in every chunk. (The binding has checked cls < C; a row with another index
      // would have no target, as its lanes would all be 0.)
      sums[4] = cls < C ? 1.0 : 0.0;
      sums[5] = cls < C ? static_cast<double>(static_cast<T>(s[cls] - ms)) : 0.0;
    }
    if (late_ahead && r + 1 < r1) ahead = maxima(r + 1);
    const double Zs = sums[0], Zt = sums[1];
    // Z1: the cross-entropy normaliser, for the hard term and the gradient.
    const double Z1 = kHard == HardKind::kCrossEntropyLogits ? sums[3] : 1.0;
    // Smoothed target mass, for the logits cross-entropy and its gradient.
    const double ysum_s = kHard == HardKind::kCrossEntropyLogits ? (1.0 - ls) * sums[4] + ls : 0.0;
    Pending& q = pending[n_pending];
    q.row = r;
    q.zt = Zt;
    q.w = sums[2] / P.temperature;
    q.ysum_s = ysum_s;
    q.ydot = sums[5];
    q.dsum = sums[6];
    logs[n_pending * kLogs] = Zs / Zt;
    if (kLogs == 2) logs[n_pending * kLogs + 1] = Z1;
    ++n_pending;

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
      auto grad_at = [&](size_t j, size_t n) KD_SWEEP_INLINE -> V {
        V gv = O::fma(cs, loadf<O>(es_out + j, n, 0), O::mul(ct, loadf<O>(et_out + j, n, 0)));
        if (kHard == HardKind::kCrossEntropyLogits) {
          const V e1 = kUnitTemp ? loadf<O>(es_out + j, n, 0) : loadf<O>(e1_out + j, n, 0);
          gv = O::fma(cy, yvec(j, n), O::add(O::fma(c1, e1, gv), cu));
        } else if (kHard == HardKind::kCrossEntropyProbs) {
          const V xs = loadf<O>(s + j, n, static_cast<T>(0.5));
          // d/ds of -y' ln(clamp(s)) = -y'/s inside the clamp range, 0 outside.
          const V yv = O::fma(one_m_ls, yvec(j, n), yu);
          gv = O::add(gv, O::in_range_or_zero(xs, c_lo, c_hi, O::mul(gh_v, O::div(yv, xs))));
        } else if (kHard == HardKind::kMse) {
          gv = O::fma(c_mse, O::sub(loadf<O>(s + j, n, 0), yvec(j, n)), gv);
        }
        return gv;
      };
      write_row<O>(g, C, stream_grad, prefetch, grad_at);
    }
    if (n_pending == kGroup) finish_pending();
  }
  finish_pending();
  if (stream_grad) O::fence();  // order the non-temporal stores before the caller reads them
  return out;
}

template <class O, HardKind kHard, bool kMatrixTargets, bool kGrad>
KdPartial kd_rows_temp(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  // Only the logits cross-entropy has a unit-temperature shortcut (its exps are the soft term's).
  if (kHard == HardKind::kCrossEntropyLogits && p.temperature == 1.0) {
    return kd_rows_impl<O, kHard, kMatrixTargets, kGrad, true>(p, r0, r1, scratch);
  }
  return kd_rows_impl<O, kHard, kMatrixTargets, kGrad, false>(p, r0, r1, scratch);
}

template <class O, HardKind kHard, bool kMatrixTargets>
KdPartial kd_rows_grad(const KdProblem<typename O::Scalar>& p, size_t r0, size_t r1,
                       typename O::Scalar* scratch) {
  return p.grad != nullptr ? kd_rows_temp<O, kHard, kMatrixTargets, true>(p, r0, r1, scratch)
                           : kd_rows_temp<O, kHard, kMatrixTargets, false>(p, r0, r1, scratch);
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
    RowSum<O> acc;
    sweep_fold<O>(C, s, [&](size_t j, size_t n) KD_SWEEP_INLINE {
      const V d = O::sub(loadf<O>(s + j, n, 0), loadf<O>(t + j, n, 0));
      acc.add(kP == 2 ? O::mul(d, d) : O::abs(d));
      if (kGrad) storef<O>(L.grad + r * C + j, n, O::mul(scale, kP == 2 ? d : O::sign(d)));
    }, [&]() KD_SWEEP_INLINE { acc.fold(); });
    const double row = acc.sum();
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

// |x|^beta with 0^beta = 0; beta 1 (kMode 1) and 2 (kMode 2) take exact shortcuts.
template <class O, int kMode>
inline typename O::V abs_pow(typename O::V x, typename O::V beta) {
  if (kMode == 2) return O::mul(x, x);
  const typename O::V ax = O::abs(x);
  if (kMode == 1) return ax;
  return O::pos_or_zero(ax, O::exp(O::mul(beta, O::log(ax))));
}

// The one-sweep form of a row's loss is used while loss >= kAttentionOneSweep * (sum a_s^2 + sum a_t^2);
// below that the difference of moments has cancelled too far and the row takes the exact sweep over
// differences. The moments carry about k * 2^-53 relative error (k grows like the square root of the
// row length), so the one-sweep loss is within k * 2^-53 / ratio of the exact one. For float rows
// that is below the float-rounded exact sweep's own error (about 2^-24 * sqrt(1 / ratio)) down to a
// ratio of 2^-40, where both are noise; double rows keep a margin of 2^4.
template <typename T>
constexpr double kAttentionOneSweep = sizeof(T) == 4 ? 0x1p-40 : 0x1p-4;

template <class O, int kMode, bool kGrad>
double attention_rows_impl(const AttentionProblem<typename O::Scalar>& P, size_t r0, size_t r1) {
  using T = typename O::Scalar;
  using V = typename O::V;
  const size_t C = P.cols;
  const V beta = O::set1(static_cast<T>(P.beta));
  const bool stream_grad = kGrad && P.rows * C * sizeof(T) >= kStreamBytes;
  double total = 0.0;
  for (size_t r = r0; r < r1; ++r) {
    const T* s = P.student + r * C;
    const T* t = P.teacher + r * C;
    // Sweep 1, the moments of p = |x|^beta, all accumulated in double (p widened first: a product of
    // two floats is exact there): the row sums (the normalisers), sum p_s^2, sum p_t^2 and sum p_s p_t.
    // Tail lanes load 0, and 0^beta = 0.
    typename O::Acc ss = O::acc_zero(), st = O::acc_zero(), ss2 = O::acc_zero(), st2 = O::acc_zero(),
                    sst = O::acc_zero();
    sweep<O>(C, s, [&](size_t j, size_t n) KD_SWEEP_INLINE {
      const V ps = abs_pow<O, kMode>(loadf<O>(s + j, n, 0), beta);
      const V pt = abs_pow<O, kMode>(loadf<O>(t + j, n, 0), beta);
      ss = O::acc_add(ss, ps);
      st = O::acc_add(st, pt);
      ss2 = O::acc_fma(ss2, ps, ps);
      st2 = O::acc_fma(st2, pt, pt);
      sst = O::acc_fma(sst, ps, pt);
    });
    const double Ss = O::acc_sum(ss), St = O::acc_sum(st);
    const bool norm_s = Ss > 1e-8;
    const double ns = norm_s ? 1.0 / Ss : 1.0, nt = St > 1e-8 ? 1.0 / St : 1.0;
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
        const V as = O::mul(abs_pow<O, kMode>(loadf<O>(s + j, n, 0), beta), vns);
        const V at = O::mul(abs_pow<O, kMode>(loadf<O>(t + j, n, 0), beta), vnt);
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
    if (P.row_out) P.row_out[r] = row / static_cast<double>(C);
    total += row;
    if (kGrad) {
      // g_k = 2 (a_s,k - a_t,k); dL/dx_k = beta |x_k|^(beta-1) sign(x_k) * ns * (g_k - sum_i g_i a_i)
      // when the row is normalised, else beta |x_k|^(beta-1) sign(x_k) * g_k. At x = 0 the gradient
      // is 0 for every beta (the subgradient, also where |x|^(beta-1) is unbounded).
      const V two = O::set1(static_cast<T>(2.0));
      const V sub_ga = O::set1(static_cast<T>(norm_s ? 2.0 * da : 0.0));
      const V outer = O::set1(static_cast<T>(P.grad_scale * P.beta * ns));
      write_row<O>(P.grad + r * C, C, stream_grad, [](size_t) KD_SWEEP_INLINE {},
                   [&](size_t j, size_t n) KD_SWEEP_INLINE {
        const V x = loadf<O>(s + j, n, 0);
        const V ps = abs_pow<O, kMode>(x, beta);
        const V as = O::mul(ps, vns);
        const V at = O::mul(abs_pow<O, kMode>(loadf<O>(t + j, n, 0), beta), vnt);
        const V gk = O::sub(O::mul(two, O::sub(as, at)), sub_ga);
        return O::mul(outer, O::mul(O::nz_div(ps, x), gk));
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

// out[i] = F(in[i]) for i < n; lanes past a tail are loaded as kFill (a value in F's domain).
template <class O, typename O::V (*F)(typename O::V), int kFill>
void vmap(const typename O::Scalar* in, typename O::Scalar* out, size_t n) {
  using T = typename O::Scalar;
  sweep<O>(n, out, [&](size_t j, size_t k) KD_SWEEP_INLINE {
    storef<O>(out + j, k, F(loadf<O>(in + j, k, static_cast<T>(kFill))));
  });
}

template <class O>
double vsum(const typename O::Scalar* in, size_t n) {
  RowSum<O> acc;
  sweep_fold<O>(
      n, in, [&](size_t j, size_t k) KD_SWEEP_INLINE { acc.add(loadf<O>(in + j, k, 0)); },
      [&]() KD_SWEEP_INLINE { acc.fold(); });
  return acc.sum();
}

template <typename T>
KernelSet<T> make_set() {
  using O = Ops<T>;
  return KernelSet<T>{&kd_rows<O>,          &feature_rows<O>,         &attention_rows<O>,
                      &vmap<O, &O::exp, 0>, &vmap<O, &O::log, 1>,     &vmap<O, &O::exp2_nonpos, 0>,
                      &vsum<O>};
}

// The table of this ISA; defined once per ISA .cc file.
const KernelTable& table();

inline KernelTable make_table(const char* name) {
  return KernelTable{name, make_set<float>(), make_set<double>()};
}

}  // namespace KD_ISA
}  // namespace kd
