import { describe, expect, it } from "vitest";
import { PrecopyDeviceState } from "../src/precopy-device.ts";

const MB = 1e6;

describe("PrecopyDeviceState: what VFIO_MIG_GET_PRECOPY_INFO says as pre-copy runs", () => {
  it("initial_bytes shrinks only by reading; dirty_bytes grows with the device's changes", () => {
    const d = new PrecopyDeviceState({
      infoVersion: 1,
      initialBytes: 64 * MB,
      dirtyBytes: 1 * MB,
      dirtyRate: 2 * MB,
    });
    expect(d.read(0)).toEqual({ initialBytes: 64 * MB, dirtyBytes: 1 * MB, reinit: false });
    expect(d.read(1)).toEqual({ initialBytes: 64 * MB, dirtyBytes: 3 * MB, reinit: false });
    expect(d.sendAll()).toBe(67 * MB);
    expect(d.read(1.5)).toEqual({ initialBytes: 0, dirtyBytes: 1 * MB, reinit: false });
  });

  it("v2: REINIT gives a new initial_bytes and restarts dirty_bytes from the event", () => {
    const d = new PrecopyDeviceState({
      infoVersion: 2,
      initialBytes: 64 * MB,
      dirtyRate: 2 * MB,
      reinit: [{ atMs: 1500, initialBytes: 32 * MB }],
    });
    d.read(0);
    d.sendAll();
    expect(d.read(1)).toEqual({ initialBytes: 0, dirtyBytes: 2 * MB, reinit: false });
    // The event at 1.5 s: 32 MB of initial data, dirty counted from 1.5 s (1 MB by 2 s).
    expect(d.read(2)).toEqual({ initialBytes: 32 * MB, dirtyBytes: 1 * MB, reinit: true });
    expect(d.read(3).reinit).toBe(false); // reported once
  });

  it("v1: the same reconfiguration appears as dirty_bytes, never as initial data again", () => {
    const d = new PrecopyDeviceState({
      infoVersion: 1,
      initialBytes: 64 * MB,
      reinit: [{ atMs: 1500, initialBytes: 32 * MB }],
    });
    d.read(0);
    d.sendAll();
    expect(d.read(2)).toEqual({ initialBytes: 0, dirtyBytes: 32 * MB, reinit: false });
  });
});
