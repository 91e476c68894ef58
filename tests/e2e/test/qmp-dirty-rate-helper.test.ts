// The VM tests' host-side QMP helper (tests/vm/lib/qmp-dirty-rate.mjs) against a fake QMP server:
// it must survive seeing the guest's request file between create and write. Under load in CI it
// once read the file empty, died on JSON.parse without a word in its log, and the guest's
// dirty-rate test failed with "no reply".

import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("tests/vm/lib/qmp-dirty-rate.mjs", () => {
  it("an empty request file (created, not yet written) is read again, not fatal", async () => {
    const sockPath = join(tmp.dir, "qmp.sock");
    let queries = 0;
    const server = createServer((c) => {
      c.write('{"QMP": {}}\n');
      c.on("data", (d) => {
        for (const line of d.toString().split("\n").filter(Boolean)) {
          const m = JSON.parse(line) as { execute: string };
          const status = ++queries > 3 ? "measured" : "measuring";
          if (m.execute === "query-dirty-rate")
            c.write(`${JSON.stringify({ return: { status, mode: "page-sampling", "dirty-rate": 5 } })}\n`);
          else c.write('{"return": {}}\n');
        }
      });
    }).listen(sockPath);
    const helper = spawn(
      process.execPath,
      [join(REPO, "tests/vm/lib/qmp-dirty-rate.mjs"), sockPath, tmp.dir],
      {
        stdio: "ignore",
      },
    );
    try {
      const log = join(tmp.dir, "qmp-dirty-rate.log");
      for (let i = 0; i < 100 && !existsSync(log); i++) await sleep(100);
      writeFileSync(join(tmp.dir, "dirty-rate.request"), ""); // what a loaded host saw
      await sleep(600);
      writeFileSync(join(tmp.dir, "dirty-rate.request"), JSON.stringify({ calcTimeS: 2 }));
      const measured = join(tmp.dir, "query-dirty-rate.json");
      for (let i = 0; i < 100 && !existsSync(measured); i++) await sleep(100);
      expect(existsSync(measured), readFileSync(log, "utf8")).toBe(true);
      expect(JSON.parse(readFileSync(measured, "utf8")).return.status).toBe("measured");
      expect(readFileSync(log, "utf8")).toMatch(/calc-dirty-rate 2 s/);
    } finally {
      helper.kill();
      server.close();
    }
  });
});
