/*
 * mlprobe: the guest-side pause probe of migralab, built static by lab/image/build.ts
 * and installed in the guest image as /bin/mlprobe.
 *
 *   mlprobe [-o STATUS_FILE] [-p PERIOD_US]   the stall loop (default period 1000 us)
 *   mlprobe clock                             print CLOCK_REALTIME in ns, once
 *   mlprobe settime NS                        set CLOCK_REALTIME to NS (ns since the epoch): a
 *                                             guest restored from a snapshot takes the host's time
 *   mlprobe seed HEX                          credit HEX (bytes from the host) to the kernel's
 *                                             entropy pool and reseed its generator at once: guests
 *                                             restored from one snapshot share its generator state
 *
 * The loop sleeps PERIOD_US with clock_nanosleep (relative, CLOCK_MONOTONIC) and reads
 * CLOCK_MONOTONIC and CLOCK_REALTIME after every sleep. It keeps the largest gap between
 * two consecutive rounds on CLOCK_MONOTONIC (raw: the period is NOT subtracted; a healthy
 * round is the period plus the wake-up latency) with the CLOCK_REALTIME readings of the
 * two rounds around it, the largest gap on CLOCK_REALTIME, and the number of rounds.
 *
 * Status: one line of space-separated key=value fields, written atomically (temp file +
 * rename) to STATUS_FILE, or printed on stdout without -o: once after the first round
 * (state=running), on SIGUSR1 (state=running, the loop goes on), and on SIGTERM/SIGINT
 * (state=final, then exit 0). Fields: state pid periodUs rounds elapsedUs expectedRounds
 * maxGapUs maxGapStartRealtimeNs maxGapEndRealtimeNs maxRealtimeGapUs startRealtimeNs
 * lastRealtimeNs. expectedRounds = elapsedUs / periodUs; rounds falling far short of it
 * means the loop was often late (an overloaded or stalled vCPU).
 *
 * What the loop can and cannot see. The gap measures time that passed on the guest's own
 * clocks while this process did not run (a busy or descheduled vCPU, a stalled workload).
 * Under TCG (no KVM), the guest's clocks are driven by QEMU's virtual clock, which stops
 * while the VM is stopped (QMP `stop`, a migration's final phase): the guest sees no gap
 * at all for the pause itself, only its CLOCK_REALTIME falls behind the host's by the
 * length of the pause (measured: a 513 ms QMP stop/cont left a largest loop gap of
 * 7-19 ms, i.e. ordinary TCG jitter, and moved the clock offset by 507-519 ms).
 * `mlprobe clock`, read from the host before and after (host wall clock minus guest
 * realtime: lab/guest/probe.ts clockOffset), catches that: the offset grows by the time
 * the guest did not see. Under KVM the guest's TSC keeps running with the host's, so a
 * guest on a TSC clocksource wakes up to a gap as long as the pause and the loop catches
 * it; with kvmclock QEMU may restore the clock as it was at the stop, and then it is the
 * offset again. Record both, and say which method saw the pause.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/random.h>

#include "common.h"

static int64_t read_ns(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void) {
  fprintf(stderr,
          "usage: mlprobe [-o STATUS_FILE] [-p PERIOD_US]\n"
          "       mlprobe clock\n");
  exit(2);
}

struct probe {
  const char *status_file;
  long period_us;
  uint64_t rounds;
  int64_t start_mono, start_real;
  int64_t last_mono, last_real;
  int64_t max_gap_ns, max_gap_start_real, max_gap_end_real;
  int64_t max_real_gap_ns;
};

static void write_status(const struct probe *p, const char *state) {
  int64_t elapsed_us = (p->last_mono - p->start_mono) / 1000;
  char line[1024];
  int n = snprintf(line, sizeof line,
                   "state=%s pid=%ld periodUs=%ld rounds=%llu elapsedUs=%lld expectedRounds=%lld maxGapUs=%lld "
                   "maxGapStartRealtimeNs=%lld maxGapEndRealtimeNs=%lld maxRealtimeGapUs=%lld startRealtimeNs=%lld "
                   "lastRealtimeNs=%lld\n",
                   state, (long)getpid(), p->period_us, (unsigned long long)p->rounds, (long long)elapsed_us,
                   (long long)(elapsed_us / p->period_us), (long long)(p->max_gap_ns / 1000),
                   (long long)p->max_gap_start_real, (long long)p->max_gap_end_real,
                   (long long)(p->max_real_gap_ns / 1000), (long long)p->start_real, (long long)p->last_real);
  if (n < 0 || (size_t)n >= sizeof line) return;
  publish_status("mlprobe", p->status_file, line, n);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "clock") == 0) {
    printf("%lld\n", (long long)read_ns(CLOCK_REALTIME));
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "seed") == 0) {
    size_t len = strlen(argv[2]);
    if (len == 0 || len % 2 || len > 1024) {
      fprintf(stderr, "mlprobe: bad seed: expected 2..1024 hex digits\n");
      return 2;
    }
    static union {
      struct rand_pool_info info;
      char bytes[sizeof(struct rand_pool_info) + 512];
    } u;
    unsigned char *buf = (unsigned char *)u.info.buf;
    for (size_t i = 0; i < len / 2; i++) {
      unsigned v;
      if (sscanf(argv[2] + 2 * i, "%2x", &v) != 1) {
        fprintf(stderr, "mlprobe: bad seed: not hex\n");
        return 2;
      }
      buf[i] = (unsigned char)v;
    }
    u.info.buf_size = (int)(len / 2);
    u.info.entropy_count = (int)(len / 2) * 8;
    int fd = open("/dev/urandom", O_WRONLY);
    if (fd < 0 || ioctl(fd, RNDADDENTROPY, &u.info) != 0 || ioctl(fd, RNDRESEEDCRNG) != 0) {
      perror("mlprobe: seed");
      return 1;
    }
    close(fd);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "settime") == 0) {
    char *end;
    errno = 0;
    long long ns = strtoll(argv[2], &end, 10);
    if (errno || end == argv[2] || *end != '\0' || ns <= 0) {
      fprintf(stderr, "mlprobe: bad time: %s\n", argv[2]);
      return 2;
    }
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    if (clock_settime(CLOCK_REALTIME, &ts) != 0) {
      perror("mlprobe: clock_settime");
      return 1;
    }
    return 0;
  }
  struct probe p = {.period_us = 1000};
  int opt;
  while ((opt = getopt(argc, argv, "o:p:")) != -1) {
    if (opt == 'o') {
      p.status_file = optarg;
    } else if (opt == 'p') {
      char *end;
      errno = 0;
      p.period_us = strtol(optarg, &end, 10);
      if (errno || end == optarg || *end != '\0' || p.period_us < 1 || p.period_us > 10000000) {
        fprintf(stderr, "mlprobe: bad period: %s\n", optarg);
        return 2;
      }
    } else {
      usage();
    }
  }
  if (optind != argc) usage();

  install_signal_handlers();

  p.start_mono = p.last_mono = read_ns(CLOCK_MONOTONIC);
  p.start_real = p.last_real = read_ns(CLOCK_REALTIME);
  p.max_gap_start_real = p.max_gap_end_real = p.start_real;
  struct timespec period = {.tv_sec = p.period_us / 1000000, .tv_nsec = (p.period_us % 1000000) * 1000};
  while (!stop_requested) {
    /* EINTR (a signal) ends the sleep early; the round still counts, its gap is just shorter */
    clock_nanosleep(CLOCK_MONOTONIC, 0, &period, NULL);
    int64_t mono = read_ns(CLOCK_MONOTONIC);
    int64_t real = read_ns(CLOCK_REALTIME);
    int64_t gap = mono - p.last_mono;
    if (gap > p.max_gap_ns) {
      p.max_gap_ns = gap;
      p.max_gap_start_real = p.last_real;
      p.max_gap_end_real = real;
    }
    if (real - p.last_real > p.max_real_gap_ns) p.max_real_gap_ns = real - p.last_real;
    p.last_mono = mono;
    p.last_real = real;
    p.rounds++;
    if (p.rounds == 1 || report_requested) {
      report_requested = 0;
      write_status(&p, "running");
    }
  }
  write_status(&p, "final");
  return 0;
}
