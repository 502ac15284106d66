// Vector exp, log and exp2_nonpos (KernelSet::exp / ::log / ::exp2_nonpos) of every variant against
// the C library, in ULP.
//
// The bounds are the claims of native/kernels/vecmath.h (the SIMD variants' exp/log/exp2_nonpos):
//   exp float  <= 1 ULP over all inputs, subnormal results within 1 ULP of the subnormal grid,
//              exp(x) = 0 for x < -103.97 (incl. -inf), +inf for x > 88.72 (incl. +inf), NaN for NaN
//   exp double <= 1 ULP, subnormal results within 1 ULP, 0 below -745.13, +inf above 709.78
//   exp2_nonpos (2^y, y <= 0) float / double <= 1 ULP, subnormal results within 1 ULP, 0 below
//              -150 / -1075 (incl. -inf), NaN for NaN
//   log float / double <= 1 ULP over all positive inputs, subnormals included;
//   log(+-0) = -inf, log(x < 0) = NaN (also -inf), log(+inf) = +inf, log(NaN) = NaN.
//   |x|^beta double (attention's power for beta other than 1 and 2) <= 2 ULP for every x and beta
//              <= 50 (1 + 0.03 beta beyond), subnormal and overflowing results included; 0^beta = 0,
//              inf^beta = inf, NaN for NaN.
// The scalar table (C library expf/logf/exp/log/pow) is held to the same bounds.
//
// References: float results against exp/log in double, double results against expl/logl.
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "test_common.h"
#include "tests.h"

namespace kdt {

namespace {

constexpr double kMaxUlpExp = 1.0;
constexpr double kMaxUlpLog = 1.0;

enum class Fn { kExp, kLog, kExp2 };

const char* fn_name(Fn f) { return f == Fn::kExp ? "exp" : f == Fn::kLog ? "log" : "exp2_nonpos"; }

template <typename T>
LD reference(Fn f, T x);
template <>
LD reference<float>(Fn f, float x) {
  const double d = x;
  return f == Fn::kExp ? std::exp(d) : f == Fn::kLog ? std::log(d) : std::exp2(d);
}
template <>
LD reference<double>(Fn f, double x) {
  const LD d = x;
  return f == Fn::kExp ? std::exp(d) : f == Fn::kLog ? std::log(d) : std::exp2(d);
}

template <typename T>
void apply(const kd::KernelSet<T>& k, Fn f, const T* in, T* out, size_t n) {
  (f == Fn::kExp ? k.exp : f == Fn::kLog ? k.log : k.exp2_nonpos)(in, out, n);
}

template <typename T>
using Bits = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;

template <typename T>
T from_bits(Bits<T> b) {
  T x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

template <typename T>
Bits<T> to_bits(T x) {
  Bits<T> b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Accumulates the ULP errors of one variant / function / dtype over batches; one Case.
template <typename T>
class UlpCheck {
 public:
  UlpCheck(const Variant& v, Fn f, const std::string& what)
      : v_(v),
        f_(f),
        key_(fmt("%s/%s/%s ulp", v.name.c_str(), dtype_name<T>(), fn_name(f))),
        cs_(fmt("%s %s %s %s", v.name.c_str(), dtype_name<T>(), fn_name(f), what.c_str())),
        max_ulp_(f == Fn::kLog ? kMaxUlpLog : kMaxUlpExp) {}

  // Runs the kernel over in[0, n) into a fresh exact-size buffer at `offset` and checks every result.
  void batch(const T* in, size_t n, size_t offset = 0) {
    Buffer<T> out(n, offset);
    apply(set_of<T>(*v_.table), f_, in, out.data(), n);
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; ++i) {
      const LD ref = reference<T>(f_, in[i]);
      const double d = ulp_distance<T>(out[i], ref);
      if (d > max_ulp_ && failures_ < 3) {
        ++failures_;
        cs_.ulp(key_, fn_name(f_), in[i], ref, out[i], d, max_ulp_);
      }
      if (d > worst || (worst == 0.0 && i == 0)) {
        worst = d;
        worst_i = i;
      }
    }
    Worst& w = g_report.worst(key_);
    w.checks += n;
    if (n > 0 && worst > w.ulp) {
      w.ulp = worst;
      w.where = fmt("%s(%.9Lg)", fn_name(f_), static_cast<LD>(in[worst_i]));
    }
    cs_.expect(out.check_guard(), "output guard overwritten");
  }

  // Exact expectation for a special input (0, +-inf, NaN results as the claims state).
  void exact(T x, double want) {
    Buffer<T> out(1, 0);
    apply(set_of<T>(*v_.table), f_, &x, out.data(), 1);
    cs_.exact(fmt("%s(%.9g)", fn_name(f_), static_cast<double>(x)).c_str(), 0, want, out[0]);
  }

 private:
  const Variant& v_;
  Fn f_;
  std::string key_;
  Case cs_;
  double max_ulp_;
  int failures_ = 0;
};

// Every `stride`-th bit pattern in [lo, hi] (same sign), in batches.
template <typename T>
void sweep_bits(UlpCheck<T>& chk, T lo, T hi, uint64_t stride) {
  Bits<T> a = to_bits(lo), b = to_bits(hi);
  if (a > b) std::swap(a, b);
  const size_t kBatch = 4096;
  std::vector<T> in;
  in.reserve(kBatch);
  for (uint64_t i = a; i <= b; i += stride) {
    in.push_back(from_bits<T>(static_cast<Bits<T>>(i)));
    if (in.size() == kBatch) {
      chk.batch(in.data(), in.size());
      in.clear();
    }
    if (b - i < stride) break;
  }
  if (!in.empty()) chk.batch(in.data(), in.size());
}

// n random inputs from gen, in shuffled batches (so special lanes share vectors with normal ones).
template <typename T, class G>
void random_batches(UlpCheck<T>& chk, size_t n, G&& gen) {
  const size_t kBatch = 4096;
  std::vector<T> in;
  for (size_t done = 0; done < n; done += kBatch) {
    const size_t m = std::min(kBatch, n - done);
    in.resize(m);
    for (T& x : in) x = gen();
    chk.batch(in.data(), m, done % 3);
  }
}

uint64_t sweep_stride(uint64_t base) {
  if (g_opt.scale >= 1.0) return base;
  return base * static_cast<uint64_t>(1.0 / g_opt.scale + 0.5) + 2;  // keep it away from powers of 2
}

constexpr float kFInf = std::numeric_limits<float>::infinity();
constexpr double kDInf = std::numeric_limits<double>::infinity();

// Tails: every length 0..67 at odd offsets, mixing ordinary and special inputs.
template <typename T>
void tails(UlpCheck<T>& chk, Fn f, Rng& rng) {
  for (size_t n = 0; n <= 67; ++n) {
    for (size_t off : {0, 1, 3}) {
      std::vector<T> in(n);
      for (T& x : in) {
        x = f == Fn::kExp    ? static_cast<T>(rng.uniform(-20, 20))
            : f == Fn::kLog  ? static_cast<T>(std::exp(rng.uniform(-30, 30)))
                             : static_cast<T>(rng.uniform(-30, 0));
      }
      chk.batch(in.data(), n, off);
    }
  }
}

// ---- float --------------------------------------------------------------------------------------

void exp_float(const Variant& v, Rng& rng) {
  {
    UlpCheck<float> chk(v, Fn::kExp, "sweep every 97th float in [-104, 89]");
    sweep_bits<float>(chk, -0.0f, -104.0f, sweep_stride(97));
    sweep_bits<float>(chk, 0.0f, 89.0f, sweep_stride(97));
  }
  {
    UlpCheck<float> chk(v, Fn::kExp, "every float with a subnormal result [-104, -87.3] and in [88, 89]");
    sweep_bits<float>(chk, -87.3f, -104.0f, sweep_stride(1));
    sweep_bits<float>(chk, 88.0f, 89.0f, sweep_stride(1));
  }
  {
    UlpCheck<float> chk(v, Fn::kExp, "random mixed lanes");
    random_batches<float>(chk, scaled(1 << 20, 4096), [&] {
      const double u = rng.uniform();
      if (u < 0.5) return static_cast<float>(rng.uniform(-90, 90));
      if (u < 0.7) return static_cast<float>(rng.uniform(-104.5, -87));
      if (u < 0.8) return static_cast<float>(rng.uniform(88, 90));
      if (u < 0.9) return static_cast<float>(rng.normal() * 1e-3);
      static const float sp[] = {-kFInf, kFInf, NAN, -NAN, 0.0f, -0.0f, 1e30f, -1e30f, 88.7228f, -103.97f};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kExp, rng);
  }
  UlpCheck<float> chk(v, Fn::kExp, "special values");
  chk.exact(-kFInf, 0.0);
  for (float x : {-104.0f, -104.5f, -150.0f, -1e30f, -3.4e38f}) chk.exact(x, 0.0);
  for (float x : {88.7229f, 89.0f, 100.0f, 1e30f, 3.4e38f, kFInf}) chk.exact(x, INFINITY);
  chk.exact(NAN, NAN);
  chk.exact(-NAN, NAN);
  chk.exact(0.0f, 1.0);
  chk.exact(-0.0f, 1.0);
  const float edge[] = {-103.97f, -103.9f, -100.0f, -87.34f, -87.3f, 88.72f, 88.7228f, 1e-30f, -1e-30f,
                        1e-45f, 1.0f, -1.0f};
  chk.batch(edge, sizeof edge / sizeof edge[0]);
}

void log_float(const Variant& v, Rng& rng) {
  {
    UlpCheck<float> chk(v, Fn::kLog, "sweep every 97th positive float (subnormals included)");
    sweep_bits<float>(chk, from_bits<float>(1), from_bits<float>(0x7f7fffff), sweep_stride(97));
  }
  {
    UlpCheck<float> chk(v, Fn::kLog, "every 7th float in [0.5, 2], every subnormal below 2^-140");
    sweep_bits<float>(chk, 0.5f, 2.0f, sweep_stride(7));
    sweep_bits<float>(chk, from_bits<float>(1), from_bits<float>(0x00000800), sweep_stride(1));
  }
  {
    UlpCheck<float> chk(v, Fn::kLog, "random mixed lanes");
    random_batches<float>(chk, scaled(1 << 20, 4096), [&] {
      const double u = rng.uniform();
      if (u < 0.4) return from_bits<float>(static_cast<uint32_t>(1 + rng.below(0x7f7fffff)));
      if (u < 0.6) return static_cast<float>(rng.uniform(0.5, 2));
      if (u < 0.8) return from_bits<float>(static_cast<uint32_t>(1 + rng.below(0x007fffff)));
      static const float sp[] = {0.0f, -0.0f, -1.0f, -kFInf, kFInf, NAN, -NAN, 1.0f, -1e-45f, 3.4e38f};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kLog, rng);
  }
  UlpCheck<float> chk(v, Fn::kLog, "special values");
  chk.exact(0.0f, -INFINITY);
  chk.exact(-0.0f, -INFINITY);
  for (float x : {-1.0f, -1e-45f, -3.4e38f, -kFInf}) chk.exact(x, NAN);
  chk.exact(kFInf, INFINITY);
  chk.exact(NAN, NAN);
  chk.exact(-NAN, NAN);
  chk.exact(1.0f, 0.0);
  const float edge[] = {1e-45f, 1.4e-45f, 1.1754942e-38f, 1.17549435e-38f, 3.4028235e38f, 0.99999994f,
                        1.0000001f, 2.0f, 0.5f, 0.70710677f, 1.4142135f};
  chk.batch(edge, sizeof edge / sizeof edge[0]);
}

// exp2_nonpos's special values, for float and double: 0 from two below the smallest subnormal's
// exponent down to -inf, the smallest subnormal and normal exactly, NaN for NaN, 1 for +-0.
template <typename T>
void exp2_specials(const Variant& v) {
  using L = std::numeric_limits<T>;
  const int min_sub = L::min_exponent - L::digits;  // -149 / -1074
  const int min_norm = L::min_exponent - 1;         // -126 / -1022
  UlpCheck<T> chk(v, Fn::kExp2, "special values");
  chk.exact(-L::infinity(), 0.0);
  const T zeros[] = {static_cast<T>(min_sub - 2), static_cast<T>(min_sub - 26), static_cast<T>(-1e30),
                     L::lowest()};
  for (T x : zeros) chk.exact(x, 0.0);
  chk.exact(static_cast<T>(min_sub), std::ldexp(1.0, min_sub));
  chk.exact(static_cast<T>(min_norm), std::ldexp(1.0, min_norm));
  chk.exact(T(-1), 0.5);
  chk.exact(static_cast<T>(NAN), NAN);
  chk.exact(static_cast<T>(-NAN), NAN);
  chk.exact(T(0), 1.0);
  chk.exact(T(-0.0), 1.0);
}

void exp2_float(const Variant& v, Rng& rng) {
  {
    UlpCheck<float> chk(v, Fn::kExp2, "sweep every 97th float in [-151, 0], every 61st in [-1, 0]");
    sweep_bits<float>(chk, -0.0f, -151.0f, sweep_stride(97));
    sweep_bits<float>(chk, -0.0f, -1.0f, sweep_stride(61));
  }
  {
    UlpCheck<float> chk(v, Fn::kExp2, "every float with a subnormal result [-151, -126]");
    sweep_bits<float>(chk, -126.0f, -151.0f, sweep_stride(1));
  }
  {
    UlpCheck<float> chk(v, Fn::kExp2, "random mixed lanes");
    random_batches<float>(chk, scaled(1 << 20, 4096), [&] {
      const double u = rng.uniform();
      if (u < 0.6) return static_cast<float>(rng.uniform(-130, 0));
      if (u < 0.8) return static_cast<float>(rng.uniform(-151, -125));
      if (u < 0.9) return static_cast<float>(-std::fabs(rng.normal()) * 1e-3);
      static const float sp[] = {-kFInf, NAN, -NAN, 0.0f, -0.0f, -1e30f, -150.0f, -149.0f, -126.0f, -0.5f};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kExp2, rng);
  }
  exp2_specials<float>(v);
}

// ---- double -------------------------------------------------------------------------------------

void exp_double(const Variant& v, Rng& rng) {
  const size_t n = scaled(4000000, 4096);
  {
    UlpCheck<double> chk(v, Fn::kExp, "random in [-745.2, 709.8]");
    random_batches<double>(chk, n, [&] { return rng.uniform(-745.2, 709.8); });
  }
  {
    UlpCheck<double> chk(v, Fn::kExp, "random |x| < 1 at every scale, subnormal results, near overflow");
    random_batches<double>(chk, n / 2, [&] {
      const double u = rng.uniform();
      if (u < 0.4) return std::ldexp(rng.uniform(-1, 1), -static_cast<int>(rng.below(60)));
      if (u < 0.8) return rng.uniform(-745.2, -708.3);
      return rng.uniform(709.0, 709.8);
    });
  }
  {
    UlpCheck<double> chk(v, Fn::kExp, "random mixed lanes");
    random_batches<double>(chk, n / 4, [&] {
      const double u = rng.uniform();
      if (u < 0.5) return rng.uniform(-700, 700);
      if (u < 0.7) return rng.uniform(-746, -708);
      if (u < 0.8) return rng.uniform(709, 711);
      static const double sp[] = {-kDInf, kDInf, NAN, -NAN, 0.0, -0.0, 1e300, -1e300, 709.78, -745.13};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kExp, rng);
  }
  UlpCheck<double> chk(v, Fn::kExp, "special values");
  chk.exact(-kDInf, 0.0);
  for (double x : {-745.2, -746.0, -1000.0, -1e300, -1.7e308}) chk.exact(x, 0.0);
  for (double x : {709.79, 710.0, 1000.0, 1e300, 1.7e308, kDInf}) chk.exact(x, INFINITY);
  chk.exact(NAN, NAN);
  chk.exact(-NAN, NAN);
  chk.exact(0.0, 1.0);
  chk.exact(-0.0, 1.0);
  const double edge[] = {-745.13, -745.0, -740.0, -708.4, -708.39, 709.78, 709.7827, 1e-300, -1e-300,
                         4.9e-324, 1.0, -1.0};
  chk.batch(edge, sizeof edge / sizeof edge[0]);
}

void exp2_double(const Variant& v, Rng& rng) {
  const size_t n = scaled(4000000, 4096);
  {
    UlpCheck<double> chk(v, Fn::kExp2, "random in [-1076, 0], in [-1, 0] at every scale");
    random_batches<double>(chk, n / 2, [&] { return rng.uniform(-1076, 0); });
    random_batches<double>(chk, n / 4, [&] {
      return -std::ldexp(rng.uniform(), -static_cast<int>(rng.below(60)));
    });
  }
  {
    UlpCheck<double> chk(v, Fn::kExp2, "random subnormal results and mixed lanes");
    random_batches<double>(chk, n / 4, [&] {
      const double u = rng.uniform();
      if (u < 0.5) return rng.uniform(-1076, -1021);
      if (u < 0.9) return rng.uniform(-100, 0);
      static const double sp[] = {-kDInf, NAN, -NAN, 0.0, -0.0, -1e300, -1075.0, -1074.0, -1022.0, -0.5};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kExp2, rng);
  }
  exp2_specials<double>(v);
}

void log_double(const Variant& v, Rng& rng) {
  const size_t n = scaled(4000000, 4096);
  {
    UlpCheck<double> chk(v, Fn::kLog, "random positive bit patterns (all exponents, subnormals)");
    random_batches<double>(chk, n, [&] {
      return from_bits<double>(1 + rng.next() % 0x7fefffffffffffffULL);
    });
  }
  {
    UlpCheck<double> chk(v, Fn::kLog, "random in [0.5, 2], near 1, subnormals");
    random_batches<double>(chk, n / 2, [&] {
      const double u = rng.uniform();
      if (u < 0.4) return rng.uniform(0.5, 2);
      if (u < 0.7) return 1.0 + std::ldexp(rng.uniform(-1, 1), -static_cast<int>(rng.below(52)));
      return from_bits<double>(1 + rng.next() % 0x000fffffffffffffULL);
    });
  }
  {
    UlpCheck<double> chk(v, Fn::kLog, "random mixed lanes");
    random_batches<double>(chk, n / 4, [&] {
      const double u = rng.uniform();
      if (u < 0.6) return from_bits<double>(1 + rng.next() % 0x7fefffffffffffffULL);
      if (u < 0.8) return from_bits<double>(1 + rng.next() % 0x000fffffffffffffULL);
      static const double sp[] = {0.0, -0.0, -1.0, -kDInf, kDInf, NAN, -NAN, 1.0, -4.9e-324, 1.7e308};
      return sp[rng.below(10)];
    });
    tails(chk, Fn::kLog, rng);
  }
  UlpCheck<double> chk(v, Fn::kLog, "special values");
  chk.exact(0.0, -INFINITY);
  chk.exact(-0.0, -INFINITY);
  for (double x : {-1.0, -4.9e-324, -1.7e308, -kDInf}) chk.exact(x, NAN);
  chk.exact(kDInf, INFINITY);
  chk.exact(NAN, NAN);
  chk.exact(-NAN, NAN);
  chk.exact(1.0, 0.0);
  const double edge[] = {4.9e-324, 1e-320, 2.2250738585072009e-308, 2.2250738585072014e-308,
                         1.7976931348623157e308, 0.9999999999999999, 1.0000000000000002, 2.0, 0.5,
                         0.7071067811865476, 1.4142135623730951};
  chk.batch(edge, sizeof edge / sizeof edge[0]);
}

// |x|^beta in double (KernelSet::abs_pow) against powl, for betas from 1e-3 to 1e3.
void pow_double(const Variant& v, Rng& rng) {
  const kd::KernelSet<double>& k = set_of<double>(*v.table);
  for (double beta : {1e-3, 0.1, 0.57, 1.5, 2.5, 8.1, 33.3, 50.0, 99.0, 1e3}) {
    const double kMaxUlpPow = beta <= 50 ? 2.0 : 1.0 + 0.03 * beta;
    Case cs(fmt("%s f64 abs_pow beta=%g", v.name.c_str(), beta));
    const std::string key = fmt("%s/f64/abs_pow ulp", v.name.c_str());
    const size_t n = scaled(200000, 4096);
    std::vector<double> in(n);
    for (size_t i = 0; i < n; ++i) {
      const double u = rng.uniform();
      in[i] = u < 0.5   ? std::ldexp(rng.uniform(0.5, 1.0), static_cast<int>(rng.below(2098)) - 1074)
              : u < 0.8 ? rng.normal() * 10
              : u < 0.95 ? 1.0 + rng.normal() * 1e-3
                         : std::vector<double>{0.0, -0.0, kDInf, -kDInf, NAN, 1.0, -1.0, 4.9e-324}[rng.below(8)];
    }
    Buffer<double> out(n, rng.below(3));
    k.abs_pow(in.data(), out.data(), n, beta);
    int failures = 0;
    for (size_t i = 0; i < n; ++i) {
      const LD a = std::fabs(static_cast<LD>(in[i]));
      const LD ref = std::isnan(a) ? a : a == 0 ? 0 : std::pow(a, static_cast<LD>(beta));
      const double d = ulp_distance<double>(out[i], ref);
      if (d > kMaxUlpPow && failures < 3) {
        ++failures;
        cs.ulp(key, "abs_pow", static_cast<LD>(in[i]), ref, out[i], d, kMaxUlpPow);
      }
      Worst& w = g_report.worst(key);
      ++w.checks;
      if (d > w.ulp) {
        w.ulp = d;
        w.where = fmt("|%.17g|^%g", in[i], beta);
      }
    }
    cs.expect(out.check_guard(), "output guard overwritten");
  }
}

}  // namespace

void suite_vecmath() {
  for (const Variant& v : all_variants()) {
    Rng rng(g_opt.seed ^ 0x766d);
    exp_float(v, rng);
    log_float(v, rng);
    exp2_float(v, rng);
    exp_double(v, rng);
    log_double(v, rng);
    exp2_double(v, rng);
    pow_double(v, rng);
  }
}

}  // namespace kdt
