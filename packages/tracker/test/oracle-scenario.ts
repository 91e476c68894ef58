// Random scenarios for the never-lose oracle, drawn from what callers and hardware may do rather
// than from what the tracker expects (issue 12, section 5).
//
// A scenario is a host (type1 or iommufd; IOMMU dirty bits or not; 1-3 devices with or without DMA
// logging, with range, span and page-size limits; RAM sizes that are not multiples of 2 MiB) and a
// caller: a tracking page size, a query window size (not necessarily a multiple of the device's log
// page), with or without a vIOMMU, an aperture or none, mappings made before start() (or none) and
// a sequence of operations. vIOMMU mappings land anywhere in the IOVA space: IOVA 0, inside,
// straddling and outside the aperture, across the MSI window and past the IOMMU's 48-bit limit
// (both refused by the kernel), IOVA != GPA, several IOVAs on one GPA, GPA 0. Unmaps hit whole
// mappings, spans with holes, ranges that cut mappings, and the whole address space (QEMU's
// passthrough -> translated -> blocking switches). Remaps move an IOVA to another GPA around a
// write. Faults fire on the Nth matching call, in any order.
//
// Everything is drawn in 4 KiB pages (plain numbers, so fast-check prints and shrinks them); the
// runner (oracle-run.ts) aligns to the tracking page size and resolves indexes against what is
// mapped at that instant.

import type { DeviceJson, ProfileJson } from "@vfio-dirty/vfio-adapter/sim";
import fc from "fast-check";
import type { Phase, UntrackedPolicy } from "../src/tracker.ts";

const KIB = 1024;
const MIB = 1 << 20;

/**
 * Where vIOMMU mappings, apertures and writes are drawn: 4 KiB page bases and sizes of zones of
 * the IOVA space. The sim's IOMMU refuses [0xfee00000, 0xfef00000) (the MSI window) and
 * everything from 2^48 on, as a VT-d does.
 */
export const ZONES: readonly { readonly name: string; readonly basePage: number; readonly pages: number }[] =
  [
    { name: "low", basePage: 0, pages: 4096 }, // [0, 16 MiB): IOVA 0, the same numbers as low RAM
    { name: "aperture", basePage: 0x10000, pages: 12288 }, // [256 MiB, 304 MiB): where apertures usually are
    { name: "msi", basePage: 0xfe000, pages: 4096 }, // [0xfe000000, 0xff000000): across the MSI window
    { name: "tib", basePage: 2 ** 28, pages: 4096 }, // [1 TiB, 1 TiB + 16 MiB)
    { name: "top", basePage: 2 ** 36 - 2048, pages: 4096 }, // 8 MiB each side of 2^48
  ];

export type GpaDraw =
  /** A page of RAM section `section` (0: low RAM at GPA 0, 1: high RAM at 4 GiB, when present). */
  | { kind: "ram"; section: number; page: number }
  /** The GPA of the Nth current mapping: two IOVAs on one guest page. */
  | { kind: "alias"; of: number };

export type MapDraw =
  /** At `page` pages into aperture range `range` (or zone "aperture" without one); may straddle its end. */
  | { kind: "aperture"; range: number; page: number; npages: number; gpa: GpaDraw }
  | { kind: "zone"; zone: number; page: number; npages: number; gpa: GpaDraw }
  /** Right after the Nth current mapping (contiguous IOVAs: spans, straddles, cuts). */
  | { kind: "after"; of: number; npages: number; gpa: GpaDraw }
  /** IOVA 0 (QEMU's translated_addr = 0 class). */
  | { kind: "zero"; npages: number; gpa: GpaDraw };

export type UnmapDraw =
  | { kind: "exact"; of: number }
  /** From `slack` pages before the Nth mapping to `slack` after the (N + count - 1)th: holes included. */
  | { kind: "span"; of: number; count: number; slack: number }
  /** Part of the Nth mapping: `from` pages in, `npages` long (cuts it; may run past its end). */
  | { kind: "cut"; of: number; from: number; npages: number }
  | { kind: "zone"; zone: number; page: number; npages: number }
  /** The whole IOVA space: [0, 2^48) or [0, 2^64 - page), what a switch to a blocking domain unmaps. */
  | { kind: "all"; bits: 48 | 64 };

export type WriteTarget =
  /** The Nth current mapping (vIOMMU) or RAM section (none), `page` pages in (modulo its size). */
  | { kind: "mapped"; of: number; page: number }
  /** Anywhere in a zone (vIOMMU), or anywhere in the first 4 GiB + 16 MiB of GPA (none): may fault. */
  | { kind: "anywhere"; zone: number; page: number }
  /** The last range unmapped (must fault), or a mapped page when nothing was unmapped yet. */
  | { kind: "unmapped"; page: number };

export type FaultKind =
  | "report"
  | "get-bitmap"
  | "get-dirty-bitmap"
  | "unmap"
  | "map"
  | "logging-stop"
  | "logging-start"
  | "set-dirty-tracking"
  | "dirty-pages-stop"
  | "error-state";

export type SyncMode = "full" | "into" | "window";

export type Op =
  | { op: "write"; dev: number; target: WriteTarget; npages: number }
  /** `n` single-page writes at mapped pages chosen by an LCG seeded with `seed`. */
  | { op: "burst"; dev: number; n: number; seed: number }
  | { op: "sync"; mode: SyncMode }
  | { op: "phase"; to: "pre-copy" | "stop-copy" }
  | { op: "map"; at: MapDraw }
  /** `probe`: the device then writes where the range had mappings (it must land or fault as the model says). */
  | { op: "unmap"; at: UnmapDraw; probe: boolean }
  /** Unmap the Nth mapping and map its IOVAs to another GPA, with writes around it. */
  | { op: "remap"; of: number; gpa: GpaDraw; page: number; writeBefore: boolean; writeAfter: boolean }
  /** Map every RAM section at IOVA = GPA (a vIOMMU in passthrough mode). */
  | { op: "passthrough" }
  | { op: "fault"; kind: FaultKind; dev: number; nth: number };

export interface DeviceDraw {
  logging: { maxRanges: number; maxSpanLog2: number | undefined; minPageSize: number } | undefined;
  p2p: boolean;
  preCopy: boolean;
  deviceTracking: boolean;
}

export interface OracleScenario {
  backend: "type1" | "iommufd";
  iommuDirty: boolean;
  /** Low RAM at GPA 0 and high RAM at 4 GiB (0: none), in 4 KiB pages before rounding up to the tracking page. */
  lowPages: number;
  highPages: number;
  devices: DeviceDraw[];
  /** Tracking page size, bytes. */
  pageSize: number;
  /** Query window: this many bitmap words (64 tracking pages each). */
  windowWords: number;
  /**
   * undefined: no vIOMMU (RAM mapped at IOVA = GPA). `untracked`: openTracker's viommuUntracked,
   * the policy for mappings device logging cannot see (undefined: the default).
   */
  viommu:
    | {
        aperture: { zone: number; page: number; npages: number }[] | undefined;
        untracked?: UntrackedPolicy | undefined;
      }
    | undefined;
  startPhase: Phase;
  /** Operations before start(): mappings (none at all, sometimes), unmaps, faults. */
  before: Op[];
  ops: Op[];
}

/** Every policy openTracker offers for mappings outside what device logging sees. */
export const UNTRACKED_POLICIES: readonly UntrackedPolicy[] = ["report-dirty", "re-arm", "adaptive"];

const nat = (max: number) => fc.nat({ max });

const gpaDraw: fc.Arbitrary<GpaDraw> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant("ram" as const), section: nat(1), page: nat(8191) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("ram" as const),
      section: fc.constant(0),
      page: fc.constant(0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("alias" as const), of: nat(15) }) },
);

/** Mapping sizes: mostly small, some a 2 MiB huge page, some bigger than it. */
const npagesDraw = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 8 }) },
  { weight: 3, arbitrary: fc.integer({ min: 9, max: 256 }) },
  { weight: 1, arbitrary: fc.constant(512) },
  { weight: 1, arbitrary: fc.integer({ min: 513, max: 1100 }) },
);

const zoneDraw = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 6, arbitrary: fc.constant(1) },
  { weight: 1, arbitrary: fc.constant(2) },
  { weight: 1, arbitrary: fc.constant(3) },
  { weight: 1, arbitrary: fc.constant(4) },
);

const mapDraw: fc.Arbitrary<MapDraw> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("aperture" as const),
      range: nat(1),
      page: nat(8191),
      npages: npagesDraw,
      gpa: gpaDraw,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant("zone" as const),
      zone: zoneDraw,
      page: nat(4095),
      npages: npagesDraw,
      gpa: gpaDraw,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("after" as const),
      of: nat(15),
      npages: npagesDraw,
      gpa: gpaDraw,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("zero" as const), npages: npagesDraw, gpa: gpaDraw }),
  },
);

const unmapDraw: fc.Arbitrary<UnmapDraw> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("exact" as const), of: nat(15) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("span" as const),
      of: nat(15),
      count: fc.integer({ min: 1, max: 4 }),
      slack: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 32 })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("cut" as const),
      of: nat(15),
      from: nat(600),
      npages: fc.integer({ min: 1, max: 600 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("zone" as const),
      zone: zoneDraw,
      page: nat(4095),
      npages: fc.integer({ min: 1, max: 4096 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("all" as const), bits: fc.constantFrom<48 | 64>(48, 64) }),
  },
);

const writeTarget: fc.Arbitrary<WriteTarget> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant("mapped" as const), of: nat(15), page: nat(2047) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("anywhere" as const), zone: zoneDraw, page: nat(4095) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("unmapped" as const), page: nat(2047) }) },
);

const faultKind = fc.constantFrom<FaultKind>(
  "report",
  "report",
  "get-bitmap",
  "get-dirty-bitmap",
  "unmap",
  "map",
  "logging-stop",
  "logging-start",
  "set-dirty-tracking",
  "dirty-pages-stop",
  "error-state",
);

function opDraw(nd: number, viommu: boolean, before: boolean): fc.Arbitrary<Op> {
  const dev = nat(nd - 1);
  // Weights in halves; mapping operations only with a vIOMMU, DMA and syncs only after start().
  const w = (after: number, pre: number, vi = false) => 2 * (vi && !viommu ? 0 : before ? pre : after);
  return fc.oneof(
    {
      weight: w(6, 0),
      arbitrary: fc.record({
        op: fc.constant("write" as const),
        dev,
        target: writeTarget,
        npages: fc.integer({ min: 1, max: 8 }),
      }),
    },
    {
      weight: w(2, 0),
      arbitrary: fc.record({
        op: fc.constant("burst" as const),
        dev,
        n: fc.integer({ min: 1, max: 64 }),
        seed: fc.nat(),
      }),
    },
    {
      weight: w(5, 0),
      arbitrary: fc.record({
        op: fc.constant("sync" as const),
        mode: fc.constantFrom<SyncMode>("full", "full", "full", "into", "window"),
      }),
    },
    {
      weight: w(1, 0),
      arbitrary: fc.record({
        op: fc.constant("phase" as const),
        to: fc.constantFrom<"pre-copy" | "stop-copy">("pre-copy", "stop-copy"),
      }),
    },
    { weight: w(4, 6, true), arbitrary: fc.record({ op: fc.constant("map" as const), at: mapDraw }) },
    {
      weight: w(3, 1, true),
      arbitrary: fc.record({ op: fc.constant("unmap" as const), at: unmapDraw, probe: fc.boolean() }),
    },
    {
      weight: w(1, 0, true),
      arbitrary: fc.record({
        op: fc.constant("remap" as const),
        of: nat(15),
        gpa: gpaDraw,
        page: nat(1023),
        writeBefore: fc.boolean(),
        writeAfter: fc.boolean(),
      }),
    },
    { weight: w(0.5, 1, true), arbitrary: fc.constant({ op: "passthrough" as const }) },
    {
      weight: w(1.5, 0.5),
      arbitrary: fc.record({
        op: fc.constant("fault" as const),
        kind: faultKind,
        dev,
        nth: fc.integer({ min: 1, max: 3 }),
      }),
    },
  );
}

const deviceDraw: fc.Arbitrary<DeviceDraw> = fc.record({
  logging: fc.option(
    fc.record({
      maxRanges: fc.integer({ min: 1, max: 4 }),
      maxSpanLog2: fc.option(fc.constantFrom(24, 30, 33, 42), { nil: undefined }),
      minPageSize: fc.constantFrom(4 * KIB, 4 * KIB, 8 * KIB, 64 * KIB, 2 * MIB, 2 * MIB),
    }),
    { nil: undefined, freq: 3 },
  ),
  p2p: fc.boolean(),
  preCopy: fc.oneof(
    { weight: 4, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
  deviceTracking: fc.oneof(
    { weight: 6, arbitrary: fc.constant(true) },
    { weight: 1, arbitrary: fc.constant(false) },
  ),
});

const apertureDraw = fc.array(
  fc.record({
    zone: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: zoneDraw }),
    page: nat(4095),
    npages: fc.oneof(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 513, max: 8192 })),
  }),
  { minLength: 1, maxLength: 2 },
);

export const arbOracleScenario: fc.Arbitrary<OracleScenario> = fc
  .record({
    backend: fc.constantFrom<"type1" | "iommufd">("type1", "iommufd"),
    iommuDirty: fc.boolean(),
    lowPages: fc.constantFrom(768, 1000, 1024, 2065, 4096),
    highPages: fc.constantFrom(0, 0, 512, 1000),
    devices: fc.array(deviceDraw, { minLength: 1, maxLength: 3 }),
    pageSize: fc.constantFrom(4 * KIB, 4 * KIB, 4 * KIB, 4 * KIB, 8 * KIB, 64 * KIB),
    windowWords: fc.constantFrom(1, 2, 3, 4, 5, 12, 256, 1 << 22),
    viommu: fc.option(
      fc.record({
        aperture: fc.option(apertureDraw, { nil: undefined }),
        untracked: fc.constantFrom<UntrackedPolicy | undefined>(undefined, ...UNTRACKED_POLICIES),
      }),
      {
        nil: undefined,
        freq: 2,
      },
    ),
    startPhase: fc.constantFrom<Phase>("setup", "pre-copy", "pre-copy", "pre-copy", "stop-copy"),
  })
  .chain((base) => {
    const nd = base.devices.length;
    const viommu = base.viommu !== undefined;
    return fc
      .record({
        before: fc.oneof(
          { weight: 1, arbitrary: fc.constant([] as Op[]) },
          { weight: 3, arbitrary: fc.array(opDraw(nd, viommu, true), { maxLength: 6 }) },
        ),
        ops: fc.array(opDraw(nd, viommu, false), { minLength: 3, maxLength: 40 }),
      })
      .map((rest) => ({ ...base, ...rest }));
  });

/** A directed scenario: one device without DMA logging, 4 MiB of RAM, 4 KiB pages, pre-copy, type1. */
export function baseScenario(over: Partial<OracleScenario>): OracleScenario {
  return {
    backend: "type1",
    iommuDirty: false,
    lowPages: 1024,
    highPages: 0,
    devices: [{ logging: undefined, p2p: true, preCopy: true, deviceTracking: true }],
    pageSize: 4096,
    windowWords: 256,
    viommu: undefined,
    startPhase: "pre-copy",
    before: [],
    ops: [],
    ...over,
  };
}

/** PCI address of device i. */
export function bdfOf(i: number): string {
  return `0000:3b:00.${i + 1}`;
}

/** Bytes of low and high RAM: the drawn pages rounded up to the tracking page size. */
export function ramOf(s: OracleScenario): { low: bigint; high: bigint } {
  const ps = BigInt(s.pageSize);
  const round = (pages: number) => ((BigInt(pages) * 4096n + ps - 1n) / ps) * ps;
  return { low: round(s.lowPages), high: s.highPages > 0 ? round(s.highPages) : 0n };
}

/** The simulated host of a scenario. Devices never write on their own: the test issues every DMA. */
export function oracleProfile(s: OracleScenario): ProfileJson {
  const { low, high } = ramOf(s);
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  const memory: ProfileJson["memory"] = [{ gpa: "0", length: hex(low), kind: "ram" }];
  if (high > 0n) memory.push({ gpa: "4GiB", length: hex(high), kind: "ram" });
  const devices: DeviceJson[] = s.devices.map((d, i) => ({
    bdf: bdfOf(i),
    vendor: "0x15b3",
    device: "0x101e",
    driver: d.logging ? "mlx5_vfio_pci" : "vfio-pci",
    group: 20 + i,
    migration: { flags: d.p2p ? ["stop-copy", "p2p", "pre-copy"] : ["stop-copy", "pre-copy"] },
    ...(d.logging
      ? {
          dmaLogging: {
            maxRanges: d.logging.maxRanges,
            ...(d.logging.maxSpanLog2 ? { maxSpanLog2: d.logging.maxSpanLog2 } : {}),
            minPageSize: d.logging.minPageSize,
          },
        }
      : {}),
    iommuDirty: s.iommuDirty,
    workload: { kind: "idle" },
  }));
  return {
    name: "oracle",
    kernel: "6.12",
    seed: 1,
    iommu: { vendor: "intel", dirtyTracking: s.iommuDirty },
    memory,
    // An empty vIOMMU: openSim then leaves guest RAM unmapped, and the test maps through the tracker.
    ...(s.viommu ? { viommu: { mappings: [] } } : {}),
    devices,
  };
}
