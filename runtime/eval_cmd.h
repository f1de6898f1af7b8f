/* eval_cmd.h: `irepa-run eval` (eval_cmd.c), the ADM-style evaluation of
 * an .npz of samples against a reference. Returns the exit status: 0 done,
 * 1 a failure on the way (a backend that cannot start), 2 bad usage or a
 * bad input (a missing file, a wrong dtype or shape, an empty array,
 * weights of another model). */
#ifndef IREPA_EVAL_CMD_H
#define IREPA_EVAL_CMD_H

int eval_command(int argc, char **argv); /* argv[0] is the first argument after "eval" */

#endif
