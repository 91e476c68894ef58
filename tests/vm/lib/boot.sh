#!/usr/bin/env bash
# Boot one guest job under QEMU TCG and wait for it to power off, within a hard timeout.
# RESULTS must already hold job.env (see guest/init); the guest writes its output there and the
# console log goes to RESULTS/console.log.
# Exit status: the job's own exit code when the guest finished; 124 on timeout; 125 when the
# guest stopped without finishing (the console log is printed to stderr in both cases).
# Usage: lib/boot.sh KERNEL INITRD "KERNEL ARGS" RESULTS TIMEOUT_SECONDS
set -euo pipefail
source "$(dirname "$0")/common.sh"

kernel="$1" initrd="$2" args="$3" results="$4" limit="$5"
console="$results/console.log"

# Why each option: /dev/kvm on these machines is not hardware virtualisation (guests hang), so
# TCG; q35 for PCIe and the emulated VT-d (intremap needs a split irqchip only under KVM);
# caching-mode lets VFIO map through the emulated IOMMU; edu does real DMA; the host's / is
# shared read-only with multidevs=remap (without it, /proc in the chroot fails to mount).
# no_timer_check: on a loaded host, TCG can be too slow for the kernel's IO-APIC timer check,
# which then panics ("timer doesn't work through Interrupt-remapped IO-APIC").
# print-fatal-signals=1: a guest process killed by a signal is logged (guest/init saves dmesg).
# -qmp: QEMU's monitor, for qmp-dirty-rate.mjs (QEMU's own dirty-rate measurement, on the guest's
# request); the socket lives outside the results folder the guest shares.
qmp_dir="$(mktemp -d)"
node "$(dirname "$0")/qmp-dirty-rate.mjs" "$qmp_dir/qmp.sock" "$results" &
qmp_pid=$!
set +e
timeout --foreground -k 10 "$limit" qemu-system-x86_64 \
  -accel tcg -machine q35 -cpu max -smp 2 -m 2048 \
  -display none -serial stdio -monitor none -no-reboot -nodefaults \
  -device intel-iommu,intremap=on,caching-mode=on \
  -device edu \
  -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$results,mount_tag=results,security_model=none,multidevs=remap" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 loglevel=4 no_timer_check print-fatal-signals=1 $args" \
  -qmp "unix:$qmp_dir/qmp.sock,server=on,wait=off" \
  </dev/null >"$console" 2>&1
qemu_rc=$?
kill "$qmp_pid" 2>/dev/null
wait "$qmp_pid" 2>/dev/null
rm -rf "$qmp_dir"
set -e

done_line="$(grep -a '^VMTEST-DONE' "$console" | tail -1 || true)"
if [ -n "$done_line" ]; then
  rc="$(sed -n 's/^VMTEST-DONE rc=\([0-9]*\).*/\1/p' <<<"$done_line")"
  exit "${rc:-125}"
fi
{
  if [ "$qemu_rc" = 124 ]; then
    echo "[vm] guest did not finish within ${limit}s; console log ($console):"
  else
    echo "[vm] guest stopped without finishing (qemu exit $qemu_rc); console log ($console):"
  fi
  tail -n 80 "$console" | sed 's/^/  | /'
} >&2
[ "$qemu_rc" = 124 ] && exit 124
exit 125
