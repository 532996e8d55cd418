/*
 * The page pattern of mlload's memory load and its checker (see mlload.c): every 4 KiB
 * page holds PAGE_MAGIC ^ its index (word 0), the generation it was written in (word 1,
 * 32 bits) and, stored last, a mix of both (word 511). A writer that goes through the
 * pages in strict order, next_page then next_page + 1 ..., wrapping to page 0 and
 * generation + 1, leaves pages [0, next_page) at `generation` and [next_page, pages) at
 * `generation - 1` (modulo 2^32): exactly one edge. Anything else is a lost write
 * (an older generation: the page's new content never arrived) or corruption.
 */
#ifndef MIGRALAB_RAMCHECK_H
#define MIGRALAB_RAMCHECK_H

#include <stdint.h>
#include <stdio.h>

#define RAM_PAGE 4096u
#define RAM_WORDS (RAM_PAGE / 8u)
#define PAGE_MAGIC 0x6d6c72616d000000ULL /* "mlram" */

static inline uint64_t ram_end_word(uint64_t index, uint32_t generation) {
  uint64_t x = (index << 32) ^ generation ^ 0x9e3779b97f4a7c15ULL;
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 32);
}

static inline void ram_page_write(unsigned char *page, uint64_t index, uint32_t generation) {
  volatile uint64_t *w = (volatile uint64_t *)page;
  w[0] = PAGE_MAGIC ^ index;
  w[1] = generation;
  w[RAM_WORDS - 1] = ram_end_word(index, generation);
}

struct ram_check {
  uint64_t checked;
  uint64_t bad;
  /* first bad page; index -1 when none */
  int64_t first_index;
  int64_t first_expected;
  int64_t first_found;
  const char *first_kind; /* "stale", "corrupt" or "none" */
};

static inline struct ram_check ram_check(const unsigned char *base, uint64_t pages, uint64_t next_page, uint32_t generation) {
  struct ram_check c = {.first_index = -1, .first_expected = -1, .first_found = -1, .first_kind = "none"};
  for (uint64_t i = 0; i < pages; i++) {
    const volatile uint64_t *w = (const volatile uint64_t *)(base + i * RAM_PAGE);
    uint32_t expected = i < next_page ? generation : generation - 1u;
    uint64_t head = w[0], gen = w[1], end = w[RAM_WORDS - 1];
    const char *kind = NULL;
    if (head != (PAGE_MAGIC ^ i) || gen > 0xffffffffULL || end != ram_end_word(i, (uint32_t)gen))
      kind = "corrupt";
    else if ((uint32_t)gen != expected)
      kind = "stale";
    c.checked++;
    if (!kind) continue;
    if (c.bad++ == 0) {
      c.first_index = (int64_t)i;
      c.first_expected = expected;
      c.first_found = (int64_t)(gen & 0xffffffffULL);
      c.first_kind = kind;
    }
  }
  return c;
}

/* " ramPagesChecked=N ramPagesBad=N ramFirstBadIndex=N ramFirstBadExpected=N ramFirstBadFound=N ramFirstBadKind=K" */
static inline void ram_check_fields(const struct ram_check *c, char *out, size_t size) {
  snprintf(out, size, " ramPagesChecked=%llu ramPagesBad=%llu ramFirstBadIndex=%lld ramFirstBadExpected=%lld ramFirstBadFound=%lld ramFirstBadKind=%s",
           (unsigned long long)c->checked, (unsigned long long)c->bad, (long long)c->first_index, (long long)c->first_expected,
           (long long)c->first_found, c->first_kind);
}

#endif
