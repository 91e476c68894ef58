// What an IOMMU's capability registers, as sysfs prints them, say about hardware dirty tracking.
//
// Pure decoding of two sysfs attributes; src/sysfs.ts reads them. This is what the hardware
// advertises, not what the running kernel will do: the kernel also needs its own driver support
// (6.7+), scalable mode on Intel and the v1 page table on AMD. The tracker decides from
// IOMMU_GET_HW_INFO; this is for `vfio-dirty hosts` style reports and for explaining a refusal.
//
//   decodeIntelEcap("f020df");             // { kind: "intel-vt-d", dirtyTracking: false, ... }
//   decodeAmdFeatures("58f77ef22294ade:0"); // { kind: "amd-vi", dirtyTracking: ..., ... }

import { InvalidInputError } from "./errors.ts";

/** Dirty-tracking hardware facts of one IOMMU unit. */
export interface IommuHardware {
  /** Which IOMMU family the unit belongs to. */
  readonly kind: "intel-vt-d" | "amd-vi" | "other";
  /** True when the hardware advertises A/D bits usable for dirty tracking, undefined when unknown. */
  readonly dirtyTracking: boolean | undefined;
  /** The register(s) decoded, as read ("ecap 0x...", "EFR 0x..., EFR2 0x..."), or why nothing was. */
  readonly source: string;
  /** Individual bits that went into `dirtyTracking`, by their spec names. */
  readonly bits: Readonly<Record<string, boolean>>;
}

/** VT-d Extended Capability Register bits (drivers/iommu/intel/iommu.h: ecap_smts, ecap_slads, ecap_smpwc). */
export const VTD_ECAP_SMTS = 43n;
export const VTD_ECAP_SLADS = 45n;
export const VTD_ECAP_SMPWC = 48n;
/** AMD IOMMU Extended Feature Register bits (drivers/iommu/amd/amd_iommu_types.h: FEATURE_HASUP, FEATURE_HDSUP). */
export const AMD_EFR_HASUP = 49n;
export const AMD_EFR_HDSUP = 52n;

/**
 * Decodes `intel-iommu/ecap` (printed "%llx"). Dirty tracking needs second-stage A/D support
 * (SLADS, "SSADS" in VT-d 4.x), scalable mode (SMTS) and coherent scalable-mode page walks
 * (SMPWC), the same three bits the kernel's ssads_supported() checks.
 */
export function decodeIntelEcap(text: string): IommuHardware {
  const ecap = parseHex(text, "intel-iommu/ecap");
  const bits = {
    SMTS: bit(ecap, VTD_ECAP_SMTS),
    SLADS: bit(ecap, VTD_ECAP_SLADS),
    SMPWC: bit(ecap, VTD_ECAP_SMPWC),
  };
  return {
    kind: "intel-vt-d",
    dirtyTracking: bits.SMTS && bits.SLADS && bits.SMPWC,
    source: `ecap 0x${ecap.toString(16)}`,
    bits,
  };
}

/**
 * Decodes `amd-iommu/features`. Older kernels print the EFR alone ("%llx"). Current kernels print
 * "EFR:EFR2" (amd_iommu_efr, amd_iommu_efr2 in drivers/iommu/amd/init.c, since the global-EFR
 * rework that came with IOMMU dirty tracking). For a while in between the kernel printed
 * "EFR2:EFR" (iommu->features2, iommu->features); such kernels predate IOMMU dirty tracking, so
 * reading them as EFR:EFR2 can only mislabel hardware that kernel could not use anyway.
 * Dirty tracking needs HDSup.
 */
export function decodeAmdFeatures(text: string): IommuHardware {
  const parts = text.split(":");
  if (parts.length > 2)
    throw new InvalidInputError(`amd-iommu/features: unexpected format ${JSON.stringify(text)}`);
  const efr = parseHex(parts[0]!, "amd-iommu/features");
  const efr2 = parts.length === 2 ? parseHex(parts[1]!, "amd-iommu/features") : undefined;
  const bits = { HASup: bit(efr, AMD_EFR_HASUP), HDSup: bit(efr, AMD_EFR_HDSUP) };
  return {
    kind: "amd-vi",
    dirtyTracking: bits.HDSup,
    source: `EFR 0x${efr.toString(16)}${efr2 === undefined ? "" : `, EFR2 0x${efr2.toString(16)}`}`,
    bits,
  };
}

// --- Internal helpers ---

function bit(value: bigint, n: bigint): boolean {
  return ((value >> n) & 1n) === 1n;
}

// Registers are 64-bit; sysfs prints them without "0x" (an optional prefix is tolerated).
function parseHex(text: string, what: string): bigint {
  const t = text.trim();
  if (!/^(0x)?[0-9a-fA-F]{1,16}$/.test(t))
    throw new InvalidInputError(
      `${what}: expected a 64-bit hex register, got ${JSON.stringify(text.slice(0, 40))}`,
    );
  return BigInt(t.startsWith("0x") ? t : `0x${t}`);
}
