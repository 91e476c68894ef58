// Error codes of the raw ABI, all in one place (the table in ../ABI.md lists the same numbers).
// Functions returning i32 status give OK or one of these; functions returning i64 give the value
// or the same negative code widened to i64; pointer-returning functions give 0 and record the code
// for abi_last_error().

// @ts-ignore: decorator
@inline export const OK: i32 = 0;
// Not a live bitmap / table handle / allocation (wrong pointer, already freed).
// @ts-ignore: decorator
@inline export const ERR_BAD_HANDLE: i32 = -1;
// Bit range negative or past the end of the bitmap.
// @ts-ignore: decorator
@inline export const ERR_RANGE: i32 = -2;
// Page size not a power of two in [512, 2^30], or page sizes that must match differ.
// @ts-ignore: decorator
@inline export const ERR_PAGE_SIZE: i32 = -3;
// Address or length not a multiple of the page size.
// @ts-ignore: decorator
@inline export const ERR_ALIGN: i32 = -4;
// An address plus a length passes 2^64 - 1.
// @ts-ignore: decorator
@inline export const ERR_OVERFLOW: i32 = -5;
// memory.grow failed.
// @ts-ignore: decorator
@inline export const ERR_NOMEM: i32 = -6;
// IOVA range overlaps an active mapping, or source and destination ranges overlap.
// @ts-ignore: decorator
@inline export const ERR_OVERLAP: i32 = -7;
// Caller buffer not inside memory, or overlapping the module's static data.
// @ts-ignore: decorator
@inline export const ERR_BAD_POINTER: i32 = -8;
// Any other invalid argument.
// @ts-ignore: decorator
@inline export const ERR_BAD_ARGUMENT: i32 = -9;
// nbits or an allocation above the documented maximum.
// @ts-ignore: decorator
@inline export const ERR_TOO_LARGE: i32 = -10;
