import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.ts";
import { decodeAmdFeatures, decodeIntelEcap } from "../../src/iommu-hw.ts";

describe("decodeIntelEcap", () => {
  it("QEMU's default emulated VT-d ecap (0xf020df) has no second-stage A/D bits", () => {
    const hw = decodeIntelEcap("f020df");
    expect(hw).toEqual({
      kind: "intel-vt-d",
      dirtyTracking: false,
      source: "ecap 0xf020df",
      bits: { SMTS: false, SLADS: false, SMPWC: false },
    });
  });

  it("needs SLADS (bit 45), scalable mode (bit 43) and coherent SM page walks (bit 48), as ssads_supported()", () => {
    const all = (1n << 43n) | (1n << 45n) | (1n << 48n);
    expect(decodeIntelEcap(all.toString(16)).dirtyTracking).toBe(true);
    for (const missing of [43n, 45n, 48n]) {
      const hw = decodeIntelEcap((all & ~(1n << missing)).toString(16));
      expect(hw.dirtyTracking, `without bit ${missing}`).toBe(false);
    }
    // Neighbouring bits do not count: bit 44 (VCS), 46 (SLTS), 47 (FLTS), 50.
    const neighbours = (1n << 43n) | (1n << 44n) | (1n << 46n) | (1n << 47n) | (1n << 48n) | (1n << 50n);
    expect(decodeIntelEcap(neighbours.toString(16)).bits.SLADS).toBe(false);
  });

  it("reads a full 64-bit register and tolerates a 0x prefix", () => {
    expect(decodeIntelEcap("0xffffffffffffffff").dirtyTracking).toBe(true);
    expect(decodeIntelEcap("ffffffffffffffff").source).toBe("ecap 0xffffffffffffffff");
  });

  it.each(["", "xyz", "1ffffffffffffffff", "12 34", "-1"])("rejects %j", (text) => {
    expect(() => decodeIntelEcap(text)).toThrow(InvalidInputError);
  });
});

describe("decodeAmdFeatures", () => {
  const HDSUP = 1n << 52n;
  const HASUP = 1n << 49n;

  it("reads HDSup (bit 52) from the EFR in the current EFR:EFR2 format", () => {
    const hw = decodeAmdFeatures(`${(HDSUP | HASUP | 0x2294aden).toString(16)}:1`);
    expect(hw.kind).toBe("amd-vi");
    expect(hw.dirtyTracking).toBe(true);
    expect(hw.bits).toEqual({ HASup: true, HDSup: true });
    expect(hw.source).toBe(`EFR 0x${(HDSUP | HASUP | 0x2294aden).toString(16)}, EFR2 0x1`);
  });

  it("reads the older single-EFR format", () => {
    // A Zen 2 EFR from a boot log (0x58f77ef22294ade): no HDSup.
    const hw = decodeAmdFeatures("58f77ef22294ade");
    expect(hw.dirtyTracking).toBe(false);
    expect(hw.source).toBe("EFR 0x58f77ef22294ade");
  });

  it("does not take HASup (access bits) alone for dirty tracking", () => {
    expect(decodeAmdFeatures(`${HASUP.toString(16)}:0`).dirtyTracking).toBe(false);
  });

  it.each(["", "1:2:3", "zz:0", "1:"])("rejects %j", (text) => {
    expect(() => decodeAmdFeatures(text)).toThrow(InvalidInputError);
  });
});
