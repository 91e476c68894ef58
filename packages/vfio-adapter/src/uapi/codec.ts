// Byte-level helpers shared by the uAPI codecs: checked little-endian reads and writes.
//
// VFIO and iommufd structs are host-endian; vfio-dirty only builds for little-endian hosts
// (x86-64, arm64), so every access is little-endian. Writers reject values that do not fit the
// field instead of letting DataView wrap them silently: a wrapped iova would map the wrong memory.
// Readers check the buffer is long enough first: a short answer is a protocol error, not zeros.
//
//   const [b, v] = alloc(SIZEOF_VFIO_GROUP_STATUS);
//   putU32(v, 0, b.length, "argsz");
//   const r = reader(bytes, SIZEOF_VFIO_GROUP_STATUS, "vfio_group_status");
//   r.getUint32(4, true);

/**
 * A codec could not encode or decode: a field out of range, a buffer too short, a capability
 * chain that loops or points outside its buffer. Pure and dependency-free on purpose: the typed
 * objects in src/vfio/ turn it into ProtocolError (kernel answers) or InvalidInputError (caller input).
 */
export class CodecError extends Error {
  override name = "CodecError";
}

export const U32_MAX = 0xffff_ffff;
export const U64_MAX = 0xffff_ffff_ffff_ffffn;

/** A zeroed struct buffer and a DataView over exactly it. */
export function alloc(length: number): [Uint8Array, DataView] {
  const b = new Uint8Array(length);
  return [b, new DataView(b.buffer)];
}

/** A DataView over `bytes` after checking it holds at least `need` bytes of `struct`. */
export function reader(bytes: Uint8Array, need: number, struct: string): DataView {
  if (bytes.byteLength < need)
    throw new CodecError(`struct ${struct}: need ${need} bytes, got ${bytes.byteLength}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function putU16(v: DataView, off: number, x: number, field: string): void {
  if (!Number.isInteger(x) || x < 0 || x > 0xffff) throw new CodecError(`${field}: ${x} is not a u16`);
  v.setUint16(off, x, true);
}

export function putU32(v: DataView, off: number, x: number, field: string): void {
  if (!Number.isInteger(x) || x < 0 || x > U32_MAX) throw new CodecError(`${field}: ${x} is not a u32`);
  v.setUint32(off, x, true);
}

export function putS32(v: DataView, off: number, x: number, field: string): void {
  if (!Number.isInteger(x) || x < -0x8000_0000 || x > 0x7fff_ffff)
    throw new CodecError(`${field}: ${x} is not an s32`);
  v.setInt32(off, x, true);
}

export function putU64(v: DataView, off: number, x: bigint, field: string): void {
  if (typeof x !== "bigint" || x < 0n || x > U64_MAX) throw new CodecError(`${field}: ${x} is not a u64`);
  v.setBigUint64(off, x, true);
}

export function getU16(v: DataView, off: number): number {
  return v.getUint16(off, true);
}

export function getU32(v: DataView, off: number): number {
  return v.getUint32(off, true);
}

export function getS32(v: DataView, off: number): number {
  return v.getInt32(off, true);
}

export function getU64(v: DataView, off: number): bigint {
  return v.getBigUint64(off, true);
}

/** "0x1000": how addresses and lengths appear in messages, like the kernel's %llx. */
export function hex(x: bigint | number): string {
  return `0x${x.toString(16)}`;
}
