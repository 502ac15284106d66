# node-gyp build of the addon. Sources and flags come from native/sources.json (read through
# tools/gyp-sources.js), the same list CMakeLists.txt reads, so the two builds cannot drift.
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
  "targets": [
    {
      "target_name": "kdloss",
      "sources": [
        "<!@(node tools/gyp-sources.js addon)",
        "<!@(node tools/gyp-sources.js core)"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ]
    }
  ]
}
