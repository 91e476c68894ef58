import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.ts";
import { parseDuration } from "../src/parse/duration.ts";
import { parsePciAddress } from "../src/parse/pci.ts";
import { parseRate } from "../src/parse/rate.ts";
import {
  formatSizeShort,
  parseAddress,
  parseCount,
  parsePageSize,
  parseSize,
  U64_MAX,
} from "../src/parse/size.ts";

describe("parseSize", () => {
  it.each([
    ["4096", 4096n],
    ["4K", 4096n],
    ["4k", 4096n],
    ["4KiB", 4096n],
    ["4KB", 4096n],
    ["2M", 2n << 20n],
    ["1G", 1n << 30n],
    ["16T", 16n << 40n],
    ["0x1000", 4096n],
    ["0X1000", 4096n],
    ["0x10K", 16n << 10n],
    ["0", 0n],
    ["18446744073709551615", U64_MAX],
    [" 8M ", 8n << 20n],
  ])("%s -> %s", (text, want) => {
    expect(parseSize(text, "--x")).toBe(want);
  });

  it.each(["", "K", "4Q", "-1", "1.5G", "0x", "4 K B", "1e6", "18446744073709551616", "16384P"])(
    "rejects %j with the flag and an example",
    (text) => {
      expect(() => parseSize(text, "--ram")).toThrow(UsageError);
      expect(() => parseSize(text, "--ram")).toThrow(/^--ram '.*': .*(use|smaller)/);
    },
  );
});

describe("parsePageSize", () => {
  it("accepts powers of two from 512 to 1G", () => {
    expect(parsePageSize("512", "--p")).toBe(512n);
    expect(parsePageSize("1G", "--p")).toBe(1n << 30n);
    expect(parsePageSize("64K", "--p")).toBe(65536n);
  });
  it.each(["3K", "0", "256", "2G", "4097"])("rejects %s", (t) => {
    expect(() => parsePageSize(t, "--page-size")).toThrow(/power of two from 512 to 1G/);
  });
});

describe("parseAddress", () => {
  it("takes decimal and hex up to 2^64-1 exactly", () => {
    expect(parseAddress("0xffffffffffffffff", "--base")).toBe(U64_MAX);
    expect(parseAddress("4294967296", "--base")).toBe(1n << 32n);
    expect(parseAddress("0x100000000", "--base")).toBe(1n << 32n);
    // Not representable as a double: must stay exact.
    expect(parseAddress("0xfffffffffffff001", "--base")).toBe(0xfffffffffffff001n);
  });
  it.each(["0x1_0000", "1K", "-5", "0x10000000000000000", "abc", ""])("rejects %j", (t) => {
    expect(() => parseAddress(t, "--base")).toThrow(UsageError);
  });
});

describe("parseDuration", () => {
  it.each([
    ["30s", 30_000],
    ["500ms", 500],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["250us", 0.25],
  ])("%s -> %d ms", (t, ms) => {
    expect(parseDuration(t, "--d")).toBe(ms);
  });
  it.each(["10", "s", "-1s", "1 day", "0s", "1e3s"])("rejects %j", (t) => {
    expect(() => parseDuration(t, "--duration")).toThrow(/--duration '.*'/);
  });
  it("allows zero only when asked", () => {
    expect(parseDuration("0s", "--d", { allowZero: true })).toBe(0);
  });
});

describe("parseRate", () => {
  it.each([
    ["1G/s", 2 ** 30],
    ["1GiB/s", 2 ** 30],
    ["1GB/s", 2 ** 30],
    ["800M", 800 * 2 ** 20],
    ["10Gbit/s", 10e9 / 8],
    ["10Gbps", 10e9 / 8],
    ["10Gb/s", 10e9 / 8],
    ["1.5M/s", 1.5 * 2 ** 20],
  ])("%s -> %d B/s", (t, want) => {
    expect(parseRate(t, "--bandwidth")).toBeCloseTo(want, 6);
  });
  it.each(["fast", "0", "0G/s", "-1G/s", "1G/h", ""])("rejects %j", (t) => {
    expect(() => parseRate(t, "--bandwidth")).toThrow(/^--bandwidth '.*': /);
  });
  it("takes 0 for a dirty rate (an idle device), never for a bandwidth", () => {
    expect(parseRate("0", "--dirty-rate", { allowZero: true })).toBe(0);
    expect(parseRate("0M/s", "--dirty-rate", { allowZero: true })).toBe(0);
    expect(() => parseRate("-1M/s", "--dirty-rate", { allowZero: true })).toThrow(/not a rate/);
  });
});

describe("parsePciAddress", () => {
  it("normalises", () => {
    expect(parsePciAddress("3B:00.1")).toBe("0000:3b:00.1");
    expect(parsePciAddress("0000:00:03.0")).toBe("0000:00:03.0");
  });
  it.each(["3b:00", "0000:3b:00.8", "0000:3b:20.0", "../../etc", "0000:3b:00.1/"])("rejects %j", (t) => {
    expect(() => parsePciAddress(t)).toThrow(/lspci -D/);
  });
});

describe("parseCount / formatSizeShort", () => {
  it("parses counts", () => {
    expect(parseCount("42", "--seed")).toBe(42);
    expect(() => parseCount("4.2", "--seed")).toThrow(/whole number/);
  });
  it("formats", () => {
    expect(formatSizeShort(4096n)).toBe("4K");
    expect(formatSizeShort(1n << 30n)).toBe("1G");
    expect(formatSizeShort(1000n)).toBe("1000");
  });
});
