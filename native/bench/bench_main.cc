// kd_native_bench: the loss kernels timed directly, without Node or N-API, for every variant this CPU
// supports, with the roofline measured in the same run (the sum and exp probes of the same variant).
// Times are the calling thread's CPU time (medians), so other work on a shared machine costs the
// figures little beyond the caches it shares.
// The same settings as `npm run bench` (lib/bench/cases.ts): KD at T = 4 with the cross-entropy from
// logits, feature p = 2, attention beta = 2. One thread, one call over all rows; inputs allocated and
// filled once, the gradient output preallocated (no allocation inside a timed call). The KD cases of
// language-model vocabularies (512x32000, 64x131072) take class indices, as token ids are.
//
// Every variant's result is also checked against the scalar kernel's (relative 1e-4 for float, 1e-10
// for double); a mismatch is printed and makes the exit status 1.
//
//   kd_native_bench [--quick] [--isa=avx2,avx512] [--filter=SUBSTRING] [--kd-scratch=auto|saved|recompute]
//                   [--kd-shape=ROWSxCOLS[f64]]... [--no-divergences]
//
//   The KD cases of 4096x1000, 512x32000 and 64x131072 (class indices) are also run with each
//   divergence besides the forward KL (reverse-kl, jsd with beta 0.5, tvd), forward and forward +
//   gradient, unless --no-divergences.
//
//   --kd-scratch  the gradient cases' scratch: as the engine gives it (auto: the saved exps where the
//                 rows' scratch fits its per-thread cache, else none), always, or never
//   --kd-shape    adds KD cases (class indices, forward and forward + gradient) of that shape, float32
//                 or, with an f64 suffix (64x131072f64), float64
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"
#include "kernels/dispatch.h"
#include "kernels/sparse.h"
#include "kernels/kernels.h"
#include "bench/bench_cases.h"
#include "tests/test_common.h"  // Rng, Buffer and set_of, shared with the native tests

namespace {

using namespace kdbench;
using kdt::set_of;

struct Options {
  bool quick = false;
  std::vector<std::string> isas;  // empty: every supported variant
  std::string filter;
  ScratchMode scratch = ScratchMode::kAuto;
  struct Shape {
    size_t rows, cols;
    bool dbl;
  };
  std::vector<Shape> kd_shapes;
  bool divergences = true;
};

Options g_opt;

// The calling thread's CPU time in ns: the kernels run on this one thread, and on a machine shared
// with other work the time it spends descheduled is not the kernel's.
double thread_ns() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

// Median ns (thread CPU time) per call of f: batches of calls long enough to time (at least ~20 us
// each), repeated for at least min_s seconds and 5 batches, after one warm-up batch.
double median_ns(const std::function<void()>& f, double min_s) {
  const double t0 = thread_ns();
  f();
  const double once = thread_ns() - t0;
  const size_t batch = once >= 20e3 ? 1 : static_cast<size_t>(20e3 / std::max(once, 1.0)) + 1;
  for (size_t i = 1; i < batch; ++i) f();
  std::vector<double> samples;
  const double start = thread_ns();
  while (samples.size() < 5 || (thread_ns() - start) * 1e-9 < min_s) {
    const double a = thread_ns();
    for (size_t i = 0; i < batch; ++i) f();
    samples.push_back((thread_ns() - a) / static_cast<double>(batch));
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}



// The exp probe's block of one dtype: 256 KB of arguments in [-20, 0] and 256 KB of results
// (L2-resident, and long enough that the call itself costs nothing measurable).
template <typename T>
struct ExpBlock {
  kdt::Buffer<T> in{(256 * 1024) / sizeof(T), 0}, out{(256 * 1024) / sizeof(T), 0};
  ExpBlock() {
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<T>(-20.0 * std::fmod(i * 0.618034, 1.0));
  }
  // Rate of exp, or of exp2_nonpos (the KD kernel's soft-term exps; the arguments are <= 0).
  double per_sec(const kd::KernelTable& t, double min_s, bool exp2 = false) {
    const auto fn = exp2 ? set_of<T>(t).exp2_nonpos : set_of<T>(t).exp;
    const double ns = median_ns([&] { fn(in.data(), out.data(), in.size()); }, min_s);
    return static_cast<double>(in.size()) / (ns * 1e-9);
  }
};

// The roofline probes of one variant: its vector exp's rate and its plain sum over a case's bytes.
struct Probes {
  ExpBlock<float> exp_f;
  ExpBlock<double> exp_d;
  kdt::Buffer<float> sum_buf;
  explicit Probes(size_t max_bytes) : sum_buf(max_bytes / sizeof(float) + 1, 0) { sum_buf.fill(1.0f); }
  double exp_per_sec(const kd::KernelTable& t, bool dbl, double min_s) {
    return dbl ? exp_d.per_sec(t, min_s) : exp_f.per_sec(t, min_s);
  }
  double sum_ns(const kd::KernelTable& t, size_t bytes, double min_s) {
    volatile double sink = 0;
    return median_ns([&] { sink = sink + t.f32.sum(sum_buf.data(), bytes / sizeof(float)); }, min_s);
  }
};

std::string fmt_rate(double per_s) {
  char b[32];
  if (per_s >= 1e9) {
    std::snprintf(b, sizeof b, "%.2f G/s", per_s / 1e9);
  } else {
    std::snprintf(b, sizeof b, "%.0f M/s", per_s / 1e6);
  }
  return b;
}

std::string fmt_time(double ns) {
  char b[32];
  if (ns >= 1e6) {
    std::snprintf(b, sizeof b, "%.2f ms", ns / 1e6);
  } else if (ns >= 1e3) {
    std::snprintf(b, sizeof b, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(b, sizeof b, "%.0f ns", ns);
  }
  return b;
}

bool parse(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      o->quick = true;
    } else if (a.rfind("--isa=", 0) == 0) {
      std::string list = a.substr(6);
      size_t start = 0;
      while (start <= list.size()) {
        const size_t comma = list.find(',', start);
        const std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!name.empty()) o->isas.push_back(name);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a == "--no-divergences") {
      o->divergences = false;
    } else if (a.rfind("--filter=", 0) == 0) {
      o->filter = a.substr(9);
    } else if (a == "--kd-scratch=auto" || a == "--kd-scratch=saved" || a == "--kd-scratch=recompute") {
      o->scratch = a[13] == 'a' ? ScratchMode::kAuto : a[13] == 's' ? ScratchMode::kSaved : ScratchMode::kRecompute;
    } else if (a.rfind("--kd-shape=", 0) == 0 && a.find('x', 11) != std::string::npos) {
      const size_t x = a.find('x', 11);
      char* end = nullptr;
      const size_t rows = std::strtoull(a.c_str() + 11, nullptr, 10), cols = std::strtoull(a.c_str() + x + 1, &end, 10);
      const std::string dtype = end;
      if (rows == 0 || cols == 0 || (!dtype.empty() && dtype != "f32" && dtype != "f64")) return false;
      o->kd_shapes.push_back({rows, cols, dtype == "f64"});
    } else {
      std::fprintf(stderr,
                   "usage: kd_native_bench [--quick] [--isa=NAME[,NAME]] [--filter=SUBSTRING] "
                   "[--kd-scratch=auto|saved|recompute] [--kd-shape=ROWSxCOLS[f64]]... [--no-divergences]\n");
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options& opt = g_opt;
  if (!parse(argc, argv, &opt)) return 2;
  // --quick: small shapes and short timing, to check that every variant runs and agrees with scalar.
  const double min_s = opt.quick ? 0.01 : 0.3;
  const size_t big_rows = opt.quick ? 64 : 4096;
  const size_t map_rows = opt.quick ? 16 : 256;

  // The scalar table first (the reference of the check and of the speedups), then the SIMD variants.
  std::string why;
  const kd::KernelTable* scalar = kd::find_table("scalar", &why);
  if (scalar == nullptr) {
    std::fprintf(stderr, "kd_native_bench: no scalar table: %s\n", why.c_str());
    return 2;
  }
  std::vector<const kd::KernelTable*> tables{scalar};
  for (const std::string& name : kd::compiled_isas()) {
    if (name == "scalar" ||
        (!opt.isas.empty() && std::find(opt.isas.begin(), opt.isas.end(), name) == opt.isas.end())) {
      continue;
    }
    const kd::KernelTable* t = kd::find_table(name, &why);
    if (t == nullptr) {
      std::printf("%-8s not usable here: %s\n", name.c_str(), why.c_str());
      continue;
    }
    tables.push_back(t);
  }
  const std::vector<std::string> compiled = kd::compiled_isas();
  for (const std::string& name : opt.isas) {
    if (std::find(compiled.begin(), compiled.end(), name) == compiled.end()) {
      std::fprintf(stderr, "kd_native_bench: --isa=%s: not compiled into this build\n", name.c_str());
      return 2;
    }
  }

  Inputs in;
  in.scratch = opt.scratch;
  std::vector<Case> cases;
  cases.push_back(kd_case<float>(in, 64, 10, true, false));
  cases.push_back(kd_case<float>(in, big_rows, 1000, true, false));
  cases.push_back(kd_case<float>(in, big_rows, 1000, false, false));
  cases.push_back(kd_case<double>(in, big_rows, 1000, true, false));
  cases.push_back(kd_case<float>(in, big_rows * 8, 128, true, false));
  cases.push_back(kd_case<float>(in, big_rows, 1000, true, true));
  // Language-model vocabularies, one row per token.
  const size_t lm_rows = opt.quick ? 8 : 512, wide_rows = opt.quick ? 2 : 64;
  for (bool grad : {false, true}) {
    cases.push_back(kd_case<float>(in, lm_rows, 32000, false, grad));
    cases.push_back(kd_case<float>(in, wide_rows, 131072, false, grad));
  }
  if (opt.divergences) {
    for (kd::Divergence div : {kd::Divergence::kReverseKl, kd::Divergence::kJsd, kd::Divergence::kTvd}) {
      for (bool grad : {false, true}) {
        cases.push_back(kd_case<float>(in, big_rows, 1000, false, grad, div));
        cases.push_back(kd_case<float>(in, lm_rows, 32000, false, grad, div));
        cases.push_back(kd_case<float>(in, wide_rows, 131072, false, grad, div));
      }
    }
  }
  // Sparse teachers on the same shapes (kd_case's "index" rows are the dense teacher to compare with).
  for (bool grad : {false, true}) {
    for (size_t k : {16, 64, 256}) {
      cases.push_back(sparse_case<float>(in, lm_rows, 32000, k, grad));
      cases.push_back(sparse_case<float>(in, wide_rows, 131072, k, grad));
    }
  }
  for (const auto& shape : opt.kd_shapes) {
    for (bool grad : {false, true}) {
      cases.push_back(shape.dbl ? kd_case<double>(in, shape.rows, shape.cols, false, grad)
                                : kd_case<float>(in, shape.rows, shape.cols, false, grad));
    }
  }
  cases.push_back(feature_case(in, 3, map_rows, 4096));
  cases.push_back(feature_case(in, 3, map_rows * 8, 4096));
  cases.push_back(attention_case(in, map_rows, 4096));
  cases.push_back(attention_case(in, map_rows * 16, 4096));
  if (!opt.filter.empty()) {
    cases.erase(std::remove_if(cases.begin(), cases.end(),
                               [&](const Case& c) { return c.id.find(opt.filter) == std::string::npos; }),
                cases.end());
  }
  size_t max_bytes = 0;
  for (const Case& c : cases) max_bytes = std::max(max_bytes, c.bytes);
  Probes probes(max_bytes);

  std::printf("kd_native_bench: one thread, kernels called directly; outputs preallocated; %s\n",
              opt.quick ? "--quick (small shapes, short timing)" : "full shapes");
  std::printf("roofline = max(the fastest plain sum of the bytes read, exps needed at the variant's vector exp rate)\n\n");
  std::printf("%-34s %-8s %10s %10s %9s %9s %-6s %s\n", "case", "variant", "median", "elem/s", "x scalar",
              "roofline", "bound", "check");
  bool ok = true;
  for (const Case& c : cases) {
    const double ref = c.run(*scalar);
    struct Row {
      const kd::KernelTable* t;
      double got, ns, mem_ns, exp_ns;
      bool same;
    };
    std::vector<Row> rows;
    double best_mem_ns = INFINITY;
    for (const kd::KernelTable* t : tables) {
      Row r{t, c.run(*t), 0, 0, 0, false};
      const double tol = c.is_double ? 1e-10 : 1e-4;
      r.same = std::fabs(r.got - ref) <= tol * std::max(1.0, std::fabs(ref));
      ok = ok && r.same;
      r.ns = median_ns([&] { c.run(*t); }, min_s);
      // The probes right after the case, so both see the same state of this shared machine.
      r.mem_ns = probes.sum_ns(*t, c.bytes, min_s);
      r.exp_ns = c.exps_per_element > 0 ? c.exps_per_element * static_cast<double>(c.elements) /
                                              probes.exp_per_sec(*t, c.is_double, min_s) * 1e9
                                        : 0.0;
      best_mem_ns = std::min(best_mem_ns, r.mem_ns);
      rows.push_back(r);
    }
    const double scalar_ns = rows.front().ns;  // tables[0] is the scalar one
    for (const Row& r : rows) {
      // Memory time: the fastest sum of the case's bytes by any variant (the scalar sum, which adds
      // every element in double, is not bandwidth-bound); exp time: the variant's own exp rate.
      const double roof = std::max(best_mem_ns, r.exp_ns);
      char ratio[16] = "-";
      if (r.t != scalar) std::snprintf(ratio, sizeof ratio, "%.1fx", scalar_ns / r.ns);
      std::printf("%-34s %-8s %10s %10s %9s %8.0f%% %-6s %s\n", c.id.c_str(), r.t->name, fmt_time(r.ns).c_str(),
                  fmt_rate(static_cast<double>(c.elements) / (r.ns * 1e-9)).c_str(), ratio, 100.0 * roof / r.ns,
                  r.exp_ns > best_mem_ns ? "exp" : "mem", r.same ? "ok" : "MISMATCH");
      if (!r.same) std::printf("  %s: %.17g, scalar %.17g\n", r.t->name, r.got, ref);
    }
  }
  std::printf("\nexp probe: %zu floats / %zu doubles in and out per call; sum probe: the case's bytes.\n",
              probes.exp_f.in.size(), probes.exp_d.in.size());
  // The KD roofline counts 3 of the library's exps per element; the kernel takes two of them (the soft
  // term's) with the cheaper exp2_nonpos. Its fraction of a roofline built from its own exps instead:
  std::printf("\nvector exp rates (same blocks): exp, exp2_nonpos; KD roofline from the kernel's own exps "
              "(2 exp2_nonpos + 1 exp) as a share of the exp one\n");
  for (const kd::KernelTable* t : tables) {
    for (bool dbl : {false, true}) {
      const double e = dbl ? probes.exp_d.per_sec(*t, min_s) : probes.exp_f.per_sec(*t, min_s);
      const double e2 = dbl ? probes.exp_d.per_sec(*t, min_s, true) : probes.exp_f.per_sec(*t, min_s, true);
      std::printf("  %-8s %-7s exp %10s  exp2_nonpos %10s  own-exp roofline %3.0f%% of the exp one\n", t->name,
                  dbl ? "float64" : "float32", fmt_rate(e).c_str(), fmt_rate(e2).c_str(),
                  100.0 * (2.0 / e2 + 1.0 / e) / (3.0 / e));
    }
  }
  if (!ok) {
    std::printf("FAILED: some variant disagrees with the scalar kernel\n");
    return 1;
  }
  return 0;
}
