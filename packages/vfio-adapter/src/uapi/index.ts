// The uAPI layer: pure codecs for include/uapi/linux/{vfio,iommufd}.h. No I/O, no imports from
// outside src/uapi/. Exposed as `uapi` from the package root.

export * from "./cap-chain.ts";
export { CodecError, hex, U32_MAX, U64_MAX } from "./codec.ts";
export * from "./ioctl.ts";
export * from "./iommufd.ts";
export * from "./vfio.ts";
