/* fileio.h: atomic file replacement, shared by every writer of the runtime
 * (safetensors, .irx programs), and directory creation. */
#ifndef IREPA_FILEIO_H
#define IREPA_FILEIO_H

#include "tensor.h"

/* Writes the n chunks, in order, to path: all of them or, on failure,
 * nothing (path keeps its old contents and permissions). */
bool rt_write_atomic(const char *path, const void *const *chunks, const size_t *sizes, int n, RtError *err);

/* mkdir -p: dir and its missing parents, created with `mode`; false with
 * the failing path and the reason, also when dir exists but is not a
 * directory. */
bool rt_make_dirs(const char *dir, int mode, RtError *err);
/* Creates "<path>.tmp-<pid>-<n>" exclusively for writing and returns its
 * descriptor (*tmp: its name, malloc'ed), or -1 with a message; for
 * writers that stream a file too large for rt_write_atomic. */
int rt_create_temp(const char *path, char **tmp, RtError *err);
/* Writes all n bytes to fd (retrying short writes and EINTR); false with
 * errno set. */
bool rt_write_all(int fd, const void *p, size_t n);
/* Syncs the directory holding path, so that a rename into it is durable. */
void rt_sync_parent_dir(const char *path);

#endif
