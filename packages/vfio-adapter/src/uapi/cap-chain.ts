// VFIO info capability chains: walk `cap_offset` / `next` without trusting the kernel's bytes.
//
// INFO ioctls (VFIO_IOMMU_GET_INFO, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO) append a
// chain of capabilities after the fixed struct. Each starts with struct vfio_info_cap_header
// { u16 id; u16 version; u32 next; }; offsets are from the start of the info buffer and 0 ends
// the chain. A chain that loops, or points into the fixed struct or past the buffer, is a
// CodecError here rather than a hang or an out-of-bounds read.
//
// The "argsz too small" protocol: a caller whose buffer is too small for the chain gets back the
// CAPS flag, cap_offset 0 and argsz raised to the size needed; it retries once with that size.
//
//   const caps = walkCapChain(bytes.subarray(0, info.argsz), info.capOffset, SIZEOF_VFIO_IOMMU_TYPE1_INFO, "vfio_iommu_type1_info");
//   for (const c of caps) if (c.id === VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION) decode(bytes, c.offset);

import { alloc, CodecError, getU32, putU32, reader } from "./codec.ts";
import { VFIO_INFO_CAP_HEADER } from "./vfio-layouts.ts";

/** sizeof(struct vfio_info_cap_header). */
export const SIZEOF_VFIO_INFO_CAP_HEADER = VFIO_INFO_CAP_HEADER.size;

/** One capability found in a chain. */
export interface CapHeader {
  /** Capability id, in the id space of the INFO ioctl that returned it. */
  id: number;
  /** Version of that capability's layout. */
  version: number;
  /** Offset of this header from the start of the info buffer. */
  offset: number;
  /** Offset of the next header, 0 at the end of the chain. */
  next: number;
}

/**
 * The capabilities of an info buffer, in chain order. `bytes` must already be cut to the part the
 * kernel filled (its argsz). Throws CodecError on a loop, an offset inside the fixed struct
 * (`fixedSize` bytes), or a header that does not fit in the buffer.
 */
export function walkCapChain(
  bytes: Uint8Array,
  firstOffset: number,
  fixedSize: number,
  struct: string,
): CapHeader[] {
  const v = reader(bytes, fixedSize, struct);
  const caps: CapHeader[] = [];
  const seen = new Set<number>();
  let offset = firstOffset;
  while (offset !== 0) {
    if (seen.has(offset)) throw new CodecError(`${struct}: capability chain loops back to offset ${offset}`);
    if (offset < fixedSize)
      throw new CodecError(
        `${struct}: capability at offset ${offset} overlaps the ${fixedSize}-byte fixed struct`,
      );
    if (offset + SIZEOF_VFIO_INFO_CAP_HEADER > bytes.byteLength)
      throw new CodecError(
        `${struct}: capability at offset ${offset} runs past the ${bytes.byteLength}-byte buffer`,
      );
    seen.add(offset);
    const { id, version, next } = VFIO_INFO_CAP_HEADER.decodeAt(v, offset);
    const cap = { id, version, offset, next };
    caps.push(cap);
    offset = cap.next;
  }
  return caps;
}

/**
 * Checks that a capability's body (`length` bytes from its header) lies inside the buffer, and
 * returns a DataView over the buffer for reading it.
 */
export function capBody(bytes: Uint8Array, cap: CapHeader, length: number, what: string): DataView {
  if (cap.offset + length > bytes.byteLength)
    throw new CodecError(
      `${what} at offset ${cap.offset} needs ${length} bytes but the buffer ends at ${bytes.byteLength}`,
    );
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A capability to append with buildCapChain: its header fields and its body after the header. */
export interface CapSpec {
  id: number;
  version: number;
  /** Bytes after the 8-byte header. */
  body: Uint8Array;
}

/**
 * Appends capabilities after a fixed struct, as the kernel's vfio_info_cap_add() and
 * vfio_info_cap_shift() do: `next` chains them in order, 0 on the last. Since v6.6 ("vfio: align
 * capability structures", a881b496941f) each capability is padded to 8 bytes, so every one starts
 * 8-byte aligned; with `aligned` false they are packed back to back as earlier kernels wrote them
 * (a 12-byte capability leaves the next one at an odd multiple of 4). Returns the whole buffer and
 * the offset of the first capability (0 when there are none). The fixed part is copied unchanged;
 * the caller sets argsz, the CAPS flag and cap_offset.
 */
export function buildCapChain(
  fixed: Uint8Array,
  caps: readonly CapSpec[],
  aligned = true,
): { bytes: Uint8Array; first: number } {
  const pad = aligned ? align8 : (n: number) => n;
  let length = pad(fixed.byteLength);
  const offsets: number[] = [];
  for (const c of caps) {
    offsets.push(length);
    length = pad(length + SIZEOF_VFIO_INFO_CAP_HEADER + c.body.byteLength);
  }
  const [b, v] = alloc(caps.length === 0 ? fixed.byteLength : length);
  b.set(fixed, 0);
  caps.forEach((c, i) => {
    const at = offsets[i]!;
    VFIO_INFO_CAP_HEADER.encodeInto(
      v,
      at,
      { id: c.id, version: c.version, next: offsets[i + 1] ?? 0 },
      "cap ",
    );
    b.set(c.body, at + SIZEOF_VFIO_INFO_CAP_HEADER);
  });
  return { bytes: b, first: offsets[0] ?? 0 };
}

/**
 * What the kernel writes back for an INFO ioctl whose full answer (`full`, argsz = its length)
 * may not fit the caller's `callerArgsz`: the whole answer when it fits; otherwise only the fixed
 * struct, with argsz raised to the size needed, `capsFlag` set and cap_offset 0 (the protocol
 * described in include/uapi/linux/vfio.h above VFIO_GET_API_VERSION). For the simulated kernel.
 */
export function fitInfoToArgsz(
  full: Uint8Array,
  callerArgsz: number,
  fixedSize: number,
  capsFlag: number,
  capOffsetAt: number,
): Uint8Array {
  if (full.byteLength <= callerArgsz) return full;
  const out = full.slice(0, Math.min(fixedSize, callerArgsz));
  const v = new DataView(out.buffer);
  if (out.byteLength >= 4) putU32(v, 0, full.byteLength, "argsz");
  if (out.byteLength >= 8) putU32(v, 4, getU32(v, 4) | capsFlag, "flags");
  if (out.byteLength >= capOffsetAt + 4) putU32(v, capOffsetAt, 0, "cap_offset");
  return out;
}

// --- Internal helpers ---

function align8(n: number): number {
  return (n + 7) & ~7;
}
