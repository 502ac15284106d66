// Chooses the kernel table once per process: the best ISA the CPU and OS support, or the one forced by
// KDLOSS_ISA. The chosen table is immutable and shared by every thread and every addon instance.
#pragma once

#include <string>
#include <vector>

#include "kernels.h"

namespace kd {

// What the CPU (and, on x86, the OS via XGETBV) supports.
struct Capabilities {
  bool avx2 = false;    // AVX2 + FMA with YMM state enabled
  bool avx512 = false;  // AVX-512 F, DQ, BW, VL with ZMM state enabled
  bool neon = false;    // Advanced SIMD on aarch64
};

const Capabilities& capabilities();

// Names of the variants compiled into this build, best first ("scalar" is always last).
std::vector<std::string> compiled_isas();

// The table for `name` if it is compiled in and supported here; otherwise nullptr and *why says so.
const KernelTable* find_table(const std::string& name, std::string* why);

// The best supported table.
const KernelTable& best_table();

// The process-wide table: KDLOSS_ISA if set (nullptr and *why if that is unusable), else best_table().
const KernelTable* active_table(std::string* why);

}  // namespace kd
