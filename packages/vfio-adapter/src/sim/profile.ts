// Host profiles: the JSON description of a simulated host, validated and resolved.
//
// A profile is checked against sim/profile.schema.json with ajv, then against rules a schema cannot
// express (unique PCI addresses, memory sections that overlap, vIOMMU mappings outside RAM). Every
// error names the offending field by its JSON path, so a user fixing a profile knows where to look.
// Resolution turns u64 strings ("0x1000", "2GiB") into bigint and fills the defaults the kernel
// version implies.
//
//   const profile = loadProfile("mlx5-vf");          // a shipped profile, or a path to a .json file
//   listProfiles();                                   // [{ name, description }]
//   parseProfile(JSON.parse(text), "my.json");       // throws InvalidInputError naming the field

import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { InvalidInputError } from "../errors.ts";
import { isPowerOfTwoIn } from "../util/page-size.ts";
import type { LogQuirk } from "./dma-log.ts";

/** A u64 as written in a profile: integer, decimal or hex string, or a binary size ("2GiB"). */
export type U64Json = number | string;

export interface ProfileJson {
  name: string;
  description?: string;
  kernel: string;
  seed?: number;
  clock?: "virtual" | "wall";
  iommu: {
    vendor: "intel" | "amd" | "arm-smmuv3";
    type1?: boolean;
    iommufd?: boolean;
    cdev?: boolean;
    dirtyTracking?: boolean;
    iovaPageSizes?: U64Json;
    dmaEntryLimit?: number;
    iovaRanges?: { iova: U64Json; length: U64Json }[];
  };
  memory: { name?: string; gpa: U64Json; length: U64Json; kind: "ram" | "bar"; device?: string }[];
  viommu?: { mappings: { iova: U64Json; gpa: U64Json; length: U64Json }[] };
  devices: DeviceJson[];
  groups?: { id: number; members: { bdf: string; driver?: string }[] }[];
  faults?: FaultSpec[];
  sysfs?: Record<string, string>;
}

export interface DeviceJson {
  bdf: string;
  vendor: string;
  device: string;
  class?: string;
  driver: string;
  group: number;
  numaNode?: number;
  migration?: {
    flags: ("stop-copy" | "p2p" | "pre-copy")[];
    stateBytes?: U64Json;
    precopyInitialBytes?: U64Json;
    precopyDirtyBytes?: U64Json;
    /** Milliseconds after a pre-copy session opens at which the device reconfigures (REINIT on 7.1+). */
    reinitAfterMs?: number[];
  };
  dmaLogging?: {
    maxRanges?: number;
    maxSpanLog2?: number;
    minPageSize?: U64Json;
    maxPageSize?: U64Json;
    restartErrno?: "EBUSY" | "EINVAL";
    /** Driver bugs (LOG_QUIRKS in dma-log.ts): a broken driver to test callers against. */
    quirks?: LogQuirk[];
  };
  iommuDirty?: boolean;
  pinnedPageScope?: boolean;
  /** Another process (a VMM) holds the device: its group and cdev are busy. */
  heldBy?: { pid: number; command: string };
  workload?: WorkloadJson;
}

export interface WorkloadJson {
  kind: "idle" | "hot-set" | "ring" | "uniform" | "bursts" | "trace";
  pagesPerSecond?: number;
  bytesPerSecond?: number;
  writeBytes?: number;
  seed?: number;
  region?: { iova: U64Json; length: U64Json }[];
  hotPages?: number;
  hotFraction?: number;
  ringPages?: number;
  burstMs?: number;
  idleMs?: number;
  events?: { atMs: number; iova: U64Json; length: U64Json }[];
  loopMs?: number;
}

/** A fault to inject: which calls it matches, when it fires, what it does. */
export interface FaultSpec {
  /** Operation name ("DMA_LOGGING_REPORT", "VFIO_IOMMU_DIRTY_PAGES", "IOMMU_HWPT_GET_DIRTY_BITMAP", ...) or "*". */
  op: string;
  /** Only calls on this device (PCI address). */
  device?: string;
  /** Errno name for effect "errno" ("EIO"). */
  errno?: string;
  effect?: "errno" | "error-state" | "log-reset";
  nth?: number;
  probability?: number;
  fromMs?: number;
  times?: number;
}

/** A byte range in some address space. */
export interface Range {
  start: bigint;
  length: bigint;
}

/** A profile with every u64 resolved and every default filled. */
export interface Profile {
  readonly json: ProfileJson;
  readonly name: string;
  readonly description: string;
  /** Kernel version as major * 1000 + minor (6.12 -> 6012), for feature gates. */
  readonly kernel: number;
  readonly seed: number;
  readonly clock: "virtual" | "wall";
  readonly iommu: {
    vendor: "intel" | "amd" | "arm-smmuv3";
    type1: boolean;
    iommufd: boolean;
    cdev: boolean;
    dirtyTracking: boolean;
    iovaPageSizes: bigint;
    dmaEntryLimit: number;
    iovaRanges: Range[];
  };
  readonly memory: { name: string; gpa: bigint; length: bigint; kind: "ram" | "bar"; device?: string }[];
  readonly viommu: { iova: bigint; gpa: bigint; length: bigint }[] | undefined;
  readonly devices: DeviceJson[];
  readonly groups: { id: number; members: { bdf: string; driver?: string }[] }[];
  readonly faults: FaultSpec[];
}

/** Kernel versions at which features appeared (major * 1000 + minor). */
export const KERNEL = {
  /** /dev/iommu and iommufd IOAS (6.2). */
  IOMMUFD: 6002,
  /** VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, VFIO_MIGRATION_PRE_COPY and VFIO_MIG_GET_PRECOPY_INFO (6.2). */
  MIG_DATA_SIZE: 6002,
  /** Device cdev /dev/vfio/devices/vfioN and BIND/ATTACH/DETACH (6.6). */
  CDEV: 6006,
  /** IOMMU_HWPT_ALLOC, IOMMU_GET_HW_INFO (6.6). */
  HWPT_ALLOC: 6006,
  /** IOMMU_HWPT_SET_DIRTY_TRACKING / GET_DIRTY_BITMAP and HWPT_ALLOC_DIRTY_TRACKING (6.7). */
  IOMMUFD_DIRTY: 6007,
  /**
   * type1 MAP_DMA, UNMAP_DMA and DIRTY_PAGES(GET_BITMAP) whose iova + size - 1 wraps are EOVERFLOW
   * (before: EINVAL), and a range ending exactly at 2^64 is accepted ("vfio/type1: sanitize for
   * overflow using check_*_overflow", 6.19; 6.12 has the old checks, 7.3 the new).
   */
  TYPE1_OVERFLOW: 6019,
  /** VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 and VFIO_PRECOPY_INFO_REINIT (7.1). */
  PRECOPY_INFO_V2: 7001,
} as const;

/** Parses and validates a profile document. Throws InvalidInputError naming the bad field. */
export function parseProfile(doc: unknown, source = "profile"): Profile {
  const validate = schemaValidator();
  if (!validate(doc)) throw new InvalidInputError(`${source}: ${formatAjvErrors(validate.errors ?? [])}`);
  const json = doc as ProfileJson;
  const [major, minor] = json.kernel.split(".").map(Number) as [number, number];
  const kernel = major * 1000 + minor;
  const iommufd = json.iommu.iommufd ?? kernel >= KERNEL.IOMMUFD;
  const iommu = {
    vendor: json.iommu.vendor,
    type1: json.iommu.type1 ?? true,
    iommufd,
    cdev: json.iommu.cdev ?? (iommufd && kernel >= KERNEL.CDEV),
    dirtyTracking: json.iommu.dirtyTracking ?? false,
    iovaPageSizes: u64(json.iommu.iovaPageSizes ?? "0x40201000", "/iommu/iovaPageSizes"),
    dmaEntryLimit: json.iommu.dmaEntryLimit ?? 65535,
    iovaRanges: (json.iommu.iovaRanges ?? DEFAULT_IOVA_RANGES).map((r, i) => ({
      start: u64(r.iova, `/iommu/iovaRanges/${i}/iova`),
      length: u64(r.length, `/iommu/iovaRanges/${i}/length`),
    })),
  };
  const fail = (path: string, msg: string): never => {
    throw new InvalidInputError(`${source}: ${path} ${msg}`);
  };
  if (iommu.iovaPageSizes === 0n || (iommu.iovaPageSizes & 0xfffn) !== 0n)
    fail("/iommu/iovaPageSizes", "must include no page size below 4 KiB and at least one");
  if (iommu.iommufd && kernel < KERNEL.IOMMUFD)
    fail("/iommu/iommufd", `needs kernel 6.2 or newer (kernel is ${json.kernel})`);
  if (iommu.cdev && kernel < KERNEL.CDEV)
    fail("/iommu/cdev", `needs kernel 6.6 or newer (kernel is ${json.kernel})`);
  if (iommu.cdev && !iommu.iommufd) fail("/iommu/cdev", "needs iommufd");
  if (iommu.dirtyTracking && kernel < KERNEL.IOMMUFD_DIRTY)
    fail("/iommu/dirtyTracking", `needs kernel 6.7 or newer (kernel is ${json.kernel})`);
  if (!iommu.type1 && !iommu.iommufd) fail("/iommu", "must offer type1 or iommufd");

  const memory = json.memory.map((m, i) => {
    const gpa = u64(m.gpa, `/memory/${i}/gpa`);
    const length = u64(m.length, `/memory/${i}/length`);
    if (length === 0n || (gpa | length) & 0xfffn)
      fail(`/memory/${i}`, "gpa and length must be 4 KiB aligned and length non-zero");
    return {
      name: m.name ?? `${m.kind}${i}`,
      gpa,
      length,
      kind: m.kind,
      ...(m.device ? { device: m.device } : {}),
    };
  });
  const sorted = memory.map((m, i) => ({ ...m, i })).sort((a, b) => (a.gpa < b.gpa ? -1 : 1));
  for (let k = 1; k < sorted.length; k++) {
    const prev = sorted[k - 1]!;
    const cur = sorted[k]!;
    if (cur.gpa < prev.gpa + prev.length) fail(`/memory/${cur.i}/gpa`, `overlaps /memory/${prev.i}`);
  }
  if (!memory.some((m) => m.kind === "ram")) fail("/memory", "needs at least one ram section");

  const seen = new Set<string>();
  json.devices.forEach((d, i) => {
    if (seen.has(d.bdf)) fail(`/devices/${i}/bdf`, `duplicates ${d.bdf}`);
    seen.add(d.bdf);
    const lg = d.dmaLogging;
    if (lg) {
      const minP = u64(lg.minPageSize ?? 4096, `/devices/${i}/dmaLogging/minPageSize`);
      const maxP = u64(lg.maxPageSize ?? "0x40000000", `/devices/${i}/dmaLogging/maxPageSize`);
      if (!isPowerOfTwoIn(minP, 4096n))
        fail(`/devices/${i}/dmaLogging/minPageSize`, "must be a power of two >= 4096");
      if (!isPowerOfTwoIn(maxP, minP))
        fail(`/devices/${i}/dmaLogging/maxPageSize`, "must be a power of two >= minPageSize");
    }
    if (d.migration?.flags.includes("pre-copy") && kernel < KERNEL.MIG_DATA_SIZE)
      fail(`/devices/${i}/migration/flags`, `pre-copy needs kernel 6.2 or newer (kernel is ${json.kernel})`);
    const w = d.workload;
    if (
      w &&
      w.kind !== "idle" &&
      w.kind !== "trace" &&
      w.pagesPerSecond === undefined &&
      w.bytesPerSecond === undefined
    )
      fail(`/devices/${i}/workload`, "needs pagesPerSecond or bytesPerSecond");
    if (w?.kind === "trace" && !w.events)
      fail(`/devices/${i}/workload/events`, "is required for a trace workload");
    w?.region?.forEach((r, k) => {
      u64(r.iova, `/devices/${i}/workload/region/${k}/iova`);
      if (u64(r.length, `/devices/${i}/workload/region/${k}/length`) === 0n)
        fail(`/devices/${i}/workload/region/${k}/length`, "must be non-zero");
    });
  });

  const viommu = json.viommu?.mappings.map((m, i) => {
    const v = {
      iova: u64(m.iova, `/viommu/mappings/${i}/iova`),
      gpa: u64(m.gpa, `/viommu/mappings/${i}/gpa`),
      length: u64(m.length, `/viommu/mappings/${i}/length`),
    };
    if ((v.iova | v.gpa | v.length) & 0xfffn || v.length === 0n)
      fail(`/viommu/mappings/${i}`, "must be 4 KiB aligned and non-empty");
    if (!memory.some((s) => s.kind === "ram" && v.gpa >= s.gpa && v.gpa + v.length <= s.gpa + s.length))
      fail(`/viommu/mappings/${i}/gpa`, "must fall inside one ram section");
    return v;
  });

  (json.faults ?? []).forEach((f, i) => {
    if ((f.effect ?? "errno") === "errno" && !f.errno)
      fail(`/faults/${i}/errno`, "is required for effect errno");
  });

  return {
    json,
    name: json.name,
    description: json.description ?? "",
    kernel,
    seed: json.seed ?? 1,
    clock: json.clock ?? "virtual",
    iommu,
    memory,
    viommu,
    devices: json.devices,
    groups: json.groups ?? [],
    faults: json.faults ?? [],
  };
}

/** Loads a shipped profile by name ("mlx5-vf") or a profile file by path. */
export function loadProfile(nameOrPath: string): Profile {
  const isPath = nameOrPath.includes("/") || nameOrPath.endsWith(".json");
  if (!isPath && !/^[a-z0-9][a-z0-9-]*$/.test(nameOrPath))
    throw new InvalidInputError(
      `profile name ${JSON.stringify(nameOrPath)}: use a shipped name or a path to a .json file`,
    );
  const url = isPath ? nameOrPath : new URL(`${nameOrPath}.json`, profilesDir());
  let text: string;
  try {
    text = readFileSync(url, "utf8");
  } catch (cause) {
    const known = listProfiles()
      .map((p) => p.name)
      .join(", ");
    throw new InvalidInputError(
      isPath
        ? `cannot read profile ${nameOrPath}`
        : `no shipped profile named ${nameOrPath} (shipped: ${known})`,
      { cause },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new InvalidInputError(`${nameOrPath}: not valid JSON (${(cause as Error).message})`, { cause });
  }
  return parseProfile(doc, isPath ? nameOrPath : `${nameOrPath}.json`);
}

/** The shipped profiles with their one-line descriptions, sorted by name. */
export function listProfiles(): { name: string; description: string }[] {
  const dir = profilesDir();
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((f) => {
      const doc = JSON.parse(readFileSync(new URL(f, dir), "utf8")) as ProfileJson;
      return { name: doc.name, description: doc.description ?? "" };
    });
}

/** Parses a profile u64 ("0x1000", "4096", "2GiB", 4096). Throws naming `path`. */
export function u64(x: U64Json, path: string): bigint {
  if (typeof x === "number") {
    if (!Number.isSafeInteger(x) || x < 0)
      throw new InvalidInputError(`${path} ${x} is not a safe non-negative integer`);
    return BigInt(x);
  }
  const m = /^(0x[0-9a-fA-F]+|[0-9]+)(KiB|MiB|GiB|TiB)?$/.exec(x);
  if (!m) throw new InvalidInputError(`${path} ${JSON.stringify(x)} is not a u64`);
  const unit = { KiB: 10n, MiB: 20n, GiB: 30n, TiB: 40n }[m[2] as "KiB"] ?? 0n;
  const v = BigInt(m[1]!) << unit;
  if (v > 0xffff_ffff_ffff_ffffn) throw new InvalidInputError(`${path} ${x} does not fit in 64 bits`);
  return v;
}

// --- Internal helpers ---

const DEFAULT_IOVA_RANGES = [
  { iova: "0x0", length: "0xfee00000" },
  { iova: "0xfef00000", length: "0xffff01100000" },
];

type Validator = ((doc: unknown) => boolean) & { errors?: AjvError[] | null };
interface AjvError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

let cachedValidator: Validator | undefined;

function schemaValidator(): Validator {
  if (cachedValidator) return cachedValidator;
  // ajv is CommonJS; createRequire avoids the default-export interop differences between runtimes.
  const require = createRequire(import.meta.url);
  const Ajv = require("ajv") as new (opts: object) => { compile(schema: object): Validator };
  const schema = JSON.parse(readFileSync(new URL("profile.schema.json", simDir()), "utf8")) as object;
  cachedValidator = new Ajv({ allErrors: true, strict: false }).compile(schema);
  return cachedValidator;
}

/** The most useful ajv errors, each as "<json path> <message>": deepest paths first, no oneOf noise. */
function formatAjvErrors(errors: AjvError[]): string {
  const useful = errors.filter((e) => e.keyword !== "oneOf" && e.keyword !== "if");
  const list = (useful.length ? useful : errors).map((e) => {
    const path = e.instancePath || "/";
    if (e.keyword === "additionalProperties")
      return `${path} has unknown field ${String(e.params.additionalProperty)}`;
    if (e.keyword === "required")
      return `${path} is missing required field ${String(e.params.missingProperty)}`;
    if (e.keyword === "enum") return `${path} must be one of ${JSON.stringify(e.params.allowedValues)}`;
    return `${path} ${e.message ?? e.keyword}`;
  });
  return [...new Set(list)].slice(0, 5).join("; ");
}

/** packages/vfio-adapter/sim/, from src/sim/ (tests) and from dist/sim/ (built) alike. */
function simDir(): URL {
  return new URL("../../sim/", import.meta.url);
}

function profilesDir(): URL {
  return new URL("profiles/", simDir());
}
