// probe's human output: fits the terminal, names devices the way lspci -nn does, and refuses
// device lists that make no sense.

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { run } from "../src/cli.ts";
import { visibleWidth, wrapText } from "../src/format/wrap.ts";
import { parsePciIds, pciIdText } from "../src/pci-ids.ts";
import { captureIo } from "./capture-io.ts";

const PCI_IDS = join(import.meta.dirname, "fixtures/pci.ids");

async function probe(
  args: string[],
  opts: { columns?: number; tty?: boolean; env?: NodeJS.ProcessEnv } = {},
) {
  const c = captureIo(opts);
  const code = await run(["probe", ...args], c.io);
  return { code, out: c.out(), err: c.err() };
}

describe("probe output width", () => {
  it.each([
    [80, undefined],
    [60, undefined],
    [undefined, undefined], // a pipe: 80 columns
    [undefined, "72"], // $COLUMNS
  ])("fits %s columns (COLUMNS=%s) with one block per device", async (columns, env) => {
    const r = await probe(["--host", "sim:mixed-logging", "--open", "--pci-ids", PCI_IDS], {
      columns,
      env: env ? { COLUMNS: env } : {},
    });
    expect(r.code).toBe(3);
    const width = columns ?? Number(env ?? 80);
    for (const line of r.out.split("\n")) expect(visibleWidth(line), line).toBeLessThanOrEqual(width);
    expect(r.out).toMatch(/^0000:3b:00\.1 {2}\[15b3:101e\] Mellanox Technologies/m);
    expect(r.out).toMatch(/^ {2}DMA logging +no \(ENOTTY \(25\)\)$/m);
    // A wrapped reason keeps its bullet and indents what follows.
    expect(r.out).toMatch(/^ {2}- 0000:5e:02\.0: not device: .*\n {4}\S/m);
  });

  it("keeps the grid where it fits", async () => {
    const r = await probe(["--host", "sim:mlx5-vf"], { columns: 200 });
    expect(r.out).toMatch(/│ device +│ driver +│ IOMMU group/);
    for (const line of r.out.split("\n")) expect(visibleWidth(line)).toBeLessThanOrEqual(200);
  });

  it("wraps at spaces with a hanging indent, and never cuts a word", () => {
    expect(wrapText("  - aaa bbb ccc", 9, "    ")).toBe("  - aaa\n    bbb\n    ccc");
    expect(wrapText("x averyveryverylongword y", 8, " ")).toBe("x\n averyveryverylongword\n y");
  });
});

describe("device names", () => {
  it("come from pci.ids as lspci -nn shows them, and are null without it", async () => {
    const ids = parsePciIds(
      "15b3  Mellanox Technologies\n\t101e  ConnectX VF\nC 02  Network\n\t00  Ethernet\n",
    );
    expect(ids.name(0x15b3, 0x101e)).toBe("Mellanox Technologies ConnectX VF");
    expect(ids.name(0x15b3, 0x9999)).toBe("Mellanox Technologies");
    expect(ids.name(0x0002, 0x0000)).toBeNull(); // the class list is not vendors
    expect(pciIdText(0x15b3, 0x101e)).toBe("[15b3:101e]");
    const c = captureIo();
    expect(await run(["probe", "--host", "sim", "--json", "--pci-ids", PCI_IDS], c.io)).toBe(0);
    expect(JSON.parse(c.out()).devices[0].name).toBe(
      "Mellanox Technologies ConnectX Family mlx5Gen Virtual Function",
    );
  });

  it("a --pci-ids file that cannot be read is a usage error", async () => {
    const r = await probe(["--host", "sim", "--pci-ids", "/nonexistent/pci.ids"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      "vfio-dirty: --pci-ids /nonexistent/pci.ids: cannot read (ENOENT); give a pci.ids file\n",
    );
  });
});

describe("device lists", () => {
  it.each([
    [["0000:3b:00.1", "0000:3b:00.1"], /PCI address 0000:3b:00\.1 is given twice; name each device once/],
    [
      ["3b:00.1", "0000:3b:00.1"],
      /PCI address 0000:3b:00\.1 is given twice \('3b:00\.1' and '0000:3b:00\.1'\)/,
    ],
    [["--all", "0000:3b:00.1"], /--all probes every VFIO-bound device; give either --all or PCI addresses/],
  ])("probe %j is a usage error", async (args, message) => {
    const r = await probe(["--host", "sim", ...args]);
    expect(r).toMatchObject({ code: 2, out: "" });
    expect(r.err).toMatch(message);
  });

  it("track refuses the same device twice before opening anything", async () => {
    const c = captureIo();
    expect(await run(["track", "--host", "sim", "--fast", "0000:3b:00.1", "3b:00.1"], c.io)).toBe(2);
    expect(c.err()).toMatch(/given twice/);
    expect(c.out()).toBe("");
  });
});

describe("colour convention (Node's hasColors)", () => {
  const colours = async (tty: boolean, env: NodeJS.ProcessEnv) => {
    const c = captureIo({ tty, env, columns: 200 });
    await run(["probe", "--host", "sim:mixed-logging", "--open"], c.io);
    return c.out().includes("\u001b[");
  };
  it.each([
    [false, {}, false],
    [false, { FORCE_COLOR: "0" }, false],
    [false, { FORCE_COLOR: "false" }, false],
    [false, { FORCE_COLOR: "1" }, true],
    [false, { FORCE_COLOR: "" }, true],
    [true, {}, true],
    [true, { FORCE_COLOR: "0" }, false],
    [true, { NO_COLOR: "1" }, false],
    [true, { NO_COLOR: "" }, false],
    [true, { TERM: "dumb" }, false],
    [true, { NO_COLOR: "1", FORCE_COLOR: "1" }, true],
  ] as const)("tty %s, env %j: colour %s", async (tty, env, want) => {
    expect(await colours(tty, env)).toBe(want);
  });
});
