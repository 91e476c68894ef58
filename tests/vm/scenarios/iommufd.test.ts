// iommufd with the emulated VT-d on the 6.12 test kernel (intel_iommu=on): the VFIO cdev path
// (bind the device to an iommufd, attach it to an IOAS, real DMA through it), the IOMMU's
// hardware info, and the answer an IOMMU without dirty tracking gives to a DIRTY_TRACKING HWPT.
import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { MigrationBlockedError, openTracker } from "@vfio-dirty/tracker";
import {
  DeviceCdev,
  Errno,
  IommuFd,
  type MappedMemory,
  O_CLOEXEC,
  O_RDWR,
  uapi,
} from "@vfio-dirty/vfio-adapter";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { EDU_BUFFER, Edu } from "./support/edu.ts";
import { guest } from "./support/guest.ts";
import { hwInfo, hwptAlloc, ioasAlloc, ioasMapFixed } from "./support/iommufd.ts";
import { eduBdf, enableBusMaster, ioctlErrno, ioctlOk, regionOffset } from "./support/vfio.ts";

const PAGE = 4096n;
const IOVA = 0x100000n;
const host = createLinuxHost();
const onVtd = guest.driver === "vfio-pci" && /intel_iommu=on/.test(guest.cmdline);
const fds: number[] = [];
let iommufd = -1;
let device = -1;
let devId = 0;
let ioasId = 0;
let mem: MappedMemory | undefined;

describe.skipIf(!onVtd)("iommufd: VFIO cdev path on the emulated VT-d", () => {
  beforeAll(() => {
    iommufd = openFd("/dev/iommu");
  });
  afterAll(() => {
    for (const fd of fds.splice(0).reverse()) host.close(fd);
    if (mem) host.munmap(mem);
  });

  it("finds edu's cdev under vfio-dev and binds it to the iommufd", () => {
    const cdevs = host.sysfs.readdir(`bus/pci/devices/${eduBdf()}/vfio-dev`) ?? [];
    expect(cdevs).toHaveLength(1);
    device = openFd(`/dev/vfio/devices/${cdevs[0]}`);
    // The 24-byte form (6.17) first: 6.12 accepts it with flags 0 (copy_struct_from_user).
    const bind = uapi.encodeBindIommufd({ iommufd });
    ioctlOk(host, device, uapi.VFIO_DEVICE_BIND_IOMMUFD, bind, "VFIO_DEVICE_BIND_IOMMUFD");
    devId = uapi.decodeBindIommufd(bind).outDevid;
    expect(devId).toBeGreaterThan(0);
  });

  it("reports the Intel IOMMU in GET_HW_INFO, without dirty tracking", () => {
    const info = hwInfo(host, iommufd, devId);
    expect(info.outDataType).toBe(uapi.IOMMU_HW_INFO_TYPE_INTEL_VTD);
    expect(info.outCapabilities & BigInt(uapi.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(0n);
  });

  it("refuses a DIRTY_TRACKING HWPT with EOPNOTSUPP and accepts a plain one", () => {
    ioasId = ioasAlloc(host, iommufd);
    expect(hwptAlloc(host, iommufd, devId, ioasId, uapi.IOMMU_HWPT_ALLOC_DIRTY_TRACKING).errno).toBe(
      Errno.EOPNOTSUPP,
    );
    const plain = hwptAlloc(host, iommufd, devId, ioasId, 0);
    expect(plain.errno).toBe(0);
    expect(plain.hwptId).toBeGreaterThan(0);
    ioctlOk(
      host,
      iommufd,
      uapi.IOMMU_DESTROY,
      uapi.encodeIommuDestroy({ id: plain.hwptId }),
      "IOMMU_DESTROY",
    );
  });

  it("attaches to the IOAS and edu's DMA lands in memory mapped through it", () => {
    const attach = uapi.encodeAttachIommufdPt({ ptId: ioasId });
    ioctlOk(host, device, uapi.VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    expect(uapi.decodeAttachIommufdPt(attach).ptId, "the kernel names the auto-domain HWPT").not.toBe(ioasId);
    mem = host.mmapAnonymous(2n * PAGE);
    ioasMapFixed(host, iommufd, ioasId, IOVA, mem.address, 2n * PAGE);
    const edu = new Edu(host, device, regionOffset(host, device, uapi.VFIO_PCI_BAR0_REGION_INDEX));
    enableBusMaster(host, device);
    expect(edu.id()).toBe(0x010000ed);
    for (let i = 0; i < 200; i++) mem.bytes[i] = 255 - i;
    edu.dmaFromRam(IOVA, EDU_BUFFER, 200);
    edu.dmaToRam(EDU_BUFFER, IOVA + PAGE, 200);
    expect(Buffer.from(mem.bytes.subarray(Number(PAGE), Number(PAGE) + 200))).toEqual(
      Buffer.from(mem.bytes.subarray(0, 200)),
    );
  });

  it("detaches the device from its page table", () => {
    const detach = uapi.encodeDetachIommufdPt({});
    expect(ioctlErrno(host, device, uapi.VFIO_DEVICE_DETACH_IOMMUFD_PT, detach)).toBe(0);
  });
});

describe.skipIf(!onVtd)("iommufd: the tracker on an IOMMU without dirty tracking", () => {
  it("falls back to all-dirty, says why (HWPT alloc EOPNOTSUPP), and reports every page", () => {
    const core = loadBitmapCoreSync();
    using iommu = IommuFd.open(host);
    const cdev = host.sysfs.readdir(`bus/pci/devices/${eduBdf()}/vfio-dev`)?.[0];
    using device = DeviceCdev.open(host, `/dev/vfio/devices/${cdev}`, eduBdf());
    const id = device.bindIommufd(iommu);
    const ioas = iommu.ioasAlloc();
    device.attachIommufdPt(ioas);
    const target = host.mmapAnonymous(4n * PAGE);
    onTestFinished(() => void host.munmap(target));
    iommu.ioasMap({ ioasId: ioas, userVa: target.address, length: 4n * PAGE, iova: IOVA });
    const tracking = {
      devices: [{ id: eduBdf(), device }],
      iommu: { kind: "iommufd" as const, iommufd: iommu, ioasId: ioas, devIds: { [eduBdf()]: id } },
    };
    const memory = [{ iova: IOVA, length: 4n * PAGE, kind: "ram" as const }];
    // Default policy (QEMU's enable-migration=auto): nothing tracks, so migration is blocked.
    let blocked: unknown;
    try {
      openTracker(tracking, { core, memory });
    } catch (e) {
      blocked = e;
    }
    expect(blocked).toBeInstanceOf(MigrationBlockedError);
    expect((blocked as MigrationBlockedError).choice.blockers.map((b) => b.kind)).toContain("no-tracking");

    // edu cannot migrate (no VFIO_MIGRATION_STOP_COPY), which is a blocker of its own: ignore
    // blockers to look at the tracking decision.
    const { tracker, choice } = openTracker(tracking, {
      core,
      memory,
      enableMigration: "on",
      ignoreBlockers: true,
    });
    try {
      expect(choice.strategy).toBe("all-dirty");
      const why = choice.reasons.find((r) => r.strategy === "iommufd" && r.errno === Errno.EOPNOTSUPP);
      expect(why, JSON.stringify(choice.reasons)).toBeDefined();
      expect(why?.call).toMatch(/HWPT_ALLOC/);
      tracker.start();
      tracker.setPhase("pre-copy");
      expect(tracker.sync().dirtyPages).toBe(4);
    } finally {
      tracker.close();
    }
  });
});

// --- Internal helpers ---

function openFd(path: string): number {
  const fd = host.open(path, O_RDWR | O_CLOEXEC);
  expect(fd, `open ${path}`).toBeGreaterThanOrEqual(0);
  fds.push(fd);
  return fd;
}
