import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/errors.ts";
import { formatPciAddress, isPciAddress, parsePciAddress } from "../../src/pci-address.ts";

describe("parsePciAddress", () => {
  it("parses the kernel's form and the short lspci form, normalised to lower case and domain 0000", () => {
    expect(parsePciAddress("0000:3b:00.1")).toEqual({
      domain: 0,
      bus: 0x3b,
      slot: 0,
      function: 1,
      text: "0000:3b:00.1",
    });
    expect(parsePciAddress("3b:00.1").text).toBe("0000:3b:00.1");
    expect(parsePciAddress("0000:3B:1F.7")).toEqual({
      domain: 0,
      bus: 0x3b,
      slot: 0x1f,
      function: 7,
      text: "0000:3b:1f.7",
    });
    expect(parsePciAddress("ffff:ff:1f.7").text).toBe("ffff:ff:1f.7");
    // VMD domains are 0x10000 and up: the kernel prints them with five digits.
    expect(parsePciAddress("10000:e0:00.0")).toMatchObject({ domain: 0x10000, text: "10000:e0:00.0" });
  });

  it.each([
    ["", "empty"],
    ["0000:3b:00", "no function"],
    ["0000:3b:00.8", "function above 7"],
    ["0000:3b:20.0", "slot above 0x1f"],
    ["000:3b:00.1", "three-digit domain"],
    ["00000:3b:00.1", "overlong domain spelling zero"],
    ["000000000:3b:00.1", "nine-digit domain"],
    ["0000:3bb:00.1", "overlong bus"],
    ["0000:3b:000.1", "overlong slot"],
    ["0000:3b:00.01", "overlong function"],
    ["0000:3g:00.1", "non-hex"],
    [" 0000:3b:00.1", "leading space"],
    ["0000:3b:00.1\n", "trailing newline"],
    ["0000:3b:00.1\0", "NUL byte"],
    ["../0000:3b:00.1", "dot-dot"],
    ["0000:3b:00.1/..", "trailing dot-dot"],
    ["0000:3b/00.1", "slash"],
    ["..", "just dot-dot"],
    ["0000:3b:00.1".repeat(1000), "megabyte-style overlong"],
    ["+3b:00.1", "sign"],
  ])("rejects %j (%s)", (input) => {
    expect(() => parsePciAddress(input)).toThrow(InvalidInputError);
    expect(isPciAddress(input)).toBe(false);
  });

  it("names the bad input, shortened, in the error", () => {
    expect(() => parsePciAddress("0000:3b:00.1/../../etc")).toThrow(
      'invalid PCI address "0000:3b:00.1/../../etc": expected DDDD:BB:DD.F or BB:DD.F in hex, e.g. 0000:3b:00.1',
    );
    const long = "x".repeat(5000);
    expect(() => parsePciAddress(long)).toThrow(/^invalid PCI address "x{40}": /);
  });

  it("round-trips every valid address through format and parse (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff }),
        fc.integer({ min: 0, max: 0xff }),
        fc.integer({ min: 0, max: 0x1f }),
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        (domain, bus, slot, fn, upper) => {
          const text = formatPciAddress(domain, bus, slot, fn);
          const parsed = parsePciAddress(upper ? text.toUpperCase() : text);
          expect(parsed).toEqual({ domain, bus, slot, function: fn, text });
          if (domain === 0) expect(parsePciAddress(text.slice(5)).text).toBe(text);
        },
      ),
    );
  });

  it("never accepts a string containing a path separator, NUL or dot-dot (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 20 }),
        fc.constantFrom("/", "\0", "..", "\\"),
        fc.nat(20),
        (s, bad, at) => {
          const i = Math.min(at, s.length);
          expect(isPciAddress(s.slice(0, i) + bad + s.slice(i))).toBe(false);
        },
      ),
    );
  });
});
