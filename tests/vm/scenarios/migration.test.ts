// The edu-log test driver migrates (tests/vm/module/edu_log_mig.c): the migration state machine on
// a real kernel, together with the tracker's device DMA logging. On 6.1 the driver offers
// STOP_COPY and P2P; on 7.3 also PRE_COPY, with the 7.1 PRECOPY_INFOv2 opt-in and REINIT.
//   - PRE_COPY: the precopy info shrinks as the data fd is read; DMA register writes come back as
//     dirty bytes, a configuration change as new initial data with REINIT; STOP_COPY: the device stops DMA (one still in flight finishes
//     first and the last sync has it), BAR writes are refused, the data fd drains to its end
//   - the state read out is edu's, and resuming it puts it back
//   - ERROR (the module's mig_fail_next) and a reset during tracking: every page reported, with
//     an event, never one lost
import { readFileSync, writeFileSync } from "node:fs";
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { type DirtyReport, openTracker, type Tracker } from "@vfio-dirty/tracker";
import { Errno, IoctlError, type MappedMemory, uapi } from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterEach, describe, expect, it } from "vitest";
import { EDU_BUFFER, EDU_LOG_PARAMS } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { openTyped, type TypedSession } from "./support/typed.ts";

const PAGE = 4096n;
const A = 0x200000n;
const PAGES = 64;
const LENGTH = BigInt(PAGES) * PAGE;
/** sizeof(struct edu_mig_record): one snapshot of edu's state on the data fd. */
const RECORD = 48;
const LIVENESS = 0x04;
const FAIL_NEXT = `${EDU_LOG_PARAMS}/mig_fail_next`;
const host = createLinuxHost();
const core = loadBitmapCoreSync();
const preCopy = guest.kernelVersion >= 6002;
const v2Kernel = guest.kernelVersion >= 7001;
const { STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY, ERROR } = {
  STOP: uapi.VFIO_DEVICE_STATE_STOP,
  RUNNING: uapi.VFIO_DEVICE_STATE_RUNNING,
  STOP_COPY: uapi.VFIO_DEVICE_STATE_STOP_COPY,
  RESUMING: uapi.VFIO_DEVICE_STATE_RESUMING,
  PRE_COPY: uapi.VFIO_DEVICE_STATE_PRE_COPY,
  ERROR: uapi.VFIO_DEVICE_STATE_ERROR,
};

// Each test opens its own session (the v2 opt-in lasts until the device's last close).
let s: TypedSession | undefined;
let mem: MappedMemory | undefined;
let tracker: Tracker | undefined;
const dataFds: number[] = [];
afterEach(() => {
  tracker?.close();
  tracker = undefined;
  for (const fd of dataFds.splice(0)) host.close(fd);
  s?.close();
  s = undefined;
  if (mem) host.munmap(mem);
  mem = undefined;
});

function open(): TypedSession {
  s = openTyped(host);
  mem = host.mmapAnonymous(LENGTH);
  s.container.mapDma({ vaddr: mem.address, iova: A, length: LENGTH });
  return s;
}
function startTracker(t: TypedSession): Tracker {
  tracker = openTracker(
    { devices: [{ id: t.bdf, device: t.device }], iommu: { kind: "type1", container: t.container } },
    { core, memory: [{ iova: A, length: LENGTH, kind: "ram" }], pageSize: PAGE },
  ).tracker;
  tracker.start();
  tracker.setPhase("pre-copy");
  return tracker;
}
function setState(t: TypedSession, state: number): number {
  const { dataFd } = t.device.setMigState(state);
  if (dataFd >= 0) dataFds.push(dataFd);
  return dataFd;
}
const write = (t: TypedSession, page: number, offset = 0n) =>
  t.edu.dmaToRam(EDU_BUFFER, A + BigInt(page) * PAGE + offset, 64);
/** Everything the data fd has now (to ENOMSG or the end of the stream). */
function drain(t: TypedSession, fd: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (;;) {
    const buf = new Uint8Array(20); // odd chunks: records cross read boundaries
    const n = t.device.readMigrationData(fd, buf);
    if (!n) break;
    parts.push(buf.subarray(0, n));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe.skipIf(guest.driver !== "edu-log")(`edu-log migrates (${guest.kernel})`, () => {
  it("reports STOP_COPY and P2P, plus PRE_COPY from 6.2, and the v2 opt-in from 7.1", () => {
    const t = open();
    const want =
      uapi.VFIO_MIGRATION_STOP_COPY | uapi.VFIO_MIGRATION_P2P | (preCopy ? uapi.VFIO_MIGRATION_PRE_COPY : 0);
    expect(t.device.getMigrationFlags()).toBe(want);
    expect(t.device.getMigState()).toBe(RUNNING);
    if (preCopy) expect(t.device.getMigDataSize()).toBe(BigInt(RECORD));
    expect(t.device.precopyInfoV2Errno()).toBe(v2Kernel ? 0 : Errno.ENOTTY);
  });

  it("STOP_COPY streams edu's state and its end; resuming it puts edu's registers back", () => {
    const t = open();
    t.edu.write32(LIVENESS, 0x1234); // edu keeps the complement
    expect(t.edu.read32(LIVENESS)).toBe(~0x1234 >>> 0);
    const fd = setState(t, STOP_COPY);
    const saved = drain(t, fd);
    expect(saved.length).toBe(RECORD);
    expect(record(saved, 0)).toMatchObject({ magic: 0x4d554445, version: 1, length: RECORD, seq: 0n });
    expect(record(saved, 0).liveness).toBe(~0x1234 >>> 0);
    expect(t.device.readMigrationData(fd, new Uint8Array(8)), "end of stream").toBe(0);
    setState(t, STOP);
    expect(thrown(() => t.device.readMigrationData(fd, new Uint8Array(8)))).toMatch(/ENODEV/);

    setState(t, RUNNING);
    t.edu.write32(LIVENESS, 0x9999);
    setState(t, STOP);
    const resume = setState(t, RESUMING);
    expect(thrown(() => t.device.readMigrationData(resume, new Uint8Array(8)))).toMatch(/EBADF/);
    expect(t.device.writeMigrationData(resume, saved)).toBe(RECORD);
    setState(t, RUNNING); // RESUMING -> STOP (loads the record) -> RUNNING_P2P -> RUNNING
    expect(t.edu.read32(LIVENESS)).toBe(~0x1234 >>> 0);
  });

  it("RESUMING -> STOP without a whole record is refused and the state stays", () => {
    const t = open();
    setState(t, STOP);
    const fd = setState(t, RESUMING);
    t.device.writeMigrationData(fd, new Uint8Array(RECORD - 1));
    expect(errnoOf(() => t.device.setMigState(STOP))).toBe(Errno.EINVAL);
    expect(t.device.getMigState()).toBe(RESUMING);
  });

  it("RUNNING -> PRE_COPY -> STOP_COPY -> STOP with the tracker: exact syncs, precopy info, REINIT, a stopped device", () => {
    const t = open();
    if (!preCopy) {
      // 6.1's state machine has no PRE_COPY: the state number is past its table.
      expect(errnoOf(() => t.device.setMigState(PRE_COPY))).toBe(Errno.EINVAL);
      expect(t.device.getMigState()).toBe(RUNNING);
      return;
    }
    const tr = startTracker(t);
    if (v2Kernel) expect(t.device.enablePrecopyInfoV2()).toBe(true);
    const fd = setState(t, PRE_COPY);
    expect(t.device.getPrecopyInfo(fd)).toMatchObject({
      initialBytes: BigInt(RECORD),
      dirtyBytes: 0n,
      reinit: false,
    });

    // Reading the data fd shrinks the initial bytes; at the end of data, ENOMSG.
    expect(t.device.readMigrationData(fd, new Uint8Array(16))).toBe(16);
    expect(t.device.getPrecopyInfo(fd)).toMatchObject({
      initialBytes: BigInt(RECORD - 16),
      dirtyBytes: 0n,
    });
    expect(t.device.readMigrationData(fd, new Uint8Array(4096))).toBe(RECORD - 16);
    expect(t.device.getPrecopyInfo(fd)).toMatchObject({ initialBytes: 0n, dirtyBytes: 0n });
    expect(t.device.readMigrationData(fd, new Uint8Array(16)), "ENOMSG").toBeNull();

    // The device runs in PRE_COPY: its DMA is logged and synced exactly, and the DMA registers
    // it set are running state the data fd has again, as dirty bytes.
    write(t, 1);
    expect(pages(tr.sync())).toEqual([1]);
    expect(t.device.getPrecopyInfo(fd)).toMatchObject({
      initialBytes: 0n,
      dirtyBytes: BigInt(RECORD),
      reinit: false,
    });
    expect(record(drain(t, fd), 0)).toMatchObject({ seq: 1n, dmaDst: A + PAGE, dmaCnt: 64n });

    // A configuration change during pre-copy: new initial data (REINIT) on 7.1+.
    t.edu.write32(LIVENESS, 0x55);
    const info = t.device.getPrecopyInfo(fd);
    if (v2Kernel) expect(info).toMatchObject({ initialBytes: BigInt(RECORD), dirtyBytes: 0n, reinit: true });
    else expect(info).toMatchObject({ initialBytes: 0n, dirtyBytes: BigInt(RECORD), reinit: false });
    const again = drain(t, fd);
    expect(again.length).toBe(RECORD);
    expect(record(again, 0)).toMatchObject({ seq: 2n, liveness: ~0x55 >>> 0 });

    // A DMA still in flight when STOP_COPY is asked for: the driver waits for it, and from then
    // on the device issues none (its BAR refuses writes).
    mem!.bytes.fill(0, 0, Number(LENGTH));
    t.edu.startDmaToRam(EDU_BUFFER, A + 3n * PAGE, 64);
    setState(t, STOP_COPY);
    expect(t.edu.dmaRunning()).toBe(false);
    expect(thrown(() => write(t, 4))).toMatch(/EBUSY/);
    tr.setPhase("stop-copy");
    const last = tr.sync();
    expect(pages(last), "the last sync has what the device wrote before it stopped").toEqual([3]);
    const final = drain(t, fd);
    expect(final.length).toBe(RECORD);
    expect(record(final, 0)).toMatchObject({ seq: 3n, liveness: ~0x55 >>> 0, dmaDst: A + 3n * PAGE });
    expect(t.device.readMigrationData(fd, new Uint8Array(8)), "end of stream").toBe(0);
    setState(t, STOP);
    expect(pages(tr.sync())).toEqual([]);
    expect(tr.events.filter((e) => e.kind === "unhealthy")).toEqual([]);
  });

  it("without the v2 opt-in, the change is dirty bytes and flags come back as sent", () => {
    const t = open();
    if (!preCopy) {
      // 6.1 has no VFIO_MIG_GET_PRECOPY_INFO: the driver's data fd has no ioctl at all.
      const stopCopy = setState(t, STOP_COPY);
      expect(host.ioctl(stopCopy, uapi.VFIO_MIG_GET_PRECOPY_INFO, uapi.encodePrecopyInfo())).toBe(
        -Errno.ENOTTY,
      );
      return;
    }
    const fd = setState(t, PRE_COPY);
    drain(t, fd);
    t.edu.write32(LIVENESS, 0x77);
    const raw = uapi.encodePrecopyInfo({ flags: 0x5a5a });
    expect(host.ioctl(fd, uapi.VFIO_MIG_GET_PRECOPY_INFO, raw)).toBe(0);
    expect(uapi.decodePrecopyInfo(raw)).toMatchObject({
      flags: 0x5a5a,
      initialBytes: 0n,
      dirtyBytes: BigInt(RECORD),
    });
  });

  it("ERROR during tracking: every page is reported, with an event; a reset leads out of it", () => {
    const t = open();
    const tr = startTracker(t);
    write(t, 4);
    writeFileSync(FAIL_NEXT, "1");
    expect(errnoOf(() => t.device.setMigState(STOP))).toBe(Errno.EIO);
    expect(readFileSync(FAIL_NEXT, "utf8").trim()).toBe("0");
    expect(t.device.getMigState()).toBe(ERROR);
    expect(thrown(() => write(t, 5))).toMatch(/EIO/);
    const report = tr.sync();
    expect(report.dirtyPages, "everything the log covers").toBe(PAGES);
    expect(tr.events.map((e) => e.kind)).toContain("unhealthy");
    expect(
      errnoOf(() => t.device.setMigState(RUNNING)),
      "no way out of ERROR but a reset",
    ).toBe(Errno.EINVAL);
    t.device.reset();
    expect(t.device.getMigState()).toBe(RUNNING);
    expect(tr.sync().dirtyPages, "the reset is seen: everything again").toBe(PAGES);
    expect(tr.sync().dirtyPages, "and the restarted log's first read").toBe(PAGES);
    write(t, 6);
    expect(pages(tr.sync())).toEqual([6]);
  });

  it("a reset forgets the driver's log; during tracking the tracker sees it and reports everything", () => {
    const t = open();
    // The driver alone: a reset loses what the log held, as a function reset does to a device.
    const logPage = t.device.dmaLoggingStart([{ iova: A, length: LENGTH }], PAGE);
    write(t, 7);
    t.device.reset();
    const bitmap = new Uint8Array(8);
    t.device.dmaLoggingReport({ iova: A, length: LENGTH, pageSize: logPage, bitmap });
    expect(
      bitmap.every((b) => b === 0),
      "the reset dropped page 7 from the log",
    ).toBe(true);
    t.device.dmaLoggingStop();

    // With the tracker: it counts the resets made through the device it tracks, so the lost log
    // is seen whatever state the device is back in.
    const tr = startTracker(t);
    if (preCopy) setState(t, PRE_COPY);
    write(t, 8);
    t.device.reset();
    expect(t.device.getMigState()).toBe(RUNNING);
    const report = tr.sync();
    expect(report.dirtyPages, "page 8 is in the log no more, so everything is reported").toBe(PAGES);
    expect(tr.events.find((e) => e.kind === "unhealthy")?.message).toMatch(/reset/);
    expect(tr.sync().dirtyPages, "the restarted log's first read").toBe(PAGES);
    write(t, 9);
    expect(pages(tr.sync())).toEqual([9]);
  });
});

// --- Internal helpers ---

/** struct edu_mig_record at `offset` (edu_log_mig.c). */
function record(bytes: Uint8Array, offset: number) {
  const v = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD);
  return {
    magic: v.getUint32(0, true),
    version: v.getUint16(4, true),
    length: v.getUint16(6, true),
    liveness: v.getUint32(8, true),
    status: v.getUint32(12, true),
    dmaSrc: v.getBigUint64(16, true),
    dmaDst: v.getBigUint64(24, true),
    dmaCnt: v.getBigUint64(32, true),
    seq: v.getBigUint64(40, true),
  };
}

/** Dirty pages of a report relative to A (GPA = IOVA here). */
function pages(report: DirtyReport): number[] {
  const base = Number(A / report.pageSize);
  const out: number[] = [];
  for (const [start, length] of report.bitmap!.runs())
    for (let i = 0; i < length; i++) out.push(start + i - base);
  expect(out.length).toBe(report.dirtyPages);
  return out;
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof IoctlError) return e.errno;
    throw e;
  }
  return 0;
}

function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  throw new Error("expected a throw");
}
