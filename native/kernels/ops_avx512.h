// AVX-512 (F, DQ, BW, VL) operations: 16 float / 8 double lanes, mask registers for tails, VSCALEF for
// exp's final scaling. See ops_scalar.h for the kernel interface and vecmath.h for the primitives that
// exp and log are written over. Compiled only into avx512.cc, with -mavx512f -mavx512dq -mavx512bw
// -mavx512vl -mavx2 -mfma; KD_ISA must be defined (as avx512) before this header.
#pragma once

// GCC 12's AVX-512 intrinsics seed unmasked results with a self-initialised "undefined" vector, which
// -Wall reports as uninitialised use wherever they are inlined (GCC bug 105593, fixed in GCC 13).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
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
  using V = __m512;
  using I = __m512i;
  using M = __mmask16;
  struct Acc {
    __m512d lo, hi;
  };
  static constexpr size_t N = 16;
  // Vectors summed in float before widening to the double Acc: 64 (1024 floats, each lane adding 64
  // values in float). The widening is what a block amortises, and rows of up to 1024 floats (1000
  // classes) fit one block, whose sums reduce together (sum8); 64 float terms per lane keep the row
  // sums' error far inside the float32 tolerance.
  static constexpr size_t kBlock = 64;
  static constexpr bool kNativeScale = true;

  static M tail(size_t n) { return static_cast<M>((1u << n) - 1u); }

  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load_n(const float* p, size_t n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), tail(n), p);
  }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void stream(float* p, V v) { _mm512_stream_ps(p, v); }  // p 64-byte aligned
  static void fence() { _mm_sfence(); }
  static void store_n(float* p, size_t n, V v) { _mm512_mask_storeu_ps(p, tail(n), v); }
  static V keep_n(V v, size_t n) { return _mm512_maskz_mov_ps(tail(n), v); }

  static V set1(float x) { return _mm512_set1_ps(x); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  // a > b ? a : b and a < b ? a : b, exactly as the scalar reference (VMAXPS / VMINPS semantics).
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V abs(V a) { return _mm512_abs_ps(a); }
  static V sign(V a) {
    const V one = _mm512_or_ps(_mm512_and_ps(a, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return keep_nan(a, _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_NEQ_OQ), one));
  }
  static V pos_or_zero(V c, V v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_GT_OQ), v);
  }
  static V where_nonzero(V c, V v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_NEQ_UQ), v);
  }
  static V fma_where_nonzero(V c, V a, V b, V acc) {
    return _mm512_mask3_fmadd_ps(a, b, acc, _mm512_cmp_ps_mask(c, _mm512_setzero_ps(), _CMP_NEQ_UQ));
  }
  static V keep_nan(V x, V v) { return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x); }
  static V nz_div(V a, V x) {
    return _mm512_maskz_div_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NEQ_UQ), a, x);
  }
  static V in_range_or_zero(V x, V lo, V hi, V a) {
    const M in = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), x, hi, _CMP_LE_OQ);
    return _mm512_maskz_mov_ps(in, a);
  }

  // vecmath primitives.
  static V round(V x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  // Operand order keeps NaN: VMAXPS / VMINPS return the second operand when either is NaN.
  static V clamp(V x, V lo, V hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, x)); }
  static V scalef(V p, V k) { return _mm512_scalef_ps(p, k); }
  static I iset1(int32_t x) { return _mm512_set1_epi32(x); }
  static I iadd(I a, I b) { return _mm512_add_epi32(a, b); }
  static I iand(I a, I b) { return _mm512_and_si512(a, b); }
  static I ior(I a, I b) { return _mm512_or_si512(a, b); }
  static I shl_mant(I a) { return _mm512_slli_epi32(a, 23); }
  static I shr_mant(I a) { return _mm512_srli_epi32(a, 23); }
  static I as_int(V a) { return _mm512_castps_si512(a); }
  static V as_float(I a) { return _mm512_castsi512_ps(a); }
  static M lt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static M eq(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static V select(M m, V a, V b) { return _mm512_mask_blend_ps(m, b, a); }
  static bool all(M m) { return m == 0xffff; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  // Without the clamps (VSCALEF takes any k): see vecmath.h.
  KD_VM_INLINE static V exp_nonpos_unguarded(V x) { return vm::exp_nonpos_unguarded<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos_unguarded(V y) { return vm::exp2_nonpos_unguarded<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }

  static float reduce_max(V v) {
    __m256 m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
  }
  static Acc acc_zero() { return Acc{_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static Acc acc_add(Acc a, V v) {
    a.lo = _mm512_add_pd(a.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    a.hi = _mm512_add_pd(a.hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
    return a;
  }
  static Acc acc_fma(Acc a, V x, V y) {
    a.lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)),
                           _mm512_cvtps_pd(_mm512_castps512_ps256(y)), a.lo);
    a.hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)),
                           _mm512_cvtps_pd(_mm512_extractf32x8_ps(y, 1)), a.hi);
    return a;
  }
  static double acc_sum(Acc a) {
    const __m512d s = _mm512_add_pd(a.lo, a.hi);
    __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(s), _mm512_extractf64x4_pd(s, 1));
    __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
  }
  // out[k] = the lanes of v[k] summed (a float tree), for 8 vectors at once: each level adds halves
  // of two inputs side by side, so 8 sums cost about as much as two separate reductions.
  static void sum8(const V (&v)[8], double (&out)[8]) {
    V h[4], q[2];
    for (int i = 0; i < 4; ++i) {  // [a a b b]: 256-bit halves of a and of b added
      h[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44),
                           _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    }
    for (int i = 0; i < 2; ++i) {  // [a b c d]: 128-bit quarters added
      q[i] = _mm512_add_ps(_mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0x88),
                           _mm512_shuffle_f32x4(h[2 * i], h[2 * i + 1], 0xDD));
    }
    // Per quarter k: [x x y y], x = q[0]'s kind k, y = q[1]'s kind k; then adjacent lanes added.
    V e = _mm512_add_ps(_mm512_shuffle_ps(q[0], q[1], 0x44), _mm512_shuffle_ps(q[0], q[1], 0xEE));
    e = _mm512_add_ps(e, _mm512_shuffle_ps(e, e, 0xB1));
    // Lane 4k holds kind k, lane 4k + 2 kind k + 4.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_storeu_pd(out, _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_permutexvar_ps(order, e))));
  }
};

template <>
struct Ops<double> {
  using Scalar = double;
  using V = __m512d;
  using I = __m512i;
  using M = __mmask8;
  using Acc = __m512d;
  static constexpr size_t N = 8;
  static constexpr size_t kBlock = 8;
  static constexpr bool kNativeScale = true;

  static M tail(size_t n) { return static_cast<M>((1u << n) - 1u); }

  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V load_n(const double* p, size_t n, double fill) {
    return _mm512_mask_loadu_pd(_mm512_set1_pd(fill), tail(n), p);
  }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void stream(double* p, V v) { _mm512_stream_pd(p, v); }  // p 64-byte aligned
  static void fence() { _mm_sfence(); }
  static void store_n(double* p, size_t n, V v) { _mm512_mask_storeu_pd(p, tail(n), v); }
  static V keep_n(V v, size_t n) { return _mm512_maskz_mov_pd(tail(n), v); }

  static V set1(double x) { return _mm512_set1_pd(x); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V div(V a, V b) { return _mm512_div_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V fnma(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
  static V min(V a, V b) { return _mm512_min_pd(a, b); }
  static V abs(V a) { return _mm512_abs_pd(a); }
  static V sign(V a) {
    const V one = _mm512_or_pd(_mm512_and_pd(a, _mm512_set1_pd(-0.0)), _mm512_set1_pd(1.0));
    return keep_nan(a, _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(a, _mm512_setzero_pd(), _CMP_NEQ_OQ), one));
  }
  static V pos_or_zero(V c, V v) {
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(c, _mm512_setzero_pd(), _CMP_GT_OQ), v);
  }
  static V where_nonzero(V c, V v) {
    return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(c, _mm512_setzero_pd(), _CMP_NEQ_UQ), v);
  }
  static V fma_where_nonzero(V c, V a, V b, V acc) {
    return _mm512_mask3_fmadd_pd(a, b, acc, _mm512_cmp_pd_mask(c, _mm512_setzero_pd(), _CMP_NEQ_UQ));
  }
  static V keep_nan(V x, V v) { return _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(x, x, _CMP_UNORD_Q), x); }
  static V nz_div(V a, V x) {
    return _mm512_maskz_div_pd(_mm512_cmp_pd_mask(x, _mm512_setzero_pd(), _CMP_NEQ_UQ), a, x);
  }
  static V in_range_or_zero(V x, V lo, V hi, V a) {
    const M in = _mm512_mask_cmp_pd_mask(_mm512_cmp_pd_mask(x, lo, _CMP_GE_OQ), x, hi, _CMP_LE_OQ);
    return _mm512_maskz_mov_pd(in, a);
  }

  static V round(V x) { return _mm512_roundscale_pd(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V clamp(V x, V lo, V hi) { return _mm512_min_pd(hi, _mm512_max_pd(lo, x)); }
  static V scalef(V p, V k) { return _mm512_scalef_pd(p, k); }
  static I iset1(int64_t x) { return _mm512_set1_epi64(x); }
  static I iadd(I a, I b) { return _mm512_add_epi64(a, b); }
  static I iand(I a, I b) { return _mm512_and_si512(a, b); }
  static I ior(I a, I b) { return _mm512_or_si512(a, b); }
  static I shl_mant(I a) { return _mm512_slli_epi64(a, 52); }
  static I shr_mant(I a) { return _mm512_srli_epi64(a, 52); }
  static I as_int(V a) { return _mm512_castpd_si512(a); }
  static V as_float(I a) { return _mm512_castsi512_pd(a); }
  static M lt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
  static M le(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_LE_OQ); }
  static M gt(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static M ge(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static M eq(V a, V b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
  static M mand(M a, M b) { return static_cast<M>(a & b); }
  static V select(M m, V a, V b) { return _mm512_mask_blend_pd(m, b, a); }
  static bool all(M m) { return m == 0xff; }

  KD_VM_INLINE static V exp(V x) { return vm::exp<Ops>(x); }
  KD_VM_INLINE static V exp_nonpos(V x) { return vm::exp_nonpos<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos(V y) { return vm::exp2_nonpos<Ops>(y); }
  // Without the clamps (VSCALEF takes any k): see vecmath.h.
  KD_VM_INLINE static V exp_nonpos_unguarded(V x) { return vm::exp_nonpos_unguarded<Ops>(x); }
  KD_VM_INLINE static V exp2_nonpos_unguarded(V y) { return vm::exp2_nonpos_unguarded<Ops>(y); }
  KD_VM_INLINE static V log(V x) { return vm::log<Ops>(x); }
  KD_VM_INLINE static V log_normal(V x) { return vm::log_normal<Ops>(x); }
  KD_VM_INLINE static V pow_pos(V a, V beta) { return vm::pow_pos<Ops>(a, beta); }

  static double reduce_max(V v) {
    __m256d m = _mm256_max_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(m), _mm256_extractf128_pd(m, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    return _mm_cvtsd_f64(h);
  }
  static Acc acc_zero() { return _mm512_setzero_pd(); }
  static Acc acc_add(Acc a, V v) { return _mm512_add_pd(a, v); }
  static Acc acc_fma(Acc a, V x, V y) { return _mm512_fmadd_pd(x, y, a); }
  static double acc_sum(Acc a) {
    __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
  }
  // out[k] = the lanes of v[k] summed, for 8 vectors at once (see Ops<float>::sum8).
  static void sum8(const V (&v)[8], double (&out)[8]) {
    V h[4], q[2];
    for (int i = 0; i < 4; ++i) {  // [a b]: 256-bit halves added
      h[i] = _mm512_add_pd(_mm512_shuffle_f64x2(v[2 * i], v[2 * i + 1], 0x44),
                           _mm512_shuffle_f64x2(v[2 * i], v[2 * i + 1], 0xEE));
    }
    for (int i = 0; i < 2; ++i) {  // [a b c d]: 128-bit quarters added
      q[i] = _mm512_add_pd(_mm512_shuffle_f64x2(h[2 * i], h[2 * i + 1], 0x88),
                           _mm512_shuffle_f64x2(h[2 * i], h[2 * i + 1], 0xDD));
    }
    // Per quarter k: kind k of q[0], then kind k of q[1].
    const V e = _mm512_add_pd(_mm512_unpacklo_pd(q[0], q[1]), _mm512_unpackhi_pd(q[0], q[1]));
    _mm512_storeu_pd(out, _mm512_permutexvar_pd(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), e));
  }
};

}  // namespace KD_ISA
}  // namespace kd
