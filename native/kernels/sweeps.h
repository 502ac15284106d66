// Row sweeps and the helpers every loss kernel shares: chunked sweeps over a row, row sums kept as
// vector partials, loads and stores of the input and output arrays, prefetches, row writes. Written
// once over an ISA's Ops<T> (see ops_scalar.h for the interface) and compiled once per ISA into
// namespace kd::KD_ISA; include it (through kernels_impl.h) only from an ISA's .cc file, after its ops
// header. Everything here lives in the ISA namespace, so no inline function compiled with one ISA's
// flags can be picked by the linker for another ISA.
//
// Row sums are V partials over blocks of O::kBlock vectors (float lanes for float), widened into O::Acc
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
// array is aligned. A misaligned 64-byte load spans two cache lines, which costs a streaming kernel
// most where it is bound by loads. Other arrays of the row gain too when they share the lead's
// alignment (as equal-sized allocations do).
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

// Whether the ops provide fma_where_nonzero(c, a, b, acc) = acc + a * b where c != 0 (or is NaN), else
// acc (AVX-512).
template <class O, class = void>
struct HasMaskedFma : std::false_type {};
template <class O>
struct HasMaskedFma<O, decltype(void(O::fma_where_nonzero(O::set1(0), O::set1(0), O::set1(0), O::set1(0))))>
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
  KD_SWEEP_INLINE void add(typename O::V v) {
    if constexpr (O::kBlock == 1) {
      acc = O::acc_add(acc, v);
    } else {
      part = O::add(part, v);
    }
  }
  KD_SWEEP_INLINE void fold() {
    if constexpr (O::kBlock != 1) {
      acc = O::acc_add(acc, part);
      part = O::set1(0);
    }
  }
  // Adds a * b (SIMD ops only).
  KD_SWEEP_INLINE void add_prod(typename O::V a, typename O::V b) {
    static_assert(O::kBlock != 1, "the scalar reference keeps the guarded sums");
    part = O::fma(a, b, part);
  }
  // Adds a * b in the lanes where c != 0 (NaN included); the others add nothing, also where a * b is
  // NaN: a weight of exactly 0 (a target or probability of 0) times an infinite log contributes 0, as
  // the term is absent. Fused where the ops have a masked FMA (AVX-512: two operations instead of four).
  KD_SWEEP_INLINE void add_prod_where_nonzero(typename O::V c, typename O::V a, typename O::V b) {
    if constexpr (O::kBlock == 1) {
      acc = O::acc_add(acc, O::where_nonzero(c, O::mul(a, b)));
    } else if constexpr (HasMaskedFma<O>::value) {
      part = O::fma_where_nonzero(c, a, b, part);
    } else {
      part = O::add(part, O::where_nonzero(c, O::mul(a, b)));
    }
  }
  double sum() const { return O::acc_sum(acc); }
  // The V partial, i.e. the whole row's sum when the row fit in one block and fold() was never called.
  typename O::V partial() const { return part; }
};

// Prefetches the cache line holding element j of row p (one call per line: the first chunk that
// starts in a line issues it). Forced inline: GCC judges a function holding only a prefetch to have no
// effect and drops calls to it.
template <class O, class S>
KD_SWEEP_INLINE inline void prefetch_chunk(const S* p, size_t j) {
  constexpr size_t kLine = 64 / sizeof(S);
  if (O::N >= kLine || j % kLine < O::N) __builtin_prefetch(p + j, 0, 3);
}

// max(x, acc) lane-wise, ignoring NaN in x (acc, started at -inf, never holds NaN): the maximum of the
// non-NaN values, whatever order they come in.
template <class O>
KD_SWEEP_INLINE inline typename O::V max_into(typename O::V x, typename O::V acc) {
  return O::max(x, acc);
}

// Loads and stores of n <= O::N lanes (lanes past n of a load hold fill).
template <class O>
KD_SWEEP_INLINE inline typename O::V loadf(const typename O::Scalar* p, size_t n, typename O::Scalar fill) {
  return n == O::N ? O::load(p) : O::load_n(p, n, fill);
}

template <class O>
KD_SWEEP_INLINE inline void storef(typename O::Scalar* p, size_t n, typename O::V v) {
  if (n == O::N) {
    O::store(p, v);
  } else {
    O::store_n(p, n, v);
  }
}

// The one load of a kernel's input arrays (logits, targets, features, maps) and the one store of its
// gradient output: elements of storage type S as O::Scalar lanes. Every kernel reads its inputs and
// writes its gradient through these, so a storage type narrower than the lanes (widened in registers)
// is added here, not in the kernels; today S is O::Scalar itself.
template <class O, class S>
KD_SWEEP_INLINE inline typename O::V load_in(const S* p, size_t n, typename O::Scalar fill) {
  static_assert(std::is_same<S, typename O::Scalar>::value, "no conversion from this storage type yet");
  return loadf<O>(p, n, fill);
}

template <class O, class S>
KD_SWEEP_INLINE inline void store_out(S* p, size_t n, typename O::V v) {
  static_assert(std::is_same<S, typename O::Scalar>::value, "no conversion to this storage type yet");
  storef<O>(p, n, v);
}

// A full vector to a vector-aligned address, past the caches.
template <class O, class S>
KD_SWEEP_INLINE inline void stream_out(S* p, typename O::V v) {
  static_assert(std::is_same<S, typename O::Scalar>::value, "no conversion to this storage type yet");
  O::stream(p, v);
}

// Writes the row g[0, cols) chunk by chunk, g[j, j + n) = value(j, n), calling each(j) first. With
// stream, the sweep starts at g's first vector-aligned element, whatever the row's width, and full
// chunks go out as non-temporal stores: a gradient row is written once and not read here, so its lines
// need not be fetched into the cache first (the caller fences).
template <class O, class S, class Each, class Value>
KD_SWEEP_INLINE inline void write_row(S* g, size_t cols, bool stream, Each&& each, Value&& value) {
  const size_t head = stream ? to_aligned<O>(g) : lead_in<O>(g, cols);
  sweep_from<O>(cols, head, [&](size_t j, size_t n) KD_SWEEP_INLINE {
    each(j);
    if (stream && n == O::N) {
      stream_out<O>(g + j, value(j, n));
    } else {
      store_out<O>(g + j, n, value(j, n));
    }
  });
}

// v with the lanes past n set to 0.
template <class O>
KD_SWEEP_INLINE inline typename O::V keepf(typename O::V v, size_t n) {
  return n == O::N ? v : O::keep_n(v, n);
}

template <class O, class S>
inline void zero_row(S* g, size_t cols) {
  const typename O::V z = O::set1(0);
  sweep<O>(cols, g, [&](size_t j, size_t n) KD_SWEEP_INLINE { store_out<O>(g + j, n, z); });
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

}  // namespace KD_ISA
}  // namespace kd
