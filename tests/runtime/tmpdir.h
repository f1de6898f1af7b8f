/* tmpdir.h: a scratch directory per test program, for the CMocka group
 * setup and teardown: TMPDIR_TEMPLATE names it before inclusion. */
#ifndef IREPA_TEST_TMPDIR_H
#define IREPA_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[] = TMPDIR_TEMPLATE;

static int make_dir(void **state) {
  (void)state;
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

/* name inside the scratch directory (one static buffer: copy to keep two). */
static const char *tmp_path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

#endif
