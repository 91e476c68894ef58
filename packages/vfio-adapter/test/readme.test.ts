// The README must describe what the package really is, so it cannot rot silently:
// - its first example runs as written (on the simulated host) and prints what its comments say;
// - every name imported from the package in a README code block exists;
// - every export of the entry points and every public method of the typed objects is documented,
//   and every method the typed-object tables name exists.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { format } from "node:util";
import { afterAll, describe, expect, it, vi } from "vitest";
import { Errno, errnoHint } from "../src/errors.ts";
import * as root from "../src/index.ts";
import * as linux from "../src/linux/index.ts";
import * as scenarios from "../src/scenarios/index.ts";
import * as sim from "../src/sim/index.ts";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, "..");
const readme = readFileSync(join(pkg, "README.md"), "utf8");
const simReadme = readFileSync(join(pkg, "sim/README.md"), "utf8");
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const code = blocks.join("\n");

const ENTRIES: Record<string, Record<string, unknown>> = {
  "@vfio-dirty/vfio-adapter": root,
  "@vfio-dirty/vfio-adapter/linux": linux,
  "@vfio-dirty/vfio-adapter/sim": sim,
  "@vfio-dirty/vfio-adapter/scenarios": scenarios,
};

/** The README section under `heading` (up to the next heading of the same or a higher level). */
function section(heading: string): string {
  const level = /^#+/.exec(heading)![0].length;
  const start = readme.indexOf(`${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + heading.length + 1);
  const end = rest.search(new RegExp(`^#{1,${level}} `, "m"));
  return end < 0 ? rest : rest.slice(0, end);
}

describe("README example", () => {
  // Outside the package, so lint and typecheck running alongside never see the generated files.
  const workDir = mkdtempSync(join(tmpdir(), "vfio-adapter-readme-"));
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  it("runs as written against createSimHost and prints what each comment says", async () => {
    const example = /```ts\n([\s\S]*?)```/.exec(section("## Example"))?.[1];
    expect(example).toBeDefined();
    // The only changes: imports point at the sources, and the Linux host is the simulated one.
    const shim = join(workDir, "linux-shim.ts");
    writeFileSync(
      shim,
      `import { createSimHost } from ${JSON.stringify(join(pkg, "src/sim/index.ts"))};\n` +
        `export const createLinuxHost = () => createSimHost("mlx5-vf");\n`,
    );
    const runnable = example!
      .replace('"@vfio-dirty/vfio-adapter/linux"', JSON.stringify(shim))
      .replace('"@vfio-dirty/vfio-adapter"', JSON.stringify(join(pkg, "src/index.ts")));
    expect(runnable).not.toMatch(/^import .* from "@vfio-dirty\//m);
    const file = join(workDir, "example.ts");
    writeFileSync(file, runnable);

    // Each `console.log(...); // text` promises `text` (up to a double space, after which a
    // remark may follow) as the printed line.
    const promised = [...example!.matchAll(/console\.log\(.*\); \/\/ (.*)$/gm)].map(
      (m) => m[1]!.split(/ {2,}/)[0]!,
    );
    expect(promised.length).toBeGreaterThanOrEqual(4);
    const printed: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      printed.push(format(...args));
    });
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      spy.mockRestore();
    }
    expect(printed).toEqual(promised);
  });
});

describe("README names", () => {
  it("imports only names the entry points export", () => {
    const imports = [...code.matchAll(/import \{([^}]+)\} from "([^"]+)"/g)];
    expect(imports.length).toBeGreaterThanOrEqual(3);
    for (const [, names, from] of imports) {
      const entry = ENTRIES[from!];
      expect(entry, from).toBeDefined();
      for (const name of names!.split(",").map((n) => n.trim()))
        expect(entry![name], `${name} from ${from}`).toBeDefined();
    }
  });

  it("documents every runtime export of every entry point", () => {
    for (const [from, entry] of Object.entries(ENTRIES)) {
      // The simulator's API is documented in sim/README.md, which the README links to.
      const docs = from.endsWith("/sim") ? readme + simReadme : readme;
      const missing = Object.keys(entry).filter(
        (name) => !docs.includes(`\`${name}`) && !docs.includes(`${name}(`),
      );
      expect(missing, `exports of ${from} the README does not mention`).toEqual([]);
    }
  });

  it("names every uapi constant and codec it shows, and they exist", () => {
    const shown = new Set([...readme.matchAll(/uapi\.([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!));
    for (const name of section("## The `uapi` namespace (`src/uapi/`)").matchAll(
      /`([A-Za-z_][A-Za-z0-9_]*)[`(]/g,
    ))
      if (/^[A-Z_0-9]+$|^(encode|decode|walk|build|fit|iommu|mig|device)[A-Za-z]*$|^_IO/.test(name[1]!))
        shown.add(name[1]!);
    expect(shown.size).toBeGreaterThan(20);
    const missing = [...shown].filter((n) => !(n in root.uapi));
    expect(missing).toEqual([]);
  });
});

describe("README typed-object tables", () => {
  // Names on the prototypes that are not public API: protected and private helpers.
  const INTERNAL = new Set([
    "constructor",
    "detail",
    "ioctl",
    "tryIoctl",
    "encode",
    "decode",
    "featureFlags",
    "checkRegionAccess",
    "regionIo",
    "vfioBitmap",
  ]);
  const CLASSES = {
    Container: root.Container,
    Group: root.Group,
    Device: root.Device,
    DeviceCdev: root.DeviceCdev,
    IommuFd: root.IommuFd,
  } as const;
  const common = section("## Typed objects (`src/vfio/`)").split("\n### ")[0]!;

  /** Public members along the prototype chain, and the class's own statics. */
  function members(cls: (typeof CLASSES)[keyof typeof CLASSES]): {
    instance: Set<string>;
    statics: Set<string>;
  } {
    const instance = new Set<string>();
    for (let p = cls.prototype; p && p !== Object.prototype; p = Object.getPrototypeOf(p))
      for (const k of Reflect.ownKeys(p)) if (typeof k === "string" && !INTERNAL.has(k)) instance.add(k);
    const statics = new Set(
      Object.getOwnPropertyNames(cls).filter((k) => typeof Reflect.get(cls, k) === "function"),
    );
    return { instance, statics };
  }

  for (const [name, cls] of Object.entries(CLASSES)) {
    it(`${name}: every public method is documented and every documented one exists`, () => {
      const text = section(`### \`${name}\`${readme.match(new RegExp(`### \`${name}\`(.*)\n`))?.[1] ?? ""}`);
      const { instance, statics } = members(cls);
      const named = new Set(
        [...text.matchAll(/`(?:[A-Za-z]+\.)?([a-zA-Z][a-zA-Z0-9]*)\(/g)].map((m) => m[1]!),
      );
      const staticNamed = [...text.matchAll(new RegExp(`\`${name}\\.([a-zA-Z]+)\\(`, "g"))].map((m) => m[1]!);
      for (const s of staticNamed) expect(statics, `${name}.${s}`).toContain(s);
      for (const m of named)
        if (!staticNamed.includes(m)) expect(instance.has(m) || statics.has(m), `${name}#${m}`).toBe(true);
      // Inherited Device methods are documented in Device's table; the fd lifetime in the common part.
      const inheritedDocs = name === "DeviceCdev" ? section("### `Device`: a VFIO device fd") : "";
      const documented = (m: string) =>
        named.has(m) ||
        text.includes(`\`${m}\``) ||
        inheritedDocs.includes(`\`${m}`) ||
        common.includes(`\`${m}`);
      expect(
        [...instance].filter((m) => !documented(m)),
        `undocumented ${name} members`,
      ).toEqual([]);
      expect(
        [...statics].filter((m) => !staticNamed.includes(m)),
        `undocumented ${name} statics`,
      ).toEqual([]);
    });
  }
});

describe("README errno hints", () => {
  // The operations and open targets whose hints differ from the generic one.
  const CALLS: [op: string, target?: string][] = [
    ["VFIO_IOMMU_MAP_DMA"],
    ["VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)"],
    ["IOMMU_HWPT_ALLOC"],
    ["open", "/dev/vfio/devices/vfio0"],
    ["open", "/dev/iommu"],
    ["open", "/dev/vfio/vfio"],
    ["open", "/dev/vfio/12"],
    ["open", "/run/other"],
  ];
  const rows = new Map<string, string>();
  for (const m of section("## Errors (`src/errors.ts`)").matchAll(
    /^\| ([A-Z0-9, ]+|any other) +\| (.*) \|$/gm,
  ))
    for (const name of m[1]!.split(",")) rows.set(name.trim(), m[2]!.replaceAll("`", ""));
  const fallback = errnoHint("VFIO_IOMMU_MAP_DMA", 0xfff);

  it("gives each errno's hints verbatim, for every operation that has its own", () => {
    expect(rows.get("any other")).toContain(fallback);
    for (const [name, errno] of Object.entries(Errno)) {
      const hints = new Set(CALLS.map(([op, target]) => errnoHint(op, errno, target)));
      if (hints.size === 1 && hints.has(fallback)) continue; // covered by "any other"
      const row = rows.get(name);
      expect(row, `${name} has its own hint but no row`).toBeDefined();
      for (const h of hints) expect(row, name).toContain(h);
    }
  });
});
