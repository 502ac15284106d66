// AArch64 Advanced SIMD kernels (4 float / 2 double lanes). Advanced SIMD is part of the AArch64 base
// ISA, so no extra flags; dispatch.cc still checks HWCAP_ASIMD.
#define KD_ISA neon
#include "ops_neon.h"
#include "kernels_impl.h"

namespace kd {
namespace neon {

const KernelTable& table() {
  static const KernelTable t = make_table("neon");
  return t;
}

}  // namespace neon
}  // namespace kd
