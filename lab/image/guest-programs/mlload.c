/*
 * mlload: a paced guest workload for migralab, built static by lab/image/build.ts and
 * installed in the guest image as /bin/mlload.
 *
 *   mlload [-o STATUS_FILE] mem  RATE_MIBS WORKING_SET_MIB
 *   mlload [-o STATUS_FILE] disk RATE_MIBS DEVICE OFFSET_MIB SIZE_MIB
 *   mlload ramcheck FILE NEXT_PAGE GENERATION     check a saved working set (tests)
 *
 * mem:  maps WORKING_SET_MIB of anonymous memory and writes a pattern into every page
 *       (so all of it is resident and none of it is a zero page), then rewrites one 4 KiB
 *       page after the other, cyclically over the working set, so that RATE_MIBS MiB of
 *       pages get dirtied per second. The pattern makes a lost write visible, the way
 *       QEMU's own migration test does (tests/qtest/migration-test.c check_guests_ram:
 *       pages written in strict order, so at any moment every page holds the current
 *       pass except those not yet reached in it, which hold the pass before):
 *         word 0          PAGE_MAGIC ^ page index
 *         word 1          generation (the pass over the working set, 32 bits, wraps)
 *         word 511 (end)  a mix of index and generation, stored last
 *       On SIGTERM/SIGINT the writer stops and checks every page against what it must
 *       hold: generation G (the current pass) below the next page to write, G - 1 from
 *       there on, index and end word matching. A page that holds an older generation is
 *       a lost write (the page was dirtied but its new content never reached this
 *       memory); a wrong index or end word is corruption. The final status line carries
 *       ramPagesChecked ramPagesBad and the first bad page (ramFirstBadIndex,
 *       ramFirstBadExpected, ramFirstBadFound: generations; ramFirstBadKind stale|corrupt;
 *       -1 and none when every page is right).
 * disk: opens DEVICE with O_DIRECT and writes pseudo-random 4 KiB-aligned blocks
 *       cyclically over [OFFSET_MIB, OFFSET_MIB + SIZE_MIB) at RATE_MIBS MiB/s.
 * ramcheck: reads FILE as a working set (whole pages) and checks it as mem's stop does,
 *       for a writer whose next page was NEXT_PAGE in pass GENERATION; prints the ram*
 *       fields on one line, exit 0 when intact, 1 when not.
 *
 * Pacing: every STEP_NS (10 ms) of CLOCK_MONOTONIC the program catches up with
 * rate x elapsed. A backlog longer than MAX_BACKLOG_S (a stall: the vCPU did not run,
 * or the device was slow) is dropped rather than written in one burst, and counted
 * (backlogDrops, droppedBytes), so the reported rate is what really happened.
 *
 * Counters: one line of space-separated key=value fields, written (atomically: a temp
 * file renamed over it) to STATUS_FILE, or printed on stdout without -o: once when the
 * load starts (state=running, after the working set is populated), every second, on
 * SIGUSR1, and on SIGTERM/SIGINT (state=final) just before exiting with status 0.
 * Fields: state pid mode targetMiBs bytes seconds rateMiBs backlogDrops droppedBytes,
 * plus workingSetBytes and, in the final line, the ram* check (mem) or device
 * offsetBytes sizeBytes (disk).
 * Exit status: 0 after a signal, 2 on bad usage, 1 on a runtime error (message on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "ramcheck.h"

#define PAGE 4096ULL
#define MIB (1024ULL * 1024ULL)
#define STEP_NS 10000000LL
#define MAX_BACKLOG_S 0.5
#define DISK_CHUNK (1024ULL * 1024ULL)

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(int64_t t) {
  struct timespec ts = {.tv_sec = t / 1000000000LL, .tv_nsec = t % 1000000000LL};
  /* EINTR (a signal) just ends the sleep early: the loop re-checks its flags */
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static void usage(void) {
  fprintf(stderr,
          "usage: mlload [-o STATUS_FILE] mem RATE_MIBS WORKING_SET_MIB\n"
          "       mlload [-o STATUS_FILE] disk RATE_MIBS DEVICE OFFSET_MIB SIZE_MIB\n"
          "       mlload ramcheck FILE NEXT_PAGE GENERATION\n");
  exit(2);
}

static double parse_positive(const char *what, const char *s, int allow_zero) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end != '\0' || !(v == v) || v < 0 || (!allow_zero && v == 0) || v > 1e9) {
    fprintf(stderr, "mlload: bad %s: %s\n", what, s);
    exit(2);
  }
  return v;
}

struct load {
  const char *status_file;
  const char *mode;
  double target_mibs;
  uint64_t bytes;
  uint64_t backlog_drops;
  uint64_t dropped_bytes;
  int64_t start_ns;
  char extra[768];
  /* called once the writer stopped, before the final status line (mem: the ram check) */
  void (*before_final)(struct load *l);
};

static void write_status(const struct load *l, const char *state) {
  double seconds = (double)(now_ns() - l->start_ns) / 1e9;
  double rate = seconds > 0 ? (double)l->bytes / (double)MIB / seconds : 0;
  char line[1536];
  int n = snprintf(line, sizeof line,
                   "state=%s pid=%ld mode=%s targetMiBs=%.6f bytes=%llu seconds=%.6f rateMiBs=%.6f "
                   "backlogDrops=%llu droppedBytes=%llu %s\n",
                   state, (long)getpid(), l->mode, l->target_mibs, (unsigned long long)l->bytes, seconds, rate,
                   (unsigned long long)l->backlog_drops, (unsigned long long)l->dropped_bytes, l->extra);
  if (n < 0 || (size_t)n >= sizeof line) return;
  publish_status("mlload", l->status_file, line, n);
}

/*
 * The pacing loop shared by both modes: work(ctx, max_bytes) does up to max_bytes of
 * work (a multiple of the granule) and returns how many bytes it did, or -1 on an error.
 */
typedef int64_t (*work_fn)(void *ctx, uint64_t max_bytes);

static int run_paced(struct load *l, work_fn work, void *ctx, uint64_t granule) {
  double rate_bps = l->target_mibs * (double)MIB;
  l->start_ns = now_ns();
  write_status(l, "running");
  int64_t next_step = l->start_ns + STEP_NS;
  int64_t next_report = l->start_ns + 1000000000LL;
  while (!stop_requested) {
    int64_t t = now_ns();
    /* work due since the start, minus work done and work given up on */
    double owed = rate_bps * (double)(t - l->start_ns) / 1e9 - (double)(l->bytes + l->dropped_bytes);
    if (owed > rate_bps * MAX_BACKLOG_S) {
      uint64_t drop = (uint64_t)(owed - rate_bps * STEP_NS / 1e9);
      drop -= drop % granule;
      l->backlog_drops++;
      l->dropped_bytes += drop;
      owed -= (double)drop;
    }
    while (owed >= (double)granule && !stop_requested) {
      uint64_t want = (uint64_t)owed;
      want -= want % granule;
      int64_t did = work(ctx, want);
      if (did < 0) {
        write_status(l, "error");
        return 1;
      }
      if (did == 0) break; /* interrupted, or a short write: retry next step */
      l->bytes += (uint64_t)did;
      owed -= (double)did;
    }
    if (report_requested || t >= next_report) {
      report_requested = 0;
      write_status(l, "running");
      while (next_report <= t) next_report += 1000000000LL;
    }
    t = now_ns();
    if (next_step <= t) next_step = t + STEP_NS; /* woke late: do not try to replay missed steps */
    sleep_until(next_step);
    next_step += STEP_NS;
  }
  if (l->before_final) l->before_final(l);
  write_status(l, "final");
  return 0;
}

/* ---- mem ---- */

struct mem_ctx {
  unsigned char *base;
  uint64_t pages;
  uint64_t next_page;
  uint32_t generation; /* the pass being written: pages below next_page hold it */
};

static int64_t mem_work(void *p, uint64_t max_bytes) {
  struct mem_ctx *m = p;
  uint64_t n = max_bytes / PAGE;
  for (uint64_t i = 0; i < n; i++) {
    ram_page_write(m->base + m->next_page * PAGE, m->next_page, m->generation);
    if (++m->next_page == m->pages) {
      m->next_page = 0;
      m->generation++;
    }
  }
  return (int64_t)(n * PAGE);
}

static struct mem_ctx *mem_for_check;

static void mem_check_fields(struct load *l) {
  struct ram_check c = ram_check(mem_for_check->base, mem_for_check->pages, mem_for_check->next_page, mem_for_check->generation);
  size_t used = strlen(l->extra);
  ram_check_fields(&c, l->extra + used, sizeof l->extra - used);
}

static int run_mem(struct load *l, double working_set_mib) {
  uint64_t pages = (uint64_t)(working_set_mib * (double)MIB / (double)PAGE);
  if (pages == 0) {
    fprintf(stderr, "mlload: working set smaller than one page\n");
    return 2;
  }
  unsigned char *base = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    fprintf(stderr, "mlload: mmap %llu bytes: %s\n", (unsigned long long)(pages * PAGE), strerror(errno));
    return 1;
  }
  /* every byte written once, so nothing is a zero page; then pass 0 of the pattern, so the
     first pass (generation 1) changes every page (a content-based dirty measurement such as
     QEMU's calc-dirty-rate page-sampling sees each write) */
  memset(base, 0x5a, pages * PAGE);
  for (uint64_t i = 0; i < pages; i++) ram_page_write(base + i * PAGE, i, 0);
  struct mem_ctx m = {.base = base, .pages = pages, .next_page = 0, .generation = 1};
  mem_for_check = &m;
  l->before_final = mem_check_fields;
  snprintf(l->extra, sizeof l->extra, "workingSetBytes=%llu", (unsigned long long)(pages * PAGE));
  return run_paced(l, mem_work, &m, PAGE);
}

/* ---- ramcheck (a saved working set) ---- */

static int run_ramcheck(const char *file, const char *next_s, const char *gen_s) {
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "mlload: %s: %s\n", file, strerror(errno));
    return 2;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  if (size <= 0 || size % (long)PAGE) {
    fprintf(stderr, "mlload: %s: not a whole number of 4 KiB pages\n", file);
    return 2;
  }
  unsigned char *buf = malloc((size_t)size);
  if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
    fprintf(stderr, "mlload: %s: read failed\n", file);
    return 2;
  }
  fclose(f);
  uint64_t pages = (uint64_t)size / PAGE;
  uint64_t next = (uint64_t)parse_positive("next page", next_s, 1);
  uint64_t gen = (uint64_t)parse_positive("generation", gen_s, 1);
  if (next >= pages || gen > 0xffffffffULL) {
    fprintf(stderr, "mlload: next page must be below %llu and the generation a 32-bit number\n", (unsigned long long)pages);
    return 2;
  }
  struct ram_check c = ram_check(buf, pages, next, (uint32_t)gen);
  char line[512];
  ram_check_fields(&c, line, sizeof line);
  printf("%s\n", line + 1); /* without the leading space */
  return c.bad == 0 ? 0 : 1;
}

/* ---- disk ---- */

struct disk_ctx {
  int fd;
  const char *device;
  unsigned char *buf;
  uint64_t offset;
  uint64_t size;
  uint64_t pos; /* within [0, size) */
  uint64_t seq;
  uint64_t rng;
};

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static int64_t disk_work(void *p, uint64_t max_bytes) {
  struct disk_ctx *d = p;
  uint64_t n = max_bytes;
  if (n > DISK_CHUNK) n = DISK_CHUNK;
  if (n > d->size - d->pos) n = d->size - d->pos;
  /* fresh content in every block: a sequence number and some new random words */
  for (uint64_t b = 0; b < n; b += PAGE) {
    uint64_t *w = (uint64_t *)(d->buf + b);
    w[0] = ++d->seq;
    w[1] = d->offset + d->pos + b;
    for (int i = 2; i < 8; i++) w[i] = xorshift(&d->rng);
  }
  ssize_t r = pwrite(d->fd, d->buf, (size_t)n, (off_t)(d->offset + d->pos));
  if (r < 0) {
    if (errno == EINTR) return 0;
    fprintf(stderr, "mlload: write %s at %llu: %s\n", d->device, (unsigned long long)(d->offset + d->pos), strerror(errno));
    return -1;
  }
  uint64_t done = (uint64_t)r - (uint64_t)r % PAGE;
  d->pos += done;
  if (d->pos >= d->size) d->pos = 0;
  return (int64_t)done;
}

static int run_disk(struct load *l, const char *device, double offset_mib, double size_mib) {
  uint64_t offset = (uint64_t)(offset_mib * (double)MIB);
  uint64_t size = (uint64_t)(size_mib * (double)MIB);
  if (offset % PAGE || size % PAGE || size == 0) {
    fprintf(stderr, "mlload: offset and size must be non-zero multiples of 4 KiB\n");
    return 2;
  }
  int fd = open(device, O_WRONLY | O_DIRECT);
  if (fd < 0) {
    fprintf(stderr, "mlload: open %s with O_DIRECT: %s\n", device, strerror(errno));
    return 1;
  }
  off_t dev_size = lseek(fd, 0, SEEK_END);
  if (dev_size < 0 || (uint64_t)dev_size < offset + size) {
    fprintf(stderr, "mlload: %s holds %lld bytes, the region ends at %llu\n", device, (long long)dev_size,
            (unsigned long long)(offset + size));
    return 2;
  }
  void *buf;
  if (posix_memalign(&buf, PAGE, DISK_CHUNK) != 0) {
    fprintf(stderr, "mlload: out of memory\n");
    return 1;
  }
  struct disk_ctx d = {.fd = fd, .device = device, .buf = buf, .offset = offset, .size = size};
  d.rng = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
  if (d.rng == 0) d.rng = 1;
  for (uint64_t i = 0; i < DISK_CHUNK / 8; i++) ((uint64_t *)buf)[i] = xorshift(&d.rng);
  snprintf(l->extra, sizeof l->extra, "device=%s offsetBytes=%llu sizeBytes=%llu", device, (unsigned long long)offset,
           (unsigned long long)size);
  int rc = run_paced(l, disk_work, &d, PAGE);
  close(fd);
  return rc;
}

int main(int argc, char **argv) {
  struct load l = {.status_file = NULL};
  int opt;
  while ((opt = getopt(argc, argv, "+o:")) != -1) {
    if (opt == 'o')
      l.status_file = optarg;
    else
      usage();
  }
  argc -= optind;
  argv += optind;
  if (argc < 1) usage();

  install_signal_handlers();

  l.mode = argv[0];
  if (strcmp(argv[0], "mem") == 0 && argc == 3) {
    l.target_mibs = parse_positive("rate", argv[1], 0);
    return run_mem(&l, parse_positive("working set", argv[2], 0));
  }
  if (strcmp(argv[0], "ramcheck") == 0 && argc == 4) return run_ramcheck(argv[1], argv[2], argv[3]);
  if (strcmp(argv[0], "disk") == 0 && argc == 5) {
    l.target_mibs = parse_positive("rate", argv[1], 0);
    return run_disk(&l, argv[2], parse_positive("offset", argv[3], 1), parse_positive("size", argv[4], 0));
  }
  usage();
  return 2;
}
