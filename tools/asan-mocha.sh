#!/bin/sh
# The whole mocha suite against an AddressSanitizer + UndefinedBehaviorSanitizer build of the addon,
# once per kernel variant this machine can run (KDLOSS_ISA=scalar, avx2, avx512 / neon).
#
#   tools/asan-mocha.sh [--addon PATH] [--isa LIST] [--native-tests] [--others-variant-suites]
#                       [-- MOCHA ARGS...]
#
# Builds the addon with CMake (KD_BUILD_ADDON, KD_SANITIZE: -fsanitize=address,undefined
# -fno-sanitize-recover=all -fno-omit-frame-pointer, RelWithDebInfo) into build-asan/ (or
# $KDLOSS_ASAN_DIR, the directory `npm run test:native:asan` uses too), unless --addon names an
# already sanitized kdloss.node. Node itself is not
# instrumented, so the compiler's ASan and UBSan runtimes are preloaded (LD_PRELOAD) into every node
# process the suite starts (the CLI tests spawn some). Any report ends the process that hit it (ASan
# with exit code 86, UBSan 87); ASan also writes its reports to log files, from child processes too,
# which the script prints (GCC's UBSan runtime ignores log_path: its reports go to the process's
# stderr, and a child process that ends with 87 fails the test that spawned it). The script fails
# (exit 1) when a test fails, when a run dies, or when any process left an ASan report.
#
# --native-tests also builds the native C++ test program in the same directory (the same sanitized
# objects) and runs it, so CI need not build a second sanitized copy for `npm run test:native:asan`.
#
# --others-variant-suites runs the whole suite with the machine's best variant only, and with every
# other variant the suites whose results depend on the kernels (test/variant.mocharc.json).
#
# Options for a non-instrumented host: detect_leaks=0 (V8 keeps its heap to the end: LeakSanitizer
# would report it), and UBSan's print_stacktrace / halt_on_error. KDLOSS_FUZZ_CASES defaults to 1000
# here (the suite's default is 2500): the fuzz test runs once per variant, and ASan slows the native
# side several times.
#
# Tests whose title matches $ASAN_MOCHA_EXCLUDE (default: "peak RSS") are left out: ASan's shadow
# memory, quarantine and allocator make a process's RSS larger by design (the CLI's peak-RSS bound of
# 150 MB reads about 175 MB here), so an RSS bound says nothing under it. Set it empty to run all.
set -eu
cd "$(dirname "$0")/.."

addon=""
isas=""
native_tests=0
others_variant=0
while [ $# -gt 0 ]; do
  case "$1" in
    --addon) addon=$2; shift 2 ;;
    --isa) isas=$(echo "$2" | tr ',' ' '); shift 2 ;;
    --native-tests) native_tests=1; shift ;;
    --others-variant-suites) others_variant=1; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "asan-mocha: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

dir=${KDLOSS_ASAN_DIR:-build-asan}
jobs=$(nproc 2>/dev/null || echo 2)
start=$(date +%s)

if [ -z "$addon" ]; then
  echo "=== asan-mocha: building the sanitized addon in $dir ==="
  tests_flag="-DKD_BUILD_TESTS=OFF"
  [ "$native_tests" = 1 ] && tests_flag="-DKD_BUILD_TESTS=ON"
  # The addon and (with --native-tests) the native test program from the same sanitized objects.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKD_SANITIZE=ON -DKD_BUILD_ADDON=ON "$tests_flag" >/dev/null
  cmake --build "$dir" --parallel "$jobs"
  addon="$dir/kdloss.node"
  [ -f "$addon" ] || { echo "asan-mocha: no kdloss.node in $dir" >&2; exit 1; }
  echo "=== asan-mocha: built in $(( $(date +%s) - start )) s ==="
fi
addon=$(cd "$(dirname "$addon")" && pwd)/$(basename "$addon")

# The sanitizer runtimes of the compiler that built the addon (the one cmake recorded, else c++).
cxx=""
[ -f "$dir/CMakeCache.txt" ] && cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$dir/CMakeCache.txt")
[ -n "$cxx" ] || cxx=${CXX:-c++}
preload=""
for lib in libasan.so libubsan.so; do
  path=$("$cxx" -print-file-name=$lib)
  [ -f "$path" ] || { echo "asan-mocha: $cxx has no $lib (install its sanitizer runtimes)" >&2; exit 1; }
  preload="$preload${preload:+ }$path"
done
ldd "$addon" | grep -q libasan || { echo "asan-mocha: $addon is not linked with ASan" >&2; exit 1; }

# The library and tests in JS (the suite runs from dist-test/).
npx tsc -p tsconfig.json
npx tsc -p test/tsconfig.json

logs=$(mktemp -d "${TMPDIR:-/tmp}/asan-mocha.XXXXXX")
trap 'rm -rf "$logs"' EXIT
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86:log_path=$logs/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$logs/ubsan"
export KDLOSS_FUZZ_CASES=${KDLOSS_FUZZ_CASES:-1000}
mocha=node_modules/mocha/bin/mocha.js
exclude_re=${ASAN_MOCHA_EXCLUDE-peak RSS}
[ -n "$exclude_re" ] && set -- --grep "$exclude_re" --invert "$@"

# Which variants this machine can run, asked of the sanitized addon itself.
supported=$(env LD_PRELOAD="$preload" KDLOSS_ADDON="$addon" node -e "
  const c = require('.').capabilities();
  if (c === null) { console.error(require('.').nativeLoadError()); process.exit(1); }
  console.log(c.compiled.filter((v) => v === 'scalar' || c[v]).join(' '));")
[ -n "$isas" ] || isas=$supported
# The variant kdloss chooses on this machine (the one --others-variant-suites runs the whole suite on).
best=$(env LD_PRELOAD="$preload" KDLOSS_ADDON="$addon" node -e "console.log(require('.').isa())")

status=0
# Prints and clears the sanitizer reports left by the processes of one run; fails the script if any.
reports() {
  if [ -n "$(ls -A "$logs")" ]; then
    echo "asan-mocha: sanitizer reports ($1):" >&2
    for f in "$logs"/*; do
      echo "--- $f" >&2
      cat "$f" >&2
    done
    rm -f "$logs"/*
    status=1
  fi
}

if [ "$native_tests" = 1 ]; then
  echo "=== asan-mocha: native C++ tests (sanitized) ==="
  t=$(date +%s)
  "$dir/kd_native_tests" || status=1
  echo "=== asan-mocha: native tests: $(( $(date +%s) - t )) s ==="
  reports "native tests"
fi
for isa in $isas; do
  case " $supported " in
    *" $isa "*) ;;
    *) echo "=== asan-mocha: KDLOSS_ISA=$isa not supported here (supported: $supported): skipped ==="; continue ;;
  esac
  config=""
  [ "$others_variant" = 1 ] && [ "$isa" != "$best" ] && config="--config test/variant.mocharc.json"
  echo "=== asan-mocha: mocha${config:+ (kernel-dependent suites)} with KDLOSS_ISA=$isa (ASan + UBSan) ==="
  t=$(date +%s)
  # shellcheck disable=SC2086
  if ! env LD_PRELOAD="$preload" KDLOSS_ADDON="$addon" KDLOSS_ISA="$isa" node "$mocha" $config --reporter dot "$@"; then
    echo "asan-mocha: mocha failed with KDLOSS_ISA=$isa" >&2
    status=1
  fi
  echo "=== asan-mocha: KDLOSS_ISA=$isa: $(( $(date +%s) - t )) s ==="
  reports "KDLOSS_ISA=$isa"
done
echo "=== asan-mocha: $( [ $status = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - start )) s ==="
exit $status
