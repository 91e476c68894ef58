// Device DMA logging rules: VFIO_DEVICE_FEATURE DMA_LOGGING_START / STOP / REPORT as the uAPI
// (include/uapi/linux/vfio.h), the VFIO core (drivers/vfio/vfio_main.c) and QEMU's use of it
// (hw/vfio/listener.c, hw/vfio/container.c) require. A driver's log_ops decide most of them; the
// core's argument checks are here too, since a driver author runs them on the kernel they ship.

import { isPowerOfTwoIn } from "@vfio-dirty/vfio-adapter/util";
import { formatSizeShort } from "../../parse/size.ts";
import { bitList, type CheckRule, errnoIs, fail, ok, pass, refused } from "../rule.ts";

const VFIO_H_REPORT = "vfio.h DMA_LOGGING_REPORT";
const VFIO_H_START = "vfio.h DMA_LOGGING_START";
const IN_RANGE = `${VFIO_H_REPORT}: "Query the device's DMA log for written pages within the given IOVA range."`;
const CLEARED = `${VFIO_H_REPORT}: "During querying the log is cleared for the IOVA range."`;
const NOT_ENABLED = `${VFIO_H_REPORT}: "If DMA logging is not enabled, an error will be returned."`;
const ANY_PAGE_SIZE = `${VFIO_H_REPORT}: "The input page_size can be any power of two value and does not have to match the value given to VFIO_DEVICE_FEATURE_DMA_LOGGING_START. The driver will format its internal logging to match the reporting page size"`;
const LOGGED = `${VFIO_H_START}: "Each DMA that the device initiates inside the range will be logged by the device for later retrieval."`;

const size = (hex: string) => formatSizeShort(BigInt(hex));

export const deviceRules: readonly CheckRule[] = [
  {
    id: "device.probe",
    area: "device",
    level: "MUST",
    withoutLogging: true,
    title: "PROBE answers alike for START (SET), STOP (SET) and REPORT (GET); GET of START is refused",
    source: `${VFIO_H_START}: "VFIO_DEVICE_FEATURE_PROBE can be used to detect if the device supports DMA logging"; vfio_main.c vfio_check_feature`,
    scenario: "device.logging.probe-ops",
    judge: ok((r) => {
      const answers = `START ${r.start}, STOP ${r.stop}, REPORT ${r.report}, GET of START ${r.startGet}`;
      if (r.start === "OK" && r.stop === "OK" && r.report === "OK" && r.startGet === "EINVAL")
        return pass("START, STOP and REPORT probe OK; GET of START EINVAL");
      if ([r.start, r.stop, r.report, r.startGet].every((e) => e === "ENOTTY"))
        return pass("no DMA logging: every PROBE is ENOTTY");
      return fail(`the PROBEs disagree: ${answers}`);
    }),
  },
  {
    id: "device.start.page-size",
    area: "device",
    level: "MUST",
    perPageSize: true,
    title: "START writes back the page size it logs at: a power of two of at least 4 KiB",
    source: `${VFIO_H_START}: "On output the device will return the page size it selected."; REPORT takes only such page sizes (vfio_main.c vfio_ioctl_device_feature_logging_report)`,
    scenario: "device.logging.start-page-size",
    judge: ok((r) => {
      const g = BigInt(r.granted);
      return isPowerOfTwoIn(g, 4096n)
        ? pass(`wrote back ${size(r.granted)}`)
        : fail(`wrote back ${r.granted}: not a power of two of at least 4 KiB`);
    }),
  },
  {
    id: "device.start.page-size-given",
    area: "device",
    level: "INFO",
    perPageSize: true,
    title: "The page size START gives for the one asked for",
    source: `${VFIO_H_START}: "If the device cannot do the hinted page size then it's the driver choice which page size to pick"`,
    scenario: "device.logging.start-page-size",
    judge: ok((r) =>
      pass(
        r.granted === r.asked
          ? `asked ${size(r.asked)}, logs at ${size(r.granted)}`
          : `asked ${size(r.asked)}, chose ${size(r.granted)}`,
      ),
    ),
  },
  {
    id: "device.start.twice",
    area: "device",
    level: "MUST",
    title: "A second START while logging is refused",
    source: `${VFIO_H_START}: "A single call to start device DMA logging can be issued and a matching stop should follow at the end. Another start is not allowed in the meantime."`,
    scenario: "device.logging.start-twice",
    judge: refused("the second START"),
  },
  {
    id: "device.start.restart",
    area: "device",
    level: "MUST",
    title: "After STOP, a new START is accepted and logs from scratch",
    source: `${VFIO_H_REPORT}: "Error recovery is to consider all memory dirty and try to restart the dirty tracking"; ${VFIO_H_START}: "a matching stop should follow"`,
    scenario: "device.logging.restart",
    judge: ok((r) =>
      r.newReported
        ? pass(
            `restarted; its write reported${r.staleReported ? " (and a page from the first session too)" : ""}`,
          )
        : fail("restarted, but a write after the restart is not reported"),
    ),
  },
  {
    id: "device.start.256-ranges",
    area: "device",
    level: "MUST",
    title: "START accepts 256 ranges (what fits in a kernel page)",
    source: `${VFIO_H_START}: "The core kernel code guarantees to support by minimum num_ranges that fit into a single kernel page."`,
    scenario: "device.logging.range-count",
    judge: ok((r) =>
      r.refused256 === null
        ? pass("256 ranges accepted")
        : fail(`256 ranges refused: ${r.refused256} (largest accepted: ${r.largest})`),
    ),
  },
  {
    id: "device.start.too-many-ranges",
    area: "device",
    level: "MUST",
    title: "START with 257 ranges is E2BIG",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_start: nnodes > LOG_MAX_RANGES",
    scenario: "device.logging.too-many-ranges",
    judge: errnoIs("E2BIG"),
  },
  {
    id: "device.start.ranges-logged",
    area: "device",
    level: "MUST",
    title:
      "With 8 ranges started, a write in each is reported (more ranges than the device tracks are combined, never dropped)",
    source: `${LOGGED}; drivers combine what they cannot track apart (vfio_combine_iova_ranges)`,
    scenario: "device.logging.many-ranges",
    judge: ok((r) =>
      r.missingRanges.length === 0
        ? pass("a write in each of the 8 ranges reported")
        : fail(
            `writes in range${r.missingRanges.length > 1 ? "s" : ""} ${r.missingRanges.join(", ")} of 8 not reported`,
          ),
    ),
  },
  {
    id: "device.start.ranges-combined",
    area: "device",
    level: "INFO",
    title: "Whether the driver logs between ranges (combines them) when given 8",
    source: "the uAPI leaves it open; mlx5 combines smallest gap first (vfio_combine_iova_ranges)",
    scenario: "device.logging.many-ranges",
    judge: ok((r) =>
      pass(
        r.gapLogged
          ? "combines ranges: a write between two started ranges was logged (over-reporting)"
          : "keeps the 8 ranges apart: a write between two of them was not logged",
      ),
    ),
  },
  {
    id: "device.start.span",
    area: "device",
    level: "INFO",
    title: "The largest address span START accepts in one range (2^32 to 2^48 tried)",
    source:
      "the uAPI leaves it open; mlx5 refuses above its log_addr_space_size with EOPNOTSUPP (mlx5vf_create_tracker)",
    scenario: "device.logging.span-limit",
    judge: ok((r) => {
      const span = (log2: number) => `2^${log2} (${formatSizeShort(1n << BigInt(log2))})`;
      if (r.refusedLog2 === null) return pass(`every span up to ${span(48)} accepted`);
      return pass(
        `${r.largestLog2 === null ? "nothing accepted" : `${span(r.largestLog2)} accepted`}; ${span(r.refusedLog2)} refused: ${r.refusedErrno}`,
      );
    }),
  },
  {
    id: "device.start.qemu-ranges",
    area: "device",
    level: "SHOULD",
    title: "START accepts QEMU's three ranges (below 4 GiB, above 4 GiB, the 64-bit PCI hole) at 4 KiB",
    source:
      "QEMU hw/vfio/listener.c vfio_device_feature_dma_logging_start_create; the tracker sends the same split (packages/tracker/src/ranges.ts planLogging)",
    scenario: "device.logging.qemu-ranges",
    judge: (o) => (o.errno === null ? pass("accepted") : fail(`refused: ${o.errno}`)),
  },
  {
    id: "device.start.zero-ranges",
    area: "device",
    level: "MUST",
    title: "START with no ranges is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_start: !nnodes",
    scenario: "device.logging.zero-ranges",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.start.unaligned-range",
    area: "device",
    level: "MUST",
    title: "START with a range not aligned to page_size is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_start: !IS_ALIGNED(range.iova, control.page_size)",
    scenario: "device.logging.unaligned-range",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.start.overlapping-ranges",
    area: "device",
    level: "MUST",
    title: "START with overlapping ranges is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_start: interval_tree_iter_first found one",
    scenario: "device.logging.overlapping-ranges",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.start.overflowing-range",
    area: "device",
    level: "MUST",
    title: "START with a range whose end wraps is EOVERFLOW",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_start: check_add_overflow(iova, length)",
    scenario: "device.logging.overflowing-range",
    judge: errnoIs("EOVERFLOW"),
  },
  {
    id: "device.report.exact",
    area: "device",
    level: "MUST",
    perPageSize: true,
    title: "REPORT contains every page the device wrote (random pages, the range's first and last)",
    source: IN_RANGE,
    scenario: "device.logging.exact",
    judge: ok((r) =>
      r.missingCount === 0
        ? pass(`all ${r.written} written pages reported`)
        : fail(`${r.missingCount} of ${r.written} written pages missing: ${r.missing.join(", ")}`),
    ),
  },
  {
    id: "device.report.over-report",
    area: "device",
    level: "INFO",
    perPageSize: true,
    title: "Pages REPORT sets that the device did not write",
    source: "the uAPI leaves it open (a coarser logging page, a device-side cache)",
    scenario: "device.logging.exact",
    judge: ok((r) =>
      pass(
        r.extra === 0
          ? `none: exact at the logging page size ${size(r.granted)}`
          : `${r.extra} page(s) besides the ${r.written} written (logging page ${size(r.granted)})`,
      ),
    ),
  },
  {
    id: "device.report.clears",
    area: "device",
    level: "MUST",
    perPageSize: true,
    title: "REPORT clears what it returned: the same REPORT right after sets no bit",
    source: CLEARED,
    scenario: "device.logging.exact",
    judge: ok((r) =>
      r.again === 0
        ? pass(`${r.written} written pages reported, then nothing`)
        : fail(`the same REPORT right after sets ${r.again} bit(s) again`),
    ),
  },
  {
    id: "device.report.sub-range",
    area: "device",
    level: "MUST",
    title: "A REPORT of part of the range (whole logging pages) leaves the rest logged",
    source: CLEARED,
    scenario: "device.logging.sub-range",
    judge: ok((r) =>
      r.restKept
        ? pass("a write in the next logging page was still reported after")
        : fail("a write in the next logging page was lost: the REPORT cleared outside its range"),
    ),
  },
  {
    id: "device.report.partial-page",
    area: "device",
    level: "INFO",
    title: "A REPORT that covers part of a logging page: is the rest of that page still logged after?",
    source:
      "the uAPI leaves it open; mlx5 and the edu test driver clear the whole page (mlx5vf_tracker_read_and_clear, edu_log_read_and_clear)",
    scenario: "device.logging.partial-page",
    judge: ok((r) => {
      if (!r.cut) return pass(`the device logs at ${size(r.granted)}: a 4 KiB REPORT cuts no logging page`);
      if (r.restKept)
        return pass(
          `keeps the rest of a ${size(r.granted)} logging page logged: REPORTs may cut logging pages`,
        );
      return pass(
        `clears the whole ${size(r.granted)} logging page${r.reported ? " (reported in the range)" : " and reports nothing"}: the rest's dirtiness is gone, so a caller must never cut a logging page`,
      );
    }),
  },
  {
    id: "device.report.coarser",
    area: "device",
    level: "MUST",
    title: "REPORT at twice the logging page size sets the bit covering each written page",
    source: ANY_PAGE_SIZE,
    scenario: "device.logging.coarser-finer",
    judge: ok((r) =>
      r.coarse.includes(1)
        ? pass(`a write in logging page 3 is bit 1 at ${formatSizeShort(2n * BigInt(r.granted))}`)
        : fail(`a write in logging page 3 should be bit 1; got ${bitList(r.coarse)}`),
    ),
  },
  {
    id: "device.report.finer",
    area: "device",
    level: "MUST",
    title: "REPORT at half the logging page size sets both halves of each written page",
    source: ANY_PAGE_SIZE,
    scenario: "device.logging.coarser-finer",
    judge: ok((r) => {
      if (r.fine === null)
        return { skip: `the device logs at ${size(r.granted)}: REPORT takes nothing below 4 KiB` };
      return r.fine.includes(10) && r.fine.includes(11)
        ? pass("a write in logging page 5 is bits 10 and 11")
        : fail(`a write in logging page 5 should be bits 10 and 11; got ${bitList(r.fine)}`);
    }),
  },
  {
    id: "device.report.only-sets-bits",
    area: "device",
    level: "MUST",
    title: "REPORT never clears bits already set in the caller's bitmap",
    source: `${VFIO_H_REPORT}: "The LOGGING_REPORT will only set bits in the bitmap and never clear or perform any initialization of the user provided bitmap."; QEMU reports every device into one bitmap (hw/vfio/container.c vfio_container_devices_query_dirty_bitmap)`,
    scenario: "device.report.only-sets-bits",
    judge: ok((r) => {
      const word = BigInt(r.bitmap[0]);
      const kept = 0xa5a5_a5a5_a5a5_a5a5n;
      return (word & kept) === kept
        ? pass("a bitmap filled with 0xa5 kept every bit")
        : fail(`a bitmap filled with 0xa5 came back ${r.bitmap[0]}: the REPORT cleared the caller's bits`);
    }),
  },
  {
    id: "device.report.outside-range",
    area: "device",
    level: "MUST",
    title: "REPORT sets no bit past its range, though the page right after it was written",
    source: `${IN_RANGE}; bitmap[(addr - iova) / page_size] maps only the range`,
    scenario: "device.logging.outside-range",
    judge: ok((r) =>
      r.outside.length === 0
        ? pass("no bit past the range")
        : fail(`set ${bitList(r.outside)} past the range's end (pages outside it)`),
    ),
  },
  {
    id: "device.report.before-start",
    area: "device",
    level: "MUST",
    title: "REPORT before START is refused",
    source: NOT_ENABLED,
    scenario: "device.report.before-start",
    judge: refused("REPORT before START"),
  },
  {
    id: "device.report.after-stop",
    area: "device",
    level: "MUST",
    title: "REPORT after STOP is refused",
    source: NOT_ENABLED,
    scenario: "device.logging.after-stop",
    judge: refused("REPORT after STOP"),
  },
  {
    id: "device.report.unstarted-range",
    area: "device",
    level: "INFO",
    title: "What a REPORT outside the started ranges answers (the device wrote there)",
    source: "the uAPI leaves it open",
    scenario: "device.logging.report-unstarted",
    judge: ok((r) =>
      pass(
        r.report === "OK"
          ? `answers OK with ${r.bits === 0 ? "no bit set" : `${r.bits} bit(s) set`}`
          : `refused: ${r.report}`,
      ),
    ),
  },
  {
    id: "device.report.page-size-below-4k",
    area: "device",
    level: "MUST",
    title: "REPORT at a page size below 4 KiB is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_report: page_size < SZ_4K",
    scenario: "device.report.page-size-below-4k",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.report.page-size-not-power-of-two",
    area: "device",
    level: "MUST",
    title: "REPORT at a page size that is not a power of two is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_report: !is_power_of_2(page_size)",
    scenario: "device.report.page-size-not-power-of-two",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.report.overflow",
    area: "device",
    level: "MUST",
    title: "REPORT whose iova + length wraps is EOVERFLOW",
    source: "vfio_main.c vfio_ioctl_device_feature_logging_report: check_add_overflow",
    scenario: "device.report.overflow",
    judge: errnoIs("EOVERFLOW"),
  },
  {
    id: "device.feature.get-and-set",
    area: "device",
    level: "MUST",
    withoutLogging: true,
    title: "VFIO_DEVICE_FEATURE with GET and SET (without PROBE) is EINVAL",
    source: 'vfio.h VFIO_DEVICE_FEATURE: "GET and SET are mutually exclusive, except for use with PROBE."',
    scenario: "device.feature.get-and-set",
    judge: errnoIs("EINVAL"),
  },
  {
    id: "device.feature.unknown-flags",
    area: "device",
    level: "MUST",
    withoutLogging: true,
    title: "VFIO_DEVICE_FEATURE with an unknown flag bit is EINVAL",
    source: "vfio_main.c vfio_ioctl_device_feature: flags & ~(MASK | SET | GET | PROBE)",
    scenario: "device.feature.unknown-flags",
    judge: errnoIs("EINVAL"),
  },
];
