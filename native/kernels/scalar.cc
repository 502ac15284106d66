// Scalar kernels: the portable baseline and the reference for every SIMD variant.
#define KD_ISA scalar
#include "ops_scalar.h"
#include "kernels_impl.h"

namespace kd {
namespace scalar {

const KernelTable& table() {
  static const KernelTable t = make_table("scalar");
  return t;
}

}  // namespace scalar
}  // namespace kd
