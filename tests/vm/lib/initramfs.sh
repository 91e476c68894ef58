#!/usr/bin/env bash
# Build (or find in the cache) the guest initramfs: static busybox, guest/init, and for a
# modular kernel the VFIO, virtio and 9p modules (with their dependencies, in load order) plus
# any extra .ko files given. Prints the path of the gzip'ed cpio on stdout.
# Usage: lib/initramfs.sh MODULES_ROOT|- KVER|- [EXTRA.ko...]
#   MODULES_ROOT - means a kernel with everything built in (no modules copied).
set -euo pipefail
source "$(dirname "$0")/common.sh"

root="$1" kver="$2"; shift 2
extra=("$@")
# Modules the guest needs; modprobe --show-depends expands each into its dependencies in order.
WANT=(vfio vfio_iommu_type1 vfio-pci 9pnet_virtio 9p virtio_pci)

key="$({ cat "$VM_DIR/guest/init" "$0" /bin/busybox; echo "$root $kver"; for e in "${extra[@]}"; do cat "$e"; done; } | short_hash)"
out="$CACHE/initramfs/initramfs-$key.cpio.gz"
if [ -f "$out" ]; then echo "$out"; exit 0; fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,etc,modules,proc,sys,dev,host,results,tmp}
cp /bin/busybox "$stage/bin/busybox"
cp "$VM_DIR/guest/init" "$stage/init"
chmod +x "$stage/init"

if [ "$root" != - ]; then
  : >"$stage/etc/modules.order"
  for m in "${WANT[@]}"; do
    modprobe -d "$root" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }'
  done | awk '!seen[$0]++' | while read -r path; do
    name="$(basename "$path")"
    cp "$path" "$stage/modules/$name"
    echo "$name" >>"$stage/etc/modules.order"
  done
  [ -s "$stage/etc/modules.order" ] || die "no modules resolved for $kver under $root"
fi
for e in "${extra[@]}"; do cp "$e" "$stage/modules/"; done

mkdir -p "$CACHE/initramfs"
(cd "$stage" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
