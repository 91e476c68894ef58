// What the guest's init (tests/vm/guest/init) tells the scenarios through the environment: edu's
// PCI address, the driver edu is bound to, the kernel, its command line and the results folder.
// Read in this one place (these are the VM's facts, not inputs of any turbo task).

const env: Readonly<Record<string, string | undefined>> = process.env;

export const guest = {
  /** edu's PCI address ("0000:00:01.0"). */
  eduBdf: env.VM_EDU_BDF ?? "",
  /** What edu is bound to: "vfio-pci", "edu-log" (the test driver) or "none". */
  driver: env.VM_DRIVER ?? "",
  /** uname -r: "6.1.0-NN-amd64" (Debian) or "6.12.x" / "7.3.x" (the kernels built here). */
  kernel: env.VM_KERNEL ?? "",
  /** The kernel as major * 1000 + minor (6.1 -> 6001, 7.3 -> 7003), as sim profiles number them. */
  kernelVersion: versionOf(env.VM_KERNEL ?? ""),
  /** True on the kernels built here (everything built in), false on Debian's modular 6.1. */
  builtHere: !(env.VM_KERNEL ?? "").endsWith("-amd64"),
  /** /proc/cmdline ("... intel_iommu=on"). */
  cmdline: env.VM_CMDLINE ?? "",
  /** The writable results folder shared with the host, or undefined outside the VM. */
  results: env.VM_RESULTS,
};

function versionOf(release: string): number {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? Number(m[1]) * 1000 + Number(m[2]) : 0;
}
