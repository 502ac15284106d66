#!/bin/sh
# Prepares an arm64 Node.js that runs under qemu-aarch64, to load the linux-arm64 prebuild for real:
# Debian's arm64 nodejs package and every package it depends on (found by apt-cache depends
# --recurse), fetched with apt-get download into a private apt state and unpacked with dpkg -x into a
# sysroot. The system's apt configuration is left alone (no dpkg --add-architecture). About 25 MB of
# packages plus 9 MB of package lists; a second run reuses them.
#   tools/arm64-node.sh [DIR]   (default build-arm64-node) prints DIR/sysroot; then run
#   qemu-aarch64 -L DIR/sysroot DIR/sysroot/usr/bin/node ...
set -eu
cd "$(dirname "$0")/.."
dir=${1:-build-arm64-node}
root="$dir/sysroot"
if [ -x "$root/usr/bin/node" ]; then
  echo "$root"
  exit 0
fi
for tool in apt-get apt-cache dpkg qemu-aarch64; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "arm64-node: $tool not found (needs Debian's apt and qemu-user)" >&2
    exit 1
  fi
done
case "$dir" in
  /*) state="$dir/apt" ;;
  *) state="$PWD/$dir/apt" ;;
esac
mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dir/debs" "$root"
[ -f "$state/status" ] || : >"$state/status"
set -- -q -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
  -o Dir::State="$state" -o Dir::State::Lists="$state/lists" -o Dir::State::status="$state/status" \
  -o Dir::Cache="$state/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root
apt-get "$@" update >&2
pkgs=$(apt-cache "$@" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances nodejs | grep -v '^ ' | grep -v '^<' | sort -u)
(cd "$dir/debs" && apt-get "$@" download $pkgs >&2)
for deb in "$dir"/debs/*.deb; do
  dpkg -x "$deb" "$root"
done
echo "$root"
