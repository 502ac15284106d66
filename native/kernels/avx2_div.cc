// The AVX2 kernels of the divergences other than the forward KL (reverse KL, JSD, TVD), built with the
// AVX2 flags: a translation unit of their own, so a parallel build compiles them beside avx2.cc (see
// kd_rows_other in kd_rows.h).
#define KD_ISA avx2
#include "ops_avx2.h"
#include "kd_rows.h"

namespace kd {
namespace avx2 {

KdPartial kd_rows_other(const KdProblem<float>& p, size_t r0, size_t r1, float* scratch) {
  return kd_rows_other_impl<Ops<float>>(p, r0, r1, scratch);
}

KdPartial kd_rows_other(const KdProblem<double>& p, size_t r0, size_t r1, double* scratch) {
  return kd_rows_other_impl<Ops<double>>(p, r0, r1, scratch);
}

}  // namespace avx2
}  // namespace kd
