// Every rule scenario against the simulated host: the errno must be the kernel's (as read from
// its source, Scenario.expected), and good inputs must give the result bytes the kernel gives.
// The same scenarios run against a real kernel in tests/vm.

import { describe, expect, it } from "vitest";
import { allScenarios, runScenarios, type ScenarioOutcome } from "../../src/scenarios/index.ts";
import { createSimHost, loadProfile, simScenarioTarget } from "../../src/sim/index.ts";
import { u64 } from "../../src/sim/profile.ts";

/** A shipped profile's first device's migration sizes (bytes) and the hex a result shows. */
function migration(profile: string) {
  const m = loadProfile(profile).devices[0]!.migration!;
  const n = (x: number | string | undefined) => Number(u64(x ?? 0, "migration"));
  const initial = n(m.precopyInitialBytes);
  const dirty = n(m.precopyDirtyBytes);
  return { state: n(m.stateBytes), initial, dirty, hex: (x: number) => `0x${x.toString(16)}` };
}

/** Result checks for the good-input scenarios, by id. */
const RESULTS: Record<string, (r: unknown, profile: string) => void> = {
  "type1.group-status.attached": (r) => expect(r).toMatchObject({ viable: true, containerSet: true }),
  "type1.info.capabilities": (r) =>
    expect(r).toMatchObject({
      flags: 3,
      iovaPgsizes: "0x40201000",
      migration: { flags: 0, pgsizeBitmap: "0x1000", maxDirtyBitmapSize: "0x10000000" },
      dmaAvail: 65535,
    }),
  "type1.unmap.all": (r) => expect(r).toBe("0x5000"),
  "type1.unmap.with-dirty-bitmap": (r) => expect(r).toEqual({ unmapped: "0x5000", bitmap: ["0x1f"] }),
  "type1.dirty-pages.start-stop-idempotent": (r) => expect(r).toEqual([0, 0, 0, 0]),
  // Pages 0-1 and 5-7 mapped: 0b1110_0011; the hole and the tail stay 0.
  "type1.get-bitmap.holes": (r) => expect(r).toEqual({ bitmap: ["0xe3"] }),
  "type1.get-bitmap.every-page-every-time": (r) => expect(r).toEqual({ reads: ["0x7", "0x7"] }),
  "device.logging.start-writes-page-size": (r) => expect(r).toEqual({ pageSize: "0x1000" }),
  "device.report.only-sets-bits": (r) => expect(r).toEqual({ bitmap: ["0xa5a5a5a5a5a5a5a5"] }),
  // Page 3 (100 bytes at +16) and page 40 (2 KiB): bits 3 and 40; then nothing.
  "device.report.dma-pages-then-clear": (r) =>
    expect(r).toEqual({ first: [`0x${((1n << 3n) | (1n << 40n)).toString(16)}`], second: ["0x0"] }),
  // The 64 KiB logging page [16, 32) was written at page 20: the half-page REPORT sets all 16 of
  // its pages (past the range's 8: iova_bitmap_set does not clamp, as Debian's 6.1 shows) and
  // clears it, so the full REPORT after it finds nothing (what the tracker never provokes).
  "device.report.partial-page": (r) =>
    expect(r).toEqual({ logPage: "0x10000", half: ["0xffff", "0x0"], rest: ["0x0", "0x0"] }),
  // Page 5 at 8 KiB per bit is bit 2; then page 9 alone at 4 KiB.
  "device.report.coarser-and-finer": (r) =>
    expect(r).toEqual({ logPage: "0x1000", coarse: ["0x4"], fine: ["0x200"] }),
  // STOP_COPY 1 | P2P 2 | PRE_COPY 4, as each profile declares.
  "device.migration.flags": (r, p) =>
    expect(r).toEqual({ flags: { "edu-logging": 3, "gpu-iommufd": 3 }[p] ?? 7 }),
  "device.migration.stop-and-back": (r) => expect(r).toEqual({ states: [2, 1, 2] }),
  "cdev.bind-attach-detach": (r) => expect(r).toEqual({ devIdPositive: true, hwptDiffersFromIoas: true }),
  "iommufd.map.fixed-and-kernel-chosen": (r) =>
    expect(r).toEqual({ fixed: "0x100000", chosenAligned: true, chosenDisjoint: true }),
  "iommufd.unmap.all": (r) => expect(r).toBe("0x4000"),
  "iommufd.iova-ranges.short-array": (r) => expect(r).toEqual({ countWritten: true }),
  "iommufd.hw-info.dirty-capability": (r, p) => expect(r).toEqual({ dirtyTracking: p === "gpu-iommufd" }),
  // Page 2 written: kept with NO_CLEAR, reported and cleared, then empty; page 7 went stale at re-enable.
  "iommufd.get-dirty.no-clear": (r) =>
    expect(r).toEqual({ kept: "0x4", cleared: "0x4", after: "0x0", stale: "0x0" }),
  "iommufd.attach-group-and-cdev": (r) => expect(r).toEqual({ groupViable: true, boundDevId: true }),
  // Initial data shrinks by the 16 bytes read, then to nothing (the running device's dirty state
  // showing once it is read); the rest ends at ENOMSG.
  "migration.precopy-info.shrinks-as-read": (r, p) => {
    const { initial, dirty, hex } = migration(p);
    const info = (i: number, d = 0) => ({ flags: 0, initialBytes: hex(i), dirtyBytes: hex(d) });
    expect(r).toEqual({
      sizes: [info(initial), info(initial - 16), info(0, dirty)],
      rest: { bytes: initial - 16, end: "ENOMSG" },
    });
  },
  "migration.precopy-info.v1-echoes-flags": (r, p) =>
    expect(r).toEqual({
      flags: 0x5a5a,
      initialBytes: migration(p).hex(migration(p).initial),
      dirtyBytes: "0x0",
    }),
  "migration.precopy-info.v2-zeroes-flags": (r, p) =>
    expect(r).toEqual({ flags: 0, initialBytes: migration(p).hex(migration(p).initial), dirtyBytes: "0x0" }),
  // The whole initial state again, flagged REINIT once.
  "migration.precopy-info.reinit": (r, p) => {
    const { initial, hex } = migration(p);
    expect(r).toEqual({
      first: { bytes: initial, end: "ENOMSG" },
      after: { flags: 1, initialBytes: hex(initial), dirtyBytes: "0x0" },
      again: { flags: 0, initialBytes: hex(initial), dirtyBytes: "0x0" },
    });
  },
  "migration.precopy-info.v1-change-is-dirty": (r, p) => {
    const { initial, hex } = migration(p);
    expect(r).toEqual({
      first: { bytes: initial, end: "ENOMSG" },
      after: { flags: 0, initialBytes: "0x0", dirtyBytes: hex(initial) },
      rest: { bytes: initial, end: "ENOMSG" },
    });
  },
  "migration.stop-copy.drains-to-eof": (r, p) => expect(r).toEqual({ bytes: migration(p).state, end: "EOF" }),
  "migration.stop-copy.after-pre-copy": (r, p) => {
    const { initial, state } = migration(p);
    expect(r).toEqual({
      first: Math.min(8, initial),
      newFd: false,
      rest: { bytes: initial - Math.min(8, initial) + state, end: "EOF" },
    });
  },
  "migration.reset.ends-session": (r) => expect(r).toEqual({ state: 2, read: "ENODEV" }),

  // The conformance scenarios `vfio-dirty check` judges (src/scenarios/logging.ts, iommu-dirty.ts).
  "device.logging.probe-ops": (r, p) =>
    expect(r).toEqual(
      loadProfile(p).devices[0]!.dmaLogging !== undefined
        ? { start: "OK", stop: "OK", report: "OK", startGet: "EINVAL" }
        : { start: "ENOTTY", stop: "ENOTTY", report: "ENOTTY", startGet: "ENOTTY" },
    ),
  "device.logging.range-count": (r) => expect(r).toEqual({ largest: 256, refused256: null }),
  // mlx5 tracks 4 ranges: it combines the 8 (smallest gap first), so the gap between the first two is logged.
  "device.logging.many-ranges": (r, p) =>
    expect(r).toEqual({ granted: "0x1000", missingRanges: [], gapLogged: p === "mlx5-vf" }),
  // mlx5's 2^42 span; the test driver (edu-logging) has no limit.
  "device.logging.span-limit": (r, p) =>
    expect(r).toEqual(
      p === "mlx5-vf"
        ? { largestLog2: 42, refusedLog2: 44, refusedErrno: "EOPNOTSUPP" }
        : { largestLog2: 48, refusedLog2: null, refusedErrno: null },
    ),
  "device.logging.sub-range": (r) => expect(r).toEqual({ granted: "0x1000", restKept: true }),
  // The harsh real behaviour: the half outside the REPORT is cleared with the page.
  "device.logging.partial-page": (r) =>
    expect(r).toEqual({ granted: "0x2000", cut: true, reported: true, restKept: false }),
  // Logging page 3 at 16 KiB per bit is bit 1; logging page 5 at 4 KiB is bits 10 and 11.
  "device.logging.coarser-finer": (r) =>
    expect(r).toEqual({ granted: "0x2000", coarse: [1], fine: [10, 11] }),
  "device.logging.outside-range": (r) => expect(r).toEqual({ granted: "0x1000", outside: [] }),
  "device.logging.restart": (r) =>
    expect(r).toEqual({ granted: "0x1000", newReported: true, staleReported: false }),
  "device.logging.report-unstarted": (r) => expect(r).toEqual({ report: "OK", bits: 0 }),
  "device.logging.start-page-size@4K": (r) => expect(r).toEqual({ asked: "0x1000", granted: "0x1000" }),
  "device.logging.exact@4K": (r) =>
    expect(r).toEqual({ granted: "0x1000", written: 12, missingCount: 0, missing: [], extra: 0, again: 0 }),
  // Pages 2 and 9 written, but a vfio-pci device is not in pinned-page scope: all 16 pages.
  "type1.get-bitmap.after-dma": (r) => expect(r).toEqual({ bitmap: ["0xffff"] }),
  // Whole words copied out: the caller's bits 5 and 7 (0xa0) are gone.
  "type1.get-bitmap.prefilled": (r) => expect(r).toEqual({ bitmap: ["0xf"] }),
  "iommufd.dirty.capability-and-alloc": (r, p) =>
    expect(r).toEqual(
      p === "gpu-iommufd" ? { capability: true, alloc: "OK" } : { capability: false, alloc: "EOPNOTSUPP" },
    ),
  "iommufd.get-dirty.only-sets-bits": (r) => expect(r).toEqual({ bitmap: ["0xa5a5a5a5a5a5a5a5"] }),
};

const PROFILES = [
  "mlx5-vf",
  "legacy-type1",
  "gpu-iommufd",
  "edu-type1",
  "edu-logging",
  "edu-iommufd",
  "edu-migration",
];
/** Where a profile's driver answers differently from the scenario's reference (the test driver). */
const DRIVER_ERRNO: Record<string, Record<string, string>> = {
  // mlx5vf_start_page_tracker: log_active -> -EINVAL.
  "mlx5-vf": { "device.logging.start-twice": "EINVAL" },
};
/** Scenario ids that ran (not skipped) on some profile, filled by the per-profile runs. */
const ran = new Set<string>();

describe.each(PROFILES)("rule scenarios on sim:%s", (profile) => {
  let outcomes: ScenarioOutcome[] = [];

  it("runs every scenario the host allows without a setup error", async () => {
    const sim = createSimHost(profile);
    outcomes = await runScenarios(simScenarioTarget(sim), allScenarios);
    for (const o of outcomes) if (!o.skipped) ran.add(o.id);
    expect(outcomes.filter((o) => o.setupError)).toEqual([]);
    expect(outcomes.filter((o) => !o.skipped).length).toBeGreaterThan(10);
    // Every scenario closed what it opened: no tracking left behind, the group can open again.
    expect(sim.trackingActive()).toBe(false);
    const fd = sim.open(`/dev/vfio/${sim.profile.devices[0]!.group}`, 2);
    expect(fd).toBeGreaterThanOrEqual(0);
  });

  it.each(allScenarios.map((s) => s.id))("%s answers as the kernel does", (id) => {
    const o = outcomes.find((x) => x.id === id)!;
    if (o.skipped) return;
    expect(o.errno, `${id}: ${o.rule}`).toBe(DRIVER_ERRNO[profile]?.[id] ?? o.expected.errno);
    if (o.errno === null && o.result !== undefined) {
      const check = RESULTS[id];
      expect(check, `no result check for good-input scenario ${id}`).toBeDefined();
      check!(o.result, profile);
    }
  });
});

it("every scenario runs on at least one shipped profile", () => {
  expect(allScenarios.map((s) => s.id).filter((id) => !ran.has(id))).toEqual([]);
});
