/* bench_cmd.h: `irepa-run bench` (bench_cmd.c), the throughput of one
 * compiled entry: a training step, a sampler run or any other entry, timed
 * over repeated runs on random inputs, with its FLOP rate and memory.
 * Returns the exit status: 0 done, 1 a failure on the way (a model that
 * does not compile, an entry it lacks, a backend that cannot start), 2 bad
 * usage (an unknown option, a bad value, a missing file). */
#ifndef IREPA_BENCH_CMD_H
#define IREPA_BENCH_CMD_H

int bench_command(int argc, char **argv); /* argv[0] is the first argument after "bench" */

#endif
