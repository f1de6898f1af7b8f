/* spatial_cmd.h: the spatial-structure commands of irepa-run
 * (docs/spatial_metrics.md):
 *
 *   spatial-metrics   LDS, CDS, SRSS and RMSC of patch tokens (spatial_cmd.c)
 *   spatial-corr      their correlation with FID across encoders, and the
 *                     1×5 panel figure (spatial_corr.c)
 *   viz-spatialnorm   cosine-similarity maps without and with the spatial
 *                     z-score (spatial_viz.c)
 *
 * Each returns the exit status: 0 done, 1 a failure (bad data), 2 bad
 * usage. */
#ifndef IREPA_SPATIAL_CMD_H
#define IREPA_SPATIAL_CMD_H

#include <stdbool.h>

/* argv[0] is the command's name: the exit status of the spatial command
 * of that name, or -1 when argv[0] names none (argc 0: none). */
int spatial_command(int argc, char **argv);

int spatial_metrics_command(int argc, char **argv); /* argv after the name */
int spatial_corr_command(int argc, char **argv);
int viz_spatialnorm_command(int argc, char **argv);

#endif
