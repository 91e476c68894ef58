#!/usr/bin/env bash
# Download (or find in the cache) the current Debian bookworm 6.1 kernel that linux-image-amd64
# depends on, plus the headers packages a module build needs, all unpacked with dpkg -x (never
# installed). Prints "KVER ROOT" on stdout: ROOT/boot/vmlinuz-KVER, ROOT/lib/modules/KVER
# (depmod'ed) and ROOT/usr/src/linux-headers-KVER (its Makefile pointed into ROOT).
set -euo pipefail
source "$(dirname "$0")/common.sh"

DIR="$CACHE/debian"
mkdir -p "$DIR"

# Which kernel is current: the one the meta package depends on. Fall back to the version seen
# last time when apt cannot answer (offline warm run).
kver="$(apt-cache depends linux-image-amd64 2>/dev/null |
  sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1 || true)"
if [ -z "$kver" ]; then
  apt-get update -qq >/dev/null 2>&1 || true
  kver="$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: linux-image-\([0-9].*-amd64\)$/\1/p' | head -1 || true)"
fi
[ -n "$kver" ] || kver="$(cat "$DIR/current" 2>/dev/null || true)"
[ -n "$kver" ] || die "cannot tell which kernel linux-image-amd64 depends on"
root="$DIR/$kver"

if [ ! -f "$root/.ready" ]; then
  abi="${kver%-amd64}"  # 6.1.0-NN
  pkgs=("linux-image-$kver" "linux-headers-$kver" "linux-headers-$abi-common" linux-kbuild-6.1
    linux-compiler-gcc-12-x86)
  log "downloading ${pkgs[*]}"
  rm -rf "$root" && mkdir -p "$root/debs"
  (cd "$root/debs" && apt-get download -q "${pkgs[@]}" >"$root/apt.log" 2>&1) ||
    { cat "$root/apt.log" >&2; die "apt-get download failed"; }
  for d in "$root"/debs/*.deb; do dpkg -x "$d" "$root"; done
  rm -rf "$root/debs"
  # The headers Makefile includes the -common tree by its installed path; point it into ROOT.
  sed -i "s|^include /usr/src/|include $root/usr/src/|" "$root/usr/src/linux-headers-$kver/Makefile"
  # The kbuild scripts are symlinks to /usr/lib/linux-kbuild-6.1: repoint them into ROOT too.
  find "$root/usr/src" -type l -lname '/usr/lib/linux-kbuild-*' | while read -r l; do
    ln -sfn "$root$(readlink "$l")" "$l"
  done
  depmod -b "$root" "$kver"
  touch "$root/.ready"
fi
echo "$kver" >"$DIR/current"
echo "$kver $root"
