// kdloss native test program. Tests every kernel variant that is compiled in and supported by this
// CPU against the scalar kernels and against independent long double references (reference.cc).
//
//   kd_native_tests [--quick] [--scale=F] [--seed=N] [--isa=NAME] [--suite=kd|divergence|maps|vecmath|engine|sparse]
//                   [--print-failures=N] [--verbose]
//
//   --quick     scale 0.1 (for emulators); KD_TEST_SCALE=F in the environment does the same as --scale
//   --isa       test only this SIMD variant (default: KDLOSS_ISA if set, else all supported ones)
//
// The last line of output is exactly "N passed, N failed"; the exit status is 1 if anything failed.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/dispatch.h"
#include "test_common.h"
#include "tests.h"

namespace {

bool starts(const char* arg, const char* prefix, const char** value) {
  const size_t n = std::strlen(prefix);
  if (std::strncmp(arg, prefix, n) != 0) return false;
  *value = arg + n;
  return true;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--scale=F] [--seed=N] [--isa=NAME] [--suite=kd|divergence|maps|vecmath|engine|sparse] "
               "[--print-failures=N] [--verbose]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kdt;
#ifdef KD_TEST_SANITIZE
  g_opt.scale = 0.5;  // sanitizers slow everything down
#endif
  if (const char* s = std::getenv("KD_TEST_SCALE")) g_opt.scale = std::atof(s);
  if (const char* s = std::getenv("KDLOSS_ISA")) g_opt.only_isa = s;
  for (int i = 1; i < argc; ++i) {
    const char* v = nullptr;
    if (std::strcmp(argv[i], "--quick") == 0) {
      g_opt.scale = 0.1;
    } else if (starts(argv[i], "--scale=", &v)) {
      g_opt.scale = std::atof(v);
    } else if (starts(argv[i], "--seed=", &v)) {
      g_opt.seed = std::strtoull(v, nullptr, 0);
    } else if (starts(argv[i], "--isa=", &v)) {
      g_opt.only_isa = v;
    } else if (starts(argv[i], "--suite=", &v)) {
      g_opt.only_suite = v;
    } else if (starts(argv[i], "--print-failures=", &v)) {
      g_opt.max_failures_printed = std::atoi(v);
    } else if (std::strcmp(argv[i], "--verbose") == 0) {
      g_opt.verbose = true;
    } else {
      return usage(argv[0]);
    }
  }
  if (!(g_opt.scale > 0)) return usage(argv[0]);
  if (g_opt.only_isa == "scalar") g_opt.only_isa = "-";  // scalar only: no SIMD variant matches

  const kd::Capabilities& caps = kd::capabilities();
  std::string compiled;
  for (const std::string& n : kd::compiled_isas()) compiled += (compiled.empty() ? "" : ", ") + n;
  std::printf("kdloss native tests: compiled [%s]; cpu avx2=%d avx512=%d neon=%d; scale %g; seed %llu\n",
              compiled.c_str(), caps.avx2, caps.avx512, caps.neon, g_opt.scale,
              static_cast<unsigned long long>(g_opt.seed));
  if (!g_opt.only_isa.empty() && g_opt.only_isa != "-") {
    std::string why;
    if (kd::find_table(g_opt.only_isa, &why) == nullptr) {
      std::printf("  %s\n0 passed, 1 failed\n", why.c_str());
      return 1;
    }
  }
  std::string tested = "scalar";
  for (const Variant& v : simd_variants()) tested += ", " + v.name;
  std::printf("testing: %s\n", tested.c_str());

  struct Suite {
    const char* name;
    void (*run)();
  };
  const Suite suites[] = {{"kd", &suite_kd},          {"divergence", &suite_divergence}, {"maps", &suite_maps},
                          {"vecmath", &suite_vecmath}, {"engine", &suite_engine},         {"sparse", &suite_sparse}};
  bool any = false;
  for (const Suite& s : suites) {
    if (!g_opt.only_suite.empty() && g_opt.only_suite != s.name) continue;
    any = true;
    const uint64_t p0 = g_report.passed(), f0 = g_report.failed();
    const auto t0 = std::chrono::steady_clock::now();
    std::printf("[%s]\n", s.name);
    std::fflush(stdout);
    s.run();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %s: %llu passed, %llu failed in %.1f s\n", s.name,
                static_cast<unsigned long long>(g_report.passed() - p0),
                static_cast<unsigned long long>(g_report.failed() - f0), secs);
    std::fflush(stdout);
  }
  if (!any) return usage(argv[0]);

  g_report.print_worst();
  std::printf("%llu passed, %llu failed\n", static_cast<unsigned long long>(g_report.passed()),
              static_cast<unsigned long long>(g_report.failed()));
  return g_report.failed() == 0 ? 0 : 1;
}
