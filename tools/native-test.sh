#!/bin/sh
# Configures, builds and runs the native test program (native/tests) with plain CMake.
#   tools/native-test.sh native   -> build-native/   (Release)
#   tools/native-test.sh asan     -> build-asan/     (KD_SANITIZE=ON: ASan + UBSan)
#   tools/native-test.sh arm64    -> build-arm64/    (cross-compiled, run under qemu-aarch64)
#   tools/native-test.sh bench    -> build-native/   (runs kd_native_bench instead of the tests)
# Extra arguments go to the program (tests: --quick, --isa=avx2, --suite=vecmath, --seed=N; bench:
# --quick, --isa=avx2,avx512, --filter=SUBSTRING).
set -eu
mode=${1:-native}
prog=kd_native_tests
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)

case "$mode" in
  bench)
    dir=build-native
    cfg="-DCMAKE_BUILD_TYPE=Release"
    run=""
    prog=kd_native_bench
    ;;
  native)
    dir=build-native
    cfg="-DCMAKE_BUILD_TYPE=Release"
    run=""
    ;;
  asan)
    dir=build-asan
    cfg="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKD_SANITIZE=ON"
    run=""
    ;;
  arm64)
    dir=build-arm64
    for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
      if ! command -v "$tool" >/dev/null 2>&1; then
        echo "native-test: $tool not found; install it with: apt-get install g++-aarch64-linux-gnu qemu-user" >&2
        exit 1
      fi
    done
    cfg="-DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake"
    run="qemu-aarch64 -L /usr/aarch64-linux-gnu"
    # Emulation is ~10-50x slower (and long double is software quad precision on aarch64).
    set -- --quick "$@"
    ;;
  *)
    echo "usage: tools/native-test.sh native|asan|arm64|bench [program args...]" >&2
    exit 2
    ;;
esac

# shellcheck disable=SC2086
cmake -S . -B "$dir" $cfg >/dev/null
cmake --build "$dir" --parallel "$jobs"
# shellcheck disable=SC2086
exec $run "$dir/$prog" "$@"
