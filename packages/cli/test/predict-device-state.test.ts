import { describe, expect, it } from "vitest";
import { devicesFromReport } from "../src/predict/device-state.ts";

const MB = 1e6;

describe("devicesFromReport: the track report's deviceState section", () => {
  it("a v2 device: initial data at the first reading, dirty growth as a rate, REINIT as new initial data", () => {
    const [d] = devicesFromReport([
      {
        device: "0000:3b:00.1",
        stopCopyBytes: 64 * MB,
        precopyInfoVersion: 2,
        precopy: [
          { tMs: 1000, initialBytes: 100 * MB, dirtyBytes: 0, reinit: false },
          { tMs: 2000, initialBytes: 100 * MB, dirtyBytes: 2 * MB, reinit: false },
          { tMs: 3000, initialBytes: 30 * MB, dirtyBytes: 0, reinit: true }, // dirty restarts: not a rate
          { tMs: 4000, initialBytes: 30 * MB, dirtyBytes: 2 * MB, reinit: false },
        ],
      },
    ]);
    expect(d).toEqual({
      id: "0000:3b:00.1",
      stopCopyBytes: 64 * MB,
      precopy: {
        infoVersion: 2,
        initialBytes: 100 * MB,
        dirtyBytes: 0,
        dirtyRate: 2 * MB, // 4 MB over the 2 s without a REINIT
        reinit: [{ atMs: 2000, initialBytes: 30 * MB }],
      },
    });
  });

  it("a v1 device's REINIT flag is the kernel echoing user space: ignored", () => {
    const [d] = devicesFromReport([
      {
        device: "a",
        stopCopyBytes: null,
        precopyInfoVersion: 1,
        precopy: [
          { tMs: 0, initialBytes: 10 * MB, dirtyBytes: 0, reinit: true },
          { tMs: 1000, initialBytes: 10 * MB, dirtyBytes: 1 * MB, reinit: true },
        ],
      },
    ]);
    expect(d!.stopCopyBytes).toBe(0);
    expect(d!.precopy).toMatchObject({ infoVersion: 1, dirtyRate: 1 * MB, reinit: [] });
  });

  it("a drained trace (as track writes it): each reading is new data, less what was left unread", () => {
    const [d] = devicesFromReport([
      {
        device: "c",
        stopCopyBytes: 0,
        precopyInfoVersion: 2,
        precopy: [
          { tMs: 0, initialBytes: 50 * MB, dirtyBytes: 0, reinit: false, drainedBytes: 50 * MB },
          { tMs: 1000, initialBytes: 0, dirtyBytes: 3 * MB, reinit: false, drainedBytes: 1 * MB },
          // 2 MB were still pending: only 1 MB is new.
          { tMs: 2000, initialBytes: 0, dirtyBytes: 3 * MB, reinit: false, drainedBytes: 3 * MB },
          { tMs: 3000, initialBytes: 0, dirtyBytes: 2 * MB, reinit: false, drainedBytes: 2 * MB },
        ],
      },
    ]);
    expect(d!.precopy!.dirtyRate).toBe(2 * MB); // 3 + 1 + 2 MB over 3 s
  });

  it("a device without PRE_COPY has its stop-copy bytes only", () => {
    expect(
      devicesFromReport([{ device: "b", stopCopyBytes: 5, precopyInfoVersion: null, precopy: [] }]),
    ).toEqual([{ id: "b", stopCopyBytes: 5 }]);
  });
});
