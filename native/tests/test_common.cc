#include "test_common.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "kernels/dispatch.h"

namespace kdt {

Options g_opt;
Report g_report;

size_t scaled(size_t n, size_t lo) {
  const double v = static_cast<double>(n) * g_opt.scale;
  const size_t s = v < 1.0 ? 0 : static_cast<size_t>(v);
  return s < lo ? lo : s;
}

bool sampled(uint64_t i) {
  if (g_opt.scale >= 1.0) return true;
  uint64_t x = i * 0x9e3779b97f4a7c15ULL + g_opt.seed;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return static_cast<double>(x >> 11) * 0x1.0p-53 < g_opt.scale;
}

std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

// ---- variants -----------------------------------------------------------------------------------

const kd::KernelTable& scalar_table() {
  static const kd::KernelTable* t = [] {
    std::string why;
    const kd::KernelTable* s = kd::find_table("scalar", &why);
    if (s == nullptr) {
      std::fprintf(stderr, "no scalar table: %s\n", why.c_str());
      std::exit(2);
    }
    return s;
  }();
  return *t;
}

const std::vector<Variant>& simd_variants() {
  static const std::vector<Variant> v = [] {
    std::vector<Variant> out;
    for (const std::string& name : kd::compiled_isas()) {
      if (name == "scalar") continue;
      if (!g_opt.only_isa.empty() && g_opt.only_isa != name) continue;
      std::string why;
      const kd::KernelTable* t = kd::find_table(name, &why);
      if (t == nullptr) {
        std::printf("  [skip] %s: %s\n", name.c_str(), why.c_str());
        continue;
      }
      out.push_back({name, t});
    }
    return out;
  }();
  return v;
}

std::vector<Variant> all_variants() {
  std::vector<Variant> v{{"scalar", &scalar_table()}};
  for (const Variant& s : simd_variants()) v.push_back(s);
  return v;
}

// ---- Rng ----------------------------------------------------------------------------------------

Rng::Rng(uint64_t seed) {
  uint64_t z = seed;
  for (uint64_t& s : s_) {
    z += 0x9e3779b97f4a7c15ULL;
    uint64_t x = z;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    s = x ^ (x >> 31);
  }
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u = 0.0;
  do {
    u = uniform();
  } while (u <= 0.0);
  const double v = uniform();
  const double r = std::sqrt(-2.0 * std::log(u));
  spare_ = r * std::sin(2.0 * M_PI * v);
  has_spare_ = true;
  return r * std::cos(2.0 * M_PI * v);
}

size_t Rng::below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }

// ---- Report / Case ------------------------------------------------------------------------------

void Report::fail(const std::string& msg) {
  ++failed_;
  if (printed_ < g_opt.max_failures_printed) {
    std::printf("  FAIL %s\n", msg.c_str());
  } else if (printed_ == g_opt.max_failures_printed) {
    std::printf("  (further failures not printed)\n");
  }
  ++printed_;
  std::fflush(stdout);
}

void Report::print_worst() const {
  std::printf("\nWorst observed errors (rel = |err| / (|ref| + magnitude); ratio = |err| / tolerance; "
              "ulp for exp/log):\n");
  for (const auto& kv : worst_) {
    const Worst& w = kv.second;
    if (w.ulp > 0.0 || kv.first.find("ulp") != std::string::npos) {
      std::printf("  %-44s %10llu checks  max %.4g ulp%s%s\n", kv.first.c_str(),
                  static_cast<unsigned long long>(w.checks), w.ulp, w.where.empty() ? "" : "  at ",
                  w.where.c_str());
    } else {
      std::printf("  %-44s %10llu checks  rel %.3g  ratio %.3g%s%s\n", kv.first.c_str(),
                  static_cast<unsigned long long>(w.checks), w.rel, w.ratio,
                  g_opt.verbose && !w.where.empty() ? "  at " : "",
                  g_opt.verbose ? w.where.c_str() : "");
    }
  }
}

Case::~Case() {
  if (ok_) g_report.pass();
}

void Case::failure(const std::string& msg) {
  if (ok_) {
    ok_ = false;
    g_report.fail(name_ + ": " + msg);
  } else if (details_ < 2 && g_opt.verbose) {
    std::printf("       also %s\n", msg.c_str());
  }
  ++details_;
}

bool Case::expect(bool ok, const std::string& what) {
  if (!ok) failure(what);
  return ok;
}

bool Case::exact(const char* what, size_t index, double want, double got) {
  const bool ok = (std::isnan(want) && std::isnan(got)) || want == got;
  if (!ok) failure(fmt("%s[%zu] = %.17g, want exactly %.17g", what, index, got, want));
  return ok;
}

bool Case::near(const std::string& key, const char* what, size_t index, LD ref, LD mag, double got,
                double rel, LD floor) {
  Worst& w = g_report.worst(key);
  ++w.checks;
  if (!std::isfinite(ref)) {
    const bool ok = std::isnan(ref) ? std::isnan(got) : static_cast<LD>(got) == ref;
    if (!ok) failure(fmt("%s[%zu] = %.17g, want %Lg", what, index, got, ref));
    return ok;
  }
  if (!std::isfinite(got)) {
    failure(fmt("%s[%zu] = %g, want finite %.17Lg (mag %.3Lg)", what, index, got, ref, mag));
    w.ratio = INFINITY;
    return false;
  }
  const LD err = std::fabs(static_cast<LD>(got) - ref);
  // The floor counts as magnitude floor / rel, so `r` is the relative error the tolerance judges.
  const LD scale = std::fabs(ref) + std::fabs(mag) + (rel > 0 ? floor / rel : 0);
  const LD tol = rel * scale;
  const double r = scale > 0 ? static_cast<double>(err / scale) : (err > 0 ? INFINITY : 0.0);
  const double q = tol > 0 ? static_cast<double>(err / tol) : (err > 0 ? INFINITY : 0.0);
  if (r > w.rel) w.rel = r;
  if (q > w.ratio) {
    w.ratio = q;
    w.where = name_ + fmt(" %s[%zu]", what, index);
  }
  if (err <= tol) return true;
  failure(fmt("%s[%zu] = %.17g, want %.17Lg (err %.3Lg > tol %.3Lg, mag %.3Lg, rel err %.3g)", what,
              index, got, ref, err, tol, mag, r));
  return false;
}

bool Case::ulp(const std::string& key, const char* what, LD input, LD ref, double got, double dist,
               double max_ulp) {
  Worst& w = g_report.worst(key);
  ++w.checks;
  if (dist > w.ulp) {
    w.ulp = dist;
    w.where = fmt("%s(%.9Lg)", what, input);
  }
  if (dist <= max_ulp) return true;
  failure(fmt("%s(%.17Lg = %La) = %.17g (%a), want %.17Lg: %.4g ulp > %.4g", what, input, input, got,
              got, ref, dist, max_ulp));
  return false;
}

}  // namespace kdt
