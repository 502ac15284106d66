// AVX-512 (F, DQ, BW, VL) kernels (16 float / 8 double lanes). Built with the AVX-512 flags only in
// this file; dispatch.cc calls them only where CPUID and XGETBV report AVX-512 F/DQ/BW/VL and the ZMM state.
#define KD_ISA avx512
#include "ops_avx512.h"
#include "kernels_impl.h"

namespace kd {
namespace avx512 {

const KernelTable& table() {
  static const KernelTable t = make_table("avx512");
  return t;
}

}  // namespace avx512
}  // namespace kd
