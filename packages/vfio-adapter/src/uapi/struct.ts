// One description per uAPI struct, from which its encoder, decoder and size are derived.
//
// A struct is a list of members with their kernel names and C types; offsets and sizeof follow
// the C alignment rules of the ABIs vfio-dirty builds for (x86-64, arm64: every scalar aligned to
// its size, __aligned_u64 included), and the description states the total size it expects, so a
// typo fails when the module loads. The header test compiles every description's offsets, member
// sizes and sizeof against real kernel headers, so the layout is written once, here.
//
//   const DMA_MAP = defineStruct<DmaMap>("vfio_iommu_type1_dma_map", "vfio", 32, [
//     u32("argsz", "argsz", { default: "sizeof" }), u32("flags", "flags"), u64("vaddr", "vaddr"), ...
//   ]);
//   DMA_MAP.encode({ flags, vaddr, iova, length });   // Uint8Array of 32 bytes
//   DMA_MAP.decode(bytes);                            // { argsz, flags, vaddr, iova, length }

import {
  alloc,
  CodecError,
  getS32,
  getU16,
  getU32,
  getU64,
  putS32,
  putU16,
  putU32,
  putU64,
  reader,
} from "./codec.ts";

/** A kernel version: [major, minor]. */
export type KernelVersion = readonly [major: number, minor: number];

export type ScalarType = "u8" | "u16" | "u32" | "s32" | "u64";

const SCALAR_WIDTH: Record<ScalarType, number> = { u8: 1, u16: 2, u32: 4, s32: 4, u64: 8 };

/** A member as written in a description (offsets not yet placed). */
export interface MemberSpec {
  /** C member name (as offsetof() takes it). */
  c: string;
  /** TypeScript property; absent for reserved members and headers the codec does not expose. */
  ts?: string;
  /** A scalar, a nested struct, or (with `flexible`) the element type of a flexible array tail. */
  type: ScalarType | StructLayout<object>;
  /** A fixed array of this many elements (only for reserved members). */
  count?: number;
  /** A flexible array member (`data[]`): it has an offset but no size. */
  flexible?: true;
  /** The value the encoder writes when the caller gives none; "sizeof" is the encoded length. */
  default?: number | bigint | "sizeof";
  /** First kernel whose header has this member; older headers lack it (and may be shorter). */
  since?: KernelVersion;
  /** Offset the author expects; asserted against the computed one. */
  at?: number;
}

/** A member placed in its struct. */
export interface Member extends MemberSpec {
  offset: number;
  /** Bytes (0 for a flexible array). */
  width: number;
  align: number;
}

export interface StructLayout<T> {
  /** C struct name without "struct ". */
  name: string;
  /** Which header declares it. */
  header: "vfio" | "iommufd";
  /** sizeof(struct name) in the newest header. */
  size: number;
  align: number;
  members: readonly Member[];
  /** First kernel whose header has the struct. */
  since?: KernelVersion;
  /** sizeof(struct name) in a header of kernel `v`, which lacks members newer than v. */
  sizeAt(v: KernelVersion): number;
  /** The offset of member `c`. */
  offsetOf(c: string): number;
  /**
   * A new buffer of `size` bytes holding `a`; a longer `length` leaves room for a tail, a shorter
   * one gives an older form of the struct without the members that do not fit.
   */
  encode(a: Partial<T>, length?: number): Uint8Array;
  /** Writes `a` at `at`; `prefix` names the member in errors ("bitmap."). */
  encodeInto(v: DataView, at: number, a: Partial<T>, prefix?: string, length?: number): void;
  /** Checks `bytes` holds the struct, then reads every member with a TypeScript name. */
  decode(bytes: Uint8Array, what?: string): T;
  /** Reads the members that end at or before `limit` bytes into the struct (all by default). */
  decodeAt(v: DataView, at: number, limit?: number): T;
}

export const u8 = (c: string, ts?: string, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, ts, "u8", more);
export const u16 = (c: string, ts?: string, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, ts, "u16", more);
export const u32 = (c: string, ts?: string, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, ts, "u32", more);
export const s32 = (c: string, ts?: string, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, ts, "s32", more);
export const u64 = (c: string, ts?: string, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, ts, "u64", more);
/** A nested struct member (`struct vfio_bitmap bitmap`). */
export const nested = (
  c: string,
  ts: string | undefined,
  layout: StructLayout<object>,
  more: Partial<MemberSpec> = {},
): MemberSpec => ({ c, ...(ts ? { ts } : {}), type: layout, ...more });
/** A flexible array tail (`__u8 data[]`): its offset is checked, it adds nothing to sizeof. */
export const flexible = (c: string, type: MemberSpec["type"]): MemberSpec => ({ c, type, flexible: true });
/** A reserved member the encoder leaves zero and the decoder skips. */
export const reserved = (c: string, type: ScalarType, more: Partial<MemberSpec> = {}): MemberSpec =>
  member(c, undefined, type, more);

/**
 * Places `specs` with C alignment rules and checks the result against `size` (and each member's
 * `at`); throws at load time when the description contradicts itself.
 */
export function defineStruct<T extends object>(
  name: string,
  header: "vfio" | "iommufd",
  size: number,
  specs: readonly MemberSpec[],
  opts: { since?: KernelVersion } = {},
): StructLayout<T> {
  const members = place(name, specs);
  const align = Math.max(1, ...members.map((m) => m.align));
  const computed = sizeOf(members, align);
  if (computed !== size)
    throw new Error(`struct ${name}: described as ${size} bytes, members give ${computed}`);
  const layout: StructLayout<T> = {
    name,
    header,
    size,
    align,
    members,
    ...(opts.since ? { since: opts.since } : {}),
    sizeAt: (v) => {
      const present = members.filter((m) => !m.since || atLeast(v, m.since));
      return sizeOf(present, Math.max(1, ...present.map((m) => m.align)));
    },
    offsetOf: (c) => {
      const m = members.find((x) => x.c === c);
      if (!m) throw new Error(`struct ${name} has no member ${c}`);
      return m.offset;
    },
    encode: (a, length = size) => {
      const [b, v] = alloc(length);
      layout.encodeInto(v, 0, a, "", length);
      return b;
    },
    encodeInto: (v, at, a, prefix = "", length = size) => {
      // A shorter length is an older, shorter form of the struct: members past it are not written.
      for (const m of members)
        if (m.offset + m.width <= length) writeMember(v, at, m, a as Record<string, unknown>, prefix, length);
    },
    decode: (bytes, what = name) => layout.decodeAt(reader(bytes, size, what), 0),
    decodeAt: (v, at, limit = size) => {
      const out: Record<string, unknown> = {};
      for (const m of members)
        if (m.ts && !m.flexible && m.offset + m.width <= limit) out[m.ts] = readMember(v, at, m);
      return out as T;
    },
  };
  return layout;
}

/** True when kernel `v` is `since` or newer. */
export function atLeast(v: KernelVersion, since: KernelVersion): boolean {
  return v[0] > since[0] || (v[0] === since[0] && v[1] >= since[1]);
}

// --- Internal helpers ---

function member(c: string, ts: string | undefined, type: ScalarType, more: Partial<MemberSpec>): MemberSpec {
  return { c, ...(ts ? { ts } : {}), type, ...more };
}

function place(name: string, specs: readonly MemberSpec[]): Member[] {
  let end = 0;
  return specs.map((s, i) => {
    const elem = typeof s.type === "string" ? SCALAR_WIDTH[s.type] : s.type.size;
    const align = typeof s.type === "string" ? SCALAR_WIDTH[s.type] : s.type.align;
    const offset = Math.ceil(end / align) * align;
    if (s.at !== undefined && s.at !== offset)
      throw new Error(`struct ${name}: ${s.c} described at ${s.at}, alignment puts it at ${offset}`);
    if (s.flexible && i !== specs.length - 1) throw new Error(`struct ${name}: flexible ${s.c} is not last`);
    const width = s.flexible ? 0 : elem * (s.count ?? 1);
    end = offset + width;
    return { ...s, offset, width, align };
  });
}

function sizeOf(members: readonly Member[], align: number): number {
  const end = Math.max(0, ...members.map((m) => m.offset + m.width));
  return Math.ceil(end / align) * align;
}

function writeMember(
  v: DataView,
  at: number,
  m: Member,
  a: Record<string, unknown>,
  prefix: string,
  length: number,
): void {
  if (!m.ts || m.flexible) return;
  let x = a[m.ts];
  if (x === undefined) x = m.default === "sizeof" ? length : m.default;
  const off = at + m.offset;
  const field = `${prefix}${m.c}`;
  if (typeof m.type !== "string") {
    if (x !== undefined) m.type.encodeInto(v, off, x as object, `${field}.`);
    return;
  }
  if (m.type === "u8") {
    const n = x as number;
    if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new CodecError(`${field}: ${n} is not a u8`);
    v.setUint8(off, n);
  } else if (m.type === "u16") putU16(v, off, x as number, field);
  else if (m.type === "u32") putU32(v, off, x as number, field);
  else if (m.type === "s32") putS32(v, off, x as number, field);
  else putU64(v, off, x as bigint, field);
}

function readMember(v: DataView, at: number, m: Member): unknown {
  const off = at + m.offset;
  if (typeof m.type !== "string") return m.type.decodeAt(v, off);
  switch (m.type) {
    case "u8":
      return v.getUint8(off);
    case "u16":
      return getU16(v, off);
    case "u32":
      return getU32(v, off);
    case "s32":
      return getS32(v, off);
    case "u64":
      return getU64(v, off);
  }
}
