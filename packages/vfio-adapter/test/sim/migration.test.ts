// The simulated host's migration data sessions: PRE_COPY info shrinking as data is read, REINIT
// only after the 7.1 PRECOPY_INFOv2 opt-in (without it `flags` comes back as sent), STOP_COPY's
// end of stream, resume, and what ends a session. Checked through the typed Device (so the same
// bytes a real kernel gets) and, for random call sequences, against a stream-position oracle.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Errno, IoctlError, SyscallError } from "../../src/errors.ts";
import { createSimHost, parseProfile, type SimHost } from "../../src/sim/index.ts";
import type { DeviceJson } from "../../src/sim/profile.ts";
import {
  decodePrecopyInfo,
  encodePrecopyInfo,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_RESUMING,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY,
  VFIO_MIG_GET_PRECOPY_INFO,
  VFIO_PRECOPY_INFO_REINIT,
} from "../../src/uapi/index.ts";
import type { Device } from "../../src/vfio/index.ts";
import { BDF, profileJson, type1Device } from "./helpers.ts";

const INITIAL = 48n;
const STATE = 64n;

function host(kernel = "7.3", mig: Partial<NonNullable<DeviceJson["migration"]>> = {}): SimHost {
  return createSimHost(
    parseProfile(
      profileJson(
        { kernel },
        {
          migration: {
            flags: ["stop-copy", "p2p", "pre-copy"],
            stateBytes: Number(STATE),
            precopyInitialBytes: Number(INITIAL),
            precopyDirtyBytes: 0,
            ...mig,
          },
        },
      ),
    ),
  );
}

function errnoOf(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof IoctlError || e instanceof SyscallError) return e.errno;
    throw e;
  }
  return 0;
}

/** Reads `n` bytes (or to the end) from the data fd; returns the count (null for ENOMSG). */
function read(device: Device, fd: number, n: number): number | null {
  return device.readMigrationData(fd, new Uint8Array(n));
}

/** PRECOPY_INFO with `flags` passed in, raw: { flags, initialBytes, dirtyBytes } or the errno. */
function rawInfo(h: SimHost, fd: number, flags: number) {
  const b = encodePrecopyInfo({ flags });
  const rc = h.ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, b);
  return rc < 0 ? -rc : decodePrecopyInfo(b);
}

describe("PRE_COPY data session", () => {
  it("initial bytes shrink as they are read, then the temporary end of data is ENOMSG", () => {
    const h = host();
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({
      initialBytes: INITIAL,
      dirtyBytes: 0n,
      reinit: false,
    });
    expect(read(device, dataFd, 16)).toBe(16);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: INITIAL - 16n, dirtyBytes: 0n });
    expect(read(device, dataFd, 4096)).toBe(Number(INITIAL) - 16);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 0n, dirtyBytes: 0n });
    expect(read(device, dataFd, 16)).toBeNull();
  });

  it("a running device's dirty state shows once the initial data is read, never before", () => {
    const h = host("7.3", { precopyDirtyBytes: 100 });
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: INITIAL, dirtyBytes: 0n });
    read(device, dataFd, Number(INITIAL));
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 0n, dirtyBytes: 100n });
    expect(read(device, dataFd, 30)).toBe(30);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 0n, dirtyBytes: 70n });
  });

  it("with the v2 opt-in, a reconfiguration is new initial data flagged REINIT", () => {
    const h = host();
    const { device } = type1Device(h);
    expect(device.enablePrecopyInfoV2()).toBe(true);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    read(device, dataFd, 40);
    h.reconfigureDevice(BDF);
    // The 8 unread bytes count as initial again, with the whole new state after them.
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({
      initialBytes: 8n + INITIAL,
      dirtyBytes: 0n,
      reinit: true,
    });
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 8n + INITIAL, reinit: false });
  });

  it("without the opt-in the same change is dirty bytes, and flags come back as passed in", () => {
    const h = host();
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    read(device, dataFd, Number(INITIAL));
    h.reconfigureDevice(BDF);
    expect(rawInfo(h, dataFd, 0x5a5a)).toMatchObject({
      flags: 0x5a5a,
      initialBytes: 0n,
      dirtyBytes: INITIAL,
    });
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ flags: 0, reinit: false });
  });

  it("after the opt-in the kernel zeroes flags before answering", () => {
    const h = host();
    const { device } = type1Device(h);
    device.enablePrecopyInfoV2();
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    expect(rawInfo(h, dataFd, 0x5a5a)).toMatchObject({ flags: 0, initialBytes: INITIAL });
    h.reconfigureDevice(BDF);
    expect(rawInfo(h, dataFd, 0x5a5a)).toMatchObject({ flags: VFIO_PRECOPY_INFO_REINIT });
  });

  it("reinitAfterMs reconfigures on the clock, once per entry", () => {
    const h = host("7.3", { reinitAfterMs: [10, 30] });
    const { device } = type1Device(h);
    device.enablePrecopyInfoV2();
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    read(device, dataFd, Number(INITIAL));
    h.run(5);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 0n, reinit: false });
    h.run(10);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: INITIAL, reinit: true });
    expect(device.getPrecopyInfo(dataFd).reinit).toBe(false);
    h.run(20);
    expect(device.getPrecopyInfo(dataFd)).toMatchObject({ initialBytes: 2n * INITIAL, reinit: true });
  });

  it("the opt-in lasts until the device's last close", () => {
    const h = host();
    const first = type1Device(h);
    first.device.enablePrecopyInfoV2();
    first.device.close();
    const again = first.group.getDevice(BDF);
    const { dataFd } = again.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    read(again, dataFd, Number(INITIAL));
    h.reconfigureDevice(BDF);
    expect(rawInfo(h, dataFd, 0x11)).toMatchObject({ flags: 0x11, dirtyBytes: INITIAL });
  });
});

describe("MIG_PRECOPY_INFOv2", () => {
  it("is ENOTTY before 7.1 (the feature does not exist) and changes nothing", () => {
    const h = host("7.0");
    const { device } = type1Device(h);
    expect(device.precopyInfoV2Errno()).toBe(Errno.ENOTTY);
    expect(device.enablePrecopyInfoV2()).toBe(false);
    expect(device.precopyInfoV2).toBe(false);
  });

  it("is EINVAL for PROBE and SET on a device without PRE_COPY, and SET only otherwise", () => {
    const noPre = createSimHost(
      parseProfile(profileJson({ kernel: "7.3" }, { migration: { flags: ["stop-copy", "p2p"] } })),
    );
    expect(type1Device(noPre).device.precopyInfoV2Errno()).toBe(Errno.EINVAL);
    const noMig = createSimHost(parseProfile(profileJson({ kernel: "7.3" }, { migration: undefined })));
    expect(type1Device(noMig).device.precopyInfoV2Errno()).toBe(Errno.EINVAL);
    const { device } = type1Device(host());
    expect(device.precopyInfoV2Errno()).toBe(0);
    // SET only: a PROBE of GET is the core's EINVAL (vfio_check_feature).
    expect(device.featureProbeErrno(VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, VFIO_DEVICE_FEATURE_GET)).toBe(
      Errno.EINVAL,
    );
  });
});

describe("STOP_COPY, resume and the end of a session", () => {
  it("STOP_COPY from STOP streams the final state, then the end of stream", () => {
    const h = host();
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_STOP_COPY);
    expect(read(device, dataFd, 40)).toBe(40);
    expect(read(device, dataFd, 4096)).toBe(Number(STATE) - 40);
    expect(read(device, dataFd, 4096)).toBe(0);
    expect(errnoOf(() => device.getPrecopyInfo(dataFd))).toBe(Errno.EINVAL);
  });

  it("STOP_COPY after PRE_COPY streams what was not read plus the final state", () => {
    const h = host();
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    read(device, dataFd, 8);
    expect(device.setMigState(VFIO_DEVICE_STATE_STOP_COPY).dataFd).toBe(-1);
    expect(read(device, dataFd, 4096)).toBe(Number(INITIAL - 8n + STATE));
    expect(read(device, dataFd, 4096)).toBe(0);
  });

  it("leaving the data states ends the session: its fd reads ENODEV", () => {
    const h = host();
    const { device } = type1Device(h);
    const pre = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY).dataFd;
    device.setMigState(VFIO_DEVICE_STATE_RUNNING);
    expect(errnoOf(() => read(device, pre, 8))).toBe(Errno.ENODEV);
    const stop = device.setMigState(VFIO_DEVICE_STATE_STOP_COPY).dataFd;
    device.setMigState(VFIO_DEVICE_STATE_STOP);
    expect(errnoOf(() => read(device, stop, 8))).toBe(Errno.ENODEV);
  });

  it("a reset ends the session and returns the device to RUNNING", () => {
    const h = host();
    const { device } = type1Device(h);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
    device.reset();
    expect(device.getMigState()).toBe(VFIO_DEVICE_STATE_RUNNING);
    expect(errnoOf(() => read(device, dataFd, 8))).toBe(Errno.ENODEV);
  });

  it("resume needs data before RESUMING -> STOP; the fds refuse the other direction (EBADF)", () => {
    const h = host();
    const { device } = type1Device(h);
    device.setMigState(VFIO_DEVICE_STATE_STOP);
    const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_RESUMING);
    expect(errnoOf(() => read(device, dataFd, 8))).toBe(Errno.EBADF);
    expect(errnoOf(() => device.setMigState(VFIO_DEVICE_STATE_STOP))).toBe(Errno.EINVAL);
    expect(device.getMigState()).toBe(VFIO_DEVICE_STATE_RESUMING);
    expect(device.writeMigrationData(dataFd, new Uint8Array(Number(STATE)))).toBe(Number(STATE));
    device.setMigState(VFIO_DEVICE_STATE_STOP);
    expect(errnoOf(() => device.writeMigrationData(dataFd, new Uint8Array(1)))).toBe(Errno.ENODEV);
    const save = device.setMigState(VFIO_DEVICE_STATE_STOP_COPY).dataFd;
    expect(errnoOf(() => device.writeMigrationData(save, new Uint8Array(1)))).toBe(Errno.EBADF);
  });
});

describe("PRE_COPY data session against a stream-position oracle", () => {
  // The oracle keeps the stream as the edu-log driver does: its length, the read position and
  // where the initial data ends; every new snapshot appends INITIAL bytes.
  type Op = { op: "read"; n: number } | { op: "query" } | { op: "change" };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ op: fc.constant("read" as const), n: fc.integer({ min: 1, max: 120 }) }),
    fc.record({ op: fc.constant("query" as const) }),
    fc.record({ op: fc.constant("change" as const) }),
  );

  it("initial and dirty bytes, reads and REINIT agree with the oracle, then STOP_COPY drains", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(opArb, { maxLength: 30 }), (v2, ops) => {
        const h = host();
        const { device } = type1Device(h);
        if (v2) device.enablePrecopyInfoV2();
        const { dataFd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
        const o = { len: INITIAL, pos: 0n, initialEnd: INITIAL, changed: false };
        for (const step of ops) {
          if (step.op === "change") {
            h.reconfigureDevice(BDF);
            o.changed = true;
          } else if (step.op === "read") {
            const want = o.pos === o.len ? null : Number(min(BigInt(step.n), o.len - o.pos));
            expect(read(device, dataFd, step.n)).toBe(want);
            if (want !== null) o.pos += BigInt(want);
          } else {
            const reinit = o.changed && v2;
            if (o.changed) {
              o.len += INITIAL;
              if (v2) o.initialEnd = o.len;
              o.changed = false;
            }
            expect(device.getPrecopyInfo(dataFd)).toMatchObject({
              initialBytes: o.initialEnd > o.pos ? o.initialEnd - o.pos : 0n,
              dirtyBytes: o.len - (o.pos > o.initialEnd ? o.pos : o.initialEnd),
              reinit,
            });
          }
        }
        device.setMigState(VFIO_DEVICE_STATE_STOP_COPY);
        expect(read(device, dataFd, 1 << 20)).toBe(Number(o.len - o.pos + STATE));
        expect(read(device, dataFd, 1)).toBe(0);
        device.close();
      }),
      { numRuns: 200 },
    );
  });
});

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
