// koffi is a native module: only the "./linux" subpath may load it, so the main entry and the
// simulated host run anywhere (browsers, Deno, a machine without a prebuilt koffi). Checked on
// the import graph of the sources, so a stray import fails here rather than on a user's machine.

import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const src = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

describe("koffi stays in src/linux", () => {
  it("no module outside src/linux imports koffi or src/linux", () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(src)) {
      const rel = relative(src, file);
      if (rel.startsWith("linux/")) continue;
      for (const spec of importsOf(file)) {
        const target = spec.startsWith(".") ? relative(src, resolve(dirname(file), spec)) : spec;
        if (
          spec === "koffi" ||
          spec.startsWith("koffi/") ||
          target.startsWith("linux/") ||
          target === "linux"
        )
          offenders.push(`${rel} -> ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it("the check sees imports at all (src/linux imports koffi)", () => {
    expect(importsOf(join(src, "linux/libc.ts"))).toContain("koffi");
  });
});

// --- Internal helpers ---

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

// Static and dynamic imports and re-exports: `from "x"`, `import "x"`, `import("x")`.
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)) specs.push(m[1]!);
  return specs;
}
