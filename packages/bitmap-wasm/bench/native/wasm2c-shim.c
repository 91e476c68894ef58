/*
 * The benchmark's handle on bitmap.wasm translated by wasm2c (the `wasm2c` column): one instance
 * and the address of its linear memory. The exports themselves (w2c_bitmap_bitmap_or_from, ...) are
 * called straight through koffi with the instance pointer, exactly as a C VMM embedding the core
 * calls them (README.md, "Embedding in C").
 */
#include <stdint.h>
#include <stdlib.h>

#include "bitmap.h"

/* A new instance (the wasm2c runtime initialised once), or 0 when out of memory. */
uint64_t w2c_bench_new(void) {
  static int initialised;
  if (!initialised) {
    wasm_rt_init();
    initialised = 1;
  }
  w2c_bitmap *m = calloc(1, sizeof *m);
  if (!m) return 0;
  wasm2c_bitmap_instantiate(m);
  return (uint64_t)(uintptr_t)m;
}

/* Address of byte 0 of the instance's linear memory (stable: the runtime reserves it up front). */
uint64_t w2c_bench_memory_base(uint64_t instance) {
  return (uint64_t)(uintptr_t)w2c_bitmap_memory((w2c_bitmap *)(uintptr_t)instance)->data;
}
