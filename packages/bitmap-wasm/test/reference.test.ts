// The reference helpers are the oracle of every other test here, so they are checked too.

import { describe, expect, it } from "vitest";
import { expectBits } from "./reference.ts";

describe("expectBits", () => {
  it("accepts equal bits and names the first difference otherwise", () => {
    const want = new Uint8Array(70_000);
    want[5] = 1;
    expectBits(want.slice(), want);
    const got = want.slice();
    got[60_001] = 1;
    got[60_003] = 1;
    expect(() => expectBits(got, want, "dst")).toThrow(
      "dst: 2 of 70000 entries differ, the first at 60001 (entries 59993..60009: got 00000000101000000, expected 00000000000000000)",
    );
    expect(() => expectBits(got.subarray(1), want)).toThrow("bits: 69999 entries, expected 70000");
  });
});
