// The TypeScript uAPI definitions against real kernel headers, compiled with cc.
//
// For each header set (Debian bookworm 6.1, trixie 6.12, sid) a C program generated from the
// struct descriptions the codecs are derived from (src/uapi/*-layouts.ts) prints sizeof, offsetof
// and member sizes of every struct and member, and the value of every constant and ioctl number
// the TypeScript side defines; each is compared with the description. Items newer than a header
// set are checked only against the sets that have them. A deliberately wrong description must
// fail the same check: that is how we know the check can fail.
//
// A missing header set fails the test under CI=true. Elsewhere (an offline laptop) it is skipped
// with the reason printed, so the gap is visible rather than silent.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defineStruct, type Member, u32, u64 } from "../../src/uapi/struct.ts";
import { compileAndRun, type HeaderSet, locateHeaderSet } from "./header-sets.ts";
import {
  collectConstants,
  IOCTL_MACROS,
  LAYOUTS,
  type Layout,
  OLDER_FORMS,
  SIZE_EXPRESSIONS,
  sizeofExports,
  sizeofName,
  type Version,
} from "./table.ts";

const SET_NAMES = ["bookworm", "trixie", "sid"] as const;
const IN_CI = process.env.CI === "true" || process.env.CI === "1";
const CONSTANTS = collectConstants();
const SIZEOFS = sizeofExports();

// Wrong on purpose, each in one way a reviewer could miss: a u64 written as u32, two members
// swapped, a member's C name pointing at another member. The check must reject every one.
const WRONG: readonly Layout[] = [
  defineStruct("vfio_region_info", "vfio", 32, [
    u32("argsz", "argsz"),
    u32("flags", "flags"),
    u32("index", "index"),
    u32("cap_offset", "capOffset"),
    u32("size", "length"),
    u64("offset", "offset"),
  ]),
  defineStruct("vfio_iommu_type1_dma_map", "vfio", 32, [
    u32("argsz", "argsz"),
    u32("flags", "flags"),
    u64("iova", "iova"),
    u64("vaddr", "vaddr"),
    u64("size", "length"),
  ]),
  defineStruct("vfio_device_feature_dma_logging_control", "vfio", 16, [
    u64("page_size", "pageSize"),
    u64("ranges", "ranges"),
  ]),
];

type Loaded = { set: HeaderSet; values: Map<string, bigint[]> } | { error: string };
const loaded = new Map<string, Loaded>();
let workDir = "";

beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), "vfio-dirty-headers-"));
  for (const name of SET_NAMES) {
    const r = locateHeaderSet(name);
    if (!r.ok) {
      loaded.set(name, { error: r.reason });
      continue;
    }
    try {
      const out = compileAndRun(r.set, cProgram(r.set, [...LAYOUTS, ...WRONG]), workDir);
      loaded.set(name, { set: r.set, values: parseOutput(out) });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      loaded.set(name, {
        error: `compiling against ${name} failed: ${err.message}\n${err.stderr?.toString() ?? ""}`,
      });
    }
  }
});

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

for (const name of SET_NAMES) {
  describe(`${name} kernel headers`, () => {
    it("are available and compile", (ctx) => {
      const l = loaded.get(name)!;
      if ("error" in l) {
        if (IN_CI) throw new Error(`header set ${name} unavailable in CI: ${l.error}`);
        console.warn(`header check against ${name} SKIPPED (not in CI): ${l.error}`);
        ctx.skip(`${name} headers unavailable (not in CI): ${l.error.split("\n")[0]}`);
      }
    });

    for (const s of LAYOUTS) {
      it(`struct ${s.name}`, (ctx) => {
        const l = usable(name, ctx.skip);
        if (!applies(l.set, s.since, s.header))
          return ctx.skip(`not in ${name}'s ${l.set.version.join(".")} headers; checked against newer ones`);
        expect(layoutMismatches(s, l.set, l.values)).toEqual([]);
        expect(codecMismatches(s)).toEqual([]);
      });
    }

    it("rejects deliberately wrong descriptions", (ctx) => {
      const l = usable(name, ctx.skip);
      for (const w of WRONG) expect(layoutMismatches(w, l.set, l.values), w.name).not.toEqual([]);
      // The wrong region_info says exactly what is wrong: size is 4 bytes here, 8 in C.
      expect(layoutMismatches(WRONG[0]!, l.set, l.values)).toContain(`vfio_region_info.size: sizeof 4, C 8`);
    });

    it("sums of structs and older forms", (ctx) => {
      const l = usable(name, ctx.skip);
      for (const x of SIZE_EXPRESSIONS) {
        if (!applies(l.set, x.since, "vfio")) continue;
        expect(num(l.values, `expr ${x.ts}`, 0), x.ts).toBe(SIZEOFS.get(x.ts));
      }
      for (const x of OLDER_FORMS)
        if (applies(l.set, x.since, "vfio") && !atLeast(l.set.version, x.until))
          expect(num(l.values, `sizeof ${x.c}`, 0), x.ts).toBe(SIZEOFS.get(x.ts));
    });

    it("constants and ioctl numbers", (ctx) => {
      const l = usable(name, ctx.skip);
      const mismatches: string[] = [];
      let checked = 0;
      for (const k of CONSTANTS) {
        if (!applies(l.set, k.since, k.header)) continue;
        const c = l.values.get(`const ${k.ts}`)?.[0];
        checked++;
        if (c !== k.value) mismatches.push(`${k.ts}: TypeScript ${k.value}, C ${c}`);
      }
      IOCTL_MACROS.forEach((m, i) => {
        const c = l.values.get(`macro ${i}`)?.[0];
        if (c !== BigInt(m.ts))
          mismatches.push(`${m.c}: TypeScript 0x${m.ts.toString(16)}, C 0x${c?.toString(16)}`);
      });
      expect(mismatches).toEqual([]);
      expect(checked).toBeGreaterThan(50);
    });
  });
}

describe("coverage of the header check", () => {
  it("every SIZEOF_* export is a described struct's size, or compared with a C expression", () => {
    const byName = new Map(LAYOUTS.map((l) => [sizeofName(l), l]));
    const covered = new Set([
      ...byName.keys(),
      ...SIZE_EXPRESSIONS.map((x) => x.ts),
      ...OLDER_FORMS.map((x) => x.ts),
    ]);
    expect([...SIZEOFS.keys()].filter((n) => !covered.has(n))).toEqual([]);
    for (const [n, v] of SIZEOFS) if (byName.has(n)) expect(v, n).toBe(byName.get(n)!.size);
    for (const x of OLDER_FORMS)
      expect(SIZEOFS.get(x.ts), x.ts).toBe(LAYOUTS.find((l) => l.name === x.c)!.sizeAt([6, 6]));
  });

  it("the deliberately wrong descriptions are compiled against at least one header set", () => {
    expect(WRONG.every((w) => LAYOUTS.some((l) => l.name === w.name))).toBe(true);
  });

  it("every struct, field and constant is checked against at least one header set", (ctx) => {
    const sets = SET_NAMES.map((n) => loaded.get(n)!).filter(
      (l): l is Exclude<Loaded, { error: string }> => !("error" in l),
    );
    if (sets.length < SET_NAMES.length && !IN_CI)
      return ctx.skip("some header sets are unavailable (not in CI)");
    const unchecked: string[] = [];
    const any = (since: Version | undefined, header: "vfio" | "iommufd" | "ioctl") =>
      sets.some((l) => applies(l.set, since, header));
    for (const s of LAYOUTS) {
      if (!any(s.since, s.header)) unchecked.push(`struct ${s.name}`);
      for (const m of s.members) if (!any(m.since ?? s.since, s.header)) unchecked.push(`${s.name}.${m.c}`);
    }
    for (const k of CONSTANTS) if (!any(k.since, k.header)) unchecked.push(k.ts);
    expect(unchecked).toEqual([]);
  });
});

// --- Internal helpers ---

const MARKERS: Record<number, bigint> = { 1: 0xa5n, 2: 0xb2a1n, 4: 0x7d4c3b2an, 8: 0x0f1e2d3c4b5a6978n };

/** Where a description disagrees with the C compiler on this header set; empty when it agrees. */
function layoutMismatches(s: Layout, set: HeaderSet, values: Map<string, bigint[]>): string[] {
  const out: string[] = [];
  const cSize = num(values, `sizeof ${s.name}`, 0);
  const size = s.sizeAt(set.version);
  if (size !== cSize) out.push(`sizeof ${s.name}: ${size}, C ${cSize}`);
  for (const m of present(s, set)) {
    const key = m.flexible ? `off0 ${s.name}.${m.c}` : `off ${s.name}.${m.c}`;
    const cOffset = num(values, key, 0);
    if (m.offset !== cOffset) out.push(`${s.name}.${m.c}: offset ${m.offset}, C ${cOffset}`);
    if (!m.flexible && m.width !== num(values, key, 1))
      out.push(`${s.name}.${m.c}: sizeof ${m.width}, C ${num(values, key, 1)}`);
  }
  return out;
}

/**
 * The derived encoder and decoder put each scalar member where the description says: a marker
 * encoded into one member lands at its offset only, and decodes back from there.
 */
function codecMismatches(s: Layout): string[] {
  const out: string[] = [];
  const base: Record<string, unknown> = {};
  for (const m of s.members)
    if (m.ts && !m.flexible)
      base[m.ts] = typeof m.type !== "string" ? zeroOf(m.type) : m.type === "u64" ? 0n : 0;
  for (const m of s.members) {
    if (!m.ts || m.flexible || typeof m.type !== "string") continue;
    const marker = MARKERS[m.width]!;
    const value = m.type === "u64" ? marker : Number(marker);
    const bytes = s.encode({ ...base, [m.ts]: value });
    const hits = findAll(bytes, le(marker, m.width));
    if (hits.join() !== String(m.offset))
      out.push(`encoder puts ${s.name}.${m.c} at [${hits}], not ${m.offset}`);
    const decoded = s.decode(bytes) as Record<string, unknown>;
    if (decoded[m.ts] !== value) out.push(`decoder reads ${s.name}.${m.c} as ${decoded[m.ts]}`);
  }
  return out;
}

function zeroOf(l: Layout): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const m of l.members)
    if (m.ts && !m.flexible)
      o[m.ts] = typeof m.type !== "string" ? zeroOf(m.type) : m.type === "u64" ? 0n : 0;
  return o;
}

function present(s: Layout, set: HeaderSet): Member[] {
  return s.members.filter((m) => !m.since || atLeast(set.version, m.since));
}

function cProgram(set: HeaderSet, layouts: readonly Layout[]): string {
  const lines: string[] = [];
  for (const s of layouts) {
    if (!applies(set, s.since, s.header)) continue;
    lines.push(`  SZ(${s.name});`);
    for (const m of present(s, set)) lines.push(`  ${m.flexible ? "OFF0" : "OFF"}(${s.name}, ${m.c});`);
  }
  for (const x of SIZE_EXPRESSIONS)
    if (applies(set, x.since, "vfio")) lines.push(`  VAL("expr ${x.ts}", ${x.c});`);
  for (const k of CONSTANTS)
    if (applies(set, k.since, k.header)) lines.push(`  VAL("const ${k.ts}", ${k.c});`);
  IOCTL_MACROS.forEach((m, i) => {
    lines.push(`  VAL("macro ${i}", ${m.c});`);
  });
  return `#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/vfio.h>
${set.hasIommufd ? "#include <linux/iommufd.h>" : ""}
#define SZ(s) printf("sizeof %s %llu\\n", #s, (unsigned long long)sizeof(struct s))
#define OFF(s, f) printf("off %s.%s %llu %llu\\n", #s, #f, (unsigned long long)offsetof(struct s, f), \\
                         (unsigned long long)sizeof(((struct s *)0)->f))
#define OFF0(s, f) printf("off0 %s.%s %llu\\n", #s, #f, (unsigned long long)offsetof(struct s, f))
#define VAL(k, e) printf("%s %llu\\n", k, (unsigned long long)(e))
int main(void) {
${lines.join("\n")}
  return 0;
}
`;
}

function parseOutput(out: string): Map<string, bigint[]> {
  const m = new Map<string, bigint[]>();
  for (const line of out.split("\n")) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 3) continue;
    m.set(
      `${parts[0]} ${parts[1]}`,
      parts.slice(2).map((p) => BigInt(p)),
    );
  }
  return m;
}

function usable(
  name: string,
  skip: (note?: string) => never,
): { set: HeaderSet; values: Map<string, bigint[]> } {
  const l = loaded.get(name)!;
  if ("error" in l) {
    if (IN_CI) throw new Error(`header set ${name} unavailable: ${l.error}`);
    skip(`${name} headers unavailable (not in CI)`);
  }
  return l as { set: HeaderSet; values: Map<string, bigint[]> };
}

function applies(set: HeaderSet, since: Version | undefined, header: "vfio" | "iommufd" | "ioctl"): boolean {
  if (header === "iommufd" && !set.hasIommufd) return false;
  return since === undefined || atLeast(set.version, since);
}

function atLeast(v: Version, since: Version): boolean {
  return v[0] > since[0] || (v[0] === since[0] && v[1] >= since[1]);
}

function num(values: Map<string, bigint[]>, key: string, i: number): number {
  const v = values.get(key)?.[i];
  if (v === undefined) throw new Error(`the C program printed no "${key}"`);
  return Number(v);
}

function le(x: bigint, width: number): Uint8Array {
  const b = new Uint8Array(width);
  for (let i = 0; i < width; i++) b[i] = Number((x >> BigInt(8 * i)) & 0xffn);
  return b;
}

function findAll(hay: Uint8Array, needle: Uint8Array): number[] {
  const hits: number[] = [];
  for (let i = 0; i + needle.length <= hay.length; i++)
    if (needle.every((b, j) => hay[i + j] === b)) hits.push(i);
  return hits;
}
