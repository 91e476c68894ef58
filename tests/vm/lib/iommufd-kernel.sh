#!/usr/bin/env bash
# Build (or find in the cache) the iommufd test kernel: Debian trixie's linux-source-6.12 with
# tinyconfig plus tests/vm/kernel/iommufd.config, everything built in.
# Prints the path of the cached bzImage on stdout. The cache key is the hash of the fragment,
# the source package version and this script, so any change rebuilds.
# Usage: lib/iommufd-kernel.sh   (logs go to stderr; the build log to $CACHE/iommufd/build.log)
set -euo pipefail
source "$(dirname "$0")/common.sh"

DIR="$CACHE/iommufd"
FRAGMENT="$VM_DIR/kernel/iommufd.config"
mkdir -p "$DIR"

key_for() { { cat "$FRAGMENT" "$0"; echo "$1"; } | short_hash; }

# Warm path: the version seen last time and a bzImage for it.
if [ -f "$DIR/source-version" ]; then
  version="$(cat "$DIR/source-version")"
  image="$DIR/bzImage-$(key_for "$version")"
  if [ -f "$image" ]; then echo "$image"; exit 0; fi
fi

ensure_packages flex bison libelf-dev bc build-essential xz-utils

# The source package, through a private apt configuration naming trixie.
deb="$(ls "$DIR"/linux-source-6.12_*.deb 2>/dev/null | tail -1 || true)"
if [ -z "$deb" ]; then
  log "downloading trixie linux-source-6.12"
  private_apt trixie update >"$DIR/apt.log" 2>&1 || { cat "$DIR/apt.log" >&2; die "apt update (trixie) failed"; }
  (cd "$DIR" && private_apt trixie download linux-source-6.12 >>"$DIR/apt.log" 2>&1) ||
    { cat "$DIR/apt.log" >&2; die "apt-get download linux-source-6.12 failed"; }
  deb="$(ls "$DIR"/linux-source-6.12_*.deb | tail -1)"
fi
version="$(dpkg-deb -f "$deb" Version)"
echo "$version" >"$DIR/source-version"
image="$DIR/bzImage-$(key_for "$version")"
if [ -f "$image" ]; then echo "$image"; exit 0; fi

src="$DIR/src-$version"
if [ ! -f "$src/.unpacked" ]; then
  log "unpacking linux-source $version"
  rm -rf "$src" "$DIR/deb-x"
  dpkg -x "$deb" "$DIR/deb-x"
  mkdir -p "$src"
  tar -xf "$DIR"/deb-x/usr/src/linux-source-6.12.tar.xz -C "$src" --strip-components=1
  rm -rf "$DIR/deb-x"
  touch "$src/.unpacked"
fi

log "building the iommufd kernel (tinyconfig + fragment, make -j2 bzImage; ~5 min)"
{
  make -C "$src" -s tinyconfig
  "$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$FRAGMENT"
  make -C "$src" -s olddefconfig
} >"$DIR/build.log" 2>&1 || { tail -50 "$DIR/build.log" >&2; die "kernel configuration failed"; }

# Every option the fragment asks for must have survived olddefconfig (a missing dependency
# silently drops an option, and the guest would then fail in a confusing way).
missing=""
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) grep -qx "$line" "$src/.config" || missing="$missing $line" ;; esac
done <"$FRAGMENT"
[ -z "$missing" ] || die "kernel config dropped:$missing (see $src/.config)"

make -C "$src" -j"$(nproc)" bzImage >>"$DIR/build.log" 2>&1 ||
  { tail -50 "$DIR/build.log" >&2; die "kernel build failed (log: $DIR/build.log)"; }
cp "$src/arch/x86/boot/bzImage" "$image.tmp" && mv "$image.tmp" "$image"
log "built $image"
echo "$image"
