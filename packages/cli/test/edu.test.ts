import { describe, expect, it } from "vitest";
import { eduPlugin } from "../src/workloads/edu.ts";
import type { DeviceAccess } from "../src/workloads/plugin.ts";

/** A model of edu's BAR0 DMA registers: a started DMA completes after `busyReads` polls. */
function fakeEdu(busyReads = 2) {
  const regs = new Map<number, number>();
  const dmas: { src: number; dst: bigint; count: number; cmd: number }[] = [];
  let config = 0;
  let pending = 0;
  const dev: DeviceAccess = {
    address: "0000:00:03.0",
    vendorId: 0x1234,
    deviceId: 0x11e8,
    readBar32(_bar, off) {
      if (off === 0x98) {
        if (pending > 0) pending--;
        return pending > 0 ? (regs.get(0x98) ?? 0) : (regs.get(0x98) ?? 0) & ~1;
      }
      return regs.get(off) ?? 0;
    },
    writeBar32(_bar, off, v) {
      regs.set(off, v);
      if (off === 0x98 && v & 1) {
        const lo = BigInt(regs.get(0x88) ?? 0);
        dmas.push({ src: regs.get(0x80) ?? 0, dst: lo, count: regs.get(0x90) ?? 0, cmd: v });
        pending = busyReads;
      }
    },
    readConfig16: () => config,
    writeConfig16: (_o, v) => {
      config = v;
    },
  };
  return { dev, dmas, config: () => config };
}

describe("edu workload plugin", () => {
  it("recognises only edu", () => {
    expect(eduPlugin.supports({ vendorId: 0x1234, deviceId: 0x11e8 })).toBe(true);
    expect(eduPlugin.supports({ vendorId: 0x8086, deviceId: 0x11e8 })).toBe(false);
  });

  it("enables bus mastering and DMAs at most 4095 bytes into the buffer, reporting every range", async () => {
    const edu = fakeEdu();
    const buffer = { iova: 0x100000n, length: 0x10000n, bytes: new Uint8Array(0x10000) };
    const s = eduPlugin.create({ device: edu.dev, buffer, seed: 7, pageSize: 4096n });
    expect(edu.config() & 0x6).toBe(0x6);
    const written = await s.run(30, new AbortController().signal);
    s.stop();
    expect(written.length).toBeGreaterThan(0);
    expect(edu.dmas).toHaveLength(written.length);
    edu.dmas.forEach((d, i) => {
      expect(d).toMatchObject({ src: 0x40000, count: 4095, cmd: 3 });
      expect(d.dst).toBe(written[i]!.iova);
      expect(d.dst >= buffer.iova && d.dst + 4095n <= buffer.iova + buffer.length).toBe(true);
      expect(d.dst % 4096n).toBe(0n);
    });
  });

  it("refuses a buffer above the 28-bit DMA mask", () => {
    const edu = fakeEdu();
    const buffer = { iova: 1n << 28n, length: 4096n, bytes: new Uint8Array(4096) };
    expect(() => eduPlugin.create({ device: edu.dev, buffer, seed: 1, pageSize: 4096n })).toThrow(/256 MiB/);
  });

  it("stops promptly when aborted", async () => {
    const edu = fakeEdu();
    const buffer = { iova: 0x100000n, length: 0x10000n, bytes: new Uint8Array(0x10000) };
    const s = eduPlugin.create({ device: edu.dev, buffer, seed: 1, pageSize: 4096n });
    const ac = new AbortController();
    ac.abort();
    expect(await s.run(10_000, ac.signal)).toEqual([]);
  });
});

describe("edu workload plugin: dma() of chosen pages (what check drives)", () => {
  it("writes exactly the range asked for, with bus mastering on, and returns once edu is idle", async () => {
    const edu = fakeEdu(3);
    await eduPlugin.dma!(edu.dev, 0x203040n, 64n);
    expect(edu.config() & 0x6).toBe(0x6);
    expect(edu.dmas).toEqual([{ src: 0x40000, dst: 0x203040n, count: 64, cmd: 3 }]);
    // Returned only after the command register said done: a second DMA starts from idle.
    await eduPlugin.dma!(edu.dev, 0x205000n, 1n);
    expect(edu.dmas.map((d) => d.dst)).toEqual([0x203040n, 0x205000n]);
  });

  it("refuses what edu cannot do, before touching the device: 0 or 4096 bytes, above 256 MiB", async () => {
    const edu = fakeEdu();
    await expect(eduPlugin.dma!(edu.dev, 0x100000n, 0n)).rejects.toThrow(/1 to 4095 bytes/);
    await expect(eduPlugin.dma!(edu.dev, 0x100000n, 4096n)).rejects.toThrow(/1 to 4095 bytes/);
    await expect(eduPlugin.dma!(edu.dev, (1n << 28n) - 16n, 64n)).rejects.toThrow(/below 256 MiB/);
    expect(edu.dmas).toEqual([]);
  });
});
