// Scalar "vector" operations: one lane, exp/log from the C library. The scalar kernels are the
// reference every SIMD variant is tested against.
//
// Every ops header provides the same interface (see kernels_impl.h for how it is used):
//   V, Acc, N, kBlock; load, load_n (tail load, fill value for lanes >= n), store, store_n, stream
//   (non-temporal store to a vector-aligned address), fence (orders streamed stores), keep_n (zero
//   lanes >= n), set1, add, sub, mul, div, fma, max, min, abs, sign, pos_or_zero, where_nonzero,
//   keep_nan, nz_div, in_range_or_zero, exp, exp_nonpos (x <= 0, -inf or NaN only), exp2_nonpos (2^y,
//   y as for exp_nonpos), log, log_normal (log where the lanes kept are positive, normal and finite:
//   no fix-ups), pow_pos (double only), reduce_max, acc_zero, acc_add, acc_fma
//   (a + x * y with x and y widened to double first: float products are exact), acc_sum.
// The masks and selects treat NaN as the exact operation would: where_nonzero and nz_div keep a NaN
// condition's lane, sign and keep_nan return NaN for NaN.
// Row sums are kept as V partials over blocks of kBlock vectors and added into the (double) Acc once per
// block (see sweep_fold in kernels_impl.h); kBlock == 1 here, which is plain double accumulation.
// The SIMD headers (kBlock > 1) also provide sum8, the lane sums of 8 partials at once, for rows that
// fit in one block.
// The SIMD ops headers add the primitives vecmath.h is written over (see there).
// An ops header must define KD_ISA (the namespace the kernels are compiled into) before
// kernels_impl.h is included.
#pragma once

#include <math.h>

#include <cstddef>

namespace kd {
namespace KD_ISA {

template <typename T>
struct Ops {
  using Scalar = T;
  using V = T;
  using Acc = double;
  static constexpr size_t N = 1;
  static constexpr size_t kBlock = 1;

  static V load(const T* p) { return *p; }
  static V load_n(const T* p, size_t, T) { return *p; }
  static void store(T* p, V v) { *p = v; }
  static void stream(T* p, V v) { *p = v; }  // p aligned to the vector size (no alignment here)
  static void fence() {}
  static void store_n(T* p, size_t, V v) { *p = v; }
  static V keep_n(V v, size_t) { return v; }

  static V set1(T x) { return x; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V div(V a, V b) { return a / b; }
  static V fma(V a, V b, V c) { return a * b + c; }  // not fused: the reference rounds twice
  static V max(V a, V b) { return a > b ? a : b; }
  static V min(V a, V b) { return a < b ? a : b; }
  static V abs(V a) { return a < T(0) ? -a : a; }
  // copysign(1, a) where a != 0, 0 for +-0, NaN for NaN.
  static V sign(V a) { return a > T(0) ? T(1) : (a < T(0) ? T(-1) : (a == T(0) ? T(0) : a)); }
  // v where c > 0, else 0.
  static V pos_or_zero(V c, V v) { return c > T(0) ? v : T(0); }
  // v where c != 0 (NaN included), else 0: a factor of exactly 0 makes a product exactly 0.
  static V where_nonzero(V c, V v) { return c != T(0) ? v : T(0); }
  // x where x is NaN, else v.
  static V keep_nan(V x, V v) { return x != x ? x : v; }
  // a / x where x != 0, else 0.
  static V nz_div(V a, V x) { return x != T(0) ? a / x : T(0); }
  // a where lo <= x <= hi, else 0.
  static V in_range_or_zero(V x, V lo, V hi, V a) { return (x >= lo && x <= hi) ? a : T(0); }

  static V exp(V x);
  static V exp_nonpos(V x) { return exp(x); }  // exp of x <= 0 (softmax arguments)
  static V exp2_nonpos(V y);                     // 2^y for y <= 0
  static V log(V x);
  static V log_normal(V x) { return log(x); }  // log of x > 0, normal and finite
  static V pow_pos(V a, V beta);  // a^beta for a >= 0 and beta > 0 (double: the C library's pow)

  static T reduce_max(V v) { return v; }
  static Acc acc_zero() { return 0.0; }
  static Acc acc_add(Acc a, V v) { return a + static_cast<double>(v); }
  static Acc acc_fma(Acc a, V x, V y) { return a + static_cast<double>(x) * static_cast<double>(y); }
  static double acc_sum(Acc a) { return a; }
};

template <>
inline float Ops<float>::exp(float x) { return ::expf(x); }
template <>
inline float Ops<float>::exp2_nonpos(float y) { return ::exp2f(y); }
template <>
inline float Ops<float>::log(float x) { return ::logf(x); }
template <>
inline double Ops<double>::exp(double x) { return ::exp(x); }
template <>
inline double Ops<double>::exp2_nonpos(double y) { return ::exp2(y); }
template <>
inline double Ops<double>::log(double x) { return ::log(x); }
template <>
inline double Ops<double>::pow_pos(double a, double beta) { return ::pow(a, beta); }

}  // namespace KD_ISA
}  // namespace kd
