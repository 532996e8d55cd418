/*
 * Shared by mlload and mlprobe: the stop/report signal flags (SIGTERM/SIGINT ask to
 * stop, SIGUSR1 asks for a status line), and publishing one status line atomically
 * (write a .tmp file, rename it over the status file), or to stdout without a file.
 */
#ifndef MIGRALAB_COMMON_H
#define MIGRALAB_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t report_requested;

static void on_stop(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void on_report(int sig) {
  (void)sig;
  report_requested = 1;
}

static void install_signal_handlers(void) {
  struct sigaction sa = {.sa_handler = on_stop};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sa.sa_handler = on_report;
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

static void publish_status(const char *prog, const char *status_file, const char *line, int n) {
  if (n < 0) return;
  if (!status_file) {
    fputs(line, stdout);
    fflush(stdout);
    return;
  }
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", status_file) >= (int)sizeof tmp) return;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(errno));
    return;
  }
  ssize_t w = write(fd, line, (size_t)n);
  close(fd);
  if (w == n && rename(tmp, status_file) != 0) fprintf(stderr, "%s: rename %s: %s\n", prog, tmp, strerror(errno));
}

#endif
