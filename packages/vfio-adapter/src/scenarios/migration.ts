// Migration data rules: the data fd a migration arc returns, VFIO_MIG_GET_PRECOPY_INFO and the
// 7.1 PRECOPY_INFOv2 opt-in (drivers/vfio/vfio_main.c, include/linux/vfio.h
// vfio_check_precopy_ioctl; the driver parts as mlx5 and the project's edu-log driver answer).
// Sizes are the device's: a result compares the same device on the kernel and on the sim.

import type { Fd } from "../host.ts";
import {
  decodePrecopyInfo,
  encodeDeviceFeature,
  encodePrecopyInfo,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_STATE_PRE_COPY,
  VFIO_DEVICE_STATE_RESUMING,
  VFIO_DEVICE_STATE_STOP,
  VFIO_DEVICE_STATE_STOP_COPY,
  VFIO_MIG_GET_PRECOPY_INFO,
} from "../uapi/index.ts";
import type { Device } from "../vfio/index.ts";
import {
  attempt,
  errnoOf,
  type Outcome,
  type Scenario,
  type Session,
  type TargetCapabilities,
} from "./scenario.ts";

/** Flags no kernel defines, to see what comes back in vfio_precopy_info.flags. */
const STRAY_FLAGS = 0x5a5a;

/** The device with a migration data fd opened by moving it to `state`; both closed at the end. */
function dataFd(s: Session, state: number): { device: Device; fd: Fd } {
  const { device } = s.device();
  const { dataFd: fd } = device.setMigState(state);
  if (fd < 0) throw new Error(`moving to state ${state} returned no data fd`);
  s.defer(() => s.t.host.close(fd));
  return { device, fd };
}

/** PRECOPY_INFO as sent with `flags`: the outcome with { flags, initialBytes, dirtyBytes }. */
function precopyInfo(s: Session, fd: Fd, flags = 0): Outcome {
  const b = encodePrecopyInfo({ flags });
  const rc = s.t.host.ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, b);
  if (rc < 0) return { errno: errnoOf(rc) };
  const info = decodePrecopyInfo(b);
  return {
    errno: null,
    result: {
      flags: info.flags,
      initialBytes: `0x${info.initialBytes.toString(16)}`,
      dirtyBytes: `0x${info.dirtyBytes.toString(16)}`,
    },
  };
}

/** Reads the data fd until it ends: the byte count and how it ended ("EOF" or the errno). */
function drain(s: Session, fd: Fd): { bytes: number; end: string } {
  // One buffer, large enough that a simulated 512 MiB device state takes few reads.
  const buf = new Uint8Array(4 << 20);
  let bytes = 0;
  for (;;) {
    const rc = s.t.host.read(fd, buf);
    if (rc <= 0) return { bytes, end: rc === 0 ? "EOF" : (errnoOf(rc) ?? "EOF") };
    bytes += rc;
  }
}

function optIn(device: Device): void {
  if (!device.enablePrecopyInfoV2()) throw new Error("MIG_PRECOPY_INFOv2 refused");
}

const needsPreCopy = (h: TargetCapabilities) =>
  !h.type1 || !h.migration ? "needs a migratable device" : h.preCopy ? undefined : "no PRE_COPY";
const needsV2 = (h: TargetCapabilities) =>
  needsPreCopy(h) ?? (h.precopyInfoV2 ? undefined : "no MIG_PRECOPY_INFOv2 (Linux 7.1+)");
const needsMigration = (h: TargetCapabilities) =>
  h.type1 && h.migration ? undefined : "needs a migratable device";

export const migrationScenarios: Scenario[] = [
  {
    id: "migration.precopy-v2.probe",
    rule: "PROBE|SET of MIG_PRECOPY_INFOv2 succeeds on a device with PRE_COPY (7.1+)",
    kernel: "vfio_main.c vfio_ioctl_device_feature_migration_precopy_info_v2",
    expected: { errno: null },
    skip: needsV2,
    run: (_t, s) => ({
      errno: errnoOf(
        s.t.host.ioctl(
          s.device().device.fd,
          VFIO_DEVICE_FEATURE,
          encodeDeviceFeature(
            VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 | VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET,
          ),
        ),
      ),
    }),
  },
  {
    id: "migration.precopy-v2.before-7.1",
    rule: "MIG_PRECOPY_INFOv2 is an unknown feature before 7.1: ENOTTY from the driver's device_feature",
    kernel: "vfio_main.c vfio_ioctl_device_feature: default -> device_feature -> ENOTTY",
    expected: { errno: "ENOTTY" },
    skip: (h) => (!h.type1 ? "no type1 container" : h.precopyInfoV2 ? "the kernel has it (7.1+)" : undefined),
    run: (_t, s) => ({ errno: errnoOf(-s.device().device.precopyInfoV2Errno()) }),
  },
  {
    id: "migration.precopy-v2.without-pre-copy",
    rule: "MIG_PRECOPY_INFOv2 on a device without PRE_COPY is EINVAL, even for PROBE",
    kernel:
      "vfio_main.c precopy_info_v2: !(migration_flags & VFIO_MIGRATION_PRE_COPY) before vfio_check_feature",
    expected: { errno: "EINVAL" },
    skip: (h) =>
      !h.type1 || !h.precopyInfoV2
        ? "needs MIG_PRECOPY_INFOv2 (7.1+) on type1"
        : h.migration && h.preCopy
          ? "the device has PRE_COPY"
          : undefined,
    run: (_t, s) => ({ errno: errnoOf(-s.device().device.precopyInfoV2Errno()) }),
  },
  {
    id: "migration.precopy-info.shrinks-as-read",
    rule: "PRECOPY_INFO's initial bytes shrink as the data fd is read; at the end of data read is ENOMSG",
    kernel: "uAPI vfio_precopy_info comment; mlx5vf_precopy_ioctl, mtty_precopy_ioctl",
    expected: { errno: null },
    skip: needsPreCopy,
    run: (_t, s) => {
      const { fd } = dataFd(s, VFIO_DEVICE_STATE_PRE_COPY);
      const sizes = [precopyInfo(s, fd).result];
      s.t.host.read(fd, new Uint8Array(16));
      sizes.push(precopyInfo(s, fd).result);
      const rest = drain(s, fd);
      sizes.push(precopyInfo(s, fd).result);
      return { errno: null, result: { sizes, rest } };
    },
  },
  {
    id: "migration.precopy-info.v1-echoes-flags",
    rule: "Without the v2 opt-in PRECOPY_INFO hands flags back as passed in (bug-compatible)",
    kernel: "include/linux/vfio.h vfio_check_precopy_ioctl: flags zeroed only when precopy_info_v2",
    expected: { errno: null },
    skip: needsPreCopy,
    run: (_t, s) => precopyInfo(s, dataFd(s, VFIO_DEVICE_STATE_PRE_COPY).fd, STRAY_FLAGS),
  },
  {
    id: "migration.precopy-info.v2-zeroes-flags",
    rule: "After the v2 opt-in PRECOPY_INFO's flags are an output: zero unless REINIT",
    kernel: "include/linux/vfio.h vfio_check_precopy_ioctl: info->flags = 0",
    expected: { errno: null },
    skip: needsV2,
    run: (_t, s) => {
      const { device } = s.device();
      optIn(device);
      const { dataFd: fd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
      s.defer(() => s.t.host.close(fd));
      return precopyInfo(s, fd, STRAY_FLAGS);
    },
  },
  {
    id: "migration.precopy-info.reinit",
    rule: "After the v2 opt-in a device reconfigured during pre-copy reports REINIT with new initial data",
    kernel: "uAPI VFIO_PRECOPY_INFO_REINIT; mlx5vf_precopy_ioctl reinit_state",
    expected: { errno: null },
    skip: (h) => needsV2(h) ?? (h.deviceState ? undefined : "cannot change the device's state"),
    run: async (t, s) => {
      const { device } = s.device();
      optIn(device);
      const { dataFd: fd } = device.setMigState(VFIO_DEVICE_STATE_PRE_COPY);
      s.defer(() => s.t.host.close(fd));
      const first = drain(s, fd);
      await t.changeDeviceState!();
      const after = precopyInfo(s, fd).result;
      return { errno: null, result: { first, after, again: precopyInfo(s, fd).result } };
    },
  },
  {
    id: "migration.precopy-info.v1-change-is-dirty",
    rule: "Without the opt-in the same reconfiguration shows as dirty bytes, never as REINIT",
    kernel: "mlx5vf_precopy_ioctl: dirty_bytes when !precopy_info_v2",
    expected: { errno: null },
    skip: (h) => needsPreCopy(h) ?? (h.deviceState ? undefined : "cannot change the device's state"),
    run: async (t, s) => {
      const { fd } = dataFd(s, VFIO_DEVICE_STATE_PRE_COPY);
      const first = drain(s, fd);
      await t.changeDeviceState!();
      return { errno: null, result: { first, after: precopyInfo(s, fd).result, rest: drain(s, fd) } };
    },
  },
  {
    id: "migration.precopy-info.outside-pre-copy",
    rule: "PRECOPY_INFO on a data fd in STOP_COPY is EINVAL",
    kernel: "uAPI: valid only in PRE_COPY states; mlx5vf_precopy_ioctl, mtty_precopy_ioctl",
    expected: { errno: "EINVAL" },
    skip: needsPreCopy,
    run: (_t, s) => precopyInfo(s, dataFd(s, VFIO_DEVICE_STATE_STOP_COPY).fd),
  },
  {
    id: "migration.stop-copy.drains-to-eof",
    rule: "STOP_COPY's data fd streams the device state, then read returns 0 (end of stream)",
    kernel: "uAPI VFIO_MIG_GET_PRECOPY_INFO comment: permanent end of stream in STOP_COPY",
    expected: { errno: null },
    skip: needsMigration,
    run: (_t, s) => ({ errno: null, result: drain(s, dataFd(s, VFIO_DEVICE_STATE_STOP_COPY).fd) }),
  },
  {
    id: "migration.stop-copy.after-pre-copy",
    rule: "STOP_COPY after a partly read PRE_COPY streams the rest and the final state on the same fd",
    kernel: "vfio_main.c PRE_COPY_P2P -> STOP_COPY: no new data fd; mlx5vf_pci_step_device_state_locked",
    expected: { errno: null },
    skip: needsPreCopy,
    run: (_t, s) => {
      const { device, fd } = dataFd(s, VFIO_DEVICE_STATE_PRE_COPY);
      const first = s.t.host.read(fd, new Uint8Array(8));
      const again = device.setMigState(VFIO_DEVICE_STATE_STOP_COPY).dataFd;
      return { errno: null, result: { first, newFd: again >= 0, rest: drain(s, fd) } };
    },
  },
  {
    id: "migration.data-fd.ended",
    rule: "After STOP_COPY -> STOP the old data fd's session is over: read is ENODEV",
    kernel: "mlx5vf_disable_fds, mtty_disable_files: disabled files read -ENODEV",
    expected: { errno: "ENODEV" },
    skip: needsMigration,
    run: (_t, s) => {
      const { device, fd } = dataFd(s, VFIO_DEVICE_STATE_STOP_COPY);
      device.setMigState(VFIO_DEVICE_STATE_STOP);
      return { errno: errnoOf(s.t.host.read(fd, new Uint8Array(8))) };
    },
  },
  {
    id: "migration.data-fd.pread",
    rule: "The data fd is a stream: pread is ESPIPE",
    kernel: "stream_open(): no FMODE_PREAD, so vfs_pread -> -ESPIPE",
    expected: { errno: "ESPIPE" },
    skip: needsMigration,
    run: (_t, s) => ({
      errno: errnoOf(s.t.host.pread(dataFd(s, VFIO_DEVICE_STATE_STOP_COPY).fd, new Uint8Array(8), 0n)),
    }),
  },
  {
    id: "migration.resume.read",
    rule: "A RESUMING data fd is write-only: read is EBADF",
    kernel: "anon_inode_getfile(..., O_WRONLY): vfs_read without FMODE_READ -> -EBADF",
    expected: { errno: "EBADF" },
    skip: needsMigration,
    run: (_t, s) => {
      const { device } = s.device();
      device.setMigState(VFIO_DEVICE_STATE_STOP);
      const { dataFd: fd } = device.setMigState(VFIO_DEVICE_STATE_RESUMING);
      s.defer(() => s.t.host.close(fd));
      return { errno: errnoOf(s.t.host.read(fd, new Uint8Array(8))) };
    },
  },
  {
    id: "migration.resume.nothing-written",
    rule: "RESUMING -> STOP with no data written is refused (EINVAL) and the device stays RESUMING",
    kernel: "mlx5vf_pci_step_device_state_locked / mtty_load_state: too little data -> -EINVAL",
    expected: { errno: "EINVAL" },
    skip: needsMigration,
    run: (_t, s) => {
      const { device } = s.device();
      device.setMigState(VFIO_DEVICE_STATE_STOP);
      const { dataFd: fd } = device.setMigState(VFIO_DEVICE_STATE_RESUMING);
      s.defer(() => s.t.host.close(fd));
      return attempt(() => device.setMigState(VFIO_DEVICE_STATE_STOP));
    },
  },
  {
    id: "migration.reset.ends-session",
    rule: "VFIO_DEVICE_RESET returns a migrating device to RUNNING and ends its data session (ENODEV)",
    kernel: "mlx5vf_pci_aer_reset_done: mig_state = RUNNING, mlx5vf_disable_fds",
    expected: { errno: null },
    skip: needsMigration,
    run: (_t, s) => {
      const { device, fd } = dataFd(s, VFIO_DEVICE_STATE_STOP_COPY);
      const rc = s.t.host.ioctl(device.fd, VFIO_DEVICE_RESET, 0);
      if (rc < 0) return { errno: errnoOf(rc) };
      return {
        errno: null,
        result: { state: device.getMigState(), read: errnoOf(s.t.host.read(fd, new Uint8Array(8))) },
      };
    },
  },
];
