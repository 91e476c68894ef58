#!/usr/bin/env bash
# Build (or find in the cache) one of the test kernels built here from a Debian linux-source
# package: tinyconfig plus tests/vm/kernel/common.config and kernel/KVER.config (when present),
# everything the guest needs built in.
#   6.12  trixie's linux-source-6.12
#   7.3   trixie-backports' linux-source-7.3 (iommupt mock, PRECOPY_INFOv2, loads modules)
# Prints "BZIMAGE BUILD_DIR" on stdout; BUILD_DIR is the configured and built object tree
# (make O=...) that lib/module.sh builds the edu-log module against. The cache key is the hash of
# the fragments, the source package version and this script, so any change builds a new entry
# (old entries stay for other checkouts sharing the cache). A lock serialises two harness runs
# that want the same kernel: the second waits and then finds it built.
# Usage: lib/built-kernel.sh KVER   (logs go to stderr; the build log to BUILD_DIR/build.log)
set -euo pipefail
source "$(dirname "$0")/common.sh"

kver="${1:?usage: built-kernel.sh 6.12|7.3}"
case "$kver" in
  6.12) suite=trixie ;;
  7.3) suite=trixie-backports ;;
  *) die "built-kernel.sh: no recipe for kernel $kver (have 6.12, 7.3)" ;;
esac
package="linux-source-$kver"
DIR="$CACHE/kernel-$kver"
fragments=("$VM_DIR/kernel/common.config")
[ -f "$VM_DIR/kernel/$kver.config" ] && fragments+=("$VM_DIR/kernel/$kver.config")
mkdir -p "$DIR"

key_for() { { cat "${fragments[@]}" "$0"; echo "$1"; } | short_hash; }
found() { # VERSION: print and succeed when that version's kernel is built
  local key; key="$(key_for "$1")"
  [ -f "$DIR/bzImage-$key" ] && [ -f "$DIR/build-$key/.ready" ] || return 1
  echo "$DIR/bzImage-$key $DIR/build-$key"
}

# Warm path: the version seen last time, already built; no apt, no lock.
if [ -f "$DIR/source-version" ] && found "$(cat "$DIR/source-version")"; then exit 0; fi

exec 9>"$DIR/lock"
flock 9
ensure_packages flex bison libelf-dev bc build-essential xz-utils

# The source package, through a private apt configuration naming the suite.
deb="$(ls "$DIR/${package}"_*.deb 2>/dev/null | tail -1 || true)"
if [ -z "$deb" ]; then
  log "downloading $suite $package"
  private_apt "$suite" update >"$DIR/apt.log" 2>&1 || { cat "$DIR/apt.log" >&2; die "apt update ($suite) failed"; }
  (cd "$DIR" && private_apt "$suite" download "$package" >>"$DIR/apt.log" 2>&1) ||
    { cat "$DIR/apt.log" >&2; die "apt-get download $package failed"; }
  deb="$(ls "$DIR/${package}"_*.deb | tail -1)"
fi
version="$(dpkg-deb -f "$deb" Version)"
echo "$version" >"$DIR/source-version"
if found "$version"; then exit 0; fi
key="$(key_for "$version")"
build="$DIR/build-$key"

src="$DIR/src-$version"
if [ ! -f "$src/.unpacked" ]; then
  log "unpacking $package $version"
  rm -rf "$src" "$DIR/deb-x"
  dpkg -x "$deb" "$DIR/deb-x"
  mkdir -p "$src"
  tar -xf "$DIR/deb-x/usr/src/$package.tar.xz" -C "$src" --strip-components=1
  rm -rf "$DIR/deb-x"
  touch "$src/.unpacked"
fi

log "building the $kver kernel (tinyconfig + fragments, make -j$(nproc); 5 to 10 min on 2 idle cores)"
rm -rf "$build" && mkdir -p "$build"
{
  make -C "$src" O="$build" -s tinyconfig
  "$src/scripts/kconfig/merge_config.sh" -m -O "$build" "$build/.config" "${fragments[@]}"
  make -C "$src" O="$build" -s olddefconfig
} >"$build/build.log" 2>&1 || { tail -50 "$build/build.log" >&2; die "kernel configuration failed"; }

# Every option the fragments ask for must have survived olddefconfig (a missing dependency
# silently drops an option, and the guest would then fail in a confusing way).
missing=""
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) grep -qx "$line" "$build/.config" || missing="$missing $line" ;; esac
done < <(cat "${fragments[@]}")
[ -z "$missing" ] || die "kernel config dropped:$missing (see $build/.config)"

# `modules` writes Module.symvers, which an external module build (edu-log) links against.
targets=(bzImage)
grep -qx CONFIG_MODULES=y "$build/.config" && targets+=(modules)
make -C "$src" O="$build" -j"$(nproc)" "${targets[@]}" >>"$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log" >&2; die "kernel build failed (log: $build/build.log)"; }
cp "$build/arch/x86/boot/bzImage" "$DIR/bzImage-$key.tmp" && mv "$DIR/bzImage-$key.tmp" "$DIR/bzImage-$key"
touch "$build/.ready"
log "built $DIR/bzImage-$key"
echo "$DIR/bzImage-$key $build"
