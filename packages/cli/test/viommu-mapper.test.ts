// `track` with a vIOMMU: the kernel's DMA mappings are made through the tracker's mapper, so a
// vIOMMU unmap goes through tracker.unmap (dirty bits kept, the kernel mapping really removed)
// and no page a device writes is lost around it.

import { loadBitmapCoreSync } from "@vfio-dirty/bitmap-wasm/node";
import { type Bitmap, type BitmapCore, openTracker } from "@vfio-dirty/tracker";
import { listVfioDevices } from "@vfio-dirty/vfio-adapter";
import { createSimHost, loadProfile } from "@vfio-dirty/vfio-adapter/sim";
import { describe, expect, it } from "vitest";
import { openTrackBackend, viommuMapper } from "../src/track/open.ts";
import { type GuestMemory, openVfio } from "../src/vfio-open.ts";

const core = loadBitmapCoreSync() as unknown as BitmapCore;

function reported(b: Bitmap, page4k: number): boolean {
  const addr = BigInt(page4k) * 4096n;
  if (addr < b.base) return false;
  const bit = (addr - b.base) / b.pageSize;
  return bit < BigInt(b.nbits) && b.test(Number(bit));
}

describe("vIOMMU mappings through the tracker's mapper", () => {
  it.each([
    ["type1", undefined],
    ["type1", "type1"],
    ["iommufd", undefined],
  ] as const)(
    "%s backend, strategy %s: an unmap while tracking keeps its bits and loses no page",
    (prefer, force) => {
      const sim = createSimHost(loadProfile("viommu"));
      const mappings = sim.viommuMappings()!;
      const memory: GuestMemory[] = sim.guestMemory().map((m) => ({
        gpa: m.gpa,
        length: m.length,
        hva: m.hva,
        kind: m.kind === "bar" ? "pci-bar" : "ram",
      }));
      using vfio = openVfio(sim, listVfioDevices(sim.sysfs), { memory, viommu: [], prefer });
      const mapper = viommuMapper(vfio.target, memory);
      const { tracker } = openTracker(vfio.target, {
        core,
        memory: vfio.sections,
        viommu: true,
        mapper,
        ignoreBlockers: true,
        ...(force ? { forceStrategy: force } : {}),
      });
      using t = tracker;
      for (const m of mappings) t.map(m.iova, m.gpa, m.length);
      const t0 = sim.clock.now();
      t.start();
      t.setPhase("pre-copy");
      sim.run(100);
      // Remove the mapping the device wrote most through, mid-interval.
      const before = sim.writtenSince(t0);
      const inside = (m: (typeof mappings)[number], p: number) =>
        BigInt(p) * 4096n >= m.gpa && BigInt(p) * 4096n < m.gpa + m.length;
      const gone = [...mappings].sort(
        (a, b) => before.filter((p) => inside(b, p)).length - before.filter((p) => inside(a, p)).length,
      )[0]!;
      expect(before.some((p) => inside(gone, p))).toBe(true);
      t.unmap(gone.iova, gone.length);
      // The kernel mapping is really gone (mapping it again is accepted), then removed again.
      mapper.map(gone.iova, gone.gpa, gone.length);
      mapper.unmap(gone.iova, gone.length);
      sim.run(100); // the device's DMA to the removed IOVAs now faults: no guest page is written
      const r1 = t.sync();
      const truth1 = sim.writtenSince(t0);
      for (const p of truth1) expect(reported(r1.bitmap!, p), `page ${p} lost`).toBe(true);
      // Pages written through the removed mapping before the unmap are in the report.
      expect(before.filter((p) => inside(gone, p)).every((p) => reported(r1.bitmap!, p))).toBe(true);
      // After it, nothing lands there any more.
      const t1 = sim.clock.now();
      sim.run(100);
      expect(sim.writtenSince(t1).some((p) => inside(gone, p))).toBe(false);
      t.stop();
      mapper.unmapAll();
      expect(sim.trackingActive()).toBe(false);
    },
  );

  it("openTrackBackend on sim:viommu maps through the tracker and loses nothing", async () => {
    const backend = await openTrackBackend(
      { kind: "sim", profile: "viommu", auto: false },
      {
        addresses: [],
        pageSize: 4096n,
        seed: 1,
        workload: undefined,
        signal: new AbortController().signal,
        fast: true,
      },
    );
    try {
      backend.tracker.start();
      backend.tracker.setPhase("pre-copy");
      await backend.advance(200, new AbortController().signal);
      // Each window is freed after its call: take its pages while it is alive.
      const truth = backend.writtenSinceStart!();
      const seen = new Set<number>();
      const r = backend.tracker.sync({
        onWindow: (w) => {
          for (const p of truth) if (reported(w, p)) seen.add(p);
        },
      });
      expect(truth.length).toBeGreaterThan(0);
      for (const p of truth) expect(seen.has(p), `page ${p}`).toBe(true);
      expect(r.dirtyPages).toBe(new Set(truth).size);
    } finally {
      expect(backend.close()).toBe(true);
    }
  });
});

describe("viommuMapper.unmap over a range with holes", () => {
  it.each(["type1", "iommufd"] as const)(
    "%s: removes every mapping inside and agrees with the kernel",
    (prefer) => {
      const sim = createSimHost(loadProfile("viommu"));
      const memory: GuestMemory[] = sim.guestMemory().map((m) => ({
        gpa: m.gpa,
        length: m.length,
        hva: m.hva,
        kind: m.kind === "bar" ? "pci-bar" : "ram",
      }));
      using vfio = openVfio(sim, listVfioDevices(sim.sysfs), { memory, viommu: [], prefer });
      const mapper = viommuMapper(vfio.target, memory);
      const at = [0x7000_0000n, 0x7010_0000n, 0x7040_0000n];
      for (const [i, iova] of at.entries()) mapper.map(iova, BigInt(i) << 20n, 0x10000n);
      // Whole mappings with holes between them: what the tracker sends for a whole-range invalidation.
      mapper.unmap(0x7000_0000n, 0x50_0000n);
      // The kernel holds none of them any more: each maps again.
      for (const [i, iova] of at.entries()) mapper.map(iova, BigInt(i) << 20n, 0x10000n);
      mapper.unmapAll();
    },
  );
});
