// QEMU's options on probe and track: --enable-migration, --device-dirty-page-tracking,
// --pre-copy-dirty-page-tracking. They reach the tracker, every message names them as QEMU does,
// and probe says what each would change.

import { describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { describeQemuOptions, parseQemuOptions, selectOptions } from "../src/parse/qemu-options.ts";
import { captureIo } from "./capture-io.ts";

describe("parseQemuOptions / selectOptions", () => {
  it("off is every device, off=BDF,... the named ones (normalised), on the default", () => {
    const q = parseQemuOptions({
      enableMigration: "on",
      deviceDirtyPageTracking: "off",
      preCopyDirtyPageTracking: "off=3b:00.2,0000:3b:00.2",
    });
    expect(q).toEqual({
      enableMigration: "on",
      deviceDirtyPageTracking: "all",
      preCopyDirtyPageTracking: ["0000:3b:00.2"],
    });
    expect(selectOptions(q, ["0000:3b:00.1", "0000:3b:00.2"])).toEqual({
      enableMigration: "on",
      devices: {
        "0000:3b:00.1": { deviceDirtyPageTracking: false },
        "0000:3b:00.2": { deviceDirtyPageTracking: false, preCopyDirtyPageTracking: false },
      },
    });
    expect(describeQemuOptions(q)).toEqual([
      "enable-migration=on",
      "x-device-dirty-page-tracking=off",
      "x-pre-copy-dirty-page-tracking=off (0000:3b:00.2)",
    ]);
    expect(parseQemuOptions({ deviceDirtyPageTracking: "on" }).deviceDirtyPageTracking).toBe("none");
  });

  it.each([
    [{ enableMigration: "off" }, /--enable-migration 'off': use on .* or auto/],
    [{ deviceDirtyPageTracking: "false" }, /--device-dirty-page-tracking 'false': use off/],
    [{ preCopyDirtyPageTracking: "off=nope" }, /PCI address 'nope'/],
  ])("refuses %j", (flags, why) => {
    expect(() => parseQemuOptions(flags)).toThrow(why);
  });

  it("a device not among those tracked is a usage error", () => {
    const q = parseQemuOptions({ deviceDirtyPageTracking: "off=0000:99:00.0" });
    expect(() => selectOptions(q, ["0000:3b:00.1"])).toThrow(
      /names 0000:99:00.0, which is not among the devices \(0000:3b:00.1\)/,
    );
  });
});

async function cli(args: string[]) {
  const c = captureIo();
  const code = await run(args, c.io);
  return { code, out: c.out(), err: c.err() };
}

const LIBRARY_NAMES = /enableMigration|deviceDirtyPageTracking|preCopyDirtyPageTracking/;

describe("probe with QEMU's options", () => {
  it("says what each option would change, in QEMU's spelling", async () => {
    const r = await cli(["probe", "--host", "sim:guest-16tib", "--open"]);
    expect(r.out).toContain("QEMU options: enable-migration=auto; what each would change:");
    expect(r.out).toContain("  - with x-device-dirty-page-tracking=off: iommufd\n");
    expect(r.out).toMatch(/with enable-migration=on: device \(no change/);
    expect(r.out).toMatch(/with x-pre-copy-dirty-page-tracking=off: device, not read during pre-copy/);
    const j = await cli(["probe", "--host", "sim:guest-16tib", "--open", "--json"]);
    expect(JSON.parse(j.out).whatIf[0]).toEqual({
      option: "x-device-dirty-page-tracking=off",
      strategy: "iommufd",
      blockers: [],
      change: "iommufd",
    });
  });

  it("--device-dirty-page-tracking off moves the choice, and the reason names x-device-dirty-page-tracking=off", async () => {
    const r = await cli([
      "probe",
      "--host",
      "sim:guest-16tib",
      "--open",
      "--device-dirty-page-tracking",
      "off",
      "--json",
    ]);
    const doc = JSON.parse(r.out);
    expect(doc.strategy).toBe("iommufd");
    expect(doc.qemuOptions).toEqual(["enable-migration=auto", "x-device-dirty-page-tracking=off"]);
    expect(doc.reasons.join("\n")).toContain(
      "device dirty page tracking turned off (x-device-dirty-page-tracking=off)",
    );
    expect(
      doc.reasonDetails.some((d: { option?: string }) => d.option === "x-device-dirty-page-tracking"),
    ).toBe(true);
    expect(doc.whatIf[0]).toMatchObject({ option: "x-device-dirty-page-tracking=on", strategy: "device" });
    expect(r.out).not.toMatch(LIBRARY_NAMES);
  });

  it("--enable-migration on accepts all-dirty: the no-tracking blocker becomes a warning", async () => {
    const auto = await cli(["probe", "--host", "sim:mixed-logging", "--open", "--json"]);
    expect(auto.out).toContain("set enable-migration=on to accept that");
    const on = await cli([
      "probe",
      "--host",
      "sim:mixed-logging",
      "--open",
      "--enable-migration",
      "on",
      "--json",
    ]);
    const doc = JSON.parse(on.out);
    expect(doc.blockerDetails.map((b: { kind: string }) => b.kind)).toEqual(["no-migration"]);
    expect(doc.warnings).toEqual([
      "no dirty tracking: every page is reported dirty on every sync (enable-migration=on)",
    ]);
    expect(doc.whatIf[1]).toMatchObject({
      option: "enable-migration=auto",
      change: "all-dirty becomes a migration blocker",
    });
    for (const out of [auto.out, on.out, on.err]) expect(out).not.toMatch(LIBRARY_NAMES);
  });
});

describe("track with QEMU's options", () => {
  it("--device-dirty-page-tracking off: the tracker uses iommufd", async () => {
    const r = await cli([
      "track",
      "--host",
      "sim:guest-16tib",
      "--duration",
      "1s",
      "--fast",
      "--json",
      "--device-dirty-page-tracking",
      "off",
    ]);
    const doc = JSON.parse(r.out);
    expect(doc.strategy).toBe("iommufd");
    expect(doc.reasons.join("\n")).toContain("(x-device-dirty-page-tracking=off)");
  });

  it("--pre-copy-dirty-page-tracking off=BDF: that device is read only at stop-copy, nothing is lost", async () => {
    // On mlx5-p2p only 0000:3b:00.1 has a DMA rate; 0000:3b:00.2 stays read during pre-copy.
    const args = [
      "track",
      "--host",
      "sim:mlx5-p2p",
      "--workload",
      "uniform",
      "--duration",
      "3s",
      "--phase-switch",
      "2s",
      "--fast",
      "--json",
    ];
    const all = JSON.parse((await cli(args)).out);
    const off = JSON.parse((await cli([...args, "--pre-copy-dirty-page-tracking", "off=0000:3b:00.1"])).out);
    const pages = (d: { samples: { phase: string; dirtyPages: number }[] }, phase: string) =>
      d.samples.filter((s) => s.phase === phase).map((s) => s.dirtyPages);
    expect(pages(all, "pre-copy")[0]).toBeGreaterThan(0);
    expect(pages(off, "pre-copy")).toEqual([0]);
    // Everything the device wrote in pre-copy arrives in the first stop-copy sync.
    expect(pages(off, "stop-copy")[0]).toBe(off.groundTruth.pagesWritten);
    expect(off.groundTruth).toMatchObject({ pagesLost: 0, ok: true });
    expect(off.groundTruth.pagesWritten).toBe(all.groundTruth.pagesWritten);
  });

  it("--enable-migration on: all-dirty is accepted with a warning, not a blocker", async () => {
    const doc = JSON.parse(
      (
        await cli([
          "track",
          "--host",
          "sim:mixed-logging",
          "--duration",
          "1s",
          "--fast",
          "--json",
          "--enable-migration",
          "on",
        ])
      ).out,
    );
    expect(doc.strategy).toBe("all-dirty");
    expect(doc.reasons).toContain(
      "warning: no dirty tracking: every page is reported dirty on every sync (enable-migration=on)",
    );
    expect(doc.reasons.join("\n")).not.toMatch(/blocker: no device or IOMMU dirty tracking/);
  });
});
