// The adapter's Host contract suite (packages/vfio-adapter/test/host-contract.ts), which npm test
// runs against the simulated host and the Linux host on a machine without VFIO, run here against
// the Linux host on a kernel that has VFIO, an IOMMU and a bound device.
// The suite imports the adapter's sources (its error classes), so the host comes from the
// sources too: with the built dist, `instanceof InvalidInputError` would compare two copies of
// the class.
import { createLinuxHost } from "../../../packages/vfio-adapter/src/linux/index.ts";
import { testHost } from "../../../packages/vfio-adapter/test/host-contract.ts";

testHost("linux (real kernel in the VM)", () => createLinuxHost());
