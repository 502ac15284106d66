// The loss kernels of one ISA, put together into its KernelTable. Include this only from an ISA's .cc
// file, after its ops header (which defines KD_ISA): everything the kernels are made of is compiled
// once per ISA into namespace kd::KD_ISA.
//
//   sweeps.h    row sweeps, row sums, loads, stores and row writes shared by every kernel
//   kd_steps.h  the steps of a distillation row (maxima, exps and sums, finishing, gradient)
//   kd_terms.h  the soft and hard terms of a distillation row
//   kd_rows.h   the distillation rows: the steps and terms over a row range
//   maps.h      feature-map distances and attention transfer
//   sparse_rows.h  the distillation rows with a sparse (top-k) teacher
#pragma once

#include "kd_rows.h"
#include "maps.h"
#include "sparse_rows.h"

namespace kd {
namespace KD_ISA {

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

template <class O>
void vpow(const typename O::Scalar* in, typename O::Scalar* out, size_t n, double beta) {
  using T = typename O::Scalar;
  const typename O::V b = O::set1(static_cast<T>(beta));
  sweep<O>(n, out, [&](size_t j, size_t k) KD_SWEEP_INLINE {
    storef<O>(out + j, k, abs_pow<O, 0>(loadf<O>(in + j, k, 1), b));
  });
}

template <typename T>
KernelSet<T> make_set() {
  using O = Ops<T>;
  return KernelSet<T>{&kd_rows<O>,          &feature_rows<O>,         &attention_rows<O>,
                      &vmap<O, &O::exp, 0>, &vmap<O, &O::log, 1>,     &vmap<O, &O::exp2_nonpos, 0>,
                      &vsum<O>,             &vpow<O>,
                      &sparse_kd_rows<O>};
}

// The table of this ISA; defined once per ISA .cc file.
const KernelTable& table();

inline KernelTable make_table(const char* name) {
  return KernelTable{name, make_set<float>(), make_set<double>()};
}

}  // namespace KD_ISA
}  // namespace kd
