// The scalar kernels of the divergences other than the forward KL (reverse KL, JSD, TVD), built
// without SIMD flags: a translation unit of their own, so a parallel build compiles them beside
// scalar.cc (see kd_rows_other in kd_rows.h).
#define KD_ISA scalar
#include "ops_scalar.h"
#include "kd_rows.h"

namespace kd {
namespace scalar {

KdPartial kd_rows_other(const KdProblem<float>& p, size_t r0, size_t r1, float* scratch) {
  return kd_rows_other_impl<Ops<float>>(p, r0, r1, scratch);
}

KdPartial kd_rows_other(const KdProblem<double>& p, size_t r0, size_t r1, double* scratch) {
  return kd_rows_other_impl<Ops<double>>(p, r0, r1, scratch);
}

}  // namespace scalar
}  // namespace kd
