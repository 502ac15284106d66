// Feature-map distance (KernelSet::feature_rows), attention transfer (::attention_rows) and the plain
// sum (::sum) against the long double reference and, for SIMD variants, against scalar.
#include <algorithm>
#include <cstdio>

#include "reference.h"
#include "test_common.h"
#include "tests.h"

namespace kdt {

namespace {

constexpr double kBetas[] = {2.0, 1.0, 0.5, 3.0};

// ---- shared ------------------------------------------------------------------------------------

// Student and teacher rows of one map problem, in T and long double.
template <typename T>
struct MapData {
  size_t rows = 0, cols = 0, offset = 0;
  Buffer<T> s, t;
  std::vector<LD> ls, lt;
  std::vector<RowRef> ref;
  std::vector<LD> grad_floor;
  LD total = 0, total_mag = 0;
  std::string kinds;

  // The buffers for rows x cols at offset, holding the given rows if there are.
  template <class Given>
  void shape(size_t r, size_t c, size_t off, const Given* given) {
    rows = r;
    cols = c;
    offset = off;
    s.reset(r * c, off);
    t.reset(r * c, off);
    if (given == nullptr) return;
    for (size_t i = 0; i < r * c; ++i) {
      s[i] = static_cast<T>(given->s[i]);
      t[i] = static_cast<T>(given->t[i]);
    }
    kinds = std::string(" ") + given->what;
  }

  void images() {
    ls.assign(s.data(), s.data() + rows * cols);
    lt.assign(t.data(), t.data() + rows * cols);
  }
  void sums(bool grad) {
    grad_floor.assign(rows, 0);
    for (size_t r = 0; r < rows; ++r) {
      total += ref[r].value;
      total_mag += ref[r].mag;
      if (grad) {
        LD m = 0;
        for (LD g : ref[r].grad_mag) m = std::max(m, g);
        grad_floor[r] = rel_tol<T>() * 1e-6L * m;
      }
    }
  }
};

// Gradient rows against the reference (base == nullptr) or the scalar run.
template <typename T>
void check_grad(Case& cs, const std::string& key, const MapData<T>& D, const Buffer<T>& got,
                const Buffer<T>* base) {
  for (size_t r = 0; r < D.rows; ++r) {
    for (size_t j = 0; j < D.cols; ++j) {
      const size_t i = r * D.cols + j;
      const LD want = base ? static_cast<LD>((*base)[i]) : D.ref[r].grad[j];
      if (!cs.near(key, "grad", i, want, D.ref[r].grad_mag[j], got[i], rel_tol<T>(), D.grad_floor[r])) {
        break;
      }
    }
  }
  cs.expect(got.check_guard(), "grad guard overwritten");
}

// ---- feature_rows -------------------------------------------------------------------------------

// Rows given instead of random ones (special values), rows * cols each.
struct GivenRows {
  std::vector<double> s, t;
  const char* what = "";
};

struct FeatureConfig {
  size_t rows, cols, offset;
  int p;
  bool grad, row_out;
  double sigma, row_weight, grad_scale;
  uint64_t seed;
  const GivenRows* given = nullptr;
};

template <typename T>
struct FeatureRun {
  double total = 0;
  Buffer<double> row_out;
  Buffer<T> grad;
};

template <typename T>
void feature_case(const FeatureConfig& c) {
  Rng rng(c.seed);
  MapData<T> D;
  D.shape(c.rows, c.cols, c.offset, c.given);
  for (size_t r = 0; r < c.rows && c.given == nullptr; ++r) {
    const int kind = static_cast<int>(rng.below(5));  // 0-2 normal, 3 equal rows, 4 huge entries
    D.kinds += fmt(" %d", kind);
    for (size_t j = 0; j < c.cols; ++j) {
      const size_t i = r * c.cols + j;
      D.t[i] = static_cast<T>(c.sigma * rng.normal());
      D.s[i] = rng.chance(0.1) ? D.t[i] : static_cast<T>(c.sigma * rng.normal());
      if (kind == 3) D.s[i] = D.t[i];
      if (kind == 4 && rng.chance(0.2)) D.s[i] = static_cast<T>(rng.chance(0.5) ? 1e15 : -1e15);
    }
  }
  D.images();
  std::vector<double> init(c.rows);
  for (double& v : init) v = rng.normal();
  for (size_t r = 0; r < c.rows; ++r) {
    D.ref.push_back(feature_row_ref(D.ls.data() + r * c.cols, D.lt.data() + r * c.cols, c.cols, c.p,
                                    c.grad, c.grad_scale));
  }
  D.sums(c.grad);
  const size_t split = static_cast<size_t>(c.seed % (c.rows + 1));

  auto run = [&](const kd::KernelSet<T>& k, FeatureRun<T>& out) {
    kd::FeatureLayer<T> L;
    L.student = D.s.data();
    L.teacher = D.t.data();
    L.cols = c.cols;
    L.p = c.p;
    if (c.row_out) {
      out.row_out.reset(c.rows, c.offset);
      for (size_t r = 0; r < c.rows; ++r) out.row_out[r] = init[r];
      L.row_out = out.row_out.data();
      L.row_weight = c.row_weight;
    }
    if (c.grad) {
      out.grad.reset(c.rows * c.cols, c.offset);
      L.grad = out.grad.data();
      L.grad_scale = c.grad_scale;
    }
    out.total = k.feature_rows(L, 0, split) + k.feature_rows(L, split, c.rows);
  };
  auto check = [&](Case& cs, const std::string& prefix, const FeatureRun<T>& got,
                   const FeatureRun<T>* base) {
    const std::string sfx = base ? "~scalar" : "";
    const double rel = rel_tol<T>();
    cs.near(prefix + "feature.sum" + sfx, "total", 0, base ? static_cast<LD>(base->total) : D.total,
            D.total_mag, got.total, rel);
    if (c.row_out) {
      for (size_t r = 0; r < c.rows; ++r) {
        const LD want = base ? static_cast<LD>(base->row_out[r]) : init[r] + c.row_weight * D.ref[r].value;
        cs.near(prefix + "feature.row" + sfx, "row_out", r, want,
                std::fabs(static_cast<LD>(init[r])) + std::fabs(c.row_weight) * D.ref[r].mag,
                got.row_out[r], rel);
      }
      cs.expect(got.row_out.check_guard(), "row_out guard overwritten");
    }
    if (c.grad) check_grad(cs, prefix + "feature.grad" + sfx, D, got.grad, base ? &base->grad : nullptr);
  };

  const std::string what =
      fmt("feature %s p=%d cols=%zu rows=%zu grad=%d rowout=%d sigma=%g off=%zu seed=%llu kinds:%s",
          dtype_name<T>(), c.p, c.cols, c.rows, c.grad, c.row_out, c.sigma, c.offset,
          static_cast<unsigned long long>(c.seed), D.kinds.c_str());
  check_variants<T, FeatureRun<T>>(what, run, check);
}

// ---- attention_rows -----------------------------------------------------------------------------

struct AttentionConfig {
  size_t rows, cols, offset;
  double beta;
  bool grad, row_out;
  double sigma, grad_scale;
  uint64_t seed;
  const GivenRows* given = nullptr;
};

template <typename T>
struct AttentionRun {
  double total = 0;
  Buffer<double> row_out;
  Buffer<T> grad;
};

// Fills one row: 0 normal, 1 all zeros, 2 tiny (row sum of |x|^beta <= 1e-9), 3 normal with zeros,
// 4 huge (double rows only: float products cannot overflow the double moments; with beta >= 0.55
// |x|^(2 beta) is past the double range).
template <typename T>
void attention_row(T* x, size_t cols, int kind, double beta, double sigma, Rng& rng) {
  // |x|^beta <= 1e-15 per element keeps a tiny row's sum below 1e-9 for cols <= 1e6.
  const double tiny = std::pow(1e-15, 1.0 / beta);
  // |x|^beta near 1e160 (its square overflows double), x itself finite.
  const double huge = std::min(std::pow(1e160, 1.0 / beta), 1e300);
  for (size_t j = 0; j < cols; ++j) {
    switch (kind) {
      case 1: x[j] = 0; break;
      case 2: x[j] = static_cast<T>(tiny * rng.uniform(-1.0, 1.0)); break;
      case 3: x[j] = rng.chance(0.4) ? T(0) : static_cast<T>(sigma * rng.normal()); break;
      case 4: x[j] = static_cast<T>(huge * rng.normal()); break;
      default: x[j] = static_cast<T>(sigma * rng.normal()); break;
    }
  }
}

template <typename T>
void attention_case(const AttentionConfig& c) {
  Rng rng(c.seed);
  MapData<T> D;
  D.shape(c.rows, c.cols, c.offset, c.given);
  for (size_t r = 0; r < c.rows && c.given == nullptr; ++r) {
    const uint64_t kinds = sizeof(T) == 8 ? 5 : 4;
    const int ks = rng.chance(0.5) ? 0 : static_cast<int>(rng.below(kinds));
    const int kt = rng.chance(0.5) ? 0 : static_cast<int>(rng.below(kinds));
    D.kinds += fmt(" %d/%d", ks, kt);
    attention_row(D.s.data() + r * c.cols, c.cols, ks, c.beta, c.sigma, rng);
    attention_row(D.t.data() + r * c.cols, c.cols, kt, c.beta, c.sigma, rng);
    if (rng.chance(0.1)) {  // student == teacher
      for (size_t j = 0; j < c.cols; ++j) D.s[r * c.cols + j] = D.t[r * c.cols + j];
      D.kinds += "=";
    } else if (rng.chance(0.2)) {
      // student close to teacher: the loss cancels to a fraction of the maps' mass, on both sides
      // of the kernels' switch from the one-sweep moments to the exact sweep over differences.
      static const double rels[] = {0.3, 0.1, 1e-2, 1e-4, 1e-7};
      const double rel = rels[rng.below(5)];
      for (size_t j = 0; j < c.cols; ++j) {
        D.s[r * c.cols + j] = static_cast<T>(D.t[r * c.cols + j] * (1.0 + rel * rng.normal()));
      }
      D.kinds += fmt("~%g", rel);
    }
  }
  D.images();
  const LD u = std::numeric_limits<T>::epsilon() / 2;
  for (size_t r = 0; r < c.rows; ++r) {
    D.ref.push_back(attention_row_ref(D.ls.data() + r * c.cols, D.lt.data() + r * c.cols, c.cols,
                                      c.beta, c.grad, c.grad_scale, u));
  }
  D.sums(c.grad);
  const size_t split = static_cast<size_t>(c.seed % (c.rows + 1));

  auto run = [&](const kd::KernelSet<T>& k, AttentionRun<T>& out) {
    kd::AttentionProblem<T> P;
    P.student = D.s.data();
    P.teacher = D.t.data();
    P.rows = c.rows;
    P.cols = c.cols;
    P.beta = c.beta;
    if (c.row_out) {
      out.row_out.reset(c.rows, c.offset);
      P.row_out = out.row_out.data();
    }
    if (c.grad) {
      out.grad.reset(c.rows * c.cols, c.offset);
      P.grad = out.grad.data();
      P.grad_scale = c.grad_scale;
    }
    out.total = k.attention_rows(P, 0, split) + k.attention_rows(P, split, c.rows);
  };
  auto check = [&](Case& cs, const std::string& prefix, const AttentionRun<T>& got,
                   const AttentionRun<T>* base) {
    const std::string sfx = base ? "~scalar" : "";
    const double rel = rel_tol<T>();
    cs.near(prefix + "attention.sum" + sfx, "total", 0, base ? static_cast<LD>(base->total) : D.total,
            D.total_mag, got.total, rel);
    if (c.row_out) {
      const LD n = static_cast<LD>(c.cols);
      for (size_t r = 0; r < c.rows; ++r) {
        const LD want = base ? static_cast<LD>(base->row_out[r]) : D.ref[r].value / n;
        cs.near(prefix + "attention.row" + sfx, "row_out", r, want, D.ref[r].mag / n, got.row_out[r], rel);
      }
      cs.expect(got.row_out.check_guard(), "row_out guard overwritten");
    }
    if (c.grad) check_grad(cs, prefix + "attention.grad" + sfx, D, got.grad, base ? &base->grad : nullptr);
  };

  const std::string what =
      fmt("attention %s beta=%g cols=%zu rows=%zu grad=%d rowout=%d sigma=%g off=%zu seed=%llu "
          "kinds(s/t):%s",
          dtype_name<T>(), c.beta, c.cols, c.rows, c.grad, c.row_out, c.sigma, c.offset,
          static_cast<unsigned long long>(c.seed), D.kinds.c_str());
  check_variants<T, AttentionRun<T>>(what, run, check);
}

// ---- sum ----------------------------------------------------------------------------------------

template <typename T>
void sum_case(size_t n, size_t offset, Rng& rng) {
  Buffer<T> x(n, offset);
  LD ref = 0, mag = 0;
  for (size_t i = 0; i < n; ++i) {
    x[i] = static_cast<T>(rng.normal() * (rng.chance(0.1) ? 1e6 : 1.0));
    ref += x[i];
    mag += std::fabs(static_cast<LD>(x[i]));
  }
  const double rel = rel_tol<T>();
  for (const Variant& v : all_variants()) {
    Case cs(fmt("%s sum %s n=%zu off=%zu", v.name.c_str(), dtype_name<T>(), n, offset));
    cs.near(fmt("%s/%s/sum", v.name.c_str(), dtype_name<T>()), "sum", 0, ref, mag,
            set_of<T>(*v.table).sum(x.data(), n), rel);
  }
}

template <typename T>
void suite_maps_dtype(Rng& rng, size_t& nf, size_t& na) {
  size_t combo = 0;
  static const size_t offsets[] = {0, 1, 3, 5};
  static const double sigmas[] = {1e-3, 1.0, 50.0};
  std::vector<size_t> widths;
  for (size_t w = 1; w <= 67; ++w) widths.push_back(w);
  for (size_t w : {129, 1000, 4099, 100000}) widths.push_back(w);
  for (size_t cols : widths) {
    const size_t max_rows = cols > 10000 ? 2 : 5;
    for (int p = 1; p <= 2; ++p) {
      for (int grad = 0; grad < 2; ++grad) {
        if (!sampled(combo++)) continue;
        FeatureConfig c{1 + rng.below(max_rows), cols, offsets[rng.below(4)], p, grad != 0,
                        rng.chance(0.6), sigmas[rng.below(3)], rng.uniform(-2, 2),
                        rng.uniform(0.1, 3), rng.next()};
        feature_case<T>(c);
        ++nf;
      }
    }
    for (double beta : kBetas) {
      for (int grad = 0; grad < 2; ++grad) {
        if (!sampled(combo++)) continue;
        AttentionConfig c{1 + rng.below(max_rows), cols, offsets[rng.below(4)], beta, grad != 0,
                          rng.chance(0.6), sigmas[rng.below(3)], rng.uniform(0.1, 3), rng.next()};
        attention_case<T>(c);
        ++na;
      }
    }
    sum_case<T>(cols, offsets[rng.below(4)], rng);
  }
}

// ---- special values -------------------------------------------------------------------------------

// NaN and infinities in the maps (NaN stays NaN, infinities as exact arithmetic gives, for every
// power), and float maps whose differences, squares or powers leave the float range where the exact
// loss does not (the kernels take those rows in double).
template <typename T>
size_t suite_maps_special(Rng& rng) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  size_t n = 0;
  for (size_t cols : {3, 37, 1000}) {
    const size_t rows = 4;
    // Row k of each set: 0 NaN in the student, 1 NaN in the teacher, 2 +inf in the student, 3 ordinary.
    GivenRows g;
    for (size_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < cols; ++j) {
        g.s.push_back(rng.normal());
        g.t.push_back(rng.normal());
      }
      const size_t at = r * cols + rng.below(cols);
      if (r == 0) g.s[at] = nan;
      if (r == 1) g.t[at] = nan;
      if (r == 2) g.s[at] = inf;
    }
    g.what = "NaN / NaN / inf / none";
    for (double beta : {0.1, 0.57, 1.0, 2.0, 8.1}) {
      for (int grad = 0; grad < 2; ++grad) {
        attention_case<T>(AttentionConfig{rows, cols, rng.below(4), beta, grad != 0, true, 1.0, 0.7, rng.next(), &g});
        ++n;
      }
    }
    // Feature rows: inf - inf, inf against a finite value, NaN.
    GivenRows f = g;
    f.t[2 * cols + (std::find(f.s.begin() + 2 * cols, f.s.begin() + 3 * cols, inf) - f.s.begin() - 2 * cols)] = inf;
    f.s[3 * cols] = -inf;
    f.what = "NaN / NaN / inf - inf / -inf";
    for (int p = 1; p <= 2; ++p) {
      for (int grad = 0; grad < 2; ++grad) {
        feature_case<T>(FeatureConfig{rows, cols, rng.below(4), p, grad != 0, true, 1.0, 0.5, 0.3, rng.next(), &f});
        ++n;
      }
    }
    // Beyond the float range in intermediates only: |s - t| up to 6e38, (s - t)^2 up to 1e40,
    // |x|^2 = 1e40, |x|^8.1 = 1e40.5.
    GivenRows big;
    for (size_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < cols; ++j) {
        big.s.push_back(rng.normal());
        big.t.push_back(rng.normal());
      }
    }
    big.s[rng.below(cols)] = 3e38;
    big.t[rng.below(cols)] = -3e38;
    big.s[cols + rng.below(cols)] = 1e20;
    big.t[2 * cols + rng.below(cols)] = -1e20;
    big.s[3 * cols + rng.below(cols)] = 1e5;
    big.what = "near FLT_MAX / 1e20 / -1e20 / 1e5";
    for (int p = 1; p <= 2; ++p) {
      // (grad_scale 0.1: 2 * 0.3 * 6e38 would round to +inf in float, correctly, but not in the reference)
      feature_case<T>(FeatureConfig{rows, cols, 0, p, true, true, 1.0, 0.5, 0.1, rng.next(), &big});
      ++n;
    }
    for (size_t r = 0; r < cols; ++r) big.s[r] = big.t[r] = 1.0;  // no 3e38 powers (they overflow double)
    for (double beta : {2.0, 8.1}) {
      attention_case<T>(AttentionConfig{rows, cols, 0, beta, true, true, 1.0, 0.7, rng.next(), &big});
      ++n;
    }
  }
  return n;
}

}  // namespace

void suite_maps() {
  Rng rng(g_opt.seed ^ 0x6d617073);
  size_t nf = 0, na = 0;
  suite_maps_dtype<float>(rng, nf, na);
  suite_maps_dtype<double>(rng, nf, na);
  std::printf("  maps: %zu feature and %zu attention problems\n", nf, na);
  const size_t ns = suite_maps_special<float>(rng) + suite_maps_special<double>(rng);
  std::printf("  maps: %zu problems with NaN, infinite and float-overflowing values\n", ns);
}

}  // namespace kdt
