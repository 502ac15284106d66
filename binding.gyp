# node-gyp build of the addon. Sources and flags are the variables of native/sources.gypi, the list
# CMakeLists.txt reads too (test/package-sources.test.ts checks that both builds compile the same
# files into the same pieces).
#
# Each SIMD variant of the target architecture is its own static library compiled with only its own
# flags (plus the common cflags and -fPIC), so no other code is built with AVX or AVX-512 enabled; the
# addon links them and gets their KD_HAVE_* defines, which tell dispatch.cc they are there.
{
  "includes": ["native/sources.gypi"],
  "target_defaults": {
    "defines": ["NAPI_VERSION=8", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
    "cflags": ["<@(kd_cflags)"],
    "cflags_cc": ["<@(kd_cflags)", "-std=c++17"],
    "cflags!": ["-O2"],
    "cflags_cc!": ["-O2"],
    "xcode_settings": {
      "OTHER_CPLUSPLUSFLAGS": ["<@(kd_cflags)", "-std=c++17"]
    }
  },
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kd_isa_avx2",
          "type": "static_library",
          "sources": ["<@(kd_isa_avx2_sources)"],
          "cflags": ["<@(kd_isa_avx2_flags)", "-fPIC"],
          "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["<@(kd_isa_avx2_flags)"]}
        },
        {
          "target_name": "kd_isa_avx512",
          "type": "static_library",
          "sources": ["<@(kd_isa_avx512_sources)"],
          "cflags": ["<@(kd_isa_avx512_flags)", "-fPIC"],
          "xcode_settings": {"OTHER_CPLUSPLUSFLAGS": ["<@(kd_isa_avx512_flags)"]}
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "kd_isa_neon",
          "type": "static_library",
          "sources": ["<@(kd_isa_neon_sources)"],
          "cflags": ["<@(kd_isa_neon_flags)", "-fPIC"]
        }
      ]
    }]
  ],
  "targets": [
    {
      "target_name": "kdloss",
      "sources": ["<@(kd_addon_sources)", "<@(kd_core_sources)"],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["kd_isa_avx2", "kd_isa_avx512"],
          "defines": ["<(kd_isa_avx2_define)", "<(kd_isa_avx512_define)"]
        }],
        ["target_arch=='arm64'", {
          "dependencies": ["kd_isa_neon"],
          "defines": ["<(kd_isa_neon_define)"]
        }]
      ]
    }
  ]
}
