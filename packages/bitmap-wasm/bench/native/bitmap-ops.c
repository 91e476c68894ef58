/*
 * Native C baselines for the bitmap-wasm benchmark.
 *
 * Compiled at bench time with the system's `cc -O3 -march=native -shared -fPIC` and called
 * through koffi on the very same wasm memory the AssemblyScript core works on, so both see the
 * same bytes, the same pages and the same TLB behaviour.
 *
 * Layout is the Linux/VFIO one: an array of little-endian u64 words, bit i of the array is
 * page i:   word[i / 64] & (1ULL << (i % 64))
 *
 *   word 0                      word 1
 *   | bit 63 ........... bit 0 | bit 127 ......... bit 64 |
 *
 * Every pointer crosses the koffi boundary as a uint64_t address (koffi.address(buffer) + ptr)
 * rather than a C pointer type, so JS never has to build koffi pointer objects.
 *
 * This is plain, idiomatic C that a kernel or QEMU developer would write: scalar u64 loops left
 * to the compiler's auto-vectoriser (AVX2/AVX-512 with -march=native), a 16-entry table for
 * expansion, ctz-based run scanning. No hand-written intrinsics: the target is "C -O3", not
 * "the fastest possible x86".
 */
#include <stdint.h>
#include <string.h>

typedef uint64_t u64;

#define WORD_BITS 64u

static inline u64 *as_words(u64 addr) { return (u64 *)(uintptr_t)addr; }

/* Mask of the low `n` bits, n in 0..64. */
static inline u64 low_mask(u64 n) { return n >= WORD_BITS ? ~0ULL : ((1ULL << n) - 1); }

/* Reads `n` (1..64) bits of `src` starting at bit `start`, touching only the words they live in. */
static inline u64 get_bits(const u64 *src, u64 start, u64 n) {
  u64 w = start / WORD_BITS, sh = start % WORD_BITS;
  u64 v = src[w] >> sh;
  if (sh + n > WORD_BITS) v |= src[w + 1] << (WORD_BITS - sh);
  return v & low_mask(n);
}

/*
 * dst[dst_start .. dst_start+n) |= src[src_start .. src_start+n), any offsets.
 * Head bits bring dst to a word boundary; the body then reads two overlapping source words per
 * destination word and shifts (the classic bitmap_shift/or approach of lib/bitmap.c).
 */
static inline void or_range(u64 *dst, u64 dst_start, const u64 *src, u64 src_start, u64 n) {
  if (n == 0) return;
  u64 dbit = dst_start % WORD_BITS;
  if (dbit != 0) {
    u64 k = WORD_BITS - dbit;
    if (k > n) k = n;
    dst[dst_start / WORD_BITS] |= get_bits(src, src_start, k) << dbit;
    dst_start += k;
    src_start += k;
    n -= k;
  }
  u64 *d = dst + dst_start / WORD_BITS;
  const u64 *s = src + src_start / WORD_BITS;
  u64 nwords = n / WORD_BITS, sh = src_start % WORD_BITS;
  if (sh == 0) {
    for (u64 i = 0; i < nwords; i++) d[i] |= s[i];
  } else {
    for (u64 i = 0; i < nwords; i++) d[i] |= (s[i] >> sh) | (s[i + 1] << (WORD_BITS - sh));
  }
  u64 rest = n % WORD_BITS;
  if (rest) d[nwords] |= get_bits(src, src_start + nwords * WORD_BITS, rest);
}

/* OR-merge of n bits at arbitrary source and destination bit offsets. */
void c_or_range(u64 dst, u64 dst_start, u64 src, u64 src_start, u64 n) {
  or_range(as_words(dst), dst_start, as_words(src), src_start, n);
}

/* Number of set bits in [start, start+n). */
u64 c_count(u64 addr, u64 start, u64 n) {
  const u64 *w = as_words(addr);
  if (n == 0) return 0;
  u64 total = 0, sbit = start % WORD_BITS;
  if (sbit != 0) {
    u64 k = WORD_BITS - sbit;
    if (k > n) k = n;
    total += (u64)__builtin_popcountll(get_bits(w, start, k));
    start += k;
    n -= k;
  }
  const u64 *p = w + start / WORD_BITS;
  u64 nwords = n / WORD_BITS;
  for (u64 i = 0; i < nwords; i++) total += (u64)__builtin_popcountll(p[i]);
  if (n % WORD_BITS) total += (u64)__builtin_popcountll(p[nwords] & low_mask(n % WORD_BITS));
  return total;
}

/* Copy nwords words out to `into` and zero them in `src`, in one pass (migration's "take"). */
void c_take_and_clear(u64 src, u64 into, u64 nwords) {
  u64 *s = as_words(src), *d = as_words(into);
  for (u64 i = 0; i < nwords; i++) {
    d[i] = s[i];
    s[i] = 0;
  }
}

/*
 * Coarsening with words_per_bit >= 1 fine words per coarse bit (4 KiB -> 2 MiB is 512 fine bits,
 * 8 words): a coarse bit is set when any of its fine words is non-zero. ORs into dst.
 * Both bitmaps start at the same (coarse-aligned) address in the benchmark.
 */
static inline void coarsen_words(u64 *dst, const u64 *src, u64 ncoarse_bits, u64 words_per_bit) {
  for (u64 j = 0; j < ncoarse_bits; j += WORD_BITS) {
    u64 out = 0, lim = ncoarse_bits - j < WORD_BITS ? ncoarse_bits - j : WORD_BITS;
    for (u64 b = 0; b < lim; b++) {
      const u64 *p = src + (j + b) * words_per_bit;
      u64 any = 0;
      for (u64 k = 0; k < words_per_bit; k++) any |= p[k];
      out |= (u64)(any != 0) << b;
    }
    dst[j / WORD_BITS] |= out;
  }
}

/* 4 KiB -> 2 MiB: the benchmark's case, with the factor a compile-time constant. */
void c_coarsen_4k_2m(u64 dst, u64 src, u64 ncoarse_bits) {
  coarsen_words(as_words(dst), as_words(src), ncoarse_bits, 512 / WORD_BITS);
}

/*
 * 4 KiB -> 64 KiB: 16 fine bits per coarse bit, so each fine word gives 4 coarse bits (a 16-bit
 * group test each). ORs into dst. What `vfio-dirty track` does to keep a 16 TiB guest's union of
 * reports at 32 MiB.
 */
void c_coarsen_4k_64k(u64 dst, u64 src, u64 ncoarse_bits) {
  u64 *d = as_words(dst);
  const u64 *s = as_words(src);
  for (u64 j = 0; j < ncoarse_bits / WORD_BITS; j++) {
    u64 out = 0;
    for (u64 m = 0; m < 16; m++) {
      u64 w = s[j * 16 + m];
      for (u64 g = 0; g < 4; g++) out |= (u64)(((w >> (16 * g)) & 0xffff) != 0) << (m * 4 + g);
    }
    d[j] |= out;
  }
}

/*
 * Expansion 64 KiB -> 4 KiB: every coarse bit becomes 16 fine bits, so one fine word takes 4
 * coarse bits; a 16-entry table maps the nibble to the fine word. ORs into dst.
 */
void c_expand_64k_4k(u64 dst, u64 src, u64 nfine_words) {
  static const u64 spread[16] = {
      0x0000000000000000ULL, 0x000000000000ffffULL, 0x00000000ffff0000ULL, 0x00000000ffffffffULL,
      0x0000ffff00000000ULL, 0x0000ffff0000ffffULL, 0x0000ffffffff0000ULL, 0x0000ffffffffffffULL,
      0xffff000000000000ULL, 0xffff00000000ffffULL, 0xffff0000ffff0000ULL, 0xffff0000ffffffffULL,
      0xffffffff00000000ULL, 0xffffffff0000ffffULL, 0xffffffffffff0000ULL, 0xffffffffffffffffULL,
  };
  u64 *d = as_words(dst);
  const u64 *s = as_words(src);
  for (u64 i = 0; i < nfine_words; i++) d[i] |= spread[(s[i / 16] >> ((i % 16) * 4)) & 0xf];
}

/*
 * Lists runs of set bits from `from` as (start, length) u64 pairs into out[0 .. 2*cap), and
 * returns how many it wrote; *resume is where the next call continues (nbits when done).
 * Word at a time: t = v ^ (v << 1 | carry) has a bit at every run boundary, and boundaries
 * alternate start, end, start, ... so one ctz per boundary and no per-bit work. A run that began
 * before `from` is reported from `from` (the bit before `from` is taken as clear).
 */
static u64 list_runs(const u64 *w, u64 nbits, u64 from, u64 *out, u64 cap, u64 *resume) {
  u64 last = (nbits - 1) / WORD_BITS, n = 0, carry = 0, start = 0;
  int in_run = 0;
  *resume = nbits;
  if (from >= nbits || cap == 0) return 0;
  u64 i = from / WORD_BITS;
  u64 v = w[i] & (~0ULL << (from % WORD_BITS));
  for (;;) {
    if (i == last) v &= low_mask(nbits - i * WORD_BITS);
    u64 t = v ^ ((v << 1) | carry);
    carry = v >> 63;
    while (t) {
      u64 pos = i * WORD_BITS + (u64)__builtin_ctzll(t);
      t &= t - 1;
      if (!in_run) {
        start = pos;
        in_run = 1;
      } else {
        out[2 * n] = start;
        out[2 * n + 1] = pos - start;
        in_run = 0;
        if (++n == cap) {
          *resume = pos;
          return n;
        }
      }
    }
    if (++i > last) break;
    /* Skip words without a boundary: all zeros outside a run, all ones inside one. */
    u64 same = in_run ? ~0ULL : 0;
    while (i < last && w[i] == same) i++;
    v = w[i];
  }
  if (in_run) {
    out[2 * n] = start;
    out[2 * n + 1] = nbits - start;
    n++;
  }
  return n;
}

/*
 * The whole run listing the way a caller consumes it: a bounded buffer of `cap` pairs, refilled
 * until the bitmap is exhausted. Returns the number of runs; *total_len receives their summed
 * length (which must equal the popcount: a cheap cross-check for the other implementations).
 */
u64 c_runs_all(u64 addr, u64 nbits, u64 buf, u64 cap, u64 total_len_out) {
  const u64 *w = as_words(addr);
  u64 *out = as_words(buf), runs = 0, total_len = 0, pos = 0;
  while (pos < nbits) {
    u64 got = list_runs(w, nbits, pos, out, cap, &pos);
    for (u64 i = 0; i < got; i++) total_len += out[2 * i + 1];
    runs += got;
    if (got < cap) break;
  }
  *as_words(total_len_out) = total_len;
  return runs;
}

/*
 * IOVA -> GPA translation: `maps` holds nmaps (iova_page, gpa_page, npages) u64 triples (page
 * indexes relative to each bitmap's bit 0); each mapping is one shifted word-wise OR.
 */
void c_translate(u64 src, u64 dst, u64 maps, u64 nmaps) {
  const u64 *m = as_words(maps);
  for (u64 i = 0; i < nmaps; i++) or_range(as_words(dst), m[3 * i + 1], as_words(src), m[3 * i], m[3 * i + 2]);
}

/* The memory-bandwidth ceiling: glibc memcpy of the same bytes. */
void c_memcpy(u64 dst, u64 src, u64 nbytes) { memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, nbytes); }

/* --- Bench setup helpers (not timed) --- */

static inline u64 splitmix64(u64 *state) {
  u64 z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Each bit set with probability 1/2: the dense, worst-case-for-runs bitmap. */
void c_fill_random(u64 addr, u64 nwords, u64 seed) {
  u64 *w = as_words(addr), st = seed;
  for (u64 i = 0; i < nwords; i++) w[i] = splitmix64(&st);
}

/* Zero the bitmap, then set `nset` uniformly random bits (duplicates allowed): the sparse one. */
void c_fill_sparse(u64 addr, u64 nbits, u64 nset, u64 seed) {
  u64 *w = as_words(addr), st = seed;
  memset(w, 0, (nbits + 63) / 64 * 8);
  for (u64 i = 0; i < nset; i++) {
    u64 b = splitmix64(&st) % nbits;
    w[b / 64] |= 1ULL << (b % 64);
  }
}

/* Word k at addr (reading another memory's buffers, e.g. wasm2c's, from JS). */
u64 c_word(u64 addr, u64 k) { return as_words(addr)[k]; }

void c_memset(u64 addr, int value, u64 nbytes) { memset((void *)(uintptr_t)addr, value, nbytes); }

/* Order-sensitive digest of nwords words, to check that every implementation wrote the same bits. */
u64 c_hash(u64 addr, u64 nwords) {
  const u64 *w = as_words(addr);
  u64 h = 0xcbf29ce484222325ULL;
  for (u64 i = 0; i < nwords; i++) h = (h ^ w[i]) * 0x100000001b3ULL + i;
  return h;
}
