/*
 * Shared by mlload and mlprobe: publish one status line, atomically (write a .tmp file,
 * rename it over the status file), or to stdout when no status file was given.
 */
#ifndef MIGRALAB_STATUS_H
#define MIGRALAB_STATUS_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
