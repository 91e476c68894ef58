#!/usr/bin/env bash
# Build (or find in the cache) the edu-log test driver (tests/vm/module/: edu_log.ko, driver
# edu_log_vfio) against one kernel: the downloaded Debian headers, or the object tree of a kernel
# built here (lib/built-kernel.sh). The build happens in a copy outside the repo; the cache key is
# the hash of the module sources and of the kernel tree named. Prints the .ko path on stdout.
# Usage: lib/module.sh KDIR   (a tree `make -C KDIR M=...` builds external modules against)
set -euo pipefail
source "$(dirname "$0")/common.sh"

kdir="$1"
src="$VM_DIR/module"
key="$({ cat "$src"/*.c "$src"/*.h "$src"/Kbuild "$src"/Makefile; echo "$kdir"; } | short_hash)"
out="$CACHE/module/edu_log-$key.ko"
if [ -f "$out" ]; then echo "$out"; exit 0; fi

ensure_packages build-essential libelf-dev
work="$CACHE/module/build-$key"
rm -rf "$work" && mkdir -p "$work"
cp "$src"/*.c "$src"/*.h "$src"/Kbuild "$src"/Makefile "$work/"
make -C "$work" KDIR="$kdir" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; die "module build failed (against $kdir)"; }
cp "$work/edu_log.ko" "$out"
echo "$out"
