import { describe, expect, it } from "vitest";
import { Errno, errnoName, IoctlError, SyscallError, VfioError } from "../src/errors.ts";

describe("errors", () => {
  it("names the operation, the target, the errno by name and number, and a hint", () => {
    const cause = new Error("underlying");
    const e = new IoctlError(
      "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START)",
      Errno.E2BIG,
      "device 0000:3b:00.1 fd 7, 5 ranges",
      { cause },
    );
    expect(e).toBeInstanceOf(VfioError);
    expect(e.name).toBe("IoctlError");
    expect(e.errno).toBe(7);
    expect(e.cause).toBe(cause);
    expect(e.message).toBe(
      "VFIO_DEVICE_FEATURE(SET|DMA_LOGGING_START) (device 0000:3b:00.1 fd 7, 5 ranges): E2BIG (7): too many ranges for this device; merge neighbouring ranges and retry",
    );
  });

  it("says who holds a busy device and keeps unknown errnos readable", () => {
    expect(new SyscallError("open", Errno.EBUSY, "/dev/vfio/12").message).toMatch(/QEMU/);
    expect(errnoName(4242)).toBe("errno 4242");
  });
});

describe("errno names", () => {
  it("names the errnos the group and region paths answer (EBADFD from SET_CONTAINER, ESPIPE from a seek-less read)", () => {
    expect(errnoName(Errno.EBADFD)).toBe("EBADFD (77)");
    expect(errnoName(29)).toBe("ESPIPE (29)");
  });
});
