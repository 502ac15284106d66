# node-gyp build of the addon. Sources and flags come from native/sources.json (read through
# tools/gyp-sources.js), the same list CMakeLists.txt reads, so the two builds cannot drift.
#
# Each SIMD variant of the target architecture is its own static library compiled with only its own
# flags (plus the common cflags and -fPIC), so no other code is built with AVX or AVX-512 enabled; the
# addon links them and gets their KD_HAVE_* defines, which tell dispatch.cc they are there.
{
  "target_defaults": {
    "defines": ["NAPI_VERSION=8"],
    "cflags": ["<!@(node tools/gyp-sources.js cflags)"],
    "cflags_cc": ["<!@(node tools/gyp-sources.js cflags)", "-std=c++17"],
    "cflags!": ["-O2"],
    "cflags_cc!": ["-O2"],
    "xcode_settings": {
      "OTHER_CPLUSPLUSFLAGS": ["<!@(node tools/gyp-sources.js cflags)", "-std=c++17"]
    }
  },
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kd_isa_avx2",
          "type": "static_library",
          "sources": ["<!@(node tools/gyp-sources.js isa x64 avx2 sources)"],
          "cflags": ["<!@(node tools/gyp-sources.js isa x64 avx2 flags)", "-fPIC"],
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["<!@(node tools/gyp-sources.js isa x64 avx2 flags)"]
          }
        },
        {
          "target_name": "kd_isa_avx512",
          "type": "static_library",
          "sources": ["<!@(node tools/gyp-sources.js isa x64 avx512 sources)"],
          "cflags": ["<!@(node tools/gyp-sources.js isa x64 avx512 flags)", "-fPIC"],
          "xcode_settings": {
            "OTHER_CPLUSPLUSFLAGS": ["<!@(node tools/gyp-sources.js isa x64 avx512 flags)"]
          }
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "kd_isa_neon",
          "type": "static_library",
          "sources": ["<!@(node tools/gyp-sources.js isa arm64 neon sources)"],
          "cflags": ["<!@(node tools/gyp-sources.js isa arm64 neon flags)", "-fPIC"]
        }
      ]
    }]
  ],
  "targets": [
    {
      "target_name": "kdloss",
      "sources": [
        "<!@(node tools/gyp-sources.js addon)",
        "<!@(node tools/gyp-sources.js core)"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "conditions": [
        ["target_arch=='x64'", {
          "dependencies": ["kd_isa_avx2", "kd_isa_avx512"],
          "defines": [
            "<!@(node tools/gyp-sources.js isa x64 avx2 define)",
            "<!@(node tools/gyp-sources.js isa x64 avx512 define)"
          ]
        }],
        ["target_arch=='arm64'", {
          "dependencies": ["kd_isa_neon"],
          "defines": ["<!@(node tools/gyp-sources.js isa arm64 neon define)"]
        }]
      ]
    }
  ]
}
