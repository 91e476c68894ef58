// A VFIO device fd: info, regions, and the VFIO_DEVICE_FEATURE surface (migration state and
// device DMA logging).
//
// VFIO_DEVICE_FEATURE shares its number (0x3b75) with VFIO_IOMMU_DIRTY_PAGES; only this class
// issues it, on a device fd.
//
//   using device = group.getDevice("0000:3b:00.1");
//   if (device.featureProbe(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET)) {
//     const pageSize = device.dmaLoggingStart([{ iova: 0n, length: 1n << 30n }], 4096n);
//     device.dmaLoggingReport({ iova: 0n, length: 1n << 30n, pageSize, bitmap: bm.bytes });
//     device.dmaLoggingStop();
//   }

import { Errno, InvalidInputError, IoctlError, ProtocolError, SyscallError } from "../errors.ts";
import type { Fd, Host } from "../host.ts";
import { type CapHeader, walkCapChain } from "../uapi/cap-chain.ts";
import {
  type DeviceInfo,
  type DmaLoggingRange,
  decodeDeviceFeature,
  decodeDeviceInfo,
  decodeDmaLoggingControl,
  decodeFeatureMigDataSize,
  decodeFeatureMigration,
  decodeFeatureMigState,
  decodePrecopyInfo,
  decodeRegionInfo,
  deviceFeatureOpName,
  encodeDeviceFeature,
  encodeDeviceInfo,
  encodeDmaLoggingControl,
  encodeDmaLoggingRanges,
  encodeDmaLoggingReport,
  encodeFeatureMigDataSize,
  encodeFeatureMigration,
  encodeFeatureMigState,
  encodePrecopyInfo,
  encodeRegionInfo,
  type FeatureMigState,
  type PrecopyInfo,
  type RegionInfo,
  SIZEOF_VFIO_REGION_INFO,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_STATE_NAMES,
  VFIO_MIG_GET_PRECOPY_INFO,
  VFIO_PRECOPY_INFO_REINIT,
  VFIO_REGION_INFO_FLAG_CAPS,
} from "../uapi/vfio.ts";
import { hex } from "../util/hex.ts";
import { isPowerOfTwoIn } from "../util/page-size.ts";
import { checkBitmapRoom, checkPageSize, FdObject, rangeFields } from "./fd-object.ts";

/** The largest region info answer accepted for the retry. */
export const MAX_REGION_INFO_ARGSZ = 1 << 20;

/** VFIO_MIG_GET_PRECOPY_INFO as Device.getPrecopyInfo reads it. */
export interface PrecopyEstimate extends PrecopyInfo {
  /**
   * VFIO_PRECOPY_INFO_REINIT: the device put new initial data on the stream; `initialBytes` starts
   * over from here and may be larger than before. Only ever true after enablePrecopyInfoV2(): a
   * kernel without the opt-in hands `flags` back as sent, so the bit means nothing there.
   */
  reinit: boolean;
}

export class Device extends FdObject {
  /** Wraps a device fd (from VFIO_GROUP_GET_DEVICE_FD) this object will own and close. */
  static fromFd(host: Host, fd: Fd, name: string): Device {
    return new Device(host, fd, name);
  }

  protected constructor(
    host: Host,
    fd: Fd,
    /** The device's name, normally its PCI address "0000:3b:00.1". */
    readonly name: string,
  ) {
    super(host, fd, `device ${name}`);
  }

  /** VFIO_DEVICE_GET_INFO (fixed part; vfio-dirty needs no device capabilities). */
  getInfo(): DeviceInfo {
    const op = "VFIO_DEVICE_GET_INFO";
    const buf = encodeDeviceInfo();
    this.ioctl(op, VFIO_DEVICE_GET_INFO, buf);
    return this.decode(op, () => decodeDeviceInfo(buf));
  }

  /**
   * VFIO_DEVICE_GET_REGION_INFO for region `index`, with its capability headers. Grows the buffer
   * and retries once when the kernel reports a larger argsz for the capability chain.
   */
  getRegionInfo(index: number): { info: RegionInfo; caps: CapHeader[]; bytes: Uint8Array } {
    const op = "VFIO_DEVICE_GET_REGION_INFO";
    let buf = this.encode(op, () => encodeRegionInfo({ index }));
    this.ioctl(op, VFIO_DEVICE_GET_REGION_INFO, buf, `index ${index}`);
    let info = this.decode(op, () => decodeRegionInfo(buf));
    if (info.flags & VFIO_REGION_INFO_FLAG_CAPS && info.argsz > buf.length) {
      if (info.argsz > MAX_REGION_INFO_ARGSZ)
        throw new ProtocolError(`${op} (${this.detail(`index ${index}`)}): implausible argsz ${info.argsz}`);
      const grown = new Uint8Array(info.argsz);
      grown.set(this.encode(op, () => encodeRegionInfo({ index, argsz: info.argsz })));
      buf = grown;
      this.ioctl(op, VFIO_DEVICE_GET_REGION_INFO, buf, `index ${index}`, `argsz ${buf.length}`);
      info = this.decode(op, () => decodeRegionInfo(buf));
      if (info.argsz > buf.length)
        throw new ProtocolError(
          `${op} (${this.detail(`index ${index}`)}): argsz grew again to ${info.argsz}`,
        );
    }
    const caps =
      info.flags & VFIO_REGION_INFO_FLAG_CAPS && info.capOffset !== 0
        ? this.decode(op, () =>
            walkCapChain(
              buf.subarray(0, info.argsz),
              info.capOffset,
              SIZEOF_VFIO_REGION_INFO,
              "vfio_region_info",
            ),
          )
        : [];
    return { info, caps, bytes: buf };
  }

  /** pread(2) from a region at `offset` within it. Returns the bytes read. */
  regionRead(region: RegionInfo, offset: bigint, into: Uint8Array): number {
    return this.regionIo("pread", region, offset, into);
  }

  /** pwrite(2) into a region at `offset` within it. Returns the bytes written. */
  regionWrite(region: RegionInfo, offset: bigint, from: Uint8Array): number {
    return this.regionIo("pwrite", region, offset, from);
  }

  /** VFIO_DEVICE_RESET: the way back from the ERROR migration state. */
  reset(): void {
    this.ioctl("VFIO_DEVICE_RESET", VFIO_DEVICE_RESET, 0);
    this.#resets++;
  }

  /**
   * Resets done through this object. A reset forgets what the device's DMA log held, and the
   * kernel tells nobody: a tracker compares this count between syncs to know.
   */
  get resetCount(): number {
    return this.#resets;
  }

  /**
   * VFIO_DEVICE_FEATURE with PROBE: true when the device supports `feature` with the `ops` asked
   * (VFIO_DEVICE_FEATURE_GET and/or _SET). ENOTTY (feature unknown) and EINVAL (operation not
   * supported, from vfio_check_feature()) mean false; any other errno throws.
   */
  featureProbe(feature: number, ops = 0): boolean {
    return this.featureProbeErrno(feature, ops) === 0;
  }

  /**
   * The same PROBE, keeping the kernel's answer: 0 when supported, else the errno that said no
   * (ENOTTY: no such feature; EINVAL: the operation is not supported). Selection reasons quote it,
   * since "ENOTTY from the DMA logging probe" tells a driver developer more than "unsupported".
   * Any other errno throws, as from featureProbe.
   */
  featureProbeErrno(feature: number, ops = 0): number {
    const flags = this.featureFlags(feature, VFIO_DEVICE_FEATURE_PROBE | ops);
    const rc = this.tryIoctl(VFIO_DEVICE_FEATURE, encodeDeviceFeature(flags));
    if (rc >= 0) return 0;
    if (-rc === Errno.ENOTTY || -rc === Errno.EINVAL) return -rc;
    throw new IoctlError(deviceFeatureOpName(flags), -rc, this.detail());
  }

  /** VFIO_DEVICE_FEATURE GET of `feature`: returns the `payloadLength` bytes the kernel wrote. */
  featureGet(feature: number, payloadLength: number, ...fields: string[]): Uint8Array {
    const flags = this.featureFlags(feature, VFIO_DEVICE_FEATURE_GET);
    const op = deviceFeatureOpName(flags);
    const buf = encodeDeviceFeature(flags, new Uint8Array(payloadLength));
    this.ioctl(op, VFIO_DEVICE_FEATURE, buf, ...fields);
    return this.decode(op, () => decodeDeviceFeature(buf)).data;
  }

  /** VFIO_DEVICE_FEATURE SET of `feature` with `payload`; returns the payload as the kernel left it. */
  featureSet(feature: number, payload: Uint8Array = new Uint8Array(0), ...fields: string[]): Uint8Array {
    const flags = this.featureFlags(feature, VFIO_DEVICE_FEATURE_SET);
    const op = deviceFeatureOpName(flags);
    const buf = encodeDeviceFeature(flags, payload);
    this.ioctl(op, VFIO_DEVICE_FEATURE, buf, ...fields);
    return this.decode(op, () => decodeDeviceFeature(buf)).data;
  }

  /** VFIO_DEVICE_FEATURE GET MIGRATION: the VFIO_MIGRATION_* flags; ENOTTY when not migratable. */
  getMigrationFlags(): number {
    const data = this.featureGet(VFIO_DEVICE_FEATURE_MIGRATION, encodeFeatureMigration().length);
    const { flags } = this.decode("VFIO_DEVICE_FEATURE(GET|MIGRATION)", () => decodeFeatureMigration(data));
    // The defined flags are bits 0..2; a u64 beyond 2^53 would be a kernel from the future.
    if (flags > BigInt(Number.MAX_SAFE_INTEGER))
      throw new ProtocolError(`VFIO_DEVICE_FEATURE(GET|MIGRATION) (${this.detail()}): flags ${hex(flags)}`);
    return Number(flags);
  }

  /** VFIO_DEVICE_FEATURE GET MIG_DEVICE_STATE: the current enum vfio_device_mig_state. */
  getMigState(): number {
    const data = this.featureGet(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, encodeFeatureMigState().length);
    return this.decode("VFIO_DEVICE_FEATURE(GET|MIG_DEVICE_STATE)", () => decodeFeatureMigState(data))
      .deviceState;
  }

  /**
   * VFIO_DEVICE_FEATURE SET MIG_DEVICE_STATE. Returns the state and the migration data fd the
   * kernel opened for arcs that start a data session (else -1); the caller owns that fd.
   */
  setMigState(state: number): FeatureMigState {
    const name = VFIO_DEVICE_STATE_NAMES[state] ?? String(state);
    const payload = this.encode("VFIO_DEVICE_FEATURE(SET|MIG_DEVICE_STATE)", () =>
      encodeFeatureMigState({ deviceState: state, dataFd: -1 }),
    );
    const data = this.featureSet(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, payload, `state ${name}`);
    return this.decode("VFIO_DEVICE_FEATURE(SET|MIG_DEVICE_STATE)", () => decodeFeatureMigState(data));
  }

  /** VFIO_DEVICE_FEATURE GET MIG_DATA_SIZE: estimated STOP_COPY bytes (Linux 6.2+). */
  getMigDataSize(): bigint {
    const data = this.featureGet(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, encodeFeatureMigDataSize().length);
    return this.decode("VFIO_DEVICE_FEATURE(GET|MIG_DATA_SIZE)", () => decodeFeatureMigDataSize(data))
      .stopCopyLength;
  }

  /**
   * VFIO_MIG_GET_PRECOPY_INFO on a migration data fd this device returned (PRE_COPY states only):
   * the initial and dirty bytes still to read, and `reinit` (see PrecopyEstimate). Sends flags 0,
   * so a kernel that echoes them (no v2 opt-in) never shows a stray REINIT.
   */
  getPrecopyInfo(dataFd: Fd): PrecopyEstimate {
    const op = "VFIO_MIG_GET_PRECOPY_INFO";
    const buf = encodePrecopyInfo();
    const rc = this.host.ioctl(dataFd, VFIO_MIG_GET_PRECOPY_INFO, buf);
    if (rc < 0) throw new IoctlError(op, -rc, this.#dataFdDetail(dataFd));
    const info = this.decode(op, () => decodePrecopyInfo(buf));
    return { ...info, reinit: this.#precopyInfoV2 && (info.flags & VFIO_PRECOPY_INFO_REINIT) !== 0 };
  }

  /**
   * VFIO_DEVICE_FEATURE PROBE|SET MIG_PRECOPY_INFOv2: 0 when the device takes the v2 opt-in, else
   * the errno that said no: ENOTTY (a kernel before 7.1), EINVAL (no PRE_COPY on this device).
   */
  precopyInfoV2Errno(): number {
    return this.featureProbeErrno(VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, VFIO_DEVICE_FEATURE_SET);
  }

  /**
   * VFIO_DEVICE_FEATURE SET MIG_PRECOPY_INFOv2 (Linux 7.1+): opts in to the v2 precopy info, whose
   * REINIT flag getPrecopyInfo then reports, until the device's last close (QEMU 11.1 does this
   * before pre-copy). Returns false, changing nothing, when the kernel or the device lacks it
   * (ENOTTY, EINVAL); any other failure throws IoctlError.
   */
  enablePrecopyInfoV2(): boolean {
    if (this.precopyInfoV2Errno() !== 0) return false;
    this.featureSet(VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2);
    this.#precopyInfoV2 = true;
    return true;
  }

  /** True once enablePrecopyInfoV2() succeeded on this device fd. */
  get precopyInfoV2(): boolean {
    return this.#precopyInfoV2;
  }

  /**
   * read(2) from a migration data fd into `into`: the bytes read, 0 at the end of the stream
   * (STOP_COPY read out), or null for ENOMSG, PRE_COPY's temporary end of data (more comes when
   * the device's state changes). Throws SyscallError for anything else (ENODEV: the session ended).
   */
  readMigrationData(dataFd: Fd, into: Uint8Array): number | null {
    const rc = this.host.read(dataFd, into);
    if (rc === -Errno.ENOMSG) return null;
    if (rc < 0) throw new SyscallError("read", -rc, this.#dataFdDetail(dataFd, `${into.byteLength} bytes`));
    return rc;
  }

  /** write(2) of resume data to a migration data fd from RESUMING. Returns the bytes written. */
  writeMigrationData(dataFd: Fd, from: Uint8Array): number {
    const rc = this.host.write(dataFd, from);
    if (rc < 0) throw new SyscallError("write", -rc, this.#dataFdDetail(dataFd, `${from.byteLength} bytes`));
    return rc;
  }

  /**
   * VFIO_DEVICE_FEATURE SET DMA_LOGGING_START over `ranges` (non-overlapping, `pageSize`-aligned).
   * Returns the page size the device chose, which may differ from the hint. E2BIG: too many ranges.
   */
  dmaLoggingStart(ranges: readonly DmaLoggingRange[], pageSize: bigint): bigint {
    const flags = this.featureFlags(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET);
    const op = deviceFeatureOpName(flags);
    checkPageSize(op, pageSize);
    if (ranges.length === 0) throw new InvalidInputError(`${op} (${this.detail()}): no ranges to log`);
    const rangeBytes = this.encode(op, () => encodeDmaLoggingRanges(ranges));
    const control = this.encode(op, () =>
      encodeDmaLoggingControl({
        pageSize,
        numRanges: ranges.length,
        ranges: this.host.addressOf(rangeBytes),
      }),
    );
    const buf = encodeDeviceFeature(flags, control);
    const first = ranges[0]!;
    const last = ranges[ranges.length - 1]!;
    this.ioctl(
      op,
      VFIO_DEVICE_FEATURE,
      buf,
      `${ranges.length} ranges`,
      `first iova ${hex(first.iova)}`,
      `last iova ${hex(last.iova)} length ${hex(last.length)}`,
      `page_size ${hex(pageSize)}`,
    );
    const granted = this.decode(op, () => decodeDmaLoggingControl(decodeDeviceFeature(buf).data)).pageSize;
    if (!isPowerOfTwoIn(granted)) {
      // The device now logs at a size no dirty bitmap can describe: stop it before refusing, so a
      // caller falling back to another strategy does not leave it logging.
      let stopNote = "logging was stopped";
      try {
        this.dmaLoggingStop();
      } catch (e) {
        stopNote = `stopping it failed too (${e instanceof Error ? e.message : String(e)})`;
      }
      throw new ProtocolError(
        `${op} (${this.detail()}): the kernel wrote back page_size ${hex(granted)}, not a power of two; ${stopNote}. Report this kernel/driver behaviour; tracking falls back to another strategy`,
      );
    }
    return granted;
  }

  /** VFIO_DEVICE_FEATURE SET DMA_LOGGING_STOP. */
  dmaLoggingStop(): void {
    this.featureSet(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP);
  }

  /**
   * VFIO_DEVICE_FEATURE GET DMA_LOGGING_REPORT: ORs the device's dirty bits for the range into
   * `bitmap` (never clears bits) and clears them in the device. After any error the whole log must
   * be taken as lost (uAPI comment on DMA_LOGGING_REPORT): the caller marks everything dirty.
   */
  dmaLoggingReport(a: { iova: bigint; length: bigint; pageSize: bigint; bitmap: Uint8Array }): void {
    const flags = this.featureFlags(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_GET);
    const op = deviceFeatureOpName(flags);
    const fields = [
      ...rangeFields(a.iova, a.length),
      `page_size ${hex(a.pageSize)}`,
      `bitmap ${a.bitmap.byteLength} bytes`,
    ];
    this.encode(op, () => checkBitmapRoom(op, a.length, a.pageSize, a.bitmap.byteLength));
    const report = this.encode(op, () =>
      encodeDmaLoggingReport({
        iova: a.iova,
        length: a.length,
        pageSize: a.pageSize,
        bitmap: this.host.addressOf(a.bitmap),
      }),
    );
    this.ioctl(op, VFIO_DEVICE_FEATURE, encodeDeviceFeature(flags, report), ...fields);
  }

  // --- Internal helpers ---

  #precopyInfoV2 = false;
  #resets = 0;

  #dataFdDetail(dataFd: Fd, ...fields: string[]): string {
    return [`migration data fd ${dataFd} of ${this.label}`, ...fields].join(", ");
  }

  private featureFlags(feature: number, ops: number): number {
    if (!Number.isInteger(feature) || feature < 0 || feature > VFIO_DEVICE_FEATURE_MASK)
      throw new InvalidInputError(
        `VFIO_DEVICE_FEATURE (${this.detail()}): feature index ${feature} is out of range`,
      );
    return (feature | ops) >>> 0;
  }

  // pread and pwrite differ only in direction: one bounds check and one error shape for both.
  private regionIo(call: "pread" | "pwrite", region: RegionInfo, offset: bigint, buf: Uint8Array): number {
    const what = call === "pread" ? "region read" : "region write";
    this.checkRegionAccess(what, region, offset, buf.byteLength);
    const rc = this.host[call](this.fd, buf, region.offset + offset);
    if (rc < 0)
      throw new SyscallError(
        call,
        -rc,
        this.detail(`region ${region.index}`, `offset ${hex(offset)}`, `${buf.byteLength} bytes`),
      );
    return rc;
  }

  private checkRegionAccess(what: string, region: RegionInfo, offset: bigint, length: number): void {
    if (offset < 0n || offset + BigInt(length) > region.length)
      throw new InvalidInputError(
        `${what} (${this.detail(`region ${region.index}`)}): offset ${hex(offset)} + ${length} bytes is outside the ${hex(region.length)}-byte region`,
      );
  }
}
