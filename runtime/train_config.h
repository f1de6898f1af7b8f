/* train_config.h: the options of `irepa-run train` (train_options.def),
 * their defaults, the command line and YAML config files.
 *
 * The reference's order (shared/spec/training.md §1): the command line is
 * parsed first; then every key of the --config YAML overwrites the parsed
 * value, so YAML values beat flags. Unlike the reference, unknown YAML keys
 * are errors. Every value, from either source, is checked for its type,
 * range and allowed values when it is set. Nothing here exits; failures
 * are false with a message in an RtError. */
#ifndef IREPA_TRAIN_CONFIG_H
#define IREPA_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor.h"

enum { TC_STR_MAX = 1024 }; /* bytes of a string option, with its NUL */

#define TC_FIELD_INT(f) int64_t f;
#define TC_FIELD_FLOAT(f) double f;
#define TC_FIELD_STR(f) char f[TC_STR_MAX];
#define TC_FIELD_BOOL(f) bool f;

/* One field per option: c.batch_size, c.mixed_precision ("fp16"), ... */
typedef struct {
#define OPT(type, field, name, def, help) TC_FIELD_##type(field)
#include "train_options.def"
#undef OPT
} TrainConfig;

/* Option indices, in table order: seen[TC_OPT_batch_size]. */
enum {
#define OPT(type, field, name, def, help) TC_OPT_##field,
#include "train_options.def"
#undef OPT
  TC_NOPTS
};

typedef enum { TC_INT, TC_FLOAT, TC_STR, TC_BOOL } TcType;

typedef struct {
  TcType type;
  const char *name; /* kebab-case, as on the command line: "batch-size" */
  const char *key;  /* snake_case, as in YAML files and the struct: "batch_size" */
  const char *help;
  size_t offset;    /* of the field in TrainConfig */
} TcOption;

extern const TcOption tc_options[TC_NOPTS];

/* The option named name, in kebab or snake case; NULL if none. */
const TcOption *tc_find(const char *name);

/* The reference's defaults, and irepa's for its own options. */
void tc_defaults(TrainConfig *c);

/* Applies argv[0..argc) (what follows `train`) to c: `--name value` or
 * `--name=value`, names in kebab or snake case, or the jit trainer's name
 * of an option (--lr, --img_size, --class_num, --data_path,
 * --label_drop_prob, --weight_decay, --ema_decay1). A BOOL option alone means
 * true; it takes `=true|false|1|0|yes|no`, or one of those words as the
 * next argument. seen (TC_NOPTS entries, may be NULL) is cleared, then
 * marks the options given. On failure c may be partly updated. */
bool tc_parse_args(TrainConfig *c, int argc, char **argv, bool *seen, RtError *err);

/* Overwrites c with every key of the YAML file at path: a flat mapping of
 * scalars, keys with '-' or '_'. Values keep their YAML types (a quoted
 * "1.0" is a string, true a boolean; an integer will do for a FLOAT). On
 * failure c is unchanged and err says FILE:LINE:COL: what is wrong. */
bool tc_load_yaml(TrainConfig *c, const char *path, RtError *err);

/* tc_defaults, tc_parse_args, then tc_load_yaml of --config if given;
 * seen (may be NULL) marks the options set by either: set explicitly. */
bool tc_from_args(TrainConfig *c, int argc, char **argv, bool *seen, RtError *err);

/* Whether c is complete and consistent: every value within its checks
 * (also for fields set by code), exp-name given, one way to resume. */
bool tc_validate(const TrainConfig *c, RtError *err);

/* Whether c's model is a JiT-* (docs/jit.md). */
bool tc_is_jit(const TrainConfig *c);

/* The jit trainer's defaults (spec/training.md §4-5) for every option
 * that differs from ldm's and is not marked in seen (may be NULL: all):
 * kernel 3, alpha 0.8, beta2 0.95, no clipping (max-grad-norm 0), 5
 * warm-up epochs of 200, batch 128, no sample grids, and, last,
 * lr = blr * batch-size / 256. Names them on out (may be NULL). */
void tc_jit_defaults(TrainConfig *c, const bool *seen, FILE *out);

/* Prints a line to out for each option accepted but not acted on
 * (report-to wandb, the ignored options of the reference). */
void tc_warn(const TrainConfig *c, FILE *out);

/* Every option as `key: value`, snake_case keys, in table order; strings
 * are quoted where YAML would read them otherwise. tc_load_yaml reads it
 * back to an equal config. Fails on a string that is not UTF-8 (whose
 * stray bytes are written as \xNN) and on a write error. */
bool tc_write_yaml(const TrainConfig *c, FILE *out, RtError *err);
/* The same into path, replaced atomically (rt_write_atomic). */
bool tc_save_yaml(const TrainConfig *c, const char *path, RtError *err);

/* The effective configuration, human-readable (as YAML). */
void tc_print(const TrainConfig *c, FILE *out);
/* One line per option: flag, value kind, help and default. */
void tc_print_help(FILE *out);

bool tc_equal(const TrainConfig *a, const TrainConfig *b);

/* The comma-separated proj-coeff list ("0.5" or "1.0,0.5") into
 * out[0..*n), at most max values, each finite and >= 0. */
bool tc_proj_coeffs(const TrainConfig *c, double *out, int max, int *n, RtError *err);

#endif
