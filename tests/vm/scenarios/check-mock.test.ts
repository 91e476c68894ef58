// `vfio-dirty check`'s iommufd rules on the IOMMUFD_TEST mock IOMMU (the 6.12 test kernel booted
// with intel_iommu=off), whose dirty tracking is real: every rule passes. The mock device has no
// PCI address and no cdev, so the rules run through check's engine with a target that binds the
// mock device (IOMMU_TEST_OP_MOCK_DOMAIN, attached with MOCK_DOMAIN_REPLACE) and whose "DMA" is
// the mock's own dirty marking (IOMMU_TEST_OP_DIRTY), as a device's write would set the IOPTE bit.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLinuxHost } from "@vfio-dirty/vfio-adapter/linux";
import type { IommufdDevice, ScenarioTarget } from "@vfio-dirty/vfio-adapter/scenarios";
import { describe, expect, it } from "vitest";
import { checkTarget } from "../../../packages/cli/dist/check/run.js";
import { guest } from "./support/guest.ts";
import {
  MOCK_APERTURE_START,
  MOCK_IO_PAGE_SIZE,
  mockDomain,
  mockDomainReplace,
  mockMarkDirty,
} from "./support/iommufd.ts";

const host = createLinuxHost();
const mockOnly = guest.driver === "none" && /intel_iommu=off/.test(guest.cmdline);

/** The mock device bound to a scenario's iommufd, remembering the HWPT it is attached to. */
interface MockDevice extends IommufdDevice {
  readonly fd: number;
  hwptId: number;
}

describe.skipIf(!mockOnly)("check's iommufd rules on the IOMMUFD_TEST mock IOMMU", () => {
  it("every iommufd rule passes (none skipped, none failed)", async () => {
    const target: ScenarioTarget = {
      host,
      bdf: "mock",
      group: -1,
      has: {
        type1: false,
        iommufd: true,
        // No cdev: the mock device is bound through iommufdDevice below.
        cdev: true,
        dmaLogging: false,
        migration: false,
        preCopy: false,
        iommuDirty: true,
        dma: true,
        precopyInfoV2: false,
        type1Overflow: false,
        deviceState: false,
      },
      iovaBase: MOCK_APERTURE_START,
      iommufdDevice: (_s, iommufd) => {
        const ioasId = iommufd.ioasAlloc();
        const { stdevId, hwptId, idevId } = mockDomain(host, iommufd.fd, ioasId);
        const device: MockDevice = {
          fd: iommufd.fd,
          devId: idevId,
          hwptId,
          attach(ptId) {
            this.hwptId = mockDomainReplace(host, iommufd.fd, stdevId, ptId);
            return this.hwptId;
          },
          detach() {
            mockDomainReplace(host, iommufd.fd, stdevId, ioasId);
          },
        };
        return device;
      },
      dma: (iova, length, opened) => {
        const d = opened as MockDevice;
        const first = iova / MOCK_IO_PAGE_SIZE;
        const last = (iova + length - 1n) / MOCK_IO_PAGE_SIZE;
        const base = first * MOCK_IO_PAGE_SIZE;
        const pages = Array.from({ length: Number(last - first + 1n) }, (_, i) => i);
        mockMarkDirty(
          host,
          d.fd,
          d.hwptId,
          base,
          (last - first + 1n) * MOCK_IO_PAGE_SIZE,
          MOCK_IO_PAGE_SIZE,
          pages,
        );
      },
    };
    const results = await checkTarget(target, { areas: ["iommufd"], pageSizes: [4096n] });
    if (guest.results)
      writeFileSync(
        join(guest.results, "check-mock.out"),
        results
          .map((r) => `${r.id.padEnd(36)} ${r.level.padEnd(6)} ${r.result.padEnd(5)} ${r.detail}`)
          .join("\n"),
      );
    expect(results.length).toBeGreaterThan(8);
    expect(
      results.filter((r) => r.result !== "pass").map((r) => `${r.id}: ${r.result}: ${r.detail}`),
    ).toEqual([]);
    expect(results.find((r) => r.id === "iommufd.dirty.capability")!.detail).toBe(
      "capability reported, dirty-tracking HWPT allocated",
    );
  });
});
