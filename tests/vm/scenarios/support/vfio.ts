// The guest's VFIO set-up, shared by the scenarios: edu's PCI address, its group and a type1v2
// container, the device fd with BAR0 and bus mastering on, and small helpers that run one ioctl
// through a Host with the adapter's uAPI codecs and return the errno (0 on success).
// These are raw on purpose: the scenarios compare the kernel's answers errno for errno, and the
// typed objects' own behaviour is tested through the tracker and CLI scenarios.
//
//   const s = openType1(host);        // edu bound to vfio-pci (or the edu-log variant driver)
//   s.map(iova, mem);  s.edu.dmaToRam(EDU_BUFFER, iova, 100);  s.close();

import { errnoName, type Host, O_CLOEXEC, O_RDWR, uapi } from "@vfio-dirty/vfio-adapter";
import { Edu } from "./edu.ts";
import { guest } from "./guest.ts";

/** edu's PCI address, exported by the guest's init (tests/vm/guest/init). */
export function eduBdf(): string {
  const bdf = guest.eduBdf;
  if (!bdf || !/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(bdf))
    throw new Error(`VM_EDU_BDF is ${JSON.stringify(bdf)}: run the scenarios with tests/vm/run`);
  return bdf;
}

/** Runs one ioctl; returns 0 or the positive errno. */
export function ioctlErrno(host: Host, fd: number, request: number, arg: Uint8Array | number): number {
  const rc = host.ioctl(fd, request, arg);
  return rc < 0 ? -rc : 0;
}

/** Runs one ioctl and throws with its name and errno when it fails; returns the result. */
export function ioctlOk(
  host: Host,
  fd: number,
  request: number,
  arg: Uint8Array | number,
  what: string,
): number {
  const rc = host.ioctl(fd, request, arg);
  if (rc < 0) throw new Error(`${what}: ${errnoName(-rc)}`);
  return rc;
}

/** "OK" for 0, else the errno's name (EINVAL). */
export function errnoText(errno: number): string {
  return errno === 0 ? "OK" : errnoName(errno);
}

export interface Type1Session {
  readonly host: Host;
  readonly bdf: string;
  readonly container: number;
  readonly group: number;
  readonly device: number;
  readonly edu: Edu;
  /** DMA-map `length` bytes of `mem` (from offset 0) at `iova`, read-write. */
  map(iova: bigint, address: bigint, length: bigint): void;
  /** Unmap; returns the bytes the kernel unmapped. */
  unmap(iova: bigint, length: bigint): bigint;
  close(): void;
}

/** Opens edu's group into a new type1v2 container and gets the device fd, ready for DMA. */
export function openType1(host: Host): Type1Session {
  const bdf = eduBdf();
  const fds: number[] = [];
  const openFd = (path: string) => {
    const fd = host.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw new Error(`open ${path}: ${errnoName(-fd)}`);
    fds.push(fd);
    return fd;
  };
  try {
    const container = openFd("/dev/vfio/vfio");
    const groupLink = host.sysfs.readlink(`bus/pci/devices/${bdf}/iommu_group`);
    const groupId = groupLink?.split("/").pop();
    if (!groupId) throw new Error(`no iommu_group for ${bdf}`);
    const group = openFd(`/dev/vfio/${groupId}`);
    ioctlOk(
      host,
      group,
      uapi.VFIO_GROUP_SET_CONTAINER,
      uapi.encodeFdArg(container),
      "VFIO_GROUP_SET_CONTAINER",
    );
    ioctlOk(host, container, uapi.VFIO_SET_IOMMU, uapi.VFIO_TYPE1v2_IOMMU, "VFIO_SET_IOMMU");
    const device = ioctlOk(
      host,
      group,
      uapi.VFIO_GROUP_GET_DEVICE_FD,
      uapi.encodeDeviceName(bdf),
      "GET_DEVICE_FD",
    );
    fds.push(device);
    const bar0 = regionOffset(host, device, uapi.VFIO_PCI_BAR0_REGION_INDEX);
    enableBusMaster(host, device);
    const edu = new Edu(host, device, bar0);
    return {
      host,
      bdf,
      container,
      group,
      device,
      edu,
      map(iova, address, length) {
        const flags = uapi.VFIO_DMA_MAP_FLAG_READ | uapi.VFIO_DMA_MAP_FLAG_WRITE;
        ioctlOk(
          host,
          container,
          uapi.VFIO_IOMMU_MAP_DMA,
          uapi.encodeDmaMap({ flags, vaddr: address, iova, length }),
          "MAP_DMA",
        );
      },
      unmap(iova, length) {
        const b = uapi.encodeDmaUnmap({ flags: 0, iova, length });
        ioctlOk(host, container, uapi.VFIO_IOMMU_UNMAP_DMA, b, "UNMAP_DMA");
        return uapi.decodeDmaUnmap(b).length;
      },
      close() {
        for (const fd of fds.splice(0).reverse()) host.close(fd);
      },
    };
  } catch (e) {
    for (const fd of fds.reverse()) host.close(fd);
    throw e;
  }
}

/** The file offset of a device region (for pread/pwrite). */
export function regionOffset(host: Host, device: number, index: number): bigint {
  const b = uapi.encodeRegionInfo({ index });
  ioctlOk(host, device, uapi.VFIO_DEVICE_GET_REGION_INFO, b, `GET_REGION_INFO(${index})`);
  return uapi.decodeRegionInfo(b).offset;
}

export function regionInfo(host: Host, device: number, index: number): uapi.RegionInfo {
  const b = uapi.encodeRegionInfo({ index });
  ioctlOk(host, device, uapi.VFIO_DEVICE_GET_REGION_INFO, b, `GET_REGION_INFO(${index})`);
  return uapi.decodeRegionInfo(b);
}

/** Memory space and bus master on in the PCI command register, or edu's DMA never arrives. */
export function enableBusMaster(host: Host, device: number): void {
  const config = regionOffset(host, device, uapi.VFIO_PCI_CONFIG_REGION_INDEX);
  const cmd = new Uint8Array(2);
  if (host.pread(device, cmd, config + 4n) !== 2) throw new Error("read PCI command");
  const v = new DataView(cmd.buffer);
  v.setUint16(0, v.getUint16(0, true) | 0x6, true);
  if (host.pwrite(device, cmd, config + 4n) !== 2) throw new Error("write PCI command");
}

/** Page indexes whose bit is set in a u64-word bitmap (bit rule of include/uapi/linux/vfio.h). */
export function setBits(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) out.push(i);
  return out;
}
