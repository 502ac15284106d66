// Shared helpers of the native test program: options, the variants under test, deterministic random
// numbers, exact-size (optionally misaligned) buffers, error bookkeeping and ULP distances.
// No test framework: a Case collects the first failure of one test, the Report counts passes and
// failures and keeps the worst observed error per (variant, dtype, quantity).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernels.h"

namespace kdt {

using LD = long double;

// ---- options ------------------------------------------------------------------------------------

struct Options {
  double scale = 1.0;      // multiplies sweep sizes; < 1 under sanitizers or emulation
  uint64_t seed = 20240611;
  int max_failures_printed = 40;
  bool verbose = false;
  std::string only_isa;    // KDLOSS_ISA or --isa: test this variant only (scalar still the reference)
  std::string only_suite;  // --suite=kd|maps|vecmath|engine|sparse
};

extern Options g_opt;

// n scaled by g_opt.scale, at least lo.
size_t scaled(size_t n, size_t lo = 1);
// Whether combination number `i` of a sweep runs: always at scale >= 1, else a pseudo-random subset of
// about that fraction (a hash, so no loop dimension is systematically skipped).
bool sampled(uint64_t i);

// ---- variants -----------------------------------------------------------------------------------

struct Variant {
  std::string name;
  const kd::KernelTable* table;
};

// The scalar table (always present).
const kd::KernelTable& scalar_table();
// Every SIMD variant that is compiled in and supported by this CPU (honours --isa / KDLOSS_ISA).
const std::vector<Variant>& simd_variants();
// Scalar first, then simd_variants().
std::vector<Variant> all_variants();

template <typename T>
const kd::KernelSet<T>& set_of(const kd::KernelTable& t);
template <>
inline const kd::KernelSet<float>& set_of<float>(const kd::KernelTable& t) { return t.f32; }
template <>
inline const kd::KernelSet<double>& set_of<double>(const kd::KernelTable& t) { return t.f64; }

template <typename T>
constexpr const char* dtype_name();
template <>
constexpr const char* dtype_name<float>() { return "f32"; }
template <>
constexpr const char* dtype_name<double>() { return "f64"; }

// Relative tolerances against the long double reference and between variants of one dtype.
template <typename T>
constexpr double rel_tol();
template <>
constexpr double rel_tol<float>() { return 1e-5; }
template <>
constexpr double rel_tol<double>() { return 1e-12; }

// ---- random numbers (splitmix64 + xoshiro256**; the same stream on every platform) ---------------

class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform();                 // [0, 1)
  double uniform(double lo, double hi);
  double normal();                  // N(0, 1), Box-Muller
  size_t below(size_t n);           // [0, n)
  bool chance(double p) { return uniform() < p; }

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// ---- buffers ------------------------------------------------------------------------------------

// n elements at data(), starting `offset` elements into a 64-byte aligned heap block. Without
// sanitizers a guard of kGuard sentinel elements follows the data and check_guard() tests it; under
// ASan there is no guard, so the data ends exactly at the end of the heap block and any overrun is
// reported by ASan.
template <typename T>
class Buffer {
 public:
#ifdef KD_TEST_SANITIZE
  static constexpr size_t kGuard = 0;
#else
  static constexpr size_t kGuard = 8;
#endif
  Buffer() = default;
  Buffer(size_t n, size_t offset) { reset(n, offset); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  void reset(size_t n, size_t offset) {
    release();
    n_ = n;
    off_ = offset;
    const size_t bytes = (offset + n + kGuard) * sizeof(T);
    block_ = static_cast<unsigned char*>(::operator new[](bytes == 0 ? 1 : bytes, std::align_val_t(64)));
    data_ = reinterpret_cast<T*>(block_) + offset;
    for (size_t i = 0; i < offset; ++i) data_[static_cast<ptrdiff_t>(i) - static_cast<ptrdiff_t>(offset)] = sentinel();
    for (size_t i = 0; i < n + kGuard; ++i) data_[i] = sentinel();
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  void fill(T v) {
    for (size_t i = 0; i < n_; ++i) data_[i] = v;
  }
  // True if the elements before and after the data still hold the sentinel.
  bool check_guard() const {
    for (size_t i = 0; i < off_; ++i) {
      if (!same(data_[static_cast<ptrdiff_t>(i) - static_cast<ptrdiff_t>(off_)], sentinel())) return false;
    }
    for (size_t i = n_; i < n_ + kGuard; ++i) {
      if (!same(data_[i], sentinel())) return false;
    }
    return true;
  }
  static T sentinel() {
    if constexpr (std::is_floating_point<T>::value) return static_cast<T>(-7.0e-3);
    return static_cast<T>(0x5a);
  }

 private:
  static bool same(T a, T b) { return std::memcmp(&a, &b, sizeof(T)) == 0; }
  void release() {
    if (block_ != nullptr) ::operator delete[](block_, std::align_val_t(64));
    block_ = nullptr;
    data_ = nullptr;
  }
  unsigned char* block_ = nullptr;
  T* data_ = nullptr;
  size_t n_ = 0;
  size_t off_ = 0;
};

// ---- error bookkeeping --------------------------------------------------------------------------

// Worst errors seen for one (variant, dtype, quantity, baseline).
struct Worst {
  double rel = 0.0;    // |got - ref| / (|ref| + magnitude + floor / rel_tol)
  double ratio = 0.0;  // |got - ref| / tolerance
  double ulp = 0.0;    // for ULP checks
  uint64_t checks = 0;
  std::string where;   // case of the worst ratio (or ULP)
};

class Report {
 public:
  Worst& worst(const std::string& key) { return worst_[key]; }
  void pass() { ++passed_; }
  void fail(const std::string& msg);
  uint64_t passed() const { return passed_; }
  uint64_t failed() const { return failed_; }
  void print_worst() const;

 private:
  std::map<std::string, Worst> worst_;
  uint64_t passed_ = 0;
  uint64_t failed_ = 0;
  int printed_ = 0;
};

extern Report g_report;

// One test case: any number of element checks, counted as one pass or one failure.
class Case {
 public:
  explicit Case(std::string name) : name_(std::move(name)) {}
  ~Case();
  Case(const Case&) = delete;
  Case& operator=(const Case&) = delete;

  // |got - ref| <= rel * (|ref| + mag) + floor; non-finite ref demands the same class (NaN, +-inf).
  // Records the worst error under `key`. Returns false (and records the failure) if outside.
  bool near(const std::string& key, const char* what, size_t index, LD ref, LD mag, double got,
            double rel, LD floor = 0.0L);
  // got == want exactly (bitwise for NaN-free values; NaN matches NaN).
  bool exact(const char* what, size_t index, double want, double got);
  bool expect(bool ok, const std::string& what);
  // ULP distance check (see ulp_distance); records the worst ULP under `key`.
  bool ulp(const std::string& key, const char* what, LD input, LD ref, double got, double dist,
           double max_ulp);
  bool ok() const { return ok_; }
  const std::string& name() const { return name_; }

 private:
  void failure(const std::string& msg);
  std::string name_;
  bool ok_ = true;
  int details_ = 0;
};

// ---- ULPs ---------------------------------------------------------------------------------------

// Distance in units in the last place of T between got and the exact value ref. NaN vs NaN is 0;
// NaN vs anything else is +inf. If ref rounds to +-inf in T, got must be that inf (0) or is measured
// from ref as if finite; an infinite got for a finite ref is measured as the next power of two after
// T's largest finite value (IEEE's view of overflow). Below T's smallest normal the ULP is T's
// smallest subnormal.
template <typename T>
double ulp_distance(T got, LD ref_in) {
  using L = std::numeric_limits<T>;
  // Working precision: double is exact enough for float results (and much faster than long double).
  using W = typename std::conditional<sizeof(T) == 4, double, LD>::type;
  const W ref = static_cast<W>(ref_in);
  if (std::isnan(ref)) return std::isnan(got) ? 0.0 : INFINITY;
  if (std::isnan(got)) return INFINITY;
  if (std::isinf(ref)) return static_cast<W>(got) == ref ? 0.0 : INFINITY;
  W g = static_cast<W>(got);
  if (std::isinf(got)) {
    const T rounded = static_cast<T>(ref);
    if (std::isinf(rounded) && rounded == got) return 0.0;
    g = std::copysign(std::ldexp(W(1), L::max_exponent), g);
  }
  const W a = std::fabs(ref);
  W u;
  if (a < static_cast<W>(L::min())) {
    u = static_cast<W>(L::denorm_min());
  } else {
    int e = std::ilogb(a);  // a in [2^e, 2^(e+1))
    if (e > L::max_exponent - 1) e = L::max_exponent - 1;
    u = std::ldexp(W(1), e - (L::digits - 1));
  }
  return static_cast<double>(std::fabs(g - ref) / u);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));

// Runs one case on the scalar table and on every SIMD variant: run(set, out) fills a Run, and
// check(case, prefix, got, ref_or_null) checks it against the reference (null) or the scalar run.
template <typename T, class Run, class RunFn, class CheckFn>
void check_variants(const std::string& what, RunFn&& run, CheckFn&& check) {
  Run scalar;
  run(set_of<T>(scalar_table()), scalar);
  {
    Case cs("scalar " + what);
    check(cs, fmt("scalar/%s/", dtype_name<T>()), scalar, nullptr);
  }
  for (const Variant& v : simd_variants()) {
    Run got;
    run(set_of<T>(*v.table), got);
    Case cs(v.name + " " + what);
    const std::string prefix = fmt("%s/%s/", v.name.c_str(), dtype_name<T>());
    check(cs, prefix, got, nullptr);
    check(cs, prefix, got, &scalar);
  }
}

}  // namespace kdt
