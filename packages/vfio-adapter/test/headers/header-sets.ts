// The kernel uAPI header sets the layout check compiles against, and how to get them.
//
//   bookworm  /usr/include (linux-libc-dev 6.1, installed by CI from .ci/apt-packages.txt): vfio.h, no iommufd.h
//   trixie    linux-libc-dev 6.12, fetched by scripts/fetch-headers.sh into the cache
//   sid       the newest linux-libc-dev (has the 24-byte bind-iommufd form), fetched the same way
//
// The cache lives outside the repository (${VFIO_DIRTY_CACHE:-~/.cache/vfio-dirty}/headers). Fetching
// is an install step (`npm run fetch-headers -w packages/vfio-adapter`; CI's .ci/run does it before
// `npm test`): the test only looks in the cache, so it never touches the network.

import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Version } from "./table.ts";

export interface HeaderSet {
  name: string;
  /** -I directories, newest first; empty for the compiler's own /usr/include. */
  includeDirs: string[];
  /** From linux/version.h. */
  version: Version;
  hasIommufd: boolean;
}

export type HeaderSetResult = { ok: true; set: HeaderSet } | { ok: false; name: string; reason: string };

const FETCH = fileURLToPath(new URL("../../scripts/fetch-headers.sh", import.meta.url));

/** Finds a header set (bookworm in /usr/include, trixie and sid in the cache); never throws. */
export function locateHeaderSet(name: "bookworm" | "trixie" | "sid"): HeaderSetResult {
  try {
    if (name === "bookworm") {
      if (!existsSync("/usr/include/linux/vfio.h"))
        return {
          ok: false,
          name,
          reason: "/usr/include/linux/vfio.h is missing: apt-get install linux-libc-dev",
        };
      return { ok: true, set: describe(name, "/usr/include", []) };
    }
    const dir = execFileSync("sh", [FETCH, "--installed", name], {
      encoding: "utf8",
      timeout: 30_000,
      stdio: ["ignore", "pipe", "pipe"],
    })
      .trim()
      .split("\n")
      .pop()!;
    return { ok: true, set: describe(name, dir, [dir, join(dir, multiarch())]) };
  } catch (e) {
    const err = e as { stderr?: Buffer | string; message: string };
    return { ok: false, name, reason: `${err.message}\n${err.stderr?.toString() ?? ""}`.trim() };
  }
}

/** Compiles `source` against the set with cc and returns the program's stdout. */
export function compileAndRun(set: HeaderSet, source: string, workDir: string): string {
  const src = join(workDir, `layout-${set.name}.c`);
  const exe = join(workDir, `layout-${set.name}`);
  writeFileSync(src, source);
  const includes = set.includeDirs.flatMap((d) => ["-I", d]);
  execFileSync("cc", ["-std=gnu11", "-Wall", "-Werror", ...includes, "-o", exe, src], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  return execFileSync(exe, { encoding: "utf8" });
}

// --- Internal helpers ---

function describe(name: string, root: string, includeDirs: string[]): HeaderSet {
  const text = readFileSync(join(root, "linux/version.h"), "utf8");
  const code = Number(/LINUX_VERSION_CODE\s+(\d+)/.exec(text)?.[1]);
  if (!Number.isInteger(code)) throw new Error(`${root}/linux/version.h has no LINUX_VERSION_CODE`);
  return {
    name,
    includeDirs,
    version: [code >> 16, (code >> 8) & 0xff],
    hasIommufd: existsSync(join(root, "linux/iommufd.h")),
  };
}

function multiarch(): string {
  return execFileSync("cc", ["-print-multiarch"], { encoding: "utf8" }).trim() || "x86_64-linux-gnu";
}
