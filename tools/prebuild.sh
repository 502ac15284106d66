#!/bin/sh
# Builds the prebuilt binaries that ship in the npm package (npm run prebuild), into prebuilds/:
#   prebuilds/linux-x64/kdloss.glibc.node    every x86 kernel variant (scalar, AVX2, AVX-512), chosen
#                                            at run time from the CPU's capabilities
#   prebuilds/linux-arm64/kdloss.glibc.node  NEON, cross-compiled with Debian's g++-aarch64-linux-gnu
# N-API (NAPI_VERSION 8): one binary per platform serves every supported Node version. The libc tag
# keeps a musl system (Alpine) from loading these glibc builds: there the install compiles instead.
# Extra arguments pick platforms: tools/prebuild.sh x64 | arm64 (default: both).
set -eu
cd "$(dirname "$0")/.."
bin=node_modules/.bin
# node-gyp compiles with as many jobs as there are cores unless JOBS says otherwise.
export JOBS="${JOBS:-max}"
[ $# -gt 0 ] || set -- arm64 x64

for arch in "$@"; do
  case "$arch" in
    x64)
      "$bin/prebuildify" --napi --strip --tag-libc --arch x64
      ;;
    arm64)
      for tool in aarch64-linux-gnu-g++ aarch64-linux-gnu-strip; do
        if ! command -v "$tool" >/dev/null 2>&1; then
          echo "prebuild: $tool not found; install it with: apt-get install g++-aarch64-linux-gnu libc6-dev-arm64-cross" >&2
          exit 1
        fi
      done
      CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
        "$bin/prebuildify" --napi --strip --strip-bin aarch64-linux-gnu-strip --tag-libc --arch arm64
      ;;
    *)
      echo "usage: tools/prebuild.sh [x64] [arm64]" >&2
      exit 2
      ;;
  esac
done
# prebuildify moves each binary out of build/Release, so what is left there is only objects: the
# loader then takes the prebuild (a local build in build/Release would win over it).
ls -l prebuilds/*/
