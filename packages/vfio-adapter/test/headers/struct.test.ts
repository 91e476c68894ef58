// The struct description module on its own: C placement rules, the load-time assertions, and the
// codecs it derives. The real layouts are checked against kernel headers in headers.test.ts.

import { describe, expect, it } from "vitest";
import { CodecError } from "../../src/uapi/codec.ts";
import { defineStruct, flexible, nested, reserved, s32, u8, u16, u32, u64 } from "../../src/uapi/struct.ts";

describe("defineStruct", () => {
  it("places members with C alignment and pads sizeof to the largest alignment", () => {
    const inner = defineStruct<{ a: number; b: bigint }>("inner", "vfio", 16, [u16("a", "a"), u64("b", "b")]);
    const s = defineStruct<object>("outer", "vfio", 32, [
      u8("x", "x"),
      u32("y", "y"),
      nested("in", "in", inner),
      u16("z", "z"),
      flexible("tail", "u64"),
    ]);
    expect(s.members.map((m) => [m.c, m.offset, m.width])).toEqual([
      ["x", 0, 1],
      ["y", 4, 4],
      ["in", 8, 16],
      ["z", 24, 2],
      ["tail", 32, 0],
    ]);
    expect(s.align).toBe(8);
  });

  it("refuses a description whose stated size or offset contradicts the members", () => {
    expect(() => defineStruct("bad", "vfio", 12, [u32("a", "a"), u64("b", "b")])).toThrow(
      /described as 12 bytes, members give 16/,
    );
    expect(() => defineStruct("bad", "vfio", 16, [u32("a", "a"), u64("b", "b", { at: 4 })])).toThrow(
      /b described at 4, alignment puts it at 8/,
    );
    expect(() => defineStruct("bad", "vfio", 8, [flexible("d", "u8"), u64("b", "b")])).toThrow(/not last/);
  });

  it("gives the size an older header has, without the members it lacks", () => {
    const s = defineStruct("grown", "vfio", 24, [
      u32("a", "a"),
      u32("b", "b"),
      u32("c", "c"),
      u64("d", "d", { since: [6, 17] }),
    ]);
    expect(s.sizeAt([6, 6])).toBe(12);
    expect(s.sizeAt([6, 17])).toBe(24);
  });

  it("encodes and decodes little-endian, with defaults, skipping reserved members", () => {
    type T = { argsz: number; fd: number; big: bigint };
    const s = defineStruct<T>("t", "vfio", 24, [
      u32("argsz", "argsz", { default: "sizeof" }),
      s32("fd", "fd", { default: -1 }),
      reserved("__reserved", "u32"),
      u64("big", "big"),
    ]);
    const b = s.encode({ big: 0x0102030405060708n });
    expect([...b]).toEqual([24, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(s.decode(b)).toEqual({ argsz: 24, fd: -1, big: 0x0102030405060708n });
    expect(s.encode({ big: 1n }, 32).length).toBe(32);
    expect(new DataView(s.encode({ big: 1n }, 32).buffer).getUint32(0, true)).toBe(32);
  });

  it("names the member (with its path) when a value does not fit, and checks decode length", () => {
    const inner = defineStruct<{ v: number }>("inner", "vfio", 4, [u32("v", "v")]);
    const s = defineStruct<{ a: number; in: { v: number } }>("s", "vfio", 8, [
      u8("a", "a"),
      nested("in", "in", inner),
    ]);
    expect(() => s.encode({ a: 256, in: { v: 0 } })).toThrow(new CodecError("a: 256 is not a u8"));
    expect(() => s.encode({ a: 0, in: { v: -1 } })).toThrow(new CodecError("in.v: -1 is not a u32"));
    expect(() => s.decode(new Uint8Array(7))).toThrow(new CodecError("struct s: need 8 bytes, got 7"));
  });
});
