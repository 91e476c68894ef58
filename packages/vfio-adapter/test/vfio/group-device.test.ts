import { describe, expect, it } from "vitest";
import { Errno, InvalidInputError, IoctlError, ProtocolError, SyscallError } from "../../src/errors.ts";
import { buildCapChain } from "../../src/uapi/cap-chain.ts";
import * as v from "../../src/uapi/vfio.ts";
import { Container } from "../../src/vfio/container.ts";
import { Device } from "../../src/vfio/device.ts";
import { Group } from "../../src/vfio/group.ts";
import { bytesOf, FakeHost, setU32, setU64, u32 } from "./fake-host.ts";

const NAME = "0000:00:03.0";

function setup() {
  const host = new FakeHost();
  host.paths.set("/dev/vfio/12", 4);
  host.paths.set("/dev/vfio/vfio", 3);
  return { host, group: Group.open(host, 12), device: Device.fromFd(host, 9, NAME) };
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

describe("Group", () => {
  it("opens /dev/vfio/<id> and validates the id", () => {
    const { host } = setup();
    expect(host.opened).toEqual(["/dev/vfio/12"]);
    expect(() => Group.open(host, -1)).toThrow(InvalidInputError);
    expect(() => Group.open(host, 1.5)).toThrow(InvalidInputError);
    expect(thrown(() => Group.open(host, 13))).toBeInstanceOf(SyscallError);
  });

  it("decodes the status flags", () => {
    const { host, group } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      setU32(arg as Uint8Array, 4, v.VFIO_GROUP_FLAGS_VIABLE);
      return 0;
    };
    expect(group.getStatus()).toEqual({ flags: 1, viable: true, containerSet: false });
    expect(host.calls[0]).toMatchObject({ fd: 4, request: v.VFIO_GROUP_GET_STATUS });
    expect(u32(bytesOf(host.calls[0]), 0)).toBe(8);
  });

  it("passes the container fd through a pointer to an int", () => {
    const { host, group } = setup();
    host.onIoctl = () => 0;
    group.setContainer(Container.open(host));
    group.unsetContainer();
    expect(bytesOf(host.calls[0])).toEqual(new Uint8Array([3, 0, 0, 0]));
    expect(host.calls[1]).toEqual({ fd: 4, request: v.VFIO_GROUP_UNSET_CONTAINER, sent: 0 });
    host.onIoctl = () => -Errno.EBUSY;
    expect(thrown(() => group.unsetContainer()).message).toMatch(
      /^VFIO_GROUP_UNSET_CONTAINER \(group 12 fd 4\): EBUSY/,
    );
  });

  it("gets a device fd by NUL-terminated name and wraps it in a Device it hands over", () => {
    const { host, group } = setup();
    host.onIoctl = (_fd, request, arg) => {
      expect(request).toBe(v.VFIO_GROUP_GET_DEVICE_FD);
      expect(v.decodeDeviceName(arg as Uint8Array)).toBe(NAME);
      return 17;
    };
    const d = group.getDevice(NAME);
    expect(d.fd).toBe(17);
    expect(d.label).toBe(`device ${NAME}`);
    for (const bad of ["", "../x", "a\0b", "x".repeat(300)])
      expect(() => group.getDevice(bad)).toThrow(InvalidInputError);
    expect(host.calls.length).toBe(1);
  });
});

describe("Device", () => {
  it("reads device info", () => {
    const { host, device } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      (arg as Uint8Array).set(
        v.encodeDeviceInfo({ flags: v.VFIO_DEVICE_FLAGS_PCI, numRegions: 9, numIrqs: 5 }),
      );
      return 0;
    };
    expect(device.getInfo()).toMatchObject({ flags: 2, numRegions: 9, numIrqs: 5 });
  });

  it("reads region info, growing the buffer once for the capability chain", () => {
    const { host, device } = setup();
    const fixed = v.encodeRegionInfo({
      index: 0,
      flags: 7 | v.VFIO_REGION_INFO_FLAG_CAPS,
      length: 0x1000n,
      offset: 0n,
    });
    const { bytes: full, first } = buildCapChain(fixed, [{ id: 3, version: 1, body: new Uint8Array(0) }]);
    setU32(full, 0, full.length);
    setU32(full, 12, first);
    host.onIoctl = (_fd, _r, arg) => {
      const b = arg as Uint8Array;
      if (u32(b, 0) < full.length) {
        b.set(full.subarray(0, 32));
        setU32(b, 0, full.length);
        setU32(b, 12, 0);
      } else b.set(full);
      return 0;
    };
    const { info, caps } = device.getRegionInfo(0);
    expect(host.calls.map((c) => u32(bytesOf(c), 0))).toEqual([32, full.length]);
    expect(u32(bytesOf(host.calls[1]), 8)).toBe(0); // index sent again
    expect(info.length).toBe(0x1000n);
    expect(caps).toEqual([{ id: 3, version: 1, offset: 32, next: 0 }]);
  });

  it("refuses a region info answer whose argsz keeps growing", () => {
    const { host, device } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      const b = arg as Uint8Array;
      setU32(b, 0, b.length + 8);
      setU32(b, 4, v.VFIO_REGION_INFO_FLAG_CAPS);
      return 0;
    };
    expect(() => device.getRegionInfo(1)).toThrow(ProtocolError);
  });

  it("reads and writes regions at region.offset + offset, within the region", () => {
    const { host, device } = setup();
    const region = { argsz: 32, flags: 3, index: 0, capOffset: 0, length: 0x100n, offset: 0x1000n };
    expect(device.regionWrite(region, 0x10n, new Uint8Array([1, 2, 3, 4]))).toBe(4);
    expect(host.file.subarray(0x1010, 0x1014)).toEqual(new Uint8Array([1, 2, 3, 4]));
    const into = new Uint8Array(4);
    device.regionRead(region, 0x10n, into);
    expect(into).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(() => device.regionRead(region, 0xfen, new Uint8Array(4))).toThrow(
      /outside the 0x100-byte region/,
    );
    expect(() => device.regionWrite(region, -1n, new Uint8Array(1))).toThrow(InvalidInputError);
    host.pread = () => -Errno.EIO;
    expect(thrown(() => device.regionRead(region, 0n, into)).message).toMatch(
      /^pread \(device 0000:00:03.0 fd 9, region 0, offset 0x0, 4 bytes\): EIO/,
    );
  });

  it("probes features: success is true, ENOTTY and EINVAL are false, anything else throws", () => {
    const { host, device } = setup();
    let rc = 0;
    host.onIoctl = () => rc;
    expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_SET)).toBe(
      true,
    );
    expect(v.decodeDeviceFeature(bytesOf(host.calls[0]))).toMatchObject({
      argsz: 8,
      flags:
        v.VFIO_DEVICE_FEATURE_PROBE | v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
    });
    rc = -Errno.ENOTTY;
    expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_MIGRATION)).toBe(false);
    rc = -Errno.EINVAL;
    expect(device.featureProbe(v.VFIO_DEVICE_FEATURE_MIGRATION, v.VFIO_DEVICE_FEATURE_SET)).toBe(false);
    expect(device.featureProbeErrno(v.VFIO_DEVICE_FEATURE_MIGRATION, v.VFIO_DEVICE_FEATURE_SET)).toBe(
      Errno.EINVAL,
    );
    rc = -Errno.ENOTTY;
    expect(device.featureProbeErrno(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)).toBe(Errno.ENOTTY);
    rc = 0;
    expect(device.featureProbeErrno(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)).toBe(0);
    rc = -Errno.EIO;
    expect(() => device.featureProbeErrno(v.VFIO_DEVICE_FEATURE_MIGRATION)).toThrow(IoctlError);
    const e = thrown(() =>
      device.featureProbe(v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_SET),
    );
    expect(e).toBeInstanceOf(IoctlError);
    expect(e.message).toMatch(
      /^VFIO_DEVICE_FEATURE\(PROBE\|SET\|DMA_LOGGING_START\) \(device 0000:00:03.0 fd 9\): EIO/,
    );
    expect(() => device.featureProbe(0x10000)).toThrow(InvalidInputError);
  });

  it("gets migration flags, state and data size through GET payloads", () => {
    const { host, device } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      const f = v.decodeDeviceFeature(arg as Uint8Array);
      expect(f.flags & v.VFIO_DEVICE_FEATURE_GET).toBeTruthy();
      const feature = f.flags & v.VFIO_DEVICE_FEATURE_MASK;
      if (feature === v.VFIO_DEVICE_FEATURE_MIGRATION) f.data.set(v.encodeFeatureMigration({ flags: 7n }));
      if (feature === v.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE)
        f.data.set(v.encodeFeatureMigState({ deviceState: v.VFIO_DEVICE_STATE_RUNNING }));
      if (feature === v.VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)
        f.data.set(v.encodeFeatureMigDataSize({ stopCopyLength: 4096n }));
      return 0;
    };
    expect(device.getMigrationFlags()).toBe(7);
    expect(device.getMigState()).toBe(v.VFIO_DEVICE_STATE_RUNNING);
    expect(device.getMigDataSize()).toBe(4096n);
    expect(host.calls.map((c) => u32(bytesOf(c), 0))).toEqual([16, 16, 16]);
  });

  it("sets the migration state and returns the data fd the kernel opened", () => {
    const { host, device } = setup();
    host.onIoctl = (_fd, _r, arg) => {
      const f = v.decodeDeviceFeature(arg as Uint8Array);
      const want = v.decodeFeatureMigState(f.data);
      expect(want).toEqual({ deviceState: v.VFIO_DEVICE_STATE_STOP_COPY, dataFd: -1 });
      f.data.set(v.encodeFeatureMigState({ deviceState: want.deviceState, dataFd: 33 }));
      return 0;
    };
    expect(device.setMigState(v.VFIO_DEVICE_STATE_STOP_COPY)).toEqual({ deviceState: 3, dataFd: 33 });
    host.onIoctl = () => -Errno.EINVAL;
    expect(thrown(() => device.setMigState(v.VFIO_DEVICE_STATE_PRE_COPY)).message).toMatch(
      /^VFIO_DEVICE_FEATURE\(SET\|MIG_DEVICE_STATE\) \(device 0000:00:03.0 fd 9, state PRE_COPY\): EINVAL/,
    );
  });

  it("starts DMA logging with a ranges array the kernel reads by address, and returns the chosen page size", () => {
    const { host, device } = setup();
    const ranges = [
      { iova: 0n, length: 0x10_0000n },
      { iova: 0x1_0000_0000n, length: 0x20_0000n },
    ];
    host.onIoctl = (_fd, _r, arg, h) => {
      const f = v.decodeDeviceFeature(arg as Uint8Array);
      expect(f.flags).toBe(v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
      const control = v.decodeDmaLoggingControl(f.data);
      expect(control.numRanges).toBe(2);
      expect(v.decodeDmaLoggingRanges(h.memoryAt(control.ranges), control.numRanges)).toEqual(ranges);
      setU64(f.data, 0, 0x20_0000n); // the device picked 2 MiB
      return 0;
    };
    expect(device.dmaLoggingStart(ranges, 0x1000n)).toBe(0x20_0000n);
    host.onIoctl = () => -Errno.E2BIG;
    const e = thrown(() => device.dmaLoggingStart(ranges, 0x1000n)) as IoctlError;
    expect(e.errno).toBe(Errno.E2BIG);
    expect(e.message).toContain(
      "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START) (device 0000:00:03.0 fd 9, 2 ranges",
    );
    expect(e.message).toContain("too many ranges");
    expect(() => device.dmaLoggingStart([], 0x1000n)).toThrow(InvalidInputError);
    expect(() => device.dmaLoggingStart(ranges, 0x1001n)).toThrow(InvalidInputError);
  });

  it.each([0n, 0x3000n])(
    "refuses a written-back page size of %s and stops the logging it started",
    (bogus) => {
      const { host, device } = setup();
      const ranges = [{ iova: 0n, length: 0x10_0000n }];
      const ops: number[] = [];
      host.onIoctl = (_fd, _r, arg) => {
        const f = v.decodeDeviceFeature(arg as Uint8Array);
        ops.push(f.flags & v.VFIO_DEVICE_FEATURE_MASK);
        if ((f.flags & v.VFIO_DEVICE_FEATURE_MASK) === v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START)
          setU64(f.data, 0, bogus);
        return 0;
      };
      const e = thrown(() => device.dmaLoggingStart(ranges, 0x1000n));
      expect(e).toBeInstanceOf(ProtocolError);
      expect(e.message).toContain(
        `wrote back page_size 0x${bogus.toString(16)}, not a power of two; logging was stopped`,
      );
      expect(ops).toEqual([v.VFIO_DEVICE_FEATURE_DMA_LOGGING_START, v.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP]);
    },
  );

  it("reports DMA logging into the caller's bitmap and stops", () => {
    const { host, device } = setup();
    const bitmap = new Uint8Array(8);
    host.onIoctl = (_fd, _r, arg, h) => {
      const f = v.decodeDeviceFeature(arg as Uint8Array);
      if ((f.flags & v.VFIO_DEVICE_FEATURE_MASK) === v.VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT) {
        expect(f.flags & v.VFIO_DEVICE_FEATURE_GET).toBeTruthy();
        const r = v.decodeDmaLoggingReport(f.data);
        expect(r).toMatchObject({ iova: 0x4000n, length: 0x40000n, pageSize: 0x1000n });
        h.memoryAt(r.bitmap)[7] = 0x80; // page 63
      }
      return 0;
    };
    device.dmaLoggingReport({ iova: 0x4000n, length: 0x40000n, pageSize: 0x1000n, bitmap });
    expect(bitmap[7]).toBe(0x80);
    device.dmaLoggingStop();
    expect(v.decodeDeviceFeature(bytesOf(host.calls[1]))).toMatchObject({
      argsz: 8,
      flags: v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
    });
    expect(() =>
      device.dmaLoggingReport({ iova: 0n, length: 0x80000n, pageSize: 0x1000n, bitmap: new Uint8Array(8) }),
    ).toThrow(/too small for 128 pages/);
  });

  it("asks precopy info on the migration data fd, not the device fd", () => {
    const { host, device } = setup();
    host.onIoctl = (fd, request, arg) => {
      expect([fd, request]).toEqual([33, v.VFIO_MIG_GET_PRECOPY_INFO]);
      (arg as Uint8Array).set(v.encodePrecopyInfo({ initialBytes: 100n, dirtyBytes: 7n }));
      return 0;
    };
    expect(device.getPrecopyInfo(33)).toMatchObject({ initialBytes: 100n, dirtyBytes: 7n });
    host.onIoctl = () => -Errno.EINVAL;
    expect(thrown(() => device.getPrecopyInfo(33)).message).toMatch(
      /^VFIO_MIG_GET_PRECOPY_INFO \(migration data fd 33 of device 0000:00:03.0\): EINVAL/,
    );
  });

  it("reports REINIT only after the v2 opt-in, whatever flags a kernel hands back", () => {
    const { host, device } = setup();
    let v2Refused = -Errno.ENOTTY;
    host.onIoctl = (fd, request, arg) => {
      if (request === v.VFIO_MIG_GET_PRECOPY_INFO) {
        // Sent with flags 0; answer with REINIT set, as a confused or v1 kernel might echo.
        expect(v.decodePrecopyInfo(arg as Uint8Array).flags).toBe(0);
        (arg as Uint8Array).set(v.encodePrecopyInfo({ flags: v.VFIO_PRECOPY_INFO_REINIT, initialBytes: 9n }));
        return 0;
      }
      expect([fd, request]).toEqual([9, v.VFIO_DEVICE_FEATURE]);
      return v2Refused;
    };
    expect(device.enablePrecopyInfoV2()).toBe(false); // ENOTTY: a kernel before 7.1
    expect(host.calls.length).toBe(1); // the PROBE only: no SET after a refusal
    expect(device.getPrecopyInfo(33)).toMatchObject({ initialBytes: 9n, reinit: false });
    v2Refused = 0;
    expect(device.enablePrecopyInfoV2()).toBe(true);
    const [probe, set] = host.calls.slice(-2);
    expect(v.decodeDeviceFeature(bytesOf(probe!)).flags).toBe(
      v.VFIO_DEVICE_FEATURE_PROBE | v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
    );
    expect(v.decodeDeviceFeature(bytesOf(set!))).toEqual({
      argsz: 8,
      flags: v.VFIO_DEVICE_FEATURE_SET | v.VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
      data: new Uint8Array(0),
    });
    expect(device.precopyInfoV2).toBe(true);
    expect(device.getPrecopyInfo(33)).toMatchObject({ initialBytes: 9n, reinit: true });
    v2Refused = -Errno.EIO;
    expect(thrown(() => device.precopyInfoV2Errno())).toBeInstanceOf(IoctlError);
  });

  it("reads the migration data stream: ENOMSG is null, other errors name the data fd", () => {
    const { host, device } = setup();
    const answers = [5, 0, -Errno.ENOMSG, -Errno.ENODEV];
    host.onRead = (fd, buf) => {
      expect(fd).toBe(33);
      buf.fill(7, 0, 5);
      return answers.shift()!;
    };
    const buf = new Uint8Array(16);
    expect(device.readMigrationData(33, buf)).toBe(5);
    expect(buf.subarray(0, 6)).toEqual(new Uint8Array([7, 7, 7, 7, 7, 0]));
    expect(device.readMigrationData(33, buf)).toBe(0);
    expect(device.readMigrationData(33, buf)).toBeNull();
    const e = thrown(() => device.readMigrationData(33, buf));
    expect(e).toBeInstanceOf(SyscallError);
    expect(e.message).toMatch(/^read \(migration data fd 33 of device 0000:00:03.0, 16 bytes\): ENODEV/);
    expect(thrown(() => device.writeMigrationData(33, buf)).message).toMatch(/^write \(migration data fd 33/);
  });
});
