// AArch64 Advanced SIMD operations: 4 float / 2 double lanes; tails go through a small local lane
// buffer. See ops_scalar.h for the kernel interface and vecmath.h for the primitives that exp and log
// are written over. Compiled only into neon.cc; KD_ISA must be defined (as neon) before this header.
#pragma once

#include <arm_neon.h>
#include <math.h>

#include <cstddef>
#include <cstdint>

#include "vecmath.h"

namespace kd {
namespace KD_ISA {

template <typename T>
struct Ops;

template <>
struct Ops<float> {
  using Scalar = float;
  using V = float32x4_t;
  using I = int32x4_t;
  using M = uint32x4_t;
  struct Acc {
    float64x2_t lo, hi;
  };
  static constexpr size_t N = 4;
  static constexpr size_t kBlock = 8;  // vectors summed in float before widening to the double Acc
  static constexpr bool kNativeScale = false;

  // All-ones in lanes < n.
  static M tail(size_t n) {
    const uint32_t idx[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(idx), vdupq_n_u32(static_cast<uint32_t>(n)));
  }

  static V load(const float* p) { return vld1q_f32(p); }
  static V load_n(const float* p, size_t n, float fill) {
    float buf[4] = {fill, fill, fill, fill};
    for (size_t i = 0; i < n; ++i) buf[i] = p[i];
    return vld1q_f32(buf);
  }
  static void store(float* p, V v) { vst1q_f32(p, v); }
  static void stream(float* p, V v) { vst1q_f32(p, v); }  // no non-temporal hint worth using here
  static void fence() {}
  static void store_n(float* p, size_t n, V v) {
    float buf[4];
    vst1q_f32(buf, v);
    for (size_t i = 0; i < n; ++i) p[i] = buf[i];
  }
  static V keep_n(V v, size_t n) { return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), tail(n))); }

  static V zero() { return vdupq_n_f32(0.0f); }
  static V mask_and(M m, V v) { return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v))); }

  static V set1(float x) { return vdupq_n_f32(x); }
  static V add(V a, V b) { return vaddq_f32(a, b); }
  static V sub(V a, V b) { return vsubq_f32(a, b); }
  static V mul(V a, V b) { return vmulq_f32(a, b); }
  static V div(V a, V b) { return vdivq_f32(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }
  static V fnma(V a, V b, V c) { return vfmsq_f32(c, a, b); }
  // a > b ? a : b and a < b ? a : b, exactly as the scalar reference (FMAX / FMIN differ on NaN).
  static V max(V a, V b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static V min(V a, V b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
  static V abs(V a) { return vabsq_f32(a); }
  static V sign(V a) {
    const M nz = vorrq_u32(vcgtq_f32(a, zero()), vcltq_f32(a, zero()));  // false for 0 and NaN
    const uint32x4_t sgn = vandq_u32(vreinterpretq_u32_f32(a), vdupq_n_u32(0x80000000u));
    const V one = vreinterpretq_f32_u32(vorrq_u32(sgn, vreinterpretq_u32_f32(vdupq_n_f32(1.0f))));
    return keep_nan(a, mask_and(nz, one));
  }
  static V pos_or_zero(V c, V v) { return mask_and(vcgtq_f32(c, zero()), v); }
  static V where_nonzero(V c, V v) { return mask_and(vmvnq_u32(vceqq_f32(c, zero())), v); }
  static V keep_nan(V x, V v) { return vbslq_f32(vceqq_f32(x, x), v, x); }
  static V nz_div(V a, V x) { return mask_and(vmvnq_u32(vceqq_f32(x, zero())), vdivq_f32(a, x)); }
  static V in_range_or_zero(V x, V lo, V hi, V a) { return mask_and(vandq_u32(vcgeq_f32(x, lo), vcleq_f32(x, hi)), a); }

  // vecmath primitives.
  static V round(V x) { return vrndnq_f32(x); }
  static V clamp(V x, V lo, V hi) { return vminq_f32(hi, vmaxq_f32(lo, x)); }  // FMAX / FMIN keep NaN
  static I iset1(int32_t x) { return vdupq_n_s32(x); }
  static I iadd(I a, I b) { return vaddq_s32(a, b); }
  static I iand(I a, I b) { return vandq_s32(a, b); }
  static I ior(I a, I b) { return vorrq_s32(a, b); }
  static I shl_mant(I a) { return vshlq_n_s32(a, 23); }
  static I shr_mant(I a) { return vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(a), 23)); }
  static I as_int(V a) { return vreinterpretq_s32_f32(a); }
  static V as_float(I a) { return vreinterpretq_f32_s32(a); }
  static M lt(V a, V b) { return vcltq_f32(a, b); }
  static M le(V a, V b) { return vcleq_f32(a, b); }
  static M gt(V a, V b) { return vcgtq_f32(a, b); }
  static M ge(V a, V b) { return vcgeq_f32(a, b); }
  static M eq(V a, V b) { return vceqq_f32(a, b); }
  static M mand(M a, M b) { return vandq_u32(a, b); }
  static V select(M m, V a, V b) { return vbslq_f32(m, a, b); }
  static bool all(M m) { return vminvq_u32(m) != 0; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }

  static float reduce_max(V v) {
    const float32x2_t h = vget_high_f32(v), l = vget_low_f32(v);
    const float32x2_t m = vbsl_f32(vcgt_f32(l, h), l, h);
    const float a = vget_lane_f32(m, 0), b = vget_lane_f32(m, 1);
    return a > b ? a : b;
  }
  static Acc acc_zero() { return Acc{vdupq_n_f64(0.0), vdupq_n_f64(0.0)}; }
  static Acc acc_add(Acc a, V v) {
    a.lo = vaddq_f64(a.lo, vcvt_f64_f32(vget_low_f32(v)));
    a.hi = vaddq_f64(a.hi, vcvt_high_f64_f32(v));
    return a;
  }
  static Acc acc_fma(Acc a, V x, V y) {
    a.lo = vfmaq_f64(a.lo, vcvt_f64_f32(vget_low_f32(x)), vcvt_f64_f32(vget_low_f32(y)));
    a.hi = vfmaq_f64(a.hi, vcvt_high_f64_f32(x), vcvt_high_f64_f32(y));
    return a;
  }
  static double acc_sum(Acc a) { return vaddvq_f64(vaddq_f64(a.lo, a.hi)); }
  // out[k] = the lanes of v[k] summed (a float tree), for 8 vectors at once by pairwise adds.
  static void sum8(const V (&v)[8], double (&out)[8]) {
    for (int i = 0; i < 8; i += 4) {
      const V s = vpaddq_f32(vpaddq_f32(v[i], v[i + 1]), vpaddq_f32(v[i + 2], v[i + 3]));  // [a b c d]
      vst1q_f64(out + i, vcvt_f64_f32(vget_low_f32(s)));
      vst1q_f64(out + i + 2, vcvt_high_f64_f32(s));
    }
  }
};

template <>
struct Ops<double> {
  using Scalar = double;
  using V = float64x2_t;
  using I = int64x2_t;
  using M = uint64x2_t;
  using Acc = float64x2_t;
  static constexpr size_t N = 2;
  static constexpr size_t kBlock = 8;
  static constexpr bool kNativeScale = false;

  static M tail(size_t n) {
    const uint64_t idx[2] = {0, 1};
    return vcltq_u64(vld1q_u64(idx), vdupq_n_u64(static_cast<uint64_t>(n)));
  }

  static V load(const double* p) { return vld1q_f64(p); }
  static V load_n(const double* p, size_t n, double fill) {
    double buf[2] = {fill, fill};
    for (size_t i = 0; i < n; ++i) buf[i] = p[i];
    return vld1q_f64(buf);
  }
  static void store(double* p, V v) { vst1q_f64(p, v); }
  static void stream(double* p, V v) { vst1q_f64(p, v); }
  static void fence() {}
  static void store_n(double* p, size_t n, V v) {
    double buf[2];
    vst1q_f64(buf, v);
    for (size_t i = 0; i < n; ++i) p[i] = buf[i];
  }
  static V keep_n(V v, size_t n) { return vreinterpretq_f64_u64(vandq_u64(vreinterpretq_u64_f64(v), tail(n))); }

  static V zero() { return vdupq_n_f64(0.0); }
  static V mask_and(M m, V v) { return vreinterpretq_f64_u64(vandq_u64(m, vreinterpretq_u64_f64(v))); }

  static V set1(double x) { return vdupq_n_f64(x); }
  static V add(V a, V b) { return vaddq_f64(a, b); }
  static V sub(V a, V b) { return vsubq_f64(a, b); }
  static V mul(V a, V b) { return vmulq_f64(a, b); }
  static V div(V a, V b) { return vdivq_f64(a, b); }
  static V fma(V a, V b, V c) { return vfmaq_f64(c, a, b); }
  static V fnma(V a, V b, V c) { return vfmsq_f64(c, a, b); }
  static V max(V a, V b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }
  static V min(V a, V b) { return vbslq_f64(vcltq_f64(a, b), a, b); }
  static V abs(V a) { return vabsq_f64(a); }
  static V sign(V a) {
    const M nz = vorrq_u64(vcgtq_f64(a, zero()), vcltq_f64(a, zero()));
    const uint64x2_t sgn = vandq_u64(vreinterpretq_u64_f64(a), vdupq_n_u64(0x8000000000000000ull));
    const V one = vreinterpretq_f64_u64(vorrq_u64(sgn, vreinterpretq_u64_f64(vdupq_n_f64(1.0))));
    return keep_nan(a, mask_and(nz, one));
  }
  static V pos_or_zero(V c, V v) { return mask_and(vcgtq_f64(c, zero()), v); }
  static V where_nonzero(V c, V v) {
    return mask_and(vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(c, zero())))), v);
  }
  static V keep_nan(V x, V v) { return vbslq_f64(vceqq_f64(x, x), v, x); }
  static V nz_div(V a, V x) {
    const M ne = vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(x, zero()))));
    return mask_and(ne, vdivq_f64(a, x));
  }
  static V in_range_or_zero(V x, V lo, V hi, V a) { return mask_and(vandq_u64(vcgeq_f64(x, lo), vcleq_f64(x, hi)), a); }

  static V round(V x) { return vrndnq_f64(x); }
  static V clamp(V x, V lo, V hi) { return vminq_f64(hi, vmaxq_f64(lo, x)); }
  static I iset1(int64_t x) { return vdupq_n_s64(x); }
  static I iadd(I a, I b) { return vaddq_s64(a, b); }
  static I iand(I a, I b) { return vandq_s64(a, b); }
  static I ior(I a, I b) { return vorrq_s64(a, b); }
  static I shl_mant(I a) { return vshlq_n_s64(a, 52); }
  static I shr_mant(I a) { return vreinterpretq_s64_u64(vshrq_n_u64(vreinterpretq_u64_s64(a), 52)); }
  static I as_int(V a) { return vreinterpretq_s64_f64(a); }
  static V as_float(I a) { return vreinterpretq_f64_s64(a); }
  static M lt(V a, V b) { return vcltq_f64(a, b); }
  static M le(V a, V b) { return vcleq_f64(a, b); }
  static M gt(V a, V b) { return vcgtq_f64(a, b); }
  static M ge(V a, V b) { return vcgeq_f64(a, b); }
  static M eq(V a, V b) { return vceqq_f64(a, b); }
  static M mand(M a, M b) { return vandq_u64(a, b); }
  static V select(M m, V a, V b) { return vbslq_f64(m, a, b); }
  static bool all(M m) { return vminvq_u32(vreinterpretq_u32_u64(m)) != 0; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }
  KD_VM_INLINE static V pow_pos(V a, V beta) { return vm::pow_pos<Ops>(a, beta); }

  static double reduce_max(V v) {
    const double a = vgetq_lane_f64(v, 0), b = vgetq_lane_f64(v, 1);
    return a > b ? a : b;
  }
  static Acc acc_zero() { return vdupq_n_f64(0.0); }
  static Acc acc_add(Acc a, V v) { return vaddq_f64(a, v); }
  static Acc acc_fma(Acc a, V x, V y) { return vfmaq_f64(a, x, y); }
  static double acc_sum(Acc a) { return vaddvq_f64(a); }
  // out[k] = the lanes of v[k] summed, for 8 vectors at once by pairwise adds.
  static void sum8(const V (&v)[8], double (&out)[8]) {
    for (int i = 0; i < 8; i += 2) vst1q_f64(out + i, vpaddq_f64(v[i], v[i + 1]));
  }
};

}  // namespace KD_ISA
}  // namespace kd
