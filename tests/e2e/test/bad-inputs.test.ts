// User mistakes: each gives exit 2 and exactly one line on stderr naming the problem (and, where
// there is one, the fix), never a stack trace.

import { mkdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, tempDir } from "./helpers.ts";

const tmp = tempDir();
afterAll(tmp.cleanup);
const f = (name: string) => join(tmp.dir, name);
writeFileSync(f("ok.bin"), new Uint8Array(64));
writeFileSync(f("odd.bin"), new Uint8Array(13));
writeFileSync(f("empty.bin"), new Uint8Array(0));
writeFileSync(f("not.json"), "{ nope");
writeFileSync(f("other.json"), JSON.stringify({ schema: "something-else" }));
writeFileSync(f("bad-profile.json"), "{ not json");
mkdirSync(f("dir"), { recursive: true });
// 3 GiB and sparse: no disk used, but more than Node reads into one buffer.
writeFileSync(f("huge.bin"), "");
truncateSync(f("huge.bin"), 3 * 2 ** 30);
writeFileSync(
  f("bad-trace.json"),
  JSON.stringify({
    events: [
      { atMs: 1, iova: "0x1000", length: 4096 },
      { atMs: 2, iova: "zz", length: 4096 },
    ],
  }),
);

const CASES: [string, string[], RegExp][] = [
  ["unknown command", ["frobnicate"], /unknown command 'frobnicate'.*--help/],
  ["unknown option", ["predict", "--bogus"], /unknown option '--bogus'.*--help/],
  ["missing argument", ["bitmap", "stats"], /missing required argument 'file'/],
  [
    "missing file",
    ["bitmap", "stats", f("nope.bin")],
    /nope\.bin: cannot read \(no such file\); check the path/,
  ],
  ["a directory", ["bitmap", "stats", f("dir")], /cannot read \(is a directory\)/],
  ["length not a multiple of 8", ["bitmap", "stats", f("odd.bin")], /13 bytes .* multiple of 8/],
  ["empty bitmap", ["bitmap", "stats", f("empty.bin")], /0 bytes .* non-zero multiple of 8/],
  [
    "a tracking page larger than the vIOMMU's mappings",
    ["track", "--host", "sim:viommu", "--page-size", "2M", "--duration", "1s", "--fast"],
    /--page-size 2M: the vIOMMU maps 256K pages, .*use --page-size 256K or less/,
  ],
  [
    "page size not a power of two",
    ["bitmap", "stats", f("ok.bin"), "--page-size", "3K"],
    /--page-size '3K': .*power of two/,
  ],
  [
    "page size not a size",
    ["bitmap", "stats", f("ok.bin"), "--page-size", "4Q"],
    /--page-size '4Q': not a size; use e\.g\. 4096/,
  ],
  [
    "page size too big",
    ["bitmap", "stats", f("ok.bin"), "--page-size", "2G"],
    /--page-size '2G': .*from 512 to 1G/,
  ],
  ["base not an address", ["bitmap", "stats", f("ok.bin"), "--base", "xyz"], /--base 'xyz': not an address/],
  [
    "base above 2^64-1",
    ["bitmap", "stats", f("ok.bin"), "--base", "0x10000000000000000"],
    /--base .*above 2\^64-1/,
  ],
  [
    "base not page aligned",
    ["bitmap", "stats", f("ok.bin"), "--base", "0x1001"],
    /base 0x1001 is not a multiple of the page size/,
  ],
  ["bitmap past 2^64", ["bitmap", "stats", f("ok.bin"), "--base", "0xfffffffffffff000"], /pass 2\^64/],
  [
    "convert without target page size",
    ["bitmap", "convert", f("ok.bin"), f("o.bin")],
    /needs --to-page-size/,
  ],
  [
    "convert to a bad page size",
    ["bitmap", "convert", f("ok.bin"), f("o.bin"), "--to-page-size", "1000"],
    /--to-page-size '1000'/,
  ],
  [
    "convert to a base above the input",
    ["bitmap", "convert", f("ok.bin"), f("o.bin"), "--to-page-size", "4K", "--to-base", "0x2000"],
    /pages below it would be lost/,
  ],
  ["merge without inputs", ["bitmap", "merge", f("o.bin")], /missing required argument 'in'/],
  [
    "merge input with bad page size",
    ["bitmap", "merge", f("o.bin"), `${f("ok.bin")},page-size=7`],
    /page-size '7'/,
  ],
  [
    "translate without mappings",
    ["bitmap", "translate", f("ok.bin"), f("o.bin")],
    /needs mappings; give --map/,
  ],
  [
    "translate map not IOVA:GPA:SIZE",
    ["bitmap", "translate", f("ok.bin"), f("o.bin"), "--map", "1:2"],
    /not IOVA:GPA:SIZE/,
  ],
  [
    "translate map of size zero",
    ["bitmap", "translate", f("ok.bin"), f("o.bin"), "--map", "0:0:0"],
    /size is zero/,
  ],
  [
    "translate overlapping maps",
    ["bitmap", "translate", f("ok.bin"), f("o.bin"), "--map", "0:0:8K", "--map", "0x1000:0x100000:4K"],
    /overlap/,
  ],
  [
    "translate unaligned map",
    ["bitmap", "translate", f("ok.bin"), f("o.bin"), "--map", "0x800:0:4K"],
    /not aligned to the page size/,
  ],
  [
    "translate missing map file",
    ["bitmap", "translate", f("ok.bin"), f("o.bin"), "--map-file", f("none.map")],
    /none\.map: cannot read/,
  ],
  ["render without --svg", ["bitmap", "render", f("ok.bin")], /needs --svg/],
  [
    "render with zero cells",
    ["bitmap", "render", f("ok.bin"), "--svg", f("x.svg"), "--cells", "0"],
    /--cells '0'/,
  ],
  ["predict without bandwidth", ["predict", "--dirty-rate", "1G/s", "--ram", "1G"], /needs --bandwidth/],
  [
    "predict with a bad bandwidth",
    ["predict", "--dirty-rate", "1G/s", "--ram", "1G", "--bandwidth", "fast"],
    /--bandwidth 'fast': not a rate/,
  ],
  [
    "predict with both inputs",
    ["predict", "--report", f("x.json"), "--dirty-rate", "1G/s", "--bandwidth", "1G/s"],
    /--report and --dirty-rate both give the devices' DMA rate; give one/,
  ],
  [
    "predict rate without RAM",
    ["predict", "--dirty-rate", "1G/s", "--bandwidth", "1G/s"],
    /needs --ram without --report/,
  ],
  [
    "predict with a fractional RAM size",
    ["predict", "--dirty-rate", "1G/s", "--ram", "1.5G", "--bandwidth", "1G/s"],
    /--ram '1\.5G': not a size/,
  ],
  [
    "predict downtime without unit",
    ["predict", "--dirty-rate", "1G/s", "--ram", "1G", "--bandwidth", "1G/s", "--downtime", "10"],
    /--downtime '10': .*unit/,
  ],
  [
    "predict report missing",
    ["predict", "--report", f("none.json"), "--bandwidth", "1G/s"],
    /none\.json: cannot read the report/,
  ],
  ["predict report not JSON", ["predict", "--report", f("not.json"), "--bandwidth", "1G/s"], /not JSON/],
  [
    "predict report of another kind",
    ["predict", "--report", f("other.json"), "--bandwidth", "1G/s"],
    /not a vfio-dirty track report/,
  ],
  ["track duration without unit", ["track", "--host", "sim", "--duration", "10"], /--duration '10'/],
  [
    "track zero interval",
    ["track", "--host", "sim", "--interval", "0s"],
    /--interval '0s': must be longer than zero/,
  ],
  ["track bad page size", ["track", "--host", "sim", "--page-size", "3K"], /--page-size '3K'/],
  ["track bad seed", ["track", "--host", "sim", "--seed", "abc"], /--seed 'abc'/],
  ["unknown host kind", ["probe", "--host", "bogus"], /--host 'bogus'.*linux, sim or sim:/],
  ["unknown profile", ["probe", "--host", "sim:no-such-profile"], /no-such-profile.*(profile|listed)/i],
  ["unreadable profile", ["probe", "--host", `sim:${f("bad-profile.json")}`], /bad-profile\.json/],
  ["malformed PCI address", ["probe", "--host", "sim", "zz:zz"], /PCI address 'zz:zz'/],
  [
    "a bitmap file over the size limit",
    ["bitmap", "stats", f("huge.bin")],
    /huge\.bin: 3 GiB, more than the 2 GiB a bitmap file may have/,
  ],
  [
    "an unknown ,key= suffix",
    ["bitmap", "stats", `${f("ok.bin")},pagesize=4K`],
    /unknown option 'pagesize='; a file takes FILE\[,page-size=SIZE\]\[,base=ADDR\]/,
  ],
  [
    "a trace with a bad event",
    ["track", "--host", "sim", "--fast", "--workload", f("bad-trace.json")],
    /bad-trace\.json: event 1 \(events\[1\]\): "iova" "zz" is not an address/,
  ],
  [
    "the same PCI address twice",
    ["probe", "--host", "sim", "0000:3b:00.1", "3b:00.1"],
    /PCI address 0000:3b:00\.1 is given twice/,
  ],
  [
    "--all with addresses",
    ["probe", "--host", "sim", "--all", "0000:3b:00.1"],
    /give either --all or PCI addresses/,
  ],
  [
    "an unknown probe format",
    ["probe", "--host", "sim", "--format", "csv"],
    /--format 'csv': use table or openmetrics/,
  ],
  [
    "a bad metrics address",
    ["track", "--host", "sim", "--metrics-listen", "9464"],
    /--metrics-listen '9464': not HOST:PORT/,
  ],
  [
    "a report into a missing directory",
    ["track", "--host", "sim", "--report", f("no-dir/r.json")],
    /--report .*r\.json: the directory .*no-dir does not exist/,
  ],
  [
    "PCI address that does not exist",
    ["probe", "--host", "sim", "0000:7e:1f.7"],
    /0000:7e:1f\.7.*(no such|not found|does not exist)/i,
  ],
];

describe("bad inputs exit 2 with one clear line", () => {
  it("has at least 30 cases", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });
  it.concurrent.each(CASES)("%s", async (_name, args, message) => {
    const r = await cli(args);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(message),
    });
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^vfio-dirty: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("--debug adds the stack to a user mistake", async () => {
    const r = await cli(["bitmap", "stats", f("odd.bin"), "--debug"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/UsageError/);
    expect(r.stderr).toMatch(/\n\s+at /);
  });

  it("--json keeps stdout free of anything but JSON on errors", async () => {
    const r = await cli(["bitmap", "stats", f("odd.bin"), "--json"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
  });
});
