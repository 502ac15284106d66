// AVX2 + FMA kernels (8 float / 4 double lanes). Built with -mavx2 -mfma only; dispatch.cc calls them
// only where CPUID and XGETBV report AVX2, FMA and the YMM state.
#define KD_ISA avx2
#include "ops_avx2.h"
#include "kernels_impl.h"

namespace kd {
namespace avx2 {

const KernelTable& table() {
  static const KernelTable t = make_table("avx2");
  return t;
}

}  // namespace avx2
}  // namespace kd
