// iommufd ioctls on the simulated kernel (drivers/iommu/iommufd/main.c dispatch, ioas.c,
// hw_pagetable.c, device.c). Every command starts with its struct size: the kernel rejects sizes
// below the command's minimum (EINVAL), accepts longer structs whose extra bytes are zero (E2BIG
// otherwise), zero-extends shorter ones, and copies back min(user size, kernel size) bytes.
// Commands newer than the imitated kernel are unknown numbers: ENOTTY.

import { Errno } from "../errors.ts";
import type { IoctlArg } from "../host.ts";
import {
  decodeHwInfo,
  decodeHwptAlloc,
  decodeHwptGetDirtyBitmap,
  decodeHwptSetDirtyTracking,
  decodeIoasAlloc,
  decodeIoasIovaRanges,
  decodeIoasMap,
  decodeIoasUnmap,
  decodeIommuDestroy,
  encodeHwInfo,
  encodeIommuIovaRanges,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_TYPE_NONE,
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMUFD_CMD_DESTROY,
  IOMMUFD_CMD_GET_HW_INFO,
  IOMMUFD_CMD_HWPT_ALLOC,
  IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP,
  IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING,
  IOMMUFD_CMD_IOAS_ALLOC,
  IOMMUFD_CMD_IOAS_IOVA_RANGES,
  IOMMUFD_CMD_IOAS_MAP,
  IOMMUFD_CMD_IOAS_UNMAP,
  IOMMUFD_TYPE,
} from "../uapi/index.ts";
import type { IommufdContext } from "./iommufd.ts";
import type { SimKernel } from "./kernel.ts";
import { KERNEL } from "./profile.ts";

/** Per command: minimum size (offsetofend of the last mandatory field), kernel size, first kernel. */
const OPS: Record<number, { min: number; size: (kernel: number) => number; since: number }> = {
  [IOMMUFD_CMD_DESTROY]: { min: 8, size: () => 8, since: KERNEL.IOMMUFD },
  [IOMMUFD_CMD_IOAS_ALLOC]: { min: 12, size: () => 12, since: KERNEL.IOMMUFD },
  [IOMMUFD_CMD_IOAS_IOVA_RANGES]: { min: 32, size: () => 32, since: KERNEL.IOMMUFD },
  [IOMMUFD_CMD_IOAS_MAP]: { min: 40, size: () => 40, since: KERNEL.IOMMUFD },
  [IOMMUFD_CMD_IOAS_UNMAP]: { min: 24, size: () => 24, since: KERNEL.IOMMUFD },
  // struct iommu_hwpt_alloc grew data_type/len/uptr in 6.7 and fault_id in 6.11.
  [IOMMUFD_CMD_HWPT_ALLOC]: {
    min: 24,
    size: (v) => (v >= 6011 ? 48 : v >= 6007 ? 40 : 24),
    since: KERNEL.HWPT_ALLOC,
  },
  [IOMMUFD_CMD_GET_HW_INFO]: { min: 32, size: (v) => (v >= 6007 ? 40 : 32), since: KERNEL.HWPT_ALLOC },
  [IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING]: { min: 16, size: () => 16, since: KERNEL.IOMMUFD_DIRTY },
  [IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP]: { min: 48, size: () => 48, since: KERNEL.IOMMUFD_DIRTY },
};

/** VT-d cap/ecap as the HW info reports them; ecap SLADS (45) with SMTS/SMPWC when dirty-capable. */
const VTD_CAP_REG = 0xd2_0086_8c6f_0462n;
const VTD_ECAP_REG = 0xf0_0000_0000_0f5en;
const VTD_ECAP_DIRTY = (1n << 43n) | (1n << 45n) | (1n << 48n);

export function iommufdIoctl(k: SimKernel, ctx: IommufdContext, request: number, arg: IoctlArg): number {
  const type = (request >>> 8) & 0xff;
  const nr = request & 0xff;
  const op = OPS[nr];
  if (type !== IOMMUFD_TYPE || request >>> 16 !== 0 || !op || k.profile.kernel < op.since)
    return -Errno.ENOTTY;
  if (typeof arg === "number" || arg.byteLength < 4) return -Errno.EFAULT;
  const user = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
  const userSize = user.getUint32(0, true);
  if (userSize < op.min) return -Errno.EINVAL;
  if (userSize > arg.byteLength) return -Errno.EFAULT;
  const ksize = op.size(k.profile.kernel);
  // copy_struct_from_user: a longer struct is fine only when its tail is zero.
  if (userSize > ksize && arg.subarray(ksize, userSize).some((b) => b !== 0)) return -Errno.E2BIG;
  // Decode from a buffer of the newest layout the codecs know, zero-extended like the kernel's copy.
  const cmd = new Uint8Array(64);
  cmd.set(arg.subarray(0, Math.min(userSize, ksize)));
  const cv = new DataView(cmd.buffer);
  const respond = (): number => {
    arg.set(cmd.subarray(0, Math.min(userSize, ksize)));
    return 0;
  };

  switch (nr) {
    case IOMMUFD_CMD_DESTROY:
      return ctx.destroy(decodeIommuDestroy(cmd).id);
    case IOMMUFD_CMD_IOAS_ALLOC: {
      if (decodeIoasAlloc(cmd).flags) return -Errno.EOPNOTSUPP;
      cv.setUint32(8, ctx.allocIoas().id, true);
      return respond();
    }
    case IOMMUFD_CMD_IOAS_IOVA_RANGES: {
      const c = decodeIoasIovaRanges(cmd);
      if (cv.getUint32(12, true)) return -Errno.EOPNOTSUPP;
      const ioas = ctx.ioas(c.ioasId);
      if (typeof ioas === "number") return ioas;
      const ranges = ctx.iovaRangeList();
      const room = Math.min(c.numIovas, ranges.length);
      if (room > 0) {
        const rc = k.space.write(c.allowedIovas, encodeIommuIovaRanges(ranges.slice(0, room)));
        if (rc) return rc;
      }
      cv.setUint32(8, ranges.length, true);
      cv.setBigUint64(24, 4096n, true);
      respond();
      return ranges.length > c.numIovas ? -Errno.EMSGSIZE : 0;
    }
    case IOMMUFD_CMD_IOAS_MAP: {
      const c = decodeIoasMap(cmd);
      const known = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
      if (c.flags & ~known || cv.getUint32(12, true)) return -Errno.EOPNOTSUPP;
      const ioas = ctx.ioas(c.ioasId);
      if (typeof ioas === "number") return ioas;
      const r = ctx.map(ioas, { flags: c.flags, userVa: c.userVa, length: c.length, iova: c.iova });
      if (typeof r === "number") return r;
      cv.setBigUint64(32, r, true);
      return respond();
    }
    case IOMMUFD_CMD_IOAS_UNMAP: {
      const c = decodeIoasUnmap(cmd);
      const ioas = ctx.ioas(c.ioasId);
      if (typeof ioas === "number") return ioas;
      const r = ctx.unmap(ioas, c.iova, c.length);
      if (typeof r === "number") return r;
      cv.setBigUint64(16, r, true);
      return respond();
    }
    case IOMMUFD_CMD_GET_HW_INFO: {
      const c = decodeHwInfo(cmd);
      if (c.flags || cv.getUint8(29) || cv.getUint16(30, true)) return -Errno.EOPNOTSUPP;
      const dev = ctx.device(c.devId);
      if (typeof dev === "number") return dev;
      const vtd = k.profile.iommu.vendor === "intel";
      let data = new Uint8Array(0);
      if (vtd) {
        data = new Uint8Array(24);
        const dv = new DataView(data.buffer);
        dv.setBigUint64(8, VTD_CAP_REG, true);
        dv.setBigUint64(16, VTD_ECAP_REG | (dev.dirtyCapable ? VTD_ECAP_DIRTY : 0n), true);
      }
      if (c.dataLen && c.dataUptr) {
        const out = new Uint8Array(c.dataLen);
        out.set(data.subarray(0, Math.min(c.dataLen, data.byteLength)));
        const rc = k.space.write(c.dataUptr, out);
        if (rc) return rc;
      }
      cmd.set(
        encodeHwInfo({
          ...c,
          dataLen: data.byteLength,
          outDataType: vtd ? IOMMU_HW_INFO_TYPE_INTEL_VTD : IOMMU_HW_INFO_TYPE_NONE,
          outCapabilities:
            dev.dirtyCapable && k.profile.kernel >= KERNEL.IOMMUFD_DIRTY
              ? BigInt(IOMMU_HW_CAP_DIRTY_TRACKING)
              : 0n,
        }),
      );
      return respond();
    }
    case IOMMUFD_CMD_HWPT_ALLOC: {
      const c = decodeHwptAlloc(cmd);
      let known = IOMMU_HWPT_ALLOC_NEST_PARENT;
      if (k.profile.kernel >= KERNEL.IOMMUFD_DIRTY) known |= IOMMU_HWPT_ALLOC_DIRTY_TRACKING;
      if (k.profile.kernel >= 6011) known |= IOMMU_HWPT_FAULT_ID_VALID;
      if (c.flags & ~known || cv.getUint32(20, true)) return -Errno.EOPNOTSUPP;
      if (c.dataType === IOMMU_HWPT_DATA_NONE && c.dataLen) return -Errno.EINVAL;
      if (c.dataType !== IOMMU_HWPT_DATA_NONE) return -Errno.EOPNOTSUPP;
      const dev = ctx.device(c.devId);
      if (typeof dev === "number") return dev;
      const pt = ctx.ioas(c.ptId);
      if (typeof pt === "number") return pt;
      const h = ctx.allocHwpt(dev, pt, c.flags);
      if (typeof h === "number") return h;
      cv.setUint32(16, h.id, true);
      return respond();
    }
    case IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING: {
      const c = decodeHwptSetDirtyTracking(cmd);
      if (c.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE || cv.getUint32(12, true)) return -Errno.EOPNOTSUPP;
      const h = ctx.hwpt(c.hwptId);
      if (typeof h === "number") return h;
      return ctx.setDirtyTracking(h, (c.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
    }
    case IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP: {
      const c = decodeHwptGetDirtyBitmap(cmd);
      if (c.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cv.getUint32(12, true)) return -Errno.EOPNOTSUPP;
      const h = ctx.hwpt(c.hwptId);
      if (typeof h === "number") return h;
      return ctx.readDirty(
        h,
        c.iova,
        c.length,
        c.pageSize,
        (c.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) !== 0,
        (n) => k.space.view(c.data, n),
      );
    }
    default:
      return -Errno.ENOTTY;
  }
}
