#!/usr/bin/env bash
# Build (or find in the cache) the edu DMA-logging variant driver (tests/vm/module/) against the
# downloaded Debian headers. The build happens in a copy outside the repo; the cache key is the
# hash of the module sources and the kernel version. Prints the .ko path on stdout.
# Usage: lib/module.sh KVER ROOT   (as printed by lib/debian-kernel.sh)
set -euo pipefail
source "$(dirname "$0")/common.sh"

kver="$1" root="$2"
src="$VM_DIR/module"
key="$({ cat "$src"/*.c "$src"/Kbuild "$src"/Makefile; echo "$kver"; } | short_hash)"
out="$CACHE/module/edu_log_vfio-$key.ko"
if [ -f "$out" ]; then echo "$out"; exit 0; fi

ensure_packages build-essential libelf-dev
work="$CACHE/module/build-$key"
rm -rf "$work" && mkdir -p "$work"
cp "$src"/*.c "$src"/Kbuild "$src"/Makefile "$work/"
make -C "$work" KDIR="$root/usr/src/linux-headers-$kver" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; die "module build failed"; }
cp "$work/edu_log_vfio.ko" "$out"
echo "$out"
