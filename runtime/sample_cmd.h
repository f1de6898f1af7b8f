/* sample_cmd.h: `irepa-run sample` (alias `generate`), the reference's
 * ldm/generate.py on a checkpoint of `irepa-run train` (sample_cmd.c).
 * Returns the exit status: 0 done, 1 a failure on the way (a missing or
 * foreign checkpoint, an unwritable output), 2 bad usage. */
#ifndef IREPA_SAMPLE_CMD_H
#define IREPA_SAMPLE_CMD_H

int sample_command(int argc, char **argv);

#endif
