// Summarise the vitest JSON reports the guests wrote into the run folder: one line per test,
// failure messages, and the closing "N passed, N failed" line. A boot that left no report
// (the guest hung, crashed or failed before vitest ran) counts as one failure.
// Usage: node lib/summarize.mjs RUN_DIR BOOT...
import { existsSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

const [runDir, ...boots] = process.argv.slice(2);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const boot of boots) {
  const report = join(runDir, boot, "vitest.json");
  if (!existsSync(report)) {
    failed++;
    console.log(`FAIL ${boot}: no results (see ${join(runDir, boot, "console.log")})`);
    continue;
  }
  const json = JSON.parse(readFileSync(report, "utf8"));
  // A scenario file with no entry in the report never ran: vitest's worker died before it.
  const ran = new Set((json.testResults ?? []).map((f) => relative(process.cwd(), f.name)));
  for (const f of readLines(join(runDir, boot, "files"))) {
    if (ran.has(`tests/vm/scenarios/${f}.test.ts`)) continue;
    failed++;
    console.log(
      `FAIL ${boot} tests/vm/scenarios/${f}.test.ts: never ran (see ${join(runDir, boot, "output.log")})`,
    );
  }
  // vitest failing with every listed test passed: an unhandled error (a crashed worker, say).
  const status = readLines(join(runDir, boot, "exit-status"))[0];
  const anyFailed = (json.testResults ?? []).some((f) => f.status === "failed");
  if (status !== undefined && status !== "0" && !anyFailed) {
    failed++;
    console.log(
      `FAIL ${boot}: vitest exited ${status} with no failed test (see ${join(runDir, boot, "output.log")})`,
    );
  }
  for (const file of json.testResults ?? []) {
    const name = relative(process.cwd(), file.name);
    if ((file.assertionResults ?? []).length === 0 && file.status === "failed") {
      failed++;
      console.log(`FAIL ${boot} ${name}: ${(file.message ?? "").split("\n")[0]}`);
      continue;
    }
    for (const t of file.assertionResults ?? []) {
      const ms = t.duration == null ? "" : ` (${Math.round(t.duration)} ms)`;
      if (t.status === "passed") {
        passed++;
        console.log(`PASS ${boot} ${name} > ${t.fullName}${ms}`);
      } else if (t.status === "failed") {
        failed++;
        console.log(`FAIL ${boot} ${name} > ${t.fullName}${ms}`);
        for (const m of t.failureMessages ?? [])
          console.log(`     ${m.split("\n").slice(0, 8).join("\n     ")}`);
      } else {
        skipped++;
        console.log(`SKIP ${boot} ${name} > ${t.fullName}`);
      }
    }
  }
}
// Every scenario is booted in the environment it needs, so a skip means the harness set the
// guest up wrongly: it fails the run instead of passing silently.
if (skipped) console.log(`${skipped} test(s) skipped: the guest was not set up as scenarios.conf says`);
console.log(`${passed} passed, ${failed + skipped} failed`);
process.exit(failed === 0 && skipped === 0 && passed > 0 ? 0 : 1);

// --- Internal helpers ---

function readLines(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split(/\s+/).filter(Boolean);
}
