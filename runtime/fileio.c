/* fileio.c: writing files so that a reader never sees half of one and an
 * existing file is replaced only by a complete new one: the bytes go to a
 * temporary file beside it, which is synced and renamed over it. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Chunks of at most 1 GiB: Linux writes at most about 2 GiB per call. */
bool rt_write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
    if (w < 0 && errno == EINTR) continue;
    if (w == 0) errno = EIO;
    if (w <= 0) return false;
    c += w;
    n -= (size_t)w;
  }
  return true;
}

/* open() with 0666 applies the umask, as a plain create would (mkstemp
 * would force 0600). */
int rt_create_temp(const char *path, char **tmp, RtError *err) {
  static atomic_uint counter;
  size_t size = strlen(path) + 48;
  if (!(*tmp = malloc(size))) {
    rt_fail(err, "out of memory");
    return -1;
  }
  for (int tries = 0; tries < 100; tries++) {
    snprintf(*tmp, size, "%s.tmp-%ld-%u", path, (long)getpid(), atomic_fetch_add(&counter, 1));
    int fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST) {
      if (fd < 0) rt_fail(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
      return fd;
    }
  }
  rt_fail(err, "%s: cannot create a temporary file beside it: all names taken", path);
  return -1;
}

/* Replacing a file keeps its permissions. */
static bool keep_mode(int fd, const char *path, RtError *err) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return true;
  if (fchmod(fd, st.st_mode & 07777) == 0) return true;
  return rt_fail(err, "%s: cannot copy its permissions: %s", path, strerror(errno));
}

static bool write_contents(int fd, const char *path, const void *const *chunks, const size_t *sizes, int n,
                           RtError *err) {
  bool ok = true;
  for (int i = 0; ok && i < n; i++) ok = rt_write_all(fd, chunks[i], sizes[i]);
  if (!ok) return rt_fail(err, "%s: cannot write the temporary file: %s", path, strerror(errno));
  if (fsync(fd) != 0) return rt_fail(err, "%s: cannot sync the temporary file: %s", path, strerror(errno));
  return true;
}

/* Best effort: some file systems refuse to sync a directory, and the new
 * file is complete either way. */
void rt_sync_parent_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (fd >= 0) {
    (void)fsync(fd);
    close(fd);
  }
  free(dir);
}

bool rt_write_atomic(const char *path, const void *const *chunks, const size_t *sizes, int n, RtError *err) {
  char *tmp = NULL;
  int fd = rt_create_temp(path, &tmp, err);
  bool ok = fd >= 0 && keep_mode(fd, path, err) && write_contents(fd, path, chunks, sizes, n, err);
  if (fd >= 0 && close(fd) != 0 && ok)
    ok = rt_fail(err, "%s: cannot close the temporary file: %s", path, strerror(errno));
  if (ok && rename(tmp, path) != 0) ok = rt_fail(err, "%s: cannot replace it: %s", path, strerror(errno));
  if (ok) rt_sync_parent_dir(path);
  else if (fd >= 0) unlink(tmp);
  free(tmp);
  return ok;
}

bool rt_make_dirs(const char *dir, int mode, RtError *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return rt_fail(err, "%s: path too long", dir);
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != 0) continue;
    char c = *p;
    *p = 0;
    if (mkdir(path, (mode_t)mode) != 0 && errno != EEXIST)
      return rt_fail(err, "cannot create directory %s: %s", path, strerror(errno));
    *p = c;
    if (!c) break;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return rt_fail(err, "%s is not a directory", dir);
  return true;
}
