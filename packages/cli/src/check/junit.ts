// `check --junit FILE`: the results as JUnit XML, the format CI systems read (Jenkins, GitLab,
// GitHub test reporters). One <testsuite> per device and path, one <testcase> per rule result:
// a failed MUST or SHOULD is a <failure> whose type is the level, a skipped rule is <skipped>
// with the reason, a rule that could not run is an <error>, and an INFO result passes with what
// it observed in <system-out>. The rule's level and source go into each testcase's output.

import { hostname as osHostname } from "node:os";
import { XMLBuilder } from "fast-xml-parser";
import { type CheckDocument, resultGroups } from "./document.ts";
import type { RuleResult } from "./run.ts";

/** The JUnit XML of a check document; `hostname` defaults to this machine's (the sim's name when simulated). */
export function junitXml(
  doc: CheckDocument,
  timestamp = new Date(),
  hostname = doc.simulated ? doc.host : osHostname(),
): string {
  const suites = doc.devices.flatMap((d) =>
    resultGroups(d.results).map(([label, results]) => {
      const count = (r: RuleResult["result"]) => results.filter((x) => x.result === r).length;
      return {
        "@_name": `${d.address} ${label}`,
        "@_tests": results.length,
        "@_failures": count("fail"),
        "@_errors": count("error"),
        "@_skipped": count("skip"),
        "@_time": seconds(results),
        "@_timestamp": timestamp.toISOString().replace(/\.\d+Z$/, ""),
        "@_hostname": hostname,
        properties: {
          property: [
            { "@_name": "driver", "@_value": d.driver ?? "" },
            { "@_name": "workload", "@_value": doc.workload },
          ],
        },
        testcase: results.map((r) => testcase(d.address, label, r)),
      };
    }),
  );
  const s = doc.summary;
  const tree = {
    "?xml": { "@_version": "1.0", "@_encoding": "UTF-8" },
    testsuites: {
      "@_name": `vfio-dirty check (${doc.host})`,
      "@_tests": s.rules,
      "@_failures": s.failed,
      "@_errors": s.errors,
      "@_skipped": s.skipped,
      "@_time": seconds(doc.devices.flatMap((d) => d.results)),
      testsuite: suites,
    },
  };
  const builder = new XMLBuilder({ ignoreAttributes: false, format: true, suppressEmptyNode: true });
  return `${builder.build(tree)}`;
}

// --- Internal helpers ---

function testcase(address: string, label: string, r: RuleResult) {
  const about = `${r.level}: ${r.title}\nsource: ${r.source}\nscenario: ${r.scenario}`;
  const base = {
    "@_name": r.id,
    "@_classname": `vfio-dirty.check.${address}.${label.replace(/[ ()]+/g, ".").replace(/\.$/, "")}`,
    "@_time": (r.ms / 1000).toFixed(3),
  };
  switch (r.result) {
    case "fail":
      return { ...base, failure: { "@_type": r.level, "@_message": r.detail, "#text": about } };
    case "error":
      return { ...base, error: { "@_type": "setup", "@_message": r.detail, "#text": about } };
    case "skip":
      return { ...base, skipped: { "@_message": r.detail } };
    default:
      return {
        ...base,
        "system-out": `${r.result === "info" ? "observed" : "passed"}: ${r.detail}\n${about}`,
      };
  }
}

function seconds(results: readonly RuleResult[]): string {
  return (results.reduce((a, r) => a + r.ms, 0) / 1000).toFixed(3);
}
