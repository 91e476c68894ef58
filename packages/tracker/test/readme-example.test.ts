// The README's example, verbatim apart from the assertions: it must keep working.

import { expect, it } from "vitest";

it("README example: a simulated mlx5 VF through pre-copy and stop-copy", async () => {
  const lines: string[] = [];
  const log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  // --- README example begins ---
  const { loadBitmapCoreSync } = await import("@vfio-dirty/bitmap-wasm/node");
  const { Container, Group, uapi } = await import("@vfio-dirty/vfio-adapter");
  const { createSimHost } = await import("@vfio-dirty/vfio-adapter/sim");
  const { openTracker } = await import("../src/index.ts");

  const host = createSimHost("mlx5-vf"); // or createLinuxHost() from "@vfio-dirty/vfio-adapter/linux"
  const core = loadBitmapCoreSync();

  // What a VMM has done before migration: the device's group in a type1 container, guest RAM
  // mapped for DMA at IOVA = GPA.
  const [info] = host.devices();
  using container = Container.open(host);
  using group = Group.open(host, info!.group);
  group.setContainer(container);
  container.setIommu(uapi.VFIO_TYPE1v2_IOMMU);
  using device = group.getDevice(info!.bdf);
  const memory = host.guestMemory().filter((m) => m.kind === "ram");
  for (const m of memory) container.mapDma({ vaddr: m.hva, iova: m.gpa, length: m.length });

  const { tracker, choice } = openTracker(
    { devices: [{ id: info!.bdf, device }], iommu: { kind: "type1", container } },
    { core, memory: memory.map((m) => ({ iova: m.gpa, length: m.length, kind: "ram" as const })) },
  );
  log(choice.strategy, choice.reasons.length, choice.blockers.length); // "device" 1 0
  {
    using t = tracker; // stops tracking and frees its bitmaps on every exit path
    t.start(); // log_global_start: DMA logging on; a sync in "setup" does nothing
    t.setPhase("pre-copy");
    for (let i = 0; i < 3; i++) {
      host.run(100); // 100 ms of the device's DMA workload (virtual time)
      const r = t.sync(); // log_sync: r.bitmap is GPA space, 4 KiB per bit
      log(r.seq, r.dirtyPages, r.perDevice[info!.bdf]!.pages, r.kernelBytes, r.durationMs.toFixed(1));
    }
    t.setPhase("stop-copy"); // the guest is stopped: the last sync sends what remains
    let ramEnd = 0n;
    for (const m of memory) if (m.gpa + m.length > ramEnd) ramEnd = m.gpa + m.length;
    using ram = core.bitmap({ nbits: Number(ramEnd >> 21n) + 1, pageSize: 2n << 20n }); // QEMU-style RAM bitmap
    host.run(10);
    const last = t.sync({ into: ram }); // also OR-ed into a 2 MiB-page RAM bitmap
    log("stop-copy", last.dirtyPages, "pages;", ram.count(), "dirty 2 MiB pages");
  }
  log(host.trackingActive()); // false
  // --- README example ends ---
  expect(lines[0]).toMatch(/^device \d+ 0$/);
  expect(lines.at(-1)).toBe("false");
  expect(lines.at(-2)).toMatch(/^stop-copy \d+ pages; \d+ dirty 2 MiB pages$/);
});
