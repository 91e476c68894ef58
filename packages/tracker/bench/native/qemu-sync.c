/*
 * QEMU's VFIO dirty-page sync, as a peer for the tracker benchmark. Written from the description of
 * QEMU's algorithm (hw/vfio/container.c vfio_container_query_dirty_bitmap, system/physmem.c
 * physical_memory_set_dirty_lebitmap), not from its source:
 *
 *   for each section (or, behind a vIOMMU, each IOMMU mapping) of the sync:
 *     vbmap = zeroed allocation of the section's bitmap (one bit per 4 KiB page)
 *     every device of the container REPORTs into vbmap        <- the kernel's work, not timed here
 *     set_dirty_lebitmap(vbmap, ram_addr of the section, pages):
 *       ram_addr starts a 64-page word (and host page = target page):
 *         word by word; a zero word is skipped; a non-zero one is ORed atomically into the
 *         VGA and MIGRATION dirty-memory clients' block bitmaps (CODE too under TCG, not KVM),
 *         and its popcount added to the dirty count
 *       otherwise, per page: every set bit marks its page dirty in each client through the
 *         per-page range path (block index, offset, one atomic bit-set per client), and each
 *         non-zero word's popcount is added to the count
 *     free vbmap
 *
 * The dirty-memory clients are what QEMU's ram_list.dirty_memory[] holds: per client, an array of
 * blocks of DIRTY_MEMORY_BLOCK_SIZE bits (2^21 pages, 256 KiB of bitmap), allocated once.
 *
 * Compiled at bench time with the system's `cc -O3 -march=native` like bitmap-wasm's C baselines,
 * and called through koffi with raw addresses. The REPORT that fills vbmap is emulated here from
 * sorted per-device page lists (the same the vfio-dirty side's fake devices use), and its time is
 * measured and left out, as the kernel's time is left out of the vfio-dirty side.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef uint64_t u64;

#define PAGE_BITS 12
#define BITS_PER_LONG 64
#define DIRTY_MEMORY_BLOCK_SIZE ((u64)256 * 1024 * 8)
#define BLOCK_WORDS (DIRTY_MEMORY_BLOCK_SIZE / BITS_PER_LONG)
enum { DIRTY_MEMORY_VGA, DIRTY_MEMORY_CODE, DIRTY_MEMORY_MIGRATION, DIRTY_MEMORY_NUM };

/* ram_list.dirty_memory[]: per client, one pointer per block. */
struct dirty_memory {
  u64 nblocks;
  unsigned long **blocks[DIRTY_MEMORY_NUM];
};

/* QEMU's readers take the RCU read lock around each pass; on Linux it is a per-thread counter. */
static __thread unsigned rcu_depth;
static inline void rcu_read_lock(void) {
  rcu_depth++;
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}
static inline void rcu_read_unlock(void) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  rcu_depth--;
}

static inline u64 now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

/* The dirty memory of a guest of `npages` RAM pages (ram_addr space), all clients, zeroed. */
u64 qemu_dirty_new(u64 npages) {
  struct dirty_memory *d = calloc(1, sizeof *d);
  d->nblocks = (npages + DIRTY_MEMORY_BLOCK_SIZE - 1) / DIRTY_MEMORY_BLOCK_SIZE;
  for (int c = 0; c < DIRTY_MEMORY_NUM; c++) {
    d->blocks[c] = calloc(d->nblocks, sizeof(unsigned long *));
    for (u64 b = 0; b < d->nblocks; b++) d->blocks[c][b] = calloc(BLOCK_WORDS, sizeof(unsigned long));
  }
  return (u64)(uintptr_t)d;
}

/* Pages set in one client (checks, not timed). */
u64 qemu_dirty_count(u64 handle, int client, u64 first_page, u64 npages) {
  struct dirty_memory *d = (struct dirty_memory *)(uintptr_t)handle;
  u64 n = 0, p = first_page, end = first_page + npages;
  while (p < end) {
    const unsigned long w = d->blocks[client][p / DIRTY_MEMORY_BLOCK_SIZE][(p % DIRTY_MEMORY_BLOCK_SIZE) / 64];
    if (p % 64 == 0 && p + 64 <= end) {
      n += (u64)__builtin_popcountl(w);
      p += 64;
    } else {
      n += (w >> (p % 64)) & 1;
      p++;
    }
  }
  return n;
}

void qemu_dirty_clear(u64 handle) {
  struct dirty_memory *d = (struct dirty_memory *)(uintptr_t)handle;
  for (int c = 0; c < DIRTY_MEMORY_NUM; c++)
    for (u64 b = 0; b < d->nblocks; b++) memset(d->blocks[c][b], 0, BLOCK_WORDS * sizeof(unsigned long));
}

/* The per-page path's range marking: one page, each client in `clients`, atomically. */
static void set_dirty_page(struct dirty_memory *d, u64 page, unsigned clients) {
  rcu_read_lock();
  u64 idx = page / DIRTY_MEMORY_BLOCK_SIZE, offset = page % DIRTY_MEMORY_BLOCK_SIZE;
  unsigned long bit = 1ul << (offset % BITS_PER_LONG);
  for (int c = 0; c < DIRTY_MEMORY_NUM; c++)
    if (clients & (1u << c)) __atomic_fetch_or(&d->blocks[c][idx][offset / BITS_PER_LONG], bit, __ATOMIC_SEQ_CST);
  rcu_read_unlock();
}

/* set_dirty_lebitmap: `pages` bits of `bitmap` into the clients at `start` (bytes of ram_addr). */
static u64 set_dirty_lebitmap(struct dirty_memory *d, const unsigned long *bitmap, u64 start, u64 pages) {
  u64 num_dirty = 0, nr = (pages + BITS_PER_LONG - 1) / BITS_PER_LONG;
  u64 page = start >> PAGE_BITS;
  if (page % BITS_PER_LONG == 0) {
    u64 idx = page / DIRTY_MEMORY_BLOCK_SIZE, offset = (page % DIRTY_MEMORY_BLOCK_SIZE) / BITS_PER_LONG;
    rcu_read_lock();
    unsigned long **vga = d->blocks[DIRTY_MEMORY_VGA], **mig = d->blocks[DIRTY_MEMORY_MIGRATION];
    for (u64 k = 0; k < nr; k++) {
      if (bitmap[k]) {
        unsigned long temp = bitmap[k]; /* little-endian host: leul_to_cpu is the identity */
        num_dirty += (u64)__builtin_popcountl(temp);
        __atomic_fetch_or(&vga[idx][offset], temp, __ATOMIC_SEQ_CST);
        __atomic_fetch_or(&mig[idx][offset], temp, __ATOMIC_SEQ_CST);
      }
      if (++offset >= BLOCK_WORDS) {
        offset = 0;
        idx++;
      }
    }
    rcu_read_unlock();
  } else {
    const unsigned clients = (1u << DIRTY_MEMORY_VGA) | (1u << DIRTY_MEMORY_MIGRATION);
    for (u64 i = 0; i < nr; i++) {
      unsigned long c = bitmap[i];
      if (!c) continue;
      num_dirty += (u64)__builtin_popcountl(c);
      do {
        int j = __builtin_ctzl(c);
        c &= c - 1;
        set_dirty_page(d, page + i * BITS_PER_LONG + (u64)j, clients);
      } while (c);
    }
  }
  return num_dirty;
}

/* The kernel's REPORT, emulated: sets the bit of every listed page in [first, first + npages). */
static void emulate_report(unsigned long *bitmap, u64 first, u64 npages, const u64 *pages, u64 n) {
  u64 lo = 0, hi = n;
  while (lo < hi) {
    u64 mid = (lo + hi) / 2;
    if (pages[mid] < first) lo = mid + 1;
    else hi = mid;
  }
  for (u64 i = lo; i < n && pages[i] < first + npages; i++) {
    u64 bit = pages[i] - first;
    bitmap[bit / 64] |= 1ul << (bit % 64);
  }
}

/* Devices' sorted page lists: ndev pairs (address of a u64 array, length) at `devs`. */
struct device_pages {
  u64 pages;
  u64 n;
};

/*
 * One QEMU sync over `nsec` pieces, each (iova, length, ram_addr) in bytes at `secs`: a section
 * without a vIOMMU, an IOMMU mapping behind one. Every device REPORTs each piece's IOVA pages.
 * Returns the nanoseconds QEMU's own work took (allocation, merge, free: the REPORTs left out);
 * the dirty count goes to *num_dirty_out.
 */
u64 qemu_vfio_sync(u64 handle, u64 secs, u64 nsec, u64 devs, u64 ndev, u64 num_dirty_out) {
  struct dirty_memory *d = (struct dirty_memory *)(uintptr_t)handle;
  const u64 *s = (const u64 *)(uintptr_t)secs;
  const struct device_pages *dv = (const struct device_pages *)(uintptr_t)devs;
  u64 num_dirty = 0, kernel_ns = 0, t0 = now_ns();
  for (u64 i = 0; i < nsec; i++) {
    u64 iova = s[3 * i], length = s[3 * i + 1], ram_addr = s[3 * i + 2];
    u64 pages = length >> PAGE_BITS;
    /* vfio_bitmap_alloc: whole u64 words, zeroed. */
    unsigned long *vbmap = calloc((pages + 63) / 64, sizeof(unsigned long));
    u64 k0 = now_ns();
    for (u64 k = 0; k < ndev; k++)
      emulate_report(vbmap, iova >> PAGE_BITS, pages, (const u64 *)(uintptr_t)dv[k].pages, dv[k].n);
    kernel_ns += now_ns() - k0;
    num_dirty += set_dirty_lebitmap(d, vbmap, ram_addr, pages);
    free(vbmap);
  }
  *(u64 *)(uintptr_t)num_dirty_out = num_dirty;
  return now_ns() - t0 - kernel_ns;
}

/* The same REPORT emulation for the vfio-dirty side's fake devices (their time is left out too). */
void emulate_report_into(u64 bitmap, u64 first_page, u64 npages, u64 pages, u64 n) {
  emulate_report((unsigned long *)(uintptr_t)bitmap, first_page, npages, (const u64 *)(uintptr_t)pages, n);
}

/* The bandwidth ceiling: memcpy of the same bytes. */
void bench_memcpy(u64 dst, u64 src, u64 nbytes) { memcpy((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, nbytes); }
