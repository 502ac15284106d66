// Vectorised exp and log for float and double, written once over an ISA's primitive operations and
// compiled per ISA. Include this from an ops header (ops_avx2.h, ops_avx512.h, ops_neon.h) after
// KD_ISA is defined: everything here lives in namespace kd::KD_ISA, so no inline function compiled
// with one ISA's flags can be picked by the linker for another ISA. Nothing here instantiates a std::
// template, for the same reason.
//
// The primitives a vecmath client O (an ISA's Ops<T>) provides, all lane-wise:
//   types     Scalar (float / double), V (Scalar lanes), I (same-width integer lanes), M (lane mask)
//   float     set1, add, sub, mul, div, fma(a, b, c) = a * b + c (fused), fnma(a, b, c) = c - a * b
//             (fused), abs, max(a, b) = a > b ? a : b, round (to nearest, ties to even),
//             clamp(x, lo, hi) (NaN stays NaN)
//   integer   iset1, iadd, iand, ior, shl_mant / shr_mant (shift left / logical right by the mantissa
//             width: 23 or 52), as_int / as_float (bit reinterpretation)
//   masks     lt, le, gt, ge, eq (ordered: false where a lane is NaN), mand, select(m, a, b) (a where
//             m, else b), all (every lane set)
//   scaling   kNativeScale; if true, scalef(p, k) = p * 2^k for integral k, rounded once (subnormal
//             results included), as AVX-512's VSCALEF does. Otherwise the two-step scale below.
//
// Accuracy, in ULP of the result type (for results in the subnormal range: of the subnormal spacing,
// 2^-149 / 2^-1074), measured against glibc's double exp / log for float and x87 expl / logl for
// double (AArch64: IEEE quad expl / logl):
//   exp float  : max 0.951 ULP over all 2^32 inputs (AVX-512 and AVX2 exhaustively, NEON every 7th
//                input). Subnormal results (x in [-103.97, -87.34]) included. 0 for x < -103.97 and
//                -inf, +inf for x > 88.72 and +inf, NaN for NaN.
//   exp double : max 0.959 ULP over 1.5e8 random inputs in [-746, 710], [-1, 1] and the subnormal
//                range [-745.2, -707]. 0 below -745.13 and for -inf, +inf above 709.78, NaN for NaN.
//   log float  : max 0.858 ULP over all 2^32 inputs; subnormal inputs included.
//   log double : max 0.846 ULP over 1.5e8 random inputs (every positive bit pattern class, [0.5, 2]
//                and [0, 1e-300] with subnormals).
//   log(+-0) = -inf, log(x < 0) = NaN (also for -inf), log(+inf) = +inf, log(NaN) = NaN.
//   exp2_nonpos float  : max 0.910 ULP over all 1.13e9 floats in [-151, 0] (AVX-512 and AVX2),
//                        subnormal results (y in [-150, -126]) included; 0 below -150 and for -inf.
//   exp2_nonpos double : max 0.972 ULP over the native tests' random inputs in [-1076, 0] (4e6 a run);
//                        0 below -1075 and for -inf. Both: NaN for NaN; y > 0 is outside the domain.
// So all six are within 1 ULP (the requirement is 2). Results are the same on every ISA for normal
// results; VSCALEF and the two-step scale round subnormal results identically (once).
//
// Algorithms.
//   exp: k = round(x / ln2), r = x - k ln2 by Cody-Waite in two fused steps (the first exact), then
//   e^r ~ P(r) on |r| <= ln2/2, P = 1 + r + r^2 q(r) with q a near-minimax (Chebyshev) fit, evaluated
//   by Horner's rule (degree 6 for float, 11 for double), and e^x = 2^k e^r. The scale is one multiply
//   by 2^k built in the exponent field while every lane's result is normal; otherwise 2^k is applied
//   in two halves, 2^k1 (exact) then 2^k2, which rounds once, also into the subnormals and to 0 or
//   +inf (x is clamped first, so k stays bounded). AVX-512 applies 2^k with VSCALEF, which rounds once
//   by itself.
//   log: x = 2^e m with m in [sqrt(2)/2, sqrt(2)) by integer operations on the bits (subnormal inputs
//   are first scaled by 2^23 / 2^52), f = m - 1, s = f / (2 + f), log(1 + f) = 2 atanh(s) =
//   f - f^2/2 + s (f^2/2 + R(s^2)) with R(z) = z P(z) near-minimax (degree 2 for float, 6 for double),
//   and log x = e ln2_hi + (f - (f^2/2 - (s (f^2/2 + R) + e ln2_lo))).
//   exp2_nonpos: k = round(y), f = y - k (exact), 2^f ~ P2(f) with P2(f) = P(f ln2), exp's polynomial
//   with coefficient i times ln2^i (tools/exp2_coefficients.py derives them and checks this file),
//   and 2^y = 2^k 2^f, scaled as exp's result is.
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>

// exp and log are inlined into every loop that calls them (GCC would otherwise call the versions with a
// slow-path branch out of line, one call per vector).
#if defined(__GNUC__)
#define KD_VM_INLINE inline __attribute__((always_inline))
#else
#define KD_VM_INLINE inline
#endif

namespace kd {
namespace KD_ISA {
namespace vm {

template <typename T>
struct Consts;

template <>
struct Consts<float> {
  using Int = int32_t;
  static constexpr float kLog2e = 1.44269502162933349609375f;
  static constexpr float kLn2Hi = 0.693147182464599609375f;        // nearest float to ln 2
  static constexpr float kLn2Lo = -1.9046542121259336e-09f;         // ln 2 - kLn2Hi
  // exp clamp: below kExpLo every result rounds to 0, above kExpHi to +inf.
  static constexpr float kExpLo = -104.0f;
  static constexpr float kExpHi = 89.0f;
  static constexpr float kMaxNormalK = 126.0f;  // |k| <= this: 2^k is normal, one multiply suffices
  // pow2i: k + kPow2Magic puts k + bias in the low mantissa bits.
  static constexpr float kPow2Magic = 12582912.0f + 127.0f;  // 1.5 * 2^23 + bias
  // e^r ~ 1 + r + r^2 q(r) on [-ln2/2, ln2/2], q the degree-4 Chebyshev fit of (e^r - 1 - r) / r^2
  // (|error| < 6.5e-8, times r^2 < 0.121), as one polynomial for Horner's rule.
  static constexpr int kExpDeg = 6;
  static constexpr float kExpP[kExpDeg + 1] = {1.0f,
                                               1.0f,
                                               0.5f,
                                               0.16666577756404877f,
                                               0.041666556149721146f,
                                               0.008363173343241215f,
                                               0.0013926175888627768f};
  // exp2_nonpos: below kExp2Lo every result rounds to 0; 2^f ~ P(f ln2) on [-1/2, 1/2], the exp
  // polynomial's coefficients times ln2^i (tools/exp2_coefficients.py).
  static constexpr float kExp2Lo = -151.0f;
  static constexpr float kExp2P[kExpDeg + 1] = {1.0f,
                                                0.6931471824645996f,
                                                0.24022650718688965f,
                                                0.055503811687231064f,
                                                0.009618103504180908f,
                                                0.0013381303288042545f,
                                                0.00015444883320014924f};
  // log
  static constexpr float kMinNormal = 1.17549435082228750797e-38f;
  static constexpr float kSubScale = 8388608.0f;  // 2^23
  static constexpr float kSubShift = 23.0f;
  static constexpr Int kOneMinusSqrtHalf = 0x3f800000 - 0x3f3504f3;
  static constexpr Int kSqrtHalf = 0x3f3504f3;
  static constexpr Int kMantMask = 0x007fffff;
  static constexpr Int kExpMagicBits = 0x4b000000;  // 2^23
  static constexpr float kExpMagic = 8388608.0f + 127.0f;
  // P(z) ~ (2 atanh(s) - 2 s) / s^3, z = s^2 in [0, 0.0295]; |error| * s^3 < 1e-9.
  static constexpr int kLogDeg = 2;
  static constexpr float kLogP[kLogDeg + 1] = {0.6666668653488159f, 0.3998878002166748f,
                                               0.29579949378967285f};
};

template <>
struct Consts<double> {
  using Int = int64_t;
  static constexpr double kLog2e = 1.4426950408889634;
  static constexpr double kLn2Hi = 0.6931471805599453;     // nearest double to ln 2
  static constexpr double kLn2Lo = 2.3190468138462996e-17;  // ln 2 - kLn2Hi
  static constexpr double kExpLo = -746.0;
  static constexpr double kExpHi = 710.0;
  static constexpr double kMaxNormalK = 1022.0;
  static constexpr double kPow2Magic = 6755399441055744.0 + 1023.0;  // 1.5 * 2^52 + bias
  // e^r ~ 1 + r + r^2 q(r), q the degree-9 Chebyshev fit of (e^r - 1 - r) / r^2 on [-ln2/2, ln2/2]
  // (|error| < 1.1e-16, times r^2 < 0.121).
  static constexpr int kExpDeg = 11;
  static constexpr double kExpP[kExpDeg + 1] = {
      1.0, 1.0, 0.5000000000000001, 0.16666666666666669, 0.041666666666624164, 0.008333333333330065,
      0.0013888888917196719, 0.00019841269863040545, 2.4801521322368692e-05, 2.7557268480310024e-06,
      2.7620075879983367e-07, 2.5100375832561234e-08};
  static constexpr double kExp2Lo = -1076.0;
  static constexpr double kExp2P[kExpDeg + 1] = {
      1.0, 0.6931471805599453, 0.24022650695910078, 0.05550410866482158, 0.009618129107618665,
      0.0013333558146423213, 0.00015403530424776526, 1.5252733820795803e-05, 1.3215451633221434e-06,
      1.0178067267449426e-07, 7.070977866508139e-09, 4.45410341058704e-10};
  static constexpr double kMinNormal = 2.2250738585072013830902e-308;
  static constexpr double kSubScale = 4503599627370496.0;  // 2^52
  static constexpr double kSubShift = 52.0;
  static constexpr Int kOneMinusSqrtHalf = 0x3ff0000000000000LL - 0x3fe6a09e667f3bcdLL;
  static constexpr Int kSqrtHalf = 0x3fe6a09e667f3bcdLL;
  static constexpr Int kMantMask = 0x000fffffffffffffLL;
  static constexpr Int kExpMagicBits = 0x4330000000000000LL;  // 2^52
  static constexpr double kExpMagic = 4503599627370496.0 + 1023.0;
  // P(z) ~ (2 atanh(s) - 2 s) / s^3, z = s^2 in [0, 0.0295]; |error| * s^3 < 1.6e-18.
  static constexpr int kLogDeg = 6;
  static constexpr double kLogP[kLogDeg + 1] = {0.666666666666667,   0.39999999999899505, 0.28571428625975487,
                                                0.2222221113479508,  0.18182889125261723, 0.15331721600556042,
                                                0.14616449685043406};
};

// c[0] + x c[1] + ... + x^D c[D] by Horner's rule.
template <class O, int D>
KD_VM_INLINE typename O::V horner(typename O::V x, const typename O::Scalar (&c)[D + 1]) {
  typename O::V acc = O::set1(c[D]);
  for (int i = D - 1; i >= 0; --i) acc = O::fma(acc, x, O::set1(c[i]));
  return acc;
}

// 2^k for integral k with 2^k normal (|k| <= 126 for float, 1022 for double), built in the exponent
// field: k + 1.5 * 2^mant + bias leaves k + bias in the low mantissa bits, which the shift moves into
// the exponent field (and the magic's own bits out of the word).
template <class O>
KD_VM_INLINE typename O::V pow2i(typename O::V k) {
  using C = Consts<typename O::Scalar>;
  return O::as_float(O::shl_mant(O::as_int(O::add(k, O::set1(C::kPow2Magic)))));
}

// p * 2^k for integral k, |k| <= 2 * kMaxNormalK + 2, rounded once: 2^k1 with k1 = round(k / 2) is
// exact, the second factor 2^(k - k1) then rounds into the subnormals, to 0 or to +inf.
template <class O>
KD_VM_INLINE typename O::V scale_two_step(typename O::V p, typename O::V k) {
  const typename O::V k1 = O::round(O::mul(k, O::set1(static_cast<typename O::Scalar>(0.5))));
  const typename O::V k2 = O::sub(k, k1);
  return O::mul(O::mul(p, pow2i<O>(k1)), pow2i<O>(k2));
}

// p * 2^k for integral k with |k| <= 2 * kMaxNormalK + 2, rounded once (also into the subnormals and to
// 0 or +inf): VSCALEF where the ISA has it, else one multiply by 2^k while every lane's 2^k is normal
// and the two-step scale otherwise.
template <class O>
KD_VM_INLINE typename O::V scale_pow2(typename O::V p, typename O::V k) {
  using C = Consts<typename O::Scalar>;
  if constexpr (O::kNativeScale) {
    return O::scalef(p, k);
  } else {
    if (O::all(O::le(O::abs(k), O::set1(C::kMaxNormalK)))) return O::mul(p, pow2i<O>(k));
    return scale_two_step<O>(p, k);
  }
}

// The clamps an exp applies to its argument: both (any x), the lower one (x <= 0, -inf or NaN: softmax
// arguments x - max), or none (see exp_nonpos_unguarded).
enum class Clamp { kBoth, kLow, kNone };

template <class O, Clamp kClamp>
KD_VM_INLINE typename O::V exp_impl(typename O::V x) {
  using V = typename O::V;
  using C = Consts<typename O::Scalar>;
  // Clamping keeps k bounded; every result below / above the clamp is 0 / +inf anyway. NaN stays NaN
  // (and then poisons r).
  if constexpr (kClamp == Clamp::kLow) {
    x = O::max(O::set1(C::kExpLo), x);  // lo > x ? lo : x, which keeps NaN
  } else if constexpr (kClamp == Clamp::kBoth) {
    x = O::clamp(x, O::set1(C::kExpLo), O::set1(C::kExpHi));
  }
  const V k = O::round(O::mul(x, O::set1(C::kLog2e)));
  V r = O::fnma(k, O::set1(C::kLn2Hi), x);  // exact (k ln2_hi has no bits below x's and r's ulp)
  r = O::fnma(k, O::set1(C::kLn2Lo), r);
  const V p = horner<O, C::kExpDeg>(r, C::kExpP);  // e^r in [0.70, 1.42]
  return scale_pow2<O>(p, k);
}

template <class O>
KD_VM_INLINE typename O::V exp(typename O::V x) {
  return exp_impl<O, Clamp::kBoth>(x);
}

// exp for x <= 0 (also -inf and NaN), one operation cheaper; other x give unspecified results.
template <class O>
KD_VM_INLINE typename O::V exp_nonpos(typename O::V x) {
  return exp_impl<O, Clamp::kLow>(x);
}

// exp_nonpos without its clamp, for ISAs whose scale is native (VSCALEF takes any k): for x <= 0 either
// exp_nonpos's own result (below the clamp both give 0: 2^k rounds any e^r to 0 for k < -150) or a
// value that is not finite: NaN for -inf, and NaN or +inf where |x| is so large that the rounding of
// x * log2(e) leaves a huge r and the polynomial overflows (for float from about 1e14). A caller that
// sees a result that is not finite recomputes with exp_nonpos.
template <class O>
KD_VM_INLINE typename O::V exp_nonpos_unguarded(typename O::V x) {
  static_assert(O::kNativeScale, "without a native scale, k must stay bounded: use exp_nonpos");
  return exp_impl<O, Clamp::kNone>(x);
}

// 2^y for y <= 0 (also -inf and NaN); other y give unspecified results. k = round(y) and f = y - k
// (exact, |f| <= 1/2) need no Cody-Waite step, so this is cheaper than exp: the distillation kernel
// takes e^(d/T) as 2^(d * log2(e)/T), one multiply forming the argument as d * (1/T) did.
template <class O, Clamp kClamp = Clamp::kLow>
KD_VM_INLINE typename O::V exp2_nonpos(typename O::V y) {
  using V = typename O::V;
  using C = Consts<typename O::Scalar>;
  static_assert(kClamp != Clamp::kBoth, "y <= 0 only");
  static_assert(kClamp == Clamp::kLow || O::kNativeScale, "see exp_nonpos_unguarded");
  if constexpr (kClamp == Clamp::kLow) {
    y = O::max(O::set1(C::kExp2Lo), y);  // keeps NaN; -inf and every y below round to 0
  }
  const V k = O::round(y);
  const V p = horner<O, C::kExpDeg>(O::sub(y, k), C::kExp2P);  // 2^f in [0.70, 1.42]
  return scale_pow2<O>(p, k);
}

// exp2_nonpos without its clamp, under exp_nonpos_unguarded's terms: exp2_nonpos's result for every
// finite y <= 0 (f = y - round(y) is exact, 2^k for k < -150 makes it 0), NaN for -inf.
template <class O>
KD_VM_INLINE typename O::V exp2_nonpos_unguarded(typename O::V y) {
  return exp2_nonpos<O, Clamp::kNone>(y);
}

// x = 2^e m with m in [sqrt(2)/2, sqrt(2)) and f = m - 1 (exact), for x > 0 finite; with special
// (some lane not a positive normal finite number) subnormal lanes are scaled into the normal range
// first, and the other special lanes give values the callers replace.
template <class O>
struct MantissaSplit {
  typename O::V e, f;
};

template <class O>
KD_VM_INLINE MantissaSplit<O> split_mantissa(typename O::V x, bool special) {
  using V = typename O::V;
  using I = typename O::I;
  using C = Consts<typename O::Scalar>;
  V xs = x;
  V e_adj = O::set1(0);
  if (special) {
    const auto sub = O::lt(x, O::set1(C::kMinNormal));
    xs = O::select(sub, O::mul(x, O::set1(C::kSubScale)), x);
    e_adj = O::select(sub, O::set1(-C::kSubShift), e_adj);
  }
  I ix = O::iadd(O::as_int(xs), O::iset1(C::kOneMinusSqrtHalf));
  const V e = O::add(
      O::sub(O::as_float(O::ior(O::shr_mant(ix), O::iset1(C::kExpMagicBits))), O::set1(C::kExpMagic)),
      e_adj);
  ix = O::iadd(O::iand(ix, O::iset1(C::kMantMask)), O::iset1(C::kSqrtHalf));
  return MantissaSplit<O>{e, O::sub(O::as_float(ix), O::set1(1))};
}

// log x before the fix-ups of special lanes; special: some lane is not positive, normal and finite.
template <class O>
KD_VM_INLINE typename O::V log_core(typename O::V x, bool special) {
  using V = typename O::V;
  using C = Consts<typename O::Scalar>;
  const MantissaSplit<O> m = split_mantissa<O>(x, special);
  const V e = m.e, f = m.f;
  const V s = O::div(f, O::add(f, O::set1(2)));
  const V z = O::mul(s, s);
  const V R = O::mul(z, horner<O, C::kLogDeg>(z, C::kLogP));
  const V hfsq = O::mul(O::set1(static_cast<typename O::Scalar>(0.5)), O::mul(f, f));
  const V t = O::fma(s, O::add(hfsq, R), O::mul(e, O::set1(C::kLn2Lo)));
  return O::fma(e, O::set1(C::kLn2Hi), O::sub(f, O::sub(hfsq, t)));
}

template <class O>
KD_VM_INLINE typename O::V log(typename O::V x) {
  using V = typename O::V;
  using C = Consts<typename O::Scalar>;
  // Positive normal finite lanes take the plain path; anything else (subnormal, 0, negative, inf, NaN)
  // in the vector adds the prescale and the fix-ups.
  const bool special = !O::all(O::mand(O::ge(x, O::set1(C::kMinNormal)), O::lt(x, O::set1(INFINITY))));
  V res = log_core<O>(x, special);
  if (special) {
    const V zero = O::set1(0);
    res = O::select(O::gt(x, zero), res, O::select(O::eq(x, zero), O::set1(-INFINITY), O::set1(NAN)));
    res = O::select(O::eq(x, O::set1(INFINITY)), x, res);
  }
  return res;
}

// log x where every lane the caller keeps is positive, normal and finite (the others get unspecified
// values): log without the check and the fix-ups, for a caller that checks its lanes itself.
template <class O>
KD_VM_INLINE typename O::V log_normal(typename O::V x) {
  return log_core<O>(x, false);
}

// a^beta for a >= 0 (also +inf and NaN) and a finite beta > 0, without the error exp(beta * log(a))
// has: there the rounding of beta * log(a) is amplified by its magnitude (|beta ln a| u, 40 ULP for
// beta = 8.1 and a = 100). Here the exponent stays split until its last step:
//   a = 2^e m (m in [sqrt(2)/2, sqrt(2)), e integral), ln m = 2 atanh(s) with s = f / (2 + f), f = m - 1,
//   as H + L: H = 2 s (s rounded), L = 2 s_lo + s R(z) (s_lo the division's exact residual over 2 + f,
//   R the log's polynomial; |L| < 0.012 |H|); beta e = K + c exactly (K integral, |c| <= 1/2 + tiny,
//   the product split by an FMA); t = beta H + (beta L + c ln2) as t_hi + t_lo (beta H split by an FMA,
//   the sum by TwoSum); then a^beta = 2^(K + k) e^(r + t_lo), k = round(t_hi / ln2), r = t_hi - k ln2
//   (Cody-Waite, exact in its first step).
// So what is rounded is small: the exp polynomial's own error, a few roundings of terms below 0.35 in
// magnitude, and beta times L's error (its rounding and the log polynomial's, about 0.03 beta ULP of
// the result). Within 2 ULP for beta up to 50 (the native tests' measure; 27 ULP at beta = 1000, where
// exp(beta log a) is off by hundreds), subnormal and overflowing results included (beta log2(a) beyond
// the range gives +inf or 0 directly). 0^beta = 0, inf^beta = inf, NaN^beta = NaN.
template <class O>
KD_VM_INLINE typename O::V pow_pos(typename O::V a, typename O::V beta) {
  using V = typename O::V;
  using T = typename O::Scalar;
  using C = Consts<T>;
  const bool special = !O::all(O::mand(O::ge(a, O::set1(C::kMinNormal)), O::lt(a, O::set1(INFINITY))));
  const MantissaSplit<O> m = split_mantissa<O>(a, special);
  const V e = m.e, f = m.f;
  // ln m = H + L.
  const V two = O::set1(2);
  const V d_hi = O::add(two, f);
  const V d_lo = O::sub(f, O::sub(d_hi, two));  // 2 + f = d_hi + d_lo exactly (|f| < 2)
  const V s = O::div(f, d_hi);
  const V res = O::fnma(s, d_lo, O::fnma(s, d_hi, f));  // f - s (2 + f): the first step is exact
  const V s_lo = O::div(res, d_hi);
  const V z = O::mul(s, s);
  const V R = O::mul(z, horner<O, C::kLogDeg>(z, C::kLogP));
  const V H = O::add(s, s);
  const V L = O::fma(s, R, O::add(s_lo, s_lo));
  // beta e = K + c.
  const V be = O::mul(beta, e);
  const V be_lo = O::fma(beta, e, O::sub(O::set1(0), be));
  const V K = O::round(be);
  const V c = O::add(O::sub(be, K), be_lo);
  // t = beta H + (beta L + c ln2) = t_hi + t_lo, |t_lo| within an ulp of t_hi.
  const V bh = O::mul(beta, H);
  const V bh_lo = O::fma(beta, H, O::sub(O::set1(0), bh));
  const V cl = O::mul(c, O::set1(C::kLn2Hi));
  const V cl_lo = O::fma(c, O::set1(C::kLn2Hi), O::sub(O::set1(0), cl));
  const V small = O::fma(beta, L, cl);
  const V t_hi = O::add(bh, small);
  const V bv = O::sub(t_hi, bh);
  const V t_err = O::add(O::sub(bh, O::sub(t_hi, bv)), O::sub(small, bv));  // TwoSum
  const V t_lo = O::add(t_err, O::add(bh_lo, O::fma(c, O::set1(C::kLn2Lo), cl_lo)));
  // e^(t_hi + t_lo) 2^K.
  const V k = O::round(O::mul(t_hi, O::set1(C::kLog2e)));
  V r = O::fnma(k, O::set1(C::kLn2Hi), t_hi);
  r = O::add(O::fnma(k, O::set1(C::kLn2Lo), r), t_lo);
  V out = scale_pow2<O>(horner<O, C::kExpDeg>(r, C::kExpP), O::add(K, k));
  // beta log2(a) beyond the range: the result is +inf or 0 (K + k is only bounded inside it).
  const V y = O::fma(t_hi, O::set1(C::kLog2e), be);
  const T top = C::kMaxNormalK + 8, bottom = -(C::kMaxNormalK + C::kSubShift + 8);
  out = O::select(O::ge(y, O::set1(top)), O::set1(INFINITY), out);
  out = O::select(O::le(y, O::set1(bottom)), O::set1(0), out);
  if (special) {
    const V zero = O::set1(0);
    out = O::select(O::eq(a, zero), zero, out);
    out = O::select(O::eq(a, O::set1(INFINITY)), a, out);
    out = O::select(O::eq(a, a), out, a);  // NaN
  }
  return out;
}

}  // namespace vm
}  // namespace KD_ISA
}  // namespace kd
