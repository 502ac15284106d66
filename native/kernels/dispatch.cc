#include "dispatch.h"

#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define KD_X86 1
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace kd {

namespace scalar {
const KernelTable& table();
}
#ifdef KD_HAVE_AVX2
namespace avx2 {
const KernelTable& table();
}
#endif
#ifdef KD_HAVE_AVX512
namespace avx512 {
const KernelTable& table();
}
#endif
#ifdef KD_HAVE_NEON
namespace neon {
const KernelTable& table();
}
#endif

namespace {

#ifdef KD_X86
unsigned long long xgetbv0() {
  unsigned int lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

Capabilities detect() {
  Capabilities c;
#ifdef KD_X86
  unsigned int a = 0, b = 0, cx = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
  const bool osxsave = (cx >> 27) & 1;
  const bool fma = (cx >> 12) & 1;
  const bool avx = (cx >> 28) & 1;
  if (!osxsave || !avx) return c;
  const unsigned long long xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;            // SSE and AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;          // plus opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &cx, &d)) return c;
  const bool avx2 = (b >> 5) & 1;
  const bool f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  c.avx2 = ymm_state && avx2 && fma;
  c.avx512 = c.avx2 && zmm_state && f && dq && bw && vl;
#endif
#if defined(__aarch64__)
#if defined(__linux__)
  c.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
#else
  c.neon = true;  // Advanced SIMD is mandatory on AArch64
#endif
#endif
  return c;
}

struct Entry {
  const char* name;
  const KernelTable& (*table)();
  bool Capabilities::*cap;  // nullptr: always supported
};

// Best first.
const Entry kEntries[] = {
#ifdef KD_HAVE_AVX512
    {"avx512", &avx512::table, &Capabilities::avx512},
#endif
#ifdef KD_HAVE_AVX2
    {"avx2", &avx2::table, &Capabilities::avx2},
#endif
#ifdef KD_HAVE_NEON
    {"neon", &neon::table, &Capabilities::neon},
#endif
    {"scalar", &scalar::table, nullptr},
};

bool supported(const Entry& e) { return e.cap == nullptr || capabilities().*(e.cap); }

}  // namespace

const Capabilities& capabilities() {
  static const Capabilities c = detect();
  return c;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
  for (const Entry& e : kEntries) names.emplace_back(e.name);
  return names;
}

const KernelTable* find_table(const std::string& name, std::string* why) {
  for (const Entry& e : kEntries) {
    if (name != e.name) continue;
    if (supported(e)) return &e.table();
    *why = "KDLOSS_ISA=" + name + ": this CPU or OS does not support " + name;
    return nullptr;
  }
  std::string known;
  for (const Entry& e : kEntries) known += std::string(known.empty() ? "" : ", ") + e.name;
  *why = "KDLOSS_ISA=" + name + ": not a variant of this build (expected one of: " + known + ")";
  return nullptr;
}

const KernelTable& best_table() {
  for (const Entry& e : kEntries) {
    if (supported(e)) return e.table();
  }
  return scalar::table();
}

const KernelTable* active_table(std::string* why) {
  struct Choice {
    const KernelTable* table = nullptr;
    std::string why;
  };
  static const Choice choice = [] {
    Choice c;
    const char* forced = std::getenv("KDLOSS_ISA");
    c.table = (forced == nullptr || *forced == '\0') ? &best_table() : find_table(forced, &c.why);
    return c;
  }();
  if (choice.table == nullptr) *why = choice.why;
  return choice.table;
}

}  // namespace kd
