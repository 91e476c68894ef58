/*
 * Replays the raw-ABI check (abi-check.js) against bitmap.wasm translated to C by wasm2c: the same
 * export calls with the same arguments, the same writes into linear memory, and a comparison of
 * every answer and every memory read with what Node's engine produced (and checked against the
 * reference model) when the trace was recorded. No JavaScript engine is involved.
 *
 *   wasm2c bitmap.wasm -n bitmap -o bitmap.c
 *   cc -I. -I$WASM2C/include abi-replay.c bitmap.c $WASM2C/src/wasm-rt-impl.c \
 *      $WASM2C/src/wasm-rt-mem-impl.c -lm -o abi-replay
 *   ./abi-replay trace.txt      # prints WASM2C_ABI_RESULT calls=.. writes=.. reads=.. mismatches=..
 *
 * Trace lines (one step each, numbers in decimal, bytes in hex):
 *   c NAME NARGS ARG... RESULT     an export call; i32 and i64 values as signed decimals
 *   w PTR HEX                      bytes written into linear memory at PTR
 *   r PTR HEX                      bytes read from linear memory at PTR, as Node saw them
 *
 * Each export is bound below with its exact C type, so a signature that differs from the one
 * wasm2c generated is a compile error, not a silent wrong call.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"

/* The export signatures the core has: return type, then parameter types (i = u32, I = u64). */
#define SIGNATURES(X)                                           \
  X(i_, u32, (w2c_bitmap *))                                    \
  X(i_i, u32, (w2c_bitmap *, u32))                              \
  X(I_, u64, (w2c_bitmap *))                                    \
  X(i_III, u32, (w2c_bitmap *, u64, u64, u64))                  \
  X(I_i, u64, (w2c_bitmap *, u32))                              \
  X(i_iII, u32, (w2c_bitmap *, u32, u64, u64))                  \
  X(i_iI, u32, (w2c_bitmap *, u32, u64))                        \
  X(i_ii, u32, (w2c_bitmap *, u32, u32))                        \
  X(I_iII, u64, (w2c_bitmap *, u32, u64, u64))                  \
  X(i_iiIII, u32, (w2c_bitmap *, u32, u32, u64, u64, u64))      \
  X(i_iiII, u32, (w2c_bitmap *, u32, u32, u64, u64))            \
  X(I_iI, u64, (w2c_bitmap *, u32, u64))                        \
  X(i_iIii, u32, (w2c_bitmap *, u32, u64, u32, u32))            \
  X(i_iIIii, u32, (w2c_bitmap *, u32, u64, u64, u32, u32))      \
  X(I_ii, u64, (w2c_bitmap *, u32, u32))                        \
  X(i_I, u32, (w2c_bitmap *, u64))                              \
  X(i_iIII, u32, (w2c_bitmap *, u32, u64, u64, u64))            \
  X(i_iii, u32, (w2c_bitmap *, u32, u32, u32))                  \
  X(i_iiii, u32, (w2c_bitmap *, u32, u32, u32, u32))            \
  X(i_iiIii, u32, (w2c_bitmap *, u32, u32, u64, u32, u32))

#define AS_ENUM(sig, ret, params) SIG_##sig,
enum signature { SIGNATURES(AS_ENUM) };
#define AS_MEMBER(sig, ret, params) ret(*sig) params;
union export_fn { SIGNATURES(AS_MEMBER) };

struct export_entry {
  const char *name;
  enum signature sig;
  union export_fn fn;
};

#define EXPORT(sig, name) {#name, SIG_##sig, {.sig = w2c_bitmap_##name}}
static const struct export_entry EXPORTS[] = {
    EXPORT(i_, abi_version),
    EXPORT(i_, abi_last_error),
    EXPORT(i_i, mem_alloc),
    EXPORT(i_i, mem_free),
    EXPORT(I_, mem_used_bytes),
    EXPORT(i_III, bitmap_new),
    EXPORT(i_i, bitmap_free),
    EXPORT(i_i, bitmap_data),
    EXPORT(I_i, bitmap_nbits),
    EXPORT(I_i, bitmap_page_size),
    EXPORT(I_i, bitmap_base),
    EXPORT(i_iII, bitmap_set_range),
    EXPORT(i_iII, bitmap_clear_range),
    EXPORT(i_iI, bitmap_test),
    EXPORT(i_ii, bitmap_fill),
    EXPORT(I_iII, bitmap_count),
    EXPORT(i_iiIII, bitmap_or_from),
    EXPORT(i_iiIII, bitmap_andnot_from),
    EXPORT(i_iiII, bitmap_take_and_clear),
    EXPORT(I_iI, bitmap_next_set),
    EXPORT(I_iI, bitmap_next_clear),
    EXPORT(i_iIii, bitmap_runs),
    EXPORT(i_iIIii, bitmap_density),
    EXPORT(I_ii, bitmap_convert),
    EXPORT(i_I, xlat_new),
    EXPORT(i_i, xlat_free),
    EXPORT(i_iIII, xlat_map),
    EXPORT(I_iII, xlat_unmap),
    EXPORT(i_i, xlat_retire),
    EXPORT(i_i, xlat_mapping_count),
    EXPORT(i_iii, xlat_mapping_get),
    EXPORT(i_iiii, xlat_translate),
    EXPORT(i_iiii, xlat_translate_copy),
    EXPORT(i_i, xlat_gpa_disjoint),
    EXPORT(i_ii, xlat_clear_unmapped_gpa),
    EXPORT(i_iiIii, xlat_unmapped_runs),
};
#define NEXPORTS (sizeof EXPORTS / sizeof EXPORTS[0])

/* Calls one export; a[] holds the trace's arguments. Returns the answer as a signed 64-bit value. */
static int64_t call(w2c_bitmap *m, const struct export_entry *e, const int64_t *a) {
  const union export_fn f = e->fn;
  switch (e->sig) {
    case SIG_i_: return (int32_t)f.i_(m);
    case SIG_i_i: return (int32_t)f.i_i(m, a[0]);
    case SIG_I_: return (int64_t)f.I_(m);
    case SIG_i_III: return (int32_t)f.i_III(m, a[0], a[1], a[2]);
    case SIG_I_i: return (int64_t)f.I_i(m, a[0]);
    case SIG_i_iII: return (int32_t)f.i_iII(m, a[0], a[1], a[2]);
    case SIG_i_iI: return (int32_t)f.i_iI(m, a[0], a[1]);
    case SIG_i_ii: return (int32_t)f.i_ii(m, a[0], a[1]);
    case SIG_I_iII: return (int64_t)f.I_iII(m, a[0], a[1], a[2]);
    case SIG_i_iiIII: return (int32_t)f.i_iiIII(m, a[0], a[1], a[2], a[3], a[4]);
    case SIG_i_iiII: return (int32_t)f.i_iiII(m, a[0], a[1], a[2], a[3]);
    case SIG_I_iI: return (int64_t)f.I_iI(m, a[0], a[1]);
    case SIG_i_iIii: return (int32_t)f.i_iIii(m, a[0], a[1], a[2], a[3]);
    case SIG_i_iIIii: return (int32_t)f.i_iIIii(m, a[0], a[1], a[2], a[3], a[4]);
    case SIG_I_ii: return (int64_t)f.I_ii(m, a[0], a[1]);
    case SIG_i_I: return (int32_t)f.i_I(m, a[0]);
    case SIG_i_iIII: return (int32_t)f.i_iIII(m, a[0], a[1], a[2], a[3]);
    case SIG_i_iii: return (int32_t)f.i_iii(m, a[0], a[1], a[2]);
    case SIG_i_iiii: return (int32_t)f.i_iiii(m, a[0], a[1], a[2], a[3]);
    case SIG_i_iiIii: return (int32_t)f.i_iiIii(m, a[0], a[1], a[2], a[3], a[4]);
  }
  abort();
}

static const struct export_entry *lookup(const char *name) {
  for (size_t i = 0; i < NEXPORTS; i++)
    if (strcmp(EXPORTS[i].name, name) == 0) return &EXPORTS[i];
  return NULL;
}

/* Decodes hex into a malloc'd buffer; returns its length, or -1 on a malformed string. */
static long unhex(const char *hex, uint8_t **out) {
  size_t n = strlen(hex);
  if (n % 2) return -1;
  uint8_t *b = malloc(n / 2 + 1);
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
      free(b);
      return -1;
    }
    b[i] = (uint8_t)v;
  }
  *out = b;
  return (long)(n / 2);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TRACE\n", argv[0]);
    return 2;
  }
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    perror(argv[1]);
    return 2;
  }
  wasm_rt_init();
  w2c_bitmap m;
  wasm2c_bitmap_instantiate(&m);
  wasm_rt_memory_t *mem = w2c_bitmap_memory(&m);

  unsigned long calls = 0, writes = 0, reads = 0, mismatches = 0, lineno = 0;
  static char line[1 << 20], hex[1 << 20];
  char name[64];
  while (fgets(line, sizeof line, in)) {
    lineno++;
    if (line[0] == 'c') {
      int nargs, off;
      int64_t a[8], want;
      if (sscanf(line, "c %63s %d%n", name, &nargs, &off) != 2 || nargs < 0 || nargs > 8) goto bad;
      const char *p = line + off;
      for (int k = 0; k <= nargs; k++) {
        int used;
        int64_t *slot = k < nargs ? &a[k] : &want;
        if (sscanf(p, " %" SCNd64 "%n", slot, &used) != 1) goto bad;
        p += used;
      }
      const struct export_entry *e = lookup(name);
      if (!e) {
        fprintf(stderr, "line %lu: %s is not an export this replay knows\n", lineno, name);
        return 2;
      }
      int64_t got = call(&m, e, a);
      calls++;
      if (got != want && mismatches++ < 20)
        fprintf(stderr, "line %lu: %s returned %" PRId64 ", Node saw %" PRId64 "\n", lineno, name, got, want);
    } else if (line[0] == 'w' || line[0] == 'r') {
      uint64_t ptr;
      uint8_t *bytes;
      if (sscanf(line + 1, " %" SCNu64 " %s", &ptr, hex) != 2) goto bad;
      long n = unhex(hex, &bytes);
      if (n < 0) goto bad;
      if (ptr + (uint64_t)n > mem->size) {
        fprintf(stderr, "line %lu: [%" PRIu64 ", +%ld) is outside linear memory\n", lineno, ptr, n);
        return 1;
      }
      if (line[0] == 'w') {
        memcpy(mem->data + ptr, bytes, (size_t)n);
        writes++;
      } else {
        reads++;
        if (memcmp(mem->data + ptr, bytes, (size_t)n) != 0 && mismatches++ < 20)
          fprintf(stderr, "line %lu: %ld bytes at %" PRIu64 " differ from what Node read\n", lineno, n, ptr);
      }
      free(bytes);
    } else if (line[0] != '\n' && line[0] != '#') {
      goto bad;
    }
    continue;
  bad:
    fprintf(stderr, "line %lu: malformed trace line\n", lineno);
    return 2;
  }
  fclose(in);
  wasm2c_bitmap_free(&m);
  wasm_rt_free();
  printf("WASM2C_ABI_RESULT calls=%lu writes=%lu reads=%lu mismatches=%lu\n", calls, writes, reads, mismatches);
  return mismatches == 0 ? 0 : 1;
}
