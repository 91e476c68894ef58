// Device feature rules: PROBE, DMA logging START/STOP/REPORT, migration (drivers/vfio/vfio_main.c
// vfio_ioctl_device_feature and its helpers; the driver parts as mlx5_vfio_pci answers them).

import {
  type DmaLoggingRange,
  encodeDeviceFeature,
  encodeDmaLoggingControl,
  encodeDmaLoggingRanges,
  encodeDmaLoggingReport,
  encodeFeatureMigState,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_RUNNING,
  VFIO_DEVICE_STATE_STOP,
} from "../uapi/index.ts";
import type { Device } from "../vfio/index.ts";
import {
  attempt,
  bitmap,
  bitmapWords,
  ioctl,
  needs,
  type Outcome,
  type Scenario,
  type Session,
} from "./scenario.ts";

const PAGE = 4096n;
const START = VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_SET;
const REPORT = VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT | VFIO_DEVICE_FEATURE_GET;

/** VFIO_DEVICE_FEATURE with these flags (and payload) on the device, as sent. */
export function feature(s: Session, device: Device, flags: number, data?: Uint8Array): Outcome {
  return ioctl(s.t, device.fd, VFIO_DEVICE_FEATURE, encodeDeviceFeature(flags, data));
}

/** Sends DMA_LOGGING_START through the encoders, whatever the ranges (bad ones included). */
export function sendStart(
  s: Session,
  device: Device,
  ranges: readonly DmaLoggingRange[],
  pageSize = PAGE,
  numRanges = ranges.length,
): Outcome {
  const array = encodeDmaLoggingRanges(ranges);
  const control = encodeDmaLoggingControl({ pageSize, numRanges, ranges: s.t.host.addressOf(array) });
  return feature(s, device, START, control);
}

export function sendReport(
  s: Session,
  device: Device,
  iova: bigint,
  length: bigint,
  pageSize: bigint,
  bm: Uint8Array,
): Outcome {
  const report = encodeDmaLoggingReport({ iova, length, pageSize, bitmap: s.t.host.addressOf(bm) });
  return feature(s, device, REPORT, report);
}

/** Device open through type1 with `pages` pages of fresh memory mapped at the IOVA base. */
function mappedDevice(s: Session, pages = 64n): Device {
  const { container, device } = s.device();
  const mem = s.memory(pages * PAGE);
  container.mapDma({ vaddr: mem.address, iova: s.iova, length: pages * PAGE });
  return device;
}

export const deviceScenarios: Scenario[] = [
  {
    id: "device.probe.logging",
    rule: "PROBE|SET of DMA_LOGGING_START succeeds on a device with DMA logging",
    kernel: "vfio_main.c vfio_check_feature: PROBE returns 0 when the ops are supported",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) => feature(s, s.device().device, START | VFIO_DEVICE_FEATURE_PROBE),
  },
  {
    id: "device.probe.unsupported-op",
    rule: "PROBE|GET of DMA_LOGGING_START (a SET-only feature) is EINVAL",
    kernel: "vfio_main.c vfio_check_feature: (flags & (GET|SET)) & ~supported_ops",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_DMA_LOGGING_START | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE,
      ),
  },
  {
    id: "device.probe.no-logging",
    rule: "PROBE of DMA_LOGGING_START on a device without logging support is ENOTTY",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: !device->log_ops",
    expected: { errno: "ENOTTY" },
    skip: needs.noLogging,
    run: (_t, s) => feature(s, s.device().device, START | VFIO_DEVICE_FEATURE_PROBE),
  },
  {
    id: "device.logging.start-without-support",
    rule: "DMA_LOGGING_START on a device without logging support is ENOTTY",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: !device->log_ops",
    expected: { errno: "ENOTTY" },
    skip: needs.noLogging,
    run: (_t, s) => sendStart(s, s.device().device, [{ iova: s.iova, length: 16n * PAGE }]),
  },
  {
    id: "device.feature.get-and-set",
    rule: "VFIO_DEVICE_FEATURE with both GET and SET (without PROBE) is EINVAL",
    kernel: "vfio_main.c vfio_ioctl_device_feature: GET & SET are mutually exclusive except with PROBE",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET,
        new Uint8Array(8),
      ),
  },
  {
    id: "device.feature.unknown-flags",
    rule: "VFIO_DEVICE_FEATURE with an unknown flag bit is EINVAL",
    kernel: "vfio_main.c vfio_ioctl_device_feature: flags & ~(MASK|SET|GET|PROBE)",
    expected: { errno: "EINVAL" },
    skip: needs.type1,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_GET | (1 << 20),
        new Uint8Array(8),
      ),
  },
  {
    id: "device.logging.zero-ranges",
    rule: "DMA_LOGGING_START with no ranges is EINVAL",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: !nnodes",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) => sendStart(s, s.device().device, [{ iova: s.iova, length: PAGE }], PAGE, 0),
  },
  {
    id: "device.logging.too-many-ranges",
    rule: "DMA_LOGGING_START with more than LOG_MAX_RANGES (256) ranges is E2BIG",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: nnodes > LOG_MAX_RANGES",
    expected: { errno: "E2BIG" },
    skip: needs.logging,
    run: (_t, s) =>
      sendStart(
        s,
        s.device().device,
        Array.from({ length: 257 }, (_, i) => ({ iova: s.iova + BigInt(i) * 2n * PAGE, length: PAGE })),
      ),
  },
  {
    id: "device.logging.unaligned-range",
    rule: "DMA_LOGGING_START with a range not aligned to page_size is EINVAL",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: !IS_ALIGNED(range.iova, control.page_size)",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) => sendStart(s, s.device().device, [{ iova: s.iova + 0x800n, length: PAGE }]),
  },
  {
    id: "device.logging.overlapping-ranges",
    rule: "DMA_LOGGING_START with overlapping ranges is EINVAL",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: interval_tree_iter_first found one",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) =>
      sendStart(s, s.device().device, [
        { iova: s.iova, length: 4n * PAGE },
        { iova: s.iova + 2n * PAGE, length: 4n * PAGE },
      ]),
  },
  {
    id: "device.logging.overflowing-range",
    rule: "DMA_LOGGING_START with a range whose end wraps is EOVERFLOW",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: check_add_overflow(iova, length)",
    expected: { errno: "EOVERFLOW" },
    skip: needs.logging,
    run: (_t, s) => sendStart(s, s.device().device, [{ iova: 0xffff_ffff_ffff_f000n, length: 2n * PAGE }]),
  },
  {
    id: "device.logging.start-twice",
    rule: "A second DMA_LOGGING_START while logging is EBUSY",
    kernel: "driver log_start (mlx5vf_start_page_tracker, the edu test driver): already tracking",
    expected: { errno: "EBUSY" },
    skip: needs.logging,
    run: (_t, s) => {
      const device = mappedDevice(s);
      device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
      s.defer(() => device.dmaLoggingStop());
      return sendStart(s, device, [{ iova: s.iova, length: 64n * PAGE }]);
    },
  },
  {
    id: "device.logging.start-writes-page-size",
    rule: "DMA_LOGGING_START succeeds and writes back the page size the device chose",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_start: copy_to_user(arg, &control)",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) => {
      const device = mappedDevice(s);
      return attempt(() => {
        const pageSize = device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
        device.dmaLoggingStop();
        return { pageSize };
      });
    },
  },
  {
    id: "device.report.before-start",
    rule: "DMA_LOGGING_REPORT before START is EINVAL",
    kernel: "driver log_read_and_clear (mlx5vf_tracker_read_and_clear): !log_active",
    expected: { errno: "EINVAL" },
    skip: needs.logging,
    run: (_t, s) => sendReport(s, mappedDevice(s), s.iova, 64n * PAGE, PAGE, bitmap(1)),
  },
  ...[
    ["page-size-below-4k", 2048n],
    ["page-size-not-power-of-two", 12288n],
  ].map(
    ([name, ps]): Scenario => ({
      id: `device.report.${name}`,
      rule: `DMA_LOGGING_REPORT at page size ${ps} is EINVAL (must be a power of two >= 4 KiB)`,
      kernel: "vfio_main.c vfio_ioctl_device_feature_logging_report: page_size < SZ_4K || !is_power_of_2",
      expected: { errno: "EINVAL" },
      skip: needs.logging,
      run: (_t, s) => {
        const device = mappedDevice(s);
        device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
        s.defer(() => device.dmaLoggingStop());
        return sendReport(s, device, s.iova, 64n * PAGE, ps as bigint, bitmap(2));
      },
    }),
  ),
  {
    id: "device.report.overflow",
    rule: "DMA_LOGGING_REPORT whose iova + length wraps is EOVERFLOW",
    kernel: "vfio_main.c vfio_ioctl_device_feature_logging_report: check_add_overflow",
    expected: { errno: "EOVERFLOW" },
    skip: needs.logging,
    run: (_t, s) => {
      const device = mappedDevice(s);
      device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
      s.defer(() => device.dmaLoggingStop());
      return sendReport(s, device, 0xffff_ffff_ffff_f000n, 2n * PAGE, PAGE, bitmap(1));
    },
  },
  {
    id: "device.report.only-sets-bits",
    rule: "DMA_LOGGING_REPORT never clears bits already set in the caller's bitmap",
    kernel: "iova_bitmap.c iova_bitmap_set: only set_bit()",
    expected: { errno: null },
    skip: needs.logging,
    run: (_t, s) => {
      const device = mappedDevice(s);
      device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
      s.defer(() => device.dmaLoggingStop());
      const bm = bitmap(1, 0xa5);
      return attempt(() => {
        device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: PAGE, bitmap: bm });
        return { bitmap: bitmapWords(bm) };
      });
    },
  },
  {
    id: "device.report.dma-pages-then-clear",
    rule: "REPORT sets exactly the pages the device wrote, then a second REPORT is empty (clear on read)",
    kernel: "driver log_read_and_clear + iova_bitmap_set",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: async (t, s) => {
      const device = mappedDevice(s);
      device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
      s.defer(() => device.dmaLoggingStop());
      await t.dma!(s.iova + 3n * PAGE + 16n, 100n);
      await t.dma!(s.iova + 40n * PAGE, 2048n);
      const first = bitmap(1);
      const second = bitmap(1);
      return attempt(() => {
        device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: PAGE, bitmap: first });
        device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: PAGE, bitmap: second });
        return { first: bitmapWords(first), second: bitmapWords(second) };
      });
    },
  },
  {
    id: "device.report.partial-page",
    rule: "REPORT over part of a logging page reports the whole page (bits past the range's end too) and clears it",
    kernel:
      "driver log_read_and_clear (edu_log_read_and_clear: clear_bit per touched page; mlx5 at firmware granularity) + iova_bitmap_set",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: async (t, s) => {
      // 64 KiB logging pages over 64 pages: logging page 1 is [16, 32). A write in it, then a
      // REPORT of its first half only (two words of bitmap, so bits set past the range's end stay
      // inside the buffer), then one of everything: the whole page is reported by the first and
      // cleared, which is why a caller must never cut a logging page.
      const device = mappedDevice(s);
      const logPage = device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], 16n * PAGE);
      s.defer(() => device.dmaLoggingStop());
      await t.dma!(s.iova + 20n * PAGE, 64n);
      const half = bitmap(2);
      const rest = bitmap(2);
      return attempt(() => {
        device.dmaLoggingReport({
          iova: s.iova + 16n * PAGE,
          length: 8n * PAGE,
          pageSize: PAGE,
          bitmap: half,
        });
        device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: PAGE, bitmap: rest });
        return { logPage, half: bitmapWords(half), rest: bitmapWords(rest) };
      });
    },
  },
  {
    id: "device.report.coarser-and-finer",
    rule: "REPORT at 8 KiB sets one bit per two logging pages; at the logging size after a re-write it replicates per page",
    kernel: "iova_bitmap.c iova_bitmap_set at the report's page size",
    expected: { errno: null },
    skip: needs.loggingDma,
    run: async (t, s) => {
      const device = mappedDevice(s);
      const logPage = device.dmaLoggingStart([{ iova: s.iova, length: 64n * PAGE }], PAGE);
      s.defer(() => device.dmaLoggingStop());
      await t.dma!(s.iova + 5n * PAGE, 64n);
      const coarse = bitmap(1);
      device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: 2n * PAGE, bitmap: coarse });
      await t.dma!(s.iova + 9n * PAGE, 64n);
      const fine = bitmap(1);
      return attempt(() => {
        device.dmaLoggingReport({ iova: s.iova, length: 64n * PAGE, pageSize: PAGE, bitmap: fine });
        return { logPage, coarse: bitmapWords(coarse), fine: bitmapWords(fine) };
      });
    },
  },
  {
    id: "device.migration.flags",
    rule: "GET MIGRATION reports the device's migration flags",
    kernel: "vfio_main.c vfio_ioctl_device_feature_migration",
    expected: { errno: null },
    skip: needs.migration,
    run: (_t, s) => attempt(() => ({ flags: s.device().device.getMigrationFlags() })),
  },
  {
    id: "device.migration.no-support",
    rule: "GET MIGRATION on a device without migration support is ENOTTY",
    kernel: "vfio_main.c vfio_ioctl_device_feature_migration: !device->mig_ops",
    expected: { errno: "ENOTTY" },
    skip: (h) =>
      !h.type1 ? "no type1 container" : h.migration ? "the device supports migration" : undefined,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_MIGRATION | VFIO_DEVICE_FEATURE_GET,
        new Uint8Array(8),
      ),
  },
  {
    id: "device.migration.stop-and-back",
    rule: "SET MIG_DEVICE_STATE RUNNING -> STOP -> RUNNING succeeds and GET follows it",
    kernel: "vfio_main.c vfio_ioctl_device_feature_mig_device_state, vfio_mig_get_next_state",
    expected: { errno: null },
    skip: needs.migration,
    run: (_t, s) => {
      const { device } = s.device();
      return attempt(() => {
        const states = [device.getMigState()];
        device.setMigState(VFIO_DEVICE_STATE_STOP);
        states.push(device.getMigState());
        device.setMigState(VFIO_DEVICE_STATE_RUNNING);
        states.push(device.getMigState());
        return { states };
      });
    },
  },
  {
    id: "device.migration.unsupported-state",
    rule: "SET MIG_DEVICE_STATE to PRE_COPY on a device without PRE_COPY is EINVAL",
    kernel: "vfio_main.c vfio_mig_get_next_state: state_flags_table[new] not in migration_flags",
    expected: { errno: "EINVAL" },
    skip: needs.migrationNoPreCopy,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE | VFIO_DEVICE_FEATURE_SET,
        encodeFeatureMigState({ deviceState: VFIO_DEVICE_STATE_PRE_COPY, dataFd: -1 }),
      ),
  },
  {
    id: "device.migration.unknown-state",
    rule: "SET MIG_DEVICE_STATE to a state number past the table is EINVAL",
    kernel: "vfio_main.c vfio_mig_get_next_state: new_fsm >= ARRAY_SIZE",
    expected: { errno: "EINVAL" },
    skip: needs.migration,
    run: (_t, s) =>
      feature(
        s,
        s.device().device,
        VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE | VFIO_DEVICE_FEATURE_SET,
        encodeFeatureMigState({ deviceState: 9, dataFd: -1 }),
      ),
  },
];
