// Types for abi-check.js, which stays plain JavaScript so that browsers, Bun and Deno run it as is.

/** Outcome of one full raw-ABI check. */
export interface AbiCheckResult {
  /** True when every check passed. */
  ok: boolean;
  /** Number of checks made (the same in every engine: the random cases are seeded). */
  checks: number;
  /** One line per failed check (at most 50). */
  failures: string[];
}

/** One step of a recorded check: an export call, or a write into / read from linear memory. */
export type AbiTraceEntry =
  | ["call", string, (number | bigint)[], number | bigint]
  | ["write" | "read", number, Uint8Array];

export interface AbiCheckOptions {
  /** When given, every call and memory access of the check is appended here, in order. */
  trace?: AbiTraceEntry[];
}

/** Instantiates `bytes` with no imports and checks the raw exports against a reference model. */
export function checkAbi(bytes: BufferSource, opts?: AbiCheckOptions): Promise<AbiCheckResult>;
