// AVX2 + FMA operations: 8 float / 4 double lanes, VMASKMOV loads and stores for tails. See
// ops_scalar.h for the kernel interface and vecmath.h for the primitives that exp and log are written
// over. Compiled only into avx2.cc, with -mavx2 -mfma; KD_ISA must be defined (as avx2) before this
// header.
#pragma once

#include <immintrin.h>
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
  using V = __m256;
  using I = __m256i;
  using M = __m256;
  struct Acc {
    __m256d lo, hi;
  };
  static constexpr size_t N = 8;
  static constexpr size_t kBlock = 8;  // vectors summed in float before widening to the double Acc
  static constexpr bool kNativeScale = false;

  // All-ones in lanes < n.
  static __m256i tail(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }

  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load_n(const float* p, size_t n, float fill) {
    const __m256i m = tail(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static void stream(float* p, V v) { _mm256_stream_ps(p, v); }  // p 32-byte aligned
  static void fence() { _mm_sfence(); }
  static void store_n(float* p, size_t n, V v) { _mm256_maskstore_ps(p, tail(n), v); }
  static V keep_n(V v, size_t n) { return _mm256_and_ps(v, _mm256_castsi256_ps(tail(n))); }

  static V set1(float x) { return _mm256_set1_ps(x); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  // a > b ? a : b and a < b ? a : b, exactly as the scalar reference (VMAXPS / VMINPS semantics).
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V abs(V a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static V sign(V a) {
    const V one = _mm256_or_ps(_mm256_and_ps(a, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    return keep_nan(a, _mm256_and_ps(_mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_NEQ_OQ), one));
  }
  static V pos_or_zero(V c, V v) { return _mm256_and_ps(_mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_GT_OQ), v); }
  static V where_nonzero(V c, V v) { return _mm256_and_ps(_mm256_cmp_ps(c, _mm256_setzero_ps(), _CMP_NEQ_UQ), v); }
  static V keep_nan(V x, V v) { return _mm256_blendv_ps(v, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); }
  static V nz_div(V a, V x) {
    return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ), _mm256_div_ps(a, x));
  }
  static V in_range_or_zero(V x, V lo, V hi, V a) {
    const V in = _mm256_and_ps(_mm256_cmp_ps(x, lo, _CMP_GE_OQ), _mm256_cmp_ps(x, hi, _CMP_LE_OQ));
    return _mm256_and_ps(in, a);
  }

  // vecmath primitives.
  static V round(V x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // Operand order keeps NaN: VMAXPS / VMINPS return the second operand when either is NaN.
  static V clamp(V x, V lo, V hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
  static I iset1(int32_t x) { return _mm256_set1_epi32(x); }
  static I iadd(I a, I b) { return _mm256_add_epi32(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  static I shl_mant(I a) { return _mm256_slli_epi32(a, 23); }
  static I shr_mant(I a) { return _mm256_srli_epi32(a, 23); }
  static I as_int(V a) { return _mm256_castps_si256(a); }
  static V as_float(I a) { return _mm256_castsi256_ps(a); }
  static M lt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M gt(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static M eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static M mand(M a, M b) { return _mm256_and_ps(a, b); }
  static V select(M m, V a, V b) { return _mm256_blendv_ps(b, a, m); }
  static bool all(M m) { return _mm256_movemask_ps(m) == 0xff; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }

  static float reduce_max(V v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
  }
  static Acc acc_zero() { return Acc{_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static Acc acc_add(Acc a, V v) {
    a.lo = _mm256_add_pd(a.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a.hi = _mm256_add_pd(a.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    return a;
  }
  static Acc acc_fma(Acc a, V x, V y) {
    a.lo = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
                           _mm256_cvtps_pd(_mm256_castps256_ps128(y)), a.lo);
    a.hi = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)),
                           _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)), a.hi);
    return a;
  }
  static double acc_sum(Acc a) {
    const __m256d s = _mm256_add_pd(a.lo, a.hi);
    const __m128d q = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
  }
  // out[k] = the lanes of v[k] summed (a float tree), for 8 vectors at once: pairwise horizontal adds
  // of two inputs side by side, so 8 sums cost about as much as two separate reductions.
  static void sum8(const V (&v)[8], double (&out)[8]) {
    // Per 128-bit half: [a b c d] (v[0..3]) and [e f g h] (v[4..7]), partial sums of each half.
    const V lo = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    const V hi = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    const V s = _mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31));
    _mm256_storeu_pd(out, _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
    _mm256_storeu_pd(out + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
  }
};

template <>
struct Ops<double> {
  using Scalar = double;
  using V = __m256d;
  using I = __m256i;
  using M = __m256d;
  using Acc = __m256d;
  static constexpr size_t N = 4;
  static constexpr size_t kBlock = 8;
  static constexpr bool kNativeScale = false;

  static __m256i tail(size_t n) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
  }

  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V load_n(const double* p, size_t n, double fill) {
    const __m256i m = tail(n);
    return _mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static void stream(double* p, V v) { _mm256_stream_pd(p, v); }  // p 32-byte aligned
  static void fence() { _mm_sfence(); }
  static void store_n(double* p, size_t n, V v) { _mm256_maskstore_pd(p, tail(n), v); }
  static V keep_n(V v, size_t n) { return _mm256_and_pd(v, _mm256_castsi256_pd(tail(n))); }

  static V set1(double x) { return _mm256_set1_pd(x); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static V div(V a, V b) { return _mm256_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
  static V min(V a, V b) { return _mm256_min_pd(a, b); }
  static V abs(V a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static V sign(V a) {
    const V one = _mm256_or_pd(_mm256_and_pd(a, _mm256_set1_pd(-0.0)), _mm256_set1_pd(1.0));
    return keep_nan(a, _mm256_and_pd(_mm256_cmp_pd(a, _mm256_setzero_pd(), _CMP_NEQ_OQ), one));
  }
  static V pos_or_zero(V c, V v) { return _mm256_and_pd(_mm256_cmp_pd(c, _mm256_setzero_pd(), _CMP_GT_OQ), v); }
  static V where_nonzero(V c, V v) { return _mm256_and_pd(_mm256_cmp_pd(c, _mm256_setzero_pd(), _CMP_NEQ_UQ), v); }
  static V keep_nan(V x, V v) { return _mm256_blendv_pd(v, x, _mm256_cmp_pd(x, x, _CMP_UNORD_Q)); }
  static V nz_div(V a, V x) {
    return _mm256_and_pd(_mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_NEQ_UQ), _mm256_div_pd(a, x));
  }
  static V in_range_or_zero(V x, V lo, V hi, V a) {
    const V in = _mm256_and_pd(_mm256_cmp_pd(x, lo, _CMP_GE_OQ), _mm256_cmp_pd(x, hi, _CMP_LE_OQ));
    return _mm256_and_pd(in, a);
  }

  static V round(V x) { return _mm256_round_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V clamp(V x, V lo, V hi) { return _mm256_min_pd(hi, _mm256_max_pd(lo, x)); }
  static I iset1(int64_t x) { return _mm256_set1_epi64x(x); }
  static I iadd(I a, I b) { return _mm256_add_epi64(a, b); }
  static I iand(I a, I b) { return _mm256_and_si256(a, b); }
  static I ior(I a, I b) { return _mm256_or_si256(a, b); }
  static I shl_mant(I a) { return _mm256_slli_epi64(a, 52); }
  static I shr_mant(I a) { return _mm256_srli_epi64(a, 52); }
  static I as_int(V a) { return _mm256_castpd_si256(a); }
  static V as_float(I a) { return _mm256_castsi256_pd(a); }
  static M lt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
  static M le(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_LE_OQ); }
  static M gt(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static M eq(V a, V b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
  static M mand(M a, M b) { return _mm256_and_pd(a, b); }
  static V select(M m, V a, V b) { return _mm256_blendv_pd(b, a, m); }
  static bool all(M m) { return _mm256_movemask_pd(m) == 0xf; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }
  KD_VM_INLINE static V pow_pos(V a, V beta) { return vm::pow_pos<Ops>(a, beta); }

  static double reduce_max(V v) {
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    return _mm_cvtsd_f64(h);
  }
  static Acc acc_zero() { return _mm256_setzero_pd(); }
  static Acc acc_add(Acc a, V v) { return _mm256_add_pd(a, v); }
  static Acc acc_fma(Acc a, V x, V y) { return _mm256_fmadd_pd(x, y, a); }
  static double acc_sum(Acc a) {
    const __m128d q = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
  }
  // out[k] = the lanes of v[k] summed, for 8 vectors at once (see Ops<float>::sum8).
  static void sum8(const V (&v)[8], double (&out)[8]) {
    for (int i = 0; i < 8; i += 4) {
      const V ab = _mm256_hadd_pd(v[i], v[i + 1]);  // [a01 b01 a23 b23]
      const V cd = _mm256_hadd_pd(v[i + 2], v[i + 3]);
      _mm256_storeu_pd(out + i, _mm256_add_pd(_mm256_permute2f128_pd(ab, cd, 0x20), _mm256_permute2f128_pd(ab, cd, 0x31)));
    }
  }
};

}  // namespace KD_ISA
}  // namespace kd
