# The one list of native sources and compiler flags. binding.gyp includes it (node-gyp) and
# CMakeLists.txt reads it as JSON, so adding a source file is one line here and both builds get it.
# Keep it JSON apart from whole-line '#' comments (CMake drops those before parsing): double quotes,
# no trailing commas. test/package-sources.test.ts checks that node-gyp and CMake compile the same
# files into the same pieces.
{
  "variables": {
    # Common flags of every native object (the addon, the kernels, the native tests).
    "kd_cflags": [
      "-O3",
      "-Wall",
      "-Wextra",
      "-fno-math-errno",
      "-fno-trapping-math",
      "-ffp-contract=off"
    ],

    # The N-API binding (node-gyp only: CMake builds the native tests, not the addon).
    "kd_addon_sources": [
      "native/addon/addon.cc",
      "native/addon/args.cc",
      "native/addon/ops_kd.cc",
      "native/addon/ops_maps.cc",
      "native/addon/ops_sparse.cc",
      "native/addon/work.cc"
    ],

    # Engine, dispatch and scalar kernels: compiled without any SIMD flag.
    "kd_core_sources": [
      "native/engine/engine.cc",
      "native/kernels/dispatch.cc",
      "native/kernels/scalar.cc",
      "native/kernels/scalar_div.cc"
    ],

    # SIMD variants per target architecture. Each is a static library compiled with only its own
    # flags; its define tells dispatch.cc that it is linked in. A new variant also needs its target
    # in binding.gyp (CMake loops over these lists).
    "kd_isa_x64": ["avx2", "avx512"],
    "kd_isa_arm64": ["neon"],

    "kd_isa_avx2_define": "KD_HAVE_AVX2",
    "kd_isa_avx2_sources": [
      "native/kernels/avx2.cc",
      "native/kernels/avx2_div.cc"
    ],
    "kd_isa_avx2_flags": ["-mavx2", "-mfma"],

    "kd_isa_avx512_define": "KD_HAVE_AVX512",
    "kd_isa_avx512_sources": [
      "native/kernels/avx512.cc",
      "native/kernels/avx512_div.cc"
    ],
    "kd_isa_avx512_flags": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],

    "kd_isa_neon_define": "KD_HAVE_NEON",
    "kd_isa_neon_sources": [
      "native/kernels/neon.cc",
      "native/kernels/neon_div.cc"
    ],
    "kd_isa_neon_flags": [],

    # The native test program and benchmark (CMake only; not shipped in the npm package).
    "kd_native_test_sources": [
      "native/tests/test_main.cc",
      "native/tests/test_common.cc",
      "native/tests/reference.cc",
      "native/tests/test_kd.cc",
      "native/tests/test_divergence.cc",
      "native/tests/test_maps.cc",
      "native/tests/test_vecmath.cc",
      "native/tests/test_engine.cc",
      "native/tests/test_sparse.cc"
    ],
    "kd_native_bench_sources": [
      "native/bench/bench_main.cc",
      "native/bench/bench_cases.cc",
      "native/tests/test_common.cc"
    ]
  }
}
