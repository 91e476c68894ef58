// Device DMA logging conformance: what `vfio-dirty check` asks of a driver's log_ops beyond the
// errno rules of device.ts. Each scenario observes one behaviour through the raw
// VFIO_DEVICE_FEATURE calls (so a wrong answer is recorded, not thrown at) and returns it as a
// small JSON result; the CLI's rules judge those results (packages/cli/src/check/rules/).
//
// Geometry: a 16 MiB window at the first 2 MiB boundary above the target's IOVA base (2 MiB with
// the default base: below edu's 256 MiB DMA limit), logged from START; each scenario maps for the
// device's DMA only the part of it that it writes (pinning 16 MiB per scenario is slow on a real
// host). Logging pages up to 2 MiB are whole inside it, so every REPORT below covers whole logging
// pages unless it means not to (partial-page).
//
//   const list = [...loggingScenarios, ...pageSizeScenarios(2n << 20n)];
//   await runScenarios(target, list);   // e.g. { id: "device.logging.exact@2M", result: { missingCount: 0, ... } }

import { errnoName, IoctlError } from "../errors.ts";
import {
  type DmaLoggingRange,
  decodeDeviceFeature,
  decodeDmaLoggingControl,
  encodeDeviceFeature,
  encodeDmaLoggingControl,
  encodeDmaLoggingRanges,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
} from "../uapi/index.ts";
import type { Device } from "../vfio/index.ts";
import { feature, sendReport } from "./device.ts";
import {
  errnoOf,
  jsonable,
  needs,
  type Outcome,
  type Scenario,
  type ScenarioTarget,
  type Session,
} from "./scenario.ts";

const PAGE = 4096n;
const MIB = 1n << 20n;
/** Windows start on a 2 MiB boundary, so logging pages up to 2 MiB are whole inside them. */
const ALIGN = 2n * MIB;
/** The mapped window: 4096 pages of 4 KiB. */
const WINDOW = 16n * MIB;
/** Bytes each DMA writes: a small write inside one page, not at its start. */
const WRITE = 64n;
const AT = 0x40n;
/**
 * REPORTs start and end on this boundary (or a larger logging page's) unless cutting a page is the
 * point: a driver that logs at a larger page than it wrote back (up to this) then never hands
 * iova_bitmap_set a page that starts before the REPORT or ends past its bitmap (which writes past
 * the caller's bitmap on kernels before the 6.11 iova_bitmap fixes).
 */
const SAFE_ALIGN = 64n * 1024n;
/** Pages the exactness scenario writes at random (plus the window's first and last page). */
const RANDOM_PAGES = 10;

/** A page size as check names it: 4K, 64K, 2M. */
export function pageSizeName(pageSize: bigint): string {
  if (pageSize >= MIB && pageSize % MIB === 0n) return `${pageSize / MIB}M`;
  if (pageSize >= 1024n && pageSize % 1024n === 0n) return `${pageSize / 1024n}K`;
  return `${pageSize}`;
}

/** The scenarios that do not depend on a page size asked for. */
export const loggingScenarios: Scenario[] = [
  {
    id: "device.logging.probe-ops",
    rule: "PROBE of START (SET), STOP (SET) and REPORT (GET) agree: all succeed, or all are ENOTTY; PROBE|GET of START is refused",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_{start,stop,report} -> vfio_check_feature",
    expected: { errno: null },
    skip: needs.device,
    run: (_t, s) => {
      const { device } = s.device();
      const probe = (flags: number) => feature(s, device, flags | VFIO_DEVICE_FEATURE_PROBE).errno ?? "OK";
      return {
        errno: null,
        result: {
          start: probe(START),
          stop: probe(STOP),
          report: probe(REPORT),
          startGet: probe(VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_GET),
        },
      };
    },
  },
  {
    id: "device.logging.range-count",
    rule: "DMA_LOGGING_START with 256 one-page ranges succeeds (the core guarantees what fits in a page); else the largest count accepted",
    kernel: "vfio_main.c LOG_MAX_RANGES; driver log_start (mlx5: vfio_combine_iova_ranges)",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) =>
      steps(async () => {
        const { device, base } = openLogged(s);
        // No DMA here, so nothing is mapped.
        const ranges = (n: number) =>
          Array.from({ length: n }, (_, i) => ({ iova: base + BigInt(i) * 2n * PAGE, length: PAGE }));
        let refused256: string | null = null;
        for (let n = 256; n >= 1; n /= 2) {
          const r = startRaw(s, device, ranges(n), PAGE);
          if (r.errno === null) {
            must("STOP", stopLogging(s, device));
            return { largest: n, refused256 };
          }
          if (n === 256) refused256 = r.errno;
        }
        return { largest: 0, refused256 };
      }),
  },
  {
    id: "device.logging.many-ranges",
    rule: "After START with 8 disjoint ranges, a write at the end of each is reported; a write between two ranges shows whether the driver combines them",
    kernel: "driver log_start + log_read_and_clear (mlx5: vfio_combine_iova_ranges, smallest gap first)",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, map } = openLogged(s);
        // Ranges of 512 KiB every 2 MiB: gaps of 1.5 MiB, wider than any logging page up to 1 MiB.
        const ranges = Array.from({ length: 8 }, (_, i) => ({
          iova: base + BigInt(i) * ALIGN,
          length: 512n * 1024n,
        }));
        const granted = mustStart(s, device, ranges, PAGE);
        map(0n, WINDOW);
        for (const r of ranges) await write(t, r.iova + r.length - PAGE);
        const gap = base + MIB;
        await write(t, gap);
        const rep = mustReport(s, device, base, WINDOW, PAGE);
        const missingRanges = ranges
          .map((r, i) => ({ i, bit: bitOf(r.iova + r.length - PAGE, base, PAGE) }))
          .filter((x) => !rep.bits.has(x.bit))
          .map((x) => x.i);
        return { granted, missingRanges, gapLogged: rep.bits.has(bitOf(gap, base, PAGE)) };
      }),
  },
  {
    id: "device.logging.span-limit",
    rule: "DMA_LOGGING_START over one range of 2^32 .. 2^48 bytes: the largest span accepted and the errno beyond it",
    kernel: "driver log_start (mlx5vf_create_tracker: log_addr_space_size -> EOPNOTSUPP)",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) =>
      steps(async () => {
        const { device } = s.device();
        let largestLog2: number | null = null;
        for (let log2 = 32; log2 <= 48; log2 += 2) {
          const r = startRaw(s, device, [{ iova: 0n, length: 1n << BigInt(log2) }], PAGE);
          if (r.errno !== null) return { largestLog2, refusedLog2: log2, refusedErrno: r.errno };
          must("STOP", stopLogging(s, device));
          largestLog2 = log2;
        }
        return { largestLog2, refusedLog2: null, refusedErrno: null };
      }),
  },
  {
    id: "device.logging.qemu-ranges",
    rule: "DMA_LOGGING_START with QEMU's three ranges (below 4 GiB, above 4 GiB, 64-bit PCI hole) at 4 KiB succeeds",
    kernel: "QEMU hw/vfio/listener.c vfio_device_feature_dma_logging_start_create; driver log_start",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) => {
      const { device } = s.device();
      const GIB = 1n << 30n;
      const r = startRaw(
        s,
        device,
        [
          { iova: 0n, length: 3n * GIB },
          { iova: 4n * GIB, length: 4n * GIB },
          { iova: 32n * GIB, length: 256n * MIB },
        ],
        PAGE,
      );
      if (r.errno === null) s.defer(() => void stopLogging(s, device));
      return { errno: r.errno };
    },
  },
  {
    id: "device.logging.sub-range",
    rule: "A REPORT of one whole logging page leaves a write in the next logging page logged",
    kernel: "vfio.h DMA_LOGGING_REPORT: the log is cleared for the IOVA range (driver log_read_and_clear)",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, granted } = startWindow(s, PAGE, (g) => 2n * g);
        await write(t, base);
        await write(t, base + granted);
        mustReport(s, device, base, granted, granted);
        const rest = mustReport(s, device, base, WINDOW, granted);
        return { granted, restKept: rest.bits.has(1) };
      }),
  },
  {
    id: "device.logging.partial-page",
    rule: "A REPORT of the first half of an 8 KiB (or larger) logging page: is the page reported, and is a write in its other half still logged after?",
    kernel: "driver log_read_and_clear (the page it clears) + iova_bitmap_set (the bits it sets)",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, granted } = startWindow(
          s,
          2n * PAGE,
          (g) => (g > SAFE_ALIGN ? g : SAFE_ALIGN) + g,
        );
        if (granted < 2n * PAGE) return { granted, cut: false };
        // A logging page on a 64 KiB boundary: the REPORT starts where a real logging page of up
        // to 64 KiB starts too, even for a driver that wrote back a smaller size than it logs at.
        const page = base + (granted > SAFE_ALIGN ? granted : SAFE_ALIGN);
        const half = granted / 2n;
        await write(t, page + half);
        const first = mustReport(s, device, page, half, PAGE);
        const after = mustReport(s, device, page, granted, PAGE);
        return { granted, cut: true, reported: first.bits.size > 0, restKept: after.bits.size > 0 };
      }),
  },
  {
    id: "device.logging.coarser-finer",
    rule: "After START at 8 KiB: a REPORT at twice the logging page sets the bit covering a written page; one at half of it sets both halves",
    kernel:
      "vfio.h DMA_LOGGING_REPORT: any power-of-two page_size; the driver formats its log to it (iova_bitmap_set)",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, granted } = startWindow(s, 2n * PAGE, (g) => 6n * g);
        await write(t, base + 3n * granted);
        const coarse = mustReport(s, device, base, WINDOW, 2n * granted);
        if (granted < 2n * PAGE) return { granted, coarse: listBits(coarse.bits), fine: null };
        await write(t, base + 5n * granted);
        const fine = mustReport(s, device, base, WINDOW, granted / 2n);
        return { granted, coarse: listBits(coarse.bits), fine: listBits(fine.bits) };
      }),
  },
  {
    id: "device.logging.outside-range",
    rule: "A REPORT of a few whole logging pages sets no bit past them in its bitmap word, though the page right after was written",
    kernel: "vfio.h DMA_LOGGING_REPORT: written pages within the given IOVA range",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, granted } = startWindow(s, PAGE, (g) => roundUp(3n * g, SAFE_ALIGN) + g);
        // Three logging pages, rounded up to 64 KiB: a driver whose real logging page (up to
        // 64 KiB) is larger than the one it wrote back still has none crossing the range's end,
        // so every bit past it comes from a page past it.
        const length = roundUp(3n * granted, SAFE_ALIGN);
        await write(t, base + length);
        const r = mustReport(s, device, base, length, granted);
        return { granted, outside: listBits(r.outside) };
      }),
  },
  {
    id: "device.logging.after-stop",
    rule: "DMA_LOGGING_REPORT after START and STOP is refused",
    kernel: "vfio.h DMA_LOGGING_REPORT: if DMA logging is not enabled, an error will be returned",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) => {
      const { device, base } = openLogged(s);
      const started = startRaw(s, device, [{ iova: base, length: WINDOW }], PAGE);
      if (started.errno !== null) return { errno: started.errno, result: { failedStep: "START" } };
      const stopped = stopLogging(s, device);
      if (stopped.errno !== null) return { errno: stopped.errno, result: { failedStep: "STOP" } };
      // Whatever the answer, logging must not outlive the scenario: the device's close stops it.
      return { errno: report(s, device, base, WINDOW, PAGE).errno };
    },
  },
  {
    id: "device.logging.restart",
    rule: "START, write, STOP, START again, write: the second session is accepted and reports its write",
    kernel: "vfio.h DMA_LOGGING_START: a matching stop follows a start; error recovery restarts tracking",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, granted } = startWindow(s, PAGE, (g) => 3n * g);
        await write(t, base + granted);
        must("STOP", stopLogging(s, device));
        const again = startRaw(s, device, [{ iova: base, length: WINDOW }], PAGE);
        if (again.errno !== null) throw new StepFailed("second START", again.errno);
        s.defer(() => void stopLogging(s, device));
        await write(t, base + 2n * granted);
        const r = mustReport(s, device, base, WINDOW, again.granted);
        return {
          granted: again.granted,
          newReported: r.bits.has(bitOf(base + 2n * granted, base, again.granted)),
          staleReported: r.bits.has(bitOf(base + granted, base, again.granted)),
        };
      }),
  },
  {
    id: "device.logging.report-unstarted",
    rule: "A REPORT of mapped memory outside the started ranges, where the device wrote: its answer and the bits it sets",
    kernel: "the uAPI leaves it open (driver log_read_and_clear)",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: (t, s) =>
      steps(async () => {
        const { device, base, map } = openLogged(s);
        mustStart(s, device, [{ iova: base, length: ALIGN }], PAGE);
        // The page right after the started range (and after its logging page, up to 2 MiB).
        const outside = base + ALIGN;
        map(ALIGN, SAFE_ALIGN);
        await write(t, outside);
        const r = report(s, device, outside, ALIGN, PAGE);
        return { report: r.errno ?? "OK", bits: r.bits.size };
      }),
  },
];

/** The scenarios that run once per page size asked for (ids end in "@4K", "@2M"). */
export function pageSizeScenarios(pageSize: bigint): Scenario[] {
  const at = `@${pageSizeName(pageSize)}`;
  return [
    {
      id: `device.logging.start-page-size${at}`,
      rule: `DMA_LOGGING_START asked for ${pageSizeName(pageSize)} pages writes back the page size it logs at`,
      kernel: "vfio.h DMA_LOGGING_START: on output the device returns the page size it selected",
      expected: { errno: null },
      skip: needs.logging,
      run: (_t, s) =>
        steps(async () => {
          const { device } = s.device();
          const granted = mustStart(s, device, [{ iova: windowBase(s), length: WINDOW }], pageSize);
          return { asked: pageSize, granted };
        }),
    },
    {
      id: `device.logging.exact${at}`,
      rule: `After START at ${pageSizeName(pageSize)}, a REPORT at ${pageSizeName(pageSize)} sets the bit of every page the device wrote (random pages, the window's first and last); the same REPORT right after sets none`,
      kernel: "vfio.h DMA_LOGGING_REPORT: written pages within the given IOVA range",
      expected: { errno: null },
      skip: needs.loggingDma,
      run: (t, s) =>
        steps(async () => {
          const { device, base, granted } = startWindow(s, pageSize, () => WINDOW);
          const pages = writePages(Number(pageSize / PAGE));
          for (const p of pages) await write(t, base + BigInt(p) * PAGE);
          const r = mustReport(s, device, base, WINDOW, pageSize);
          const again = mustReport(s, device, base, WINDOW, pageSize);
          const expected = new Set(pages.map((p) => bitOf(base + BigInt(p) * PAGE, base, pageSize)));
          const missing = [...expected].filter((b) => !r.bits.has(b)).sort((a, b) => a - b);
          return {
            granted,
            written: pages.length,
            missingCount: missing.length,
            missing: missing.slice(0, 8).map((b) => base + BigInt(b) * pageSize),
            extra: [...r.bits].filter((b) => !expected.has(b)).length,
            // Clear-on-read: the same REPORT right after.
            again: again.bits.size,
          };
        }),
    },
  ];
}

// --- Internal helpers ---

const START = VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_SET;
const STOP = VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP | VFIO_DEVICE_FEATURE_SET;
const REPORT = VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT | VFIO_DEVICE_FEATURE_GET;

/** A driver call that failed: the outcome names the step and carries its errno. */
class StepFailed extends Error {
  constructor(
    readonly step: string,
    readonly errno: string,
  ) {
    super(`${step}: ${errno}`);
  }
}

/** Runs a scenario's steps: the JSON-able result, or the errno of the step that failed. */
async function steps(fn: () => Promise<Record<string, unknown>>): Promise<Outcome> {
  try {
    return { errno: null, result: jsonable(await fn()) };
  } catch (e) {
    if (e instanceof StepFailed) return { errno: e.errno, result: { failedStep: e.step } };
    if (e instanceof IoctlError) return { errno: errnoName(e.errno), result: { failedStep: e.op } };
    throw e;
  }
}

function must(step: string, o: Outcome): void {
  if (o.errno !== null) throw new StepFailed(step, o.errno);
}

/** The first 2 MiB boundary at or above the target's IOVA base. */
function windowBase(s: Session): bigint {
  return ((s.iova + ALIGN - 1n) / ALIGN) * ALIGN;
}

/**
 * The device opened as the target says, at the window's base; `map(offset, length)` maps fresh
 * memory for its DMA there (rounded up to 64 KiB), the only memory it can write.
 */
function openLogged(s: Session): { device: Device; base: bigint; map(offset: bigint, length: bigint): void } {
  const { container, device } = s.device();
  const base = windowBase(s);
  const map = (offset: bigint, length: bigint) => {
    const bytes = roundUp(length, SAFE_ALIGN);
    const mem = s.memory(bytes);
    container.mapDma({ vaddr: mem.address, iova: base + offset, length: bytes });
  };
  return { device, base, map };
}

/** DMA_LOGGING_START as sent, with the page size the kernel wrote back (unchecked, unlike Device's). */
function startRaw(
  s: Session,
  device: Device,
  ranges: readonly DmaLoggingRange[],
  pageSize: bigint,
): { errno: string | null; granted: bigint } {
  const array = encodeDmaLoggingRanges(ranges);
  const control = encodeDmaLoggingControl({
    pageSize,
    numRanges: ranges.length,
    ranges: s.t.host.addressOf(array),
  });
  const buf = encodeDeviceFeature(START, control);
  const errno = errnoOf(s.t.host.ioctl(device.fd, VFIO_DEVICE_FEATURE, buf));
  return { errno, granted: decodeDmaLoggingControl(decodeDeviceFeature(buf).data).pageSize };
}

/**
 * The window logged from a START at `pageSize` (which must succeed), with the page size granted,
 * and the first `mapped(granted)` bytes of it mapped for the device's DMA.
 */
function startWindow(
  s: Session,
  pageSize: bigint,
  mapped: (granted: bigint) => bigint,
): { device: Device; base: bigint; granted: bigint } {
  const { device, base, map } = openLogged(s);
  const granted = mustStart(s, device, [{ iova: base, length: WINDOW }], pageSize);
  map(0n, mapped(granted));
  return { device, base, granted };
}

/** START that must succeed; logging is stopped when the scenario ends. Returns the page size granted. */
function mustStart(s: Session, device: Device, ranges: readonly DmaLoggingRange[], pageSize: bigint): bigint {
  const r = startRaw(s, device, ranges, pageSize);
  if (r.errno !== null) throw new StepFailed("START", r.errno);
  s.defer(() => void stopLogging(s, device));
  return r.granted;
}

function stopLogging(s: Session, device: Device): Outcome {
  return feature(s, device, STOP);
}

/**
 * DMA_LOGGING_REPORT of [iova, iova + length) at `pageSize` into a fresh bitmap of whole words:
 * the bits set inside the range, and those set past its end in its last word.
 */
function report(
  s: Session,
  device: Device,
  iova: bigint,
  length: bigint,
  pageSize: bigint,
): { errno: string | null; bits: Set<number>; outside: Set<number> } {
  const nbits = Number((length + pageSize - 1n) / pageSize);
  // The bitmap gets pages of its own: for a logging page that crosses the REPORT's end,
  // iova_bitmap_set writes on past the bitmap's words to the end of the user page they are in, so
  // a driver with logging pages larger than a REPORT must not write into the caller's heap.
  const bytes = BigInt(Math.ceil(nbits / 64) * 8);
  const bm = s.memory(((bytes + PAGE - 1n) / PAGE) * PAGE).bytes;
  const { errno } = sendReport(s, device, iova, length, pageSize, bm.subarray(0, Number(bytes)));
  const bits = new Set<number>();
  const outside = new Set<number>();
  for (let i = 0; i < bm.length * 8; i++)
    if (bm[i >>> 3]! & (1 << (i & 7))) (i < nbits ? bits : outside).add(i);
  return { errno, bits, outside };
}

function mustReport(s: Session, device: Device, iova: bigint, length: bigint, pageSize: bigint) {
  const r = report(s, device, iova, length, pageSize);
  if (r.errno !== null) throw new StepFailed("REPORT", r.errno);
  return r;
}

/** The device writes a few bytes into the page at `iova`. */
async function write(t: ScenarioTarget, iova: bigint): Promise<void> {
  await t.dma!(iova + AT, WRITE);
}

function roundUp(x: bigint, to: bigint): bigint {
  return ((x + to - 1n) / to) * to;
}

function bitOf(iova: bigint, base: bigint, pageSize: bigint): number {
  return Number((iova - base) / pageSize);
}

/** Up to 16 bit indexes, ascending: enough to read, small enough to compare. */
function listBits(bits: Set<number>): number[] {
  return [...bits].sort((a, b) => a - b).slice(0, 16);
}

/**
 * The 4 KiB pages the exactness scenario writes: the window's first and last, and RANDOM_PAGES
 * more from a fixed seed (per page size, so each size sees other pages), each in its own
 * `pagesPerBit` group so that every write is its own expected bit.
 */
function writePages(pagesPerBit: number): number[] {
  const total = Number(WINDOW / PAGE);
  const groups = total / pagesPerBit;
  let seed = 0x9e3779b9 ^ pagesPerBit;
  const next = () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const chosen = new Set<number>([0, groups - 1]);
  while (chosen.size < Math.min(groups, RANDOM_PAGES + 2)) chosen.add(Math.floor(next() * groups));
  return [...chosen]
    .sort((a, b) => a - b)
    .map((g) =>
      g === 0 ? 0 : g === groups - 1 ? total - 1 : g * pagesPerBit + Math.floor(next() * pagesPerBit),
    );
}
