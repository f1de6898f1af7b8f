/* plot_cmd.h: `irepa-run plot` (plot_cmd.c), a PNG chart of series read
 * from TSV files. Returns the exit status: 0 done, 1 the chart could not
 * be written, 2 bad usage or a bad series file (named, with its line). */
#ifndef IREPA_PLOT_CMD_H
#define IREPA_PLOT_CMD_H

int plot_command(int argc, char **argv); /* argv[0] is the first argument after "plot" */

#endif
