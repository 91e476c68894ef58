// ABI error codes (assembly/errors.ts, ABI.md) and the error the typed wrappers throw for them.
//
//   try { bitmap.set(10, 5) } catch (e) {
//     if (e instanceof BitmapError && e.code === ErrorCode.RANGE) ...
//   }
// Callers match on `code`, never on message text.

/** Negative status codes of the raw ABI. */
export const ErrorCode = {
  BAD_HANDLE: -1,
  RANGE: -2,
  PAGE_SIZE: -3,
  ALIGN: -4,
  OVERFLOW: -5,
  NOMEM: -6,
  OVERLAP: -7,
  BAD_POINTER: -8,
  BAD_ARGUMENT: -9,
  TOO_LARGE: -10,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;

const EXPLANATIONS: Record<number, string> = {
  [ErrorCode.BAD_HANDLE]: "not a live bitmap, table or allocation (freed already?)",
  [ErrorCode.RANGE]: "bit range is negative or runs past the end of the bitmap",
  [ErrorCode.PAGE_SIZE]: "page size must be a power of two from 512 B to 1 GiB (and match where required)",
  [ErrorCode.ALIGN]: "address or length is not a multiple of the page size",
  [ErrorCode.OVERFLOW]: "address + length passes 2^64 - 1",
  [ErrorCode.NOMEM]: "wasm memory cannot grow (wasm32 is limited to 4 GiB)",
  [ErrorCode.OVERLAP]: "ranges overlap (an active IOVA mapping, or source and destination)",
  [ErrorCode.BAD_POINTER]: "buffer is outside wasm memory",
  [ErrorCode.BAD_ARGUMENT]: "invalid argument",
  [ErrorCode.TOO_LARGE]: "too large for one wasm32 bitmap; cover the guest in windows",
};

/** Name of an ABI error code ("RANGE"), or "UNKNOWN(-42)". */
export function errorCodeName(code: number): string {
  for (const [name, value] of Object.entries(ErrorCode)) if (value === code) return name;
  return `UNKNOWN(${code})`;
}

/**
 * A bad argument to the bitmap core, thrown by the typed wrappers:
 * "bitmap.set(start 90, n 20) on bitmap of 100 bits: RANGE (-2): bit range is negative or runs past the end of the bitmap"
 */
export class BitmapError extends Error {
  override name = "BitmapError";
  constructor(
    /** The ABI error code (ErrorCode.*). */
    readonly code: number,
    /** The operation, e.g. "bitmap.orFrom". */
    readonly op: string,
    detail: string,
    opts?: ErrorOptions,
  ) {
    super(
      `${op}(${detail}): ${errorCodeName(code)} (${code}): ${EXPLANATIONS[code] ?? "unknown error"}`,
      opts,
    );
  }
}
