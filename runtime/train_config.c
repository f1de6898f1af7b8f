/* train_config.c: see train_config.h. One table, tc_options (made from
 * train_options.def), drives the defaults, the command line, YAML reading
 * and writing, printing and help. Every value, from either source, goes
 * through set_option(), which parses the text for the option's type and
 * checks it against ranges[] or choices[] below.
 *
 * YAML scalars are typed first, as PyYAML (YAML 1.1) types them: quoted
 * scalars are strings; plain true/yes/on and false/no/off are booleans;
 * ~, null and nothing are null; digits (with '_') are integers; and, as in
 * YAML 1.2, 1e-4 is a float (PyYAML reads it as a string). A type that does
 * not fit the option is an error, never a conversion, except that an
 * integer fits a FLOAT and null fits a string as "". */
#include "train_config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "fileio.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
enum { MSG = 900 }; /* room for a message that goes into an RtError */

const TcOption tc_options[TC_NOPTS] = {
#define OPT(type, field, name, def, help) {TC_##type, name, #field, help, offsetof(TrainConfig, field)},
#include "train_options.def"
#undef OPT
};

/* The values an enum-like option may take, '|'-separated. */
static const struct {
  int opt;
  const char *values;
} choices[] = {
    {TC_OPT_report_to, "tensorboard|wandb"},         {TC_OPT_projection_layer_type, "mlp|linear|conv"},
    {TC_OPT_proj_kwargs_kernel_size, "1|3|5|7"},     {TC_OPT_mixed_precision, "no|fp16|bf16"},
    {TC_OPT_path_type, "linear|cosine"},             {TC_OPT_prediction, "v"},
    {TC_OPT_weighting, "uniform|lognormal"},         {TC_OPT_projection_loss_type, "cosine"},
    {TC_OPT_spnorm_method, "none|zscore"},           {TC_OPT_dataset, "fashion-mnist|imagefolder|latents"},
    {TC_OPT_backend, "auto|c|cuda|cuda-emu|interp"}, {TC_OPT_on_nan, "stop|skip"},
    {TC_OPT_lr_schedule, "constant|cosine"},       {TC_OPT_sampling_method, "heun|euler"},
};

/* lo <= x <= hi (< where open), for every other INT and FLOAT option. */
enum { LO_OPEN = 1, HI_OPEN = 2 };
#define INF INFINITY
static const struct {
  int opt;
  double lo, hi;
  int open;
} ranges[] = {
    {TC_OPT_sampling_steps, 0, INF, 0},     {TC_OPT_resume_step, 0, INF, 0},
    {TC_OPT_n_samples, 1, INF, 0},          {TC_OPT_num_classes, 1, INF, 0},
    {TC_OPT_encoder_depth, 1, INF, 0},      {TC_OPT_resolution, 1, INF, 0},
    {TC_OPT_batch_size, 1, INF, 0},         {TC_OPT_epochs, 1, INF, 0},
    {TC_OPT_max_train_steps, 1, INF, 0},    {TC_OPT_checkpointing_steps, 1, INF, 0},
    {TC_OPT_learning_rate, 0, INF, LO_OPEN}, {TC_OPT_gradient_accumulation_steps, 1, INF, 0},
    {TC_OPT_adam_beta1, 0, 1, HI_OPEN},     {TC_OPT_adam_beta2, 0, 1, HI_OPEN},
    {TC_OPT_adam_weight_decay, 0, INF, 0},  {TC_OPT_adam_epsilon, 0, INF, LO_OPEN},
    {TC_OPT_max_grad_norm, 0, INF, 0},      {TC_OPT_ema_decay, 0, 1, 0},
    {TC_OPT_ema_update_freq, 1, INF, 0},    {TC_OPT_seed, 0, INF, 0},
    {TC_OPT_num_workers, 0, INF, 0},        {TC_OPT_cfg_prob, 0, 1, 0},
    {TC_OPT_cls_token_weight, 0, INF, 0},   {TC_OPT_zscore_alpha, 0, 1, 0},
    {TC_OPT_threads, 0, INF, 0},            {TC_OPT_log_every, 1, INF, 0},
    {TC_OPT_sample_every, 0, INF, 0},       {TC_OPT_projector_dim, 1, INF, 0},
    {TC_OPT_warmup_epochs, 0, INF, 0},      {TC_OPT_min_lr, 0, INF, 0},
    {TC_OPT_blr, 0, INF, LO_OPEN},          {TC_OPT_P_std, 0, INF, LO_OPEN},
    {TC_OPT_t_eps, 0, 1, LO_OPEN},          {TC_OPT_noise_scale, 0, INF, LO_OPEN},
    {TC_OPT_ema_decay2, 0, 1, 0},           {TC_OPT_eval_freq, 1, INF, 0},
    {TC_OPT_num_images, 1, INF, 0},         {TC_OPT_gen_bsz, 1, INF, 0},
    {TC_OPT_num_sampling_steps, 1, INF, 0}, {TC_OPT_cfg, 1, INF, 0},
    {TC_OPT_interval_min, 0, 1, 0},         {TC_OPT_interval_max, 0, 1, 0},
    {TC_OPT_attn_dropout, 0, 1, HI_OPEN},   {TC_OPT_proj_dropout, 0, 1, HI_OPEN},
    {TC_OPT_loss_scale_init, 0, INF, LO_OPEN},
};

/* The jit trainer's names (spec/training.md §4) for options that exist
 * under ldm's name; they set that option, on the command line and in YAML. */
static const struct {
  const char *alias; /* kebab-case */
  int opt;
} aliases[] = {
    {"lr", TC_OPT_learning_rate},          {"img-size", TC_OPT_resolution},
    {"class-num", TC_OPT_num_classes},     {"data-path", TC_OPT_data_dir},
    {"label-drop-prob", TC_OPT_cfg_prob},  {"weight-decay", TC_OPT_adam_weight_decay},
    {"ema-decay1", TC_OPT_ema_decay},      {"log-freq", TC_OPT_log_every},
};

static bool say(char *msg, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool say(char *msg, size_t size, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, size, fmt, ap);
  va_end(ap);
  return false;
}

static void *field(TrainConfig *c, const TcOption *o) { return (char *)c + o->offset; }
static const void *cfield(const TrainConfig *c, const TcOption *o) { return (const char *)c + o->offset; }

void tc_defaults(TrainConfig *c) {
  memset(c, 0, sizeof *c);
#define DEF_INT(f, d) c->f = d;
#define DEF_FLOAT(f, d) c->f = d;
#define DEF_BOOL(f, d) c->f = d;
#define DEF_STR(f, d) snprintf(c->f, sizeof c->f, "%s", d);
#define OPT(type, field, name, def, help) DEF_##type(field, def)
#include "train_options.def"
#undef OPT
}

/* ---- names ---- */

/* Whether the n bytes of name, with '_' read as '-', start kebab. */
static bool same_prefix(const char *name, const char *kebab, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((name[i] == '_' ? '-' : name[i]) != kebab[i]) return false;
  return true;
}

static const TcOption *find_n(const char *name, size_t n) {
  for (int i = 0; i < TC_NOPTS; i++)
    if (strlen(tc_options[i].name) == n && same_prefix(name, tc_options[i].name, n)) return &tc_options[i];
  for (size_t i = 0; i < COUNT(aliases); i++)
    if (strlen(aliases[i].alias) == n && same_prefix(name, aliases[i].alias, n)) return &tc_options[aliases[i].opt];
  return NULL;
}

const TcOption *tc_find(const char *name) { return find_n(name, strlen(name)); }

/* Levenshtein distance of a (n bytes, '_' read as '-') and b, each cut at 63 bytes. */
static int distance(const char *a, size_t n, const char *b) {
  enum { M = 63 };
  size_t m = strlen(b);
  n = n > M ? M : n;
  m = m > M ? M : m;
  int row[M + 1];
  for (size_t j = 0; j <= m; j++) row[j] = (int)j;
  for (size_t i = 1; i <= n; i++) {
    int diag = row[0];
    row[0] = (int)i;
    char ca = a[i - 1] == '_' ? '-' : a[i - 1];
    for (size_t j = 1; j <= m; j++) {
      int up = row[j], left = row[j - 1], sub = diag + (ca != b[j - 1]);
      row[j] = sub < up + 1 && sub < left + 1 ? sub : up < left ? up + 1 : left + 1;
      diag = up;
    }
  }
  return row[m];
}

/* What a mistyped name most likely meant: the nearest option within edit
 * distance 3, else the first that starts with it or with which it starts. */
static const TcOption *suggest(const char *name, size_t n) {
  const TcOption *near = NULL, *prefix = NULL;
  int best = 4;
  for (int i = 0; i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    int d = distance(name, n, o->name);
    if (d < best) best = d, near = o;
    size_t m = strlen(o->name), k = n < m ? n : m;
    if (!prefix && k >= 2 && same_prefix(name, o->name, k)) prefix = o;
  }
  return near ? near : prefix;
}

/* ---- values ---- */

static const char *choices_of(const TcOption *o) {
  for (size_t i = 0; i < COUNT(choices); i++)
    if (&tc_options[choices[i].opt] == o) return choices[i].values;
  return NULL;
}

static bool check_choice(const TcOption *o, const char *text, char *msg, size_t size) {
  const char *values = choices_of(o);
  if (!values) return true;
  size_t n = strlen(text);
  for (const char *p = values;; p++) {
    size_t k = strcspn(p, "|");
    if (k == n && strncmp(p, text, n) == 0) return true;
    p += k;
    if (!*p) break;
  }
  return say(msg, size, "'%s' is not one of %s", text, values);
}

static bool check_range(const TcOption *o, double x, const char *text, char *msg, size_t size) {
  for (size_t i = 0; i < COUNT(ranges); i++) {
    if (&tc_options[ranges[i].opt] != o) continue;
    double lo = ranges[i].lo, hi = ranges[i].hi;
    const char *lt = ranges[i].open & LO_OPEN ? "<" : "<=", *gt = ranges[i].open & LO_OPEN ? ">" : ">=";
    const char *ht = ranges[i].open & HI_OPEN ? "<" : "<=";
    bool ok = (ranges[i].open & LO_OPEN ? x > lo : x >= lo) && (ranges[i].open & HI_OPEN ? x < hi : x <= hi);
    if (ok) return true;
    if (isinf(hi)) return say(msg, size, "%s is out of range (expected x %s %g)", text, gt, lo);
    return say(msg, size, "%s is out of range (expected %g %s x %s %g)", text, lo, lt, ht, hi);
  }
  return true;
}

/* A whole decimal integer that fits int64_t. */
static bool parse_int(const char *s, int64_t *v, char *msg, size_t size) {
  char *end = NULL;
  errno = 0;
  long long x = *s && !isspace((unsigned char)*s) ? strtoll(s, &end, 10) : 0;
  if (!end || end == s || *end) return say(msg, size, "expected an integer, got '%s'", s);
  if (errno == ERANGE) return say(msg, size, "%s is out of range (expected a 64-bit integer)", s);
  *v = x;
  return true;
}

/* A whole finite decimal number (no hex, inf or nan). */
static bool parse_float(const char *s, double *v, char *msg, size_t size) {
  char *end = NULL;
  double x = 0;
  if (*s && strspn(s, "0123456789+-.eE") == strlen(s)) x = strtod(s, &end);
  if (!end || end == s || *end) return say(msg, size, "expected a finite number, got '%s'", s);
  if (!isfinite(x)) return say(msg, size, "%s is out of range (expected a finite number)", s);
  *v = x;
  return true;
}

/* 1 for true|1|yes, 0 for false|0|no, else -1. */
static int bool_word(const char *s) {
  if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes")) return 1;
  if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no")) return 0;
  return -1;
}

/* The comma-separated list s into out[0..*n) (either may be NULL): at
 * most max items, each a finite number >= 0, spaces around it allowed. */
static bool parse_coeffs(const char *s, double *out, int max, int *n, char *msg, size_t size) {
  int k = 0;
  for (const char *p = s;; p++) {
    size_t len = strcspn(p, ",");
    const char *a = p, *b = p + len;
    while (a < b && isspace((unsigned char)*a)) a++;
    while (b > a && isspace((unsigned char)b[-1])) b--;
    char item[64], why[MSG];
    double v = -1;
    snprintf(item, sizeof item, "%.*s", (int)(b - a), a);
    if ((size_t)(b - a) >= sizeof item || !parse_float(item, &v, why, sizeof why) || v < 0)
      return say(msg, size, "'%s': item %d, '%.*s', is not a finite number >= 0", s, k + 1, (int)(b - a), a);
    if (k >= max) return say(msg, size, "'%s' has more than %d values", s, max);
    if (out) out[k] = v;
    k++;
    p += len;
    if (!*p) break;
  }
  if (n) *n = k;
  return true;
}

/* Sets option o of c from text; false with the reason in msg. */
static bool set_option(TrainConfig *c, const TcOption *o, const char *text, char *msg, size_t size) {
  void *f = field(c, o);
  switch (o->type) {
  case TC_INT: {
    int64_t v = 0;
    char canon[32];
    if (!parse_int(text, &v, msg, size)) return false;
    snprintf(canon, sizeof canon, "%" PRId64, v);
    if (!check_range(o, (double)v, text, msg, size) || !check_choice(o, canon, msg, size)) return false;
    *(int64_t *)f = v;
    return true;
  }
  case TC_FLOAT: {
    double v = 0;
    if (!parse_float(text, &v, msg, size) || !check_range(o, v, text, msg, size)) return false;
    *(double *)f = v;
    return true;
  }
  case TC_BOOL: {
    int b = bool_word(text);
    if (b < 0) return say(msg, size, "expected true, false, 1, 0, yes or no, got '%s'", text);
    *(bool *)f = b;
    return true;
  }
  case TC_STR: {
    size_t n = strlen(text);
    if (n >= TC_STR_MAX) return say(msg, size, "longer than %d bytes", TC_STR_MAX - 1);
    if (!check_choice(o, text, msg, size)) return false;
    if (o == &tc_options[TC_OPT_proj_coeff] && !parse_coeffs(text, NULL, INT_MAX, NULL, msg, size)) return false;
    memcpy(f, text, n + 1);
    return true;
  }
  }
  return say(msg, size, "bad option type");
}

bool tc_proj_coeffs(const TrainConfig *c, double *out, int max, int *n, RtError *err) {
  char msg[MSG];
  if (parse_coeffs(c->proj_coeff, out, max, n, msg, sizeof msg)) return true;
  return rt_fail(err, "proj-coeff: %s", msg);
}

/* ---- the command line ---- */

bool tc_parse_args(TrainConfig *c, int argc, char **argv, bool *seen, RtError *err) {
  if (seen) memset(seen, 0, TC_NOPTS * sizeof *seen);
  for (int i = 0; i < argc; i++) {
    const char *arg = argv[i];
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) return rt_fail(err, "unexpected argument '%s'", arg);
    const char *eq = strchr(arg, '='), *value = eq ? eq + 1 : NULL;
    size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    const TcOption *o = find_n(arg + 2, n), *s;
    if (!o && (s = suggest(arg + 2, n)))
      return rt_fail(err, "unknown option '--%.*s' (did you mean '--%s'?)", (int)n, arg + 2, s->name);
    if (!o) return rt_fail(err, "unknown option '--%.*s'", (int)n, arg + 2);
    if (!value && o->type == TC_BOOL)
      value = i + 1 < argc && bool_word(argv[i + 1]) >= 0 ? argv[++i] : "true";
    else if (!value) {
      if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) return rt_fail(err, "missing value for --%s", o->name);
      value = argv[++i];
    }
    char msg[MSG];
    if (!set_option(c, o, value, msg, sizeof msg)) return rt_fail(err, "--%s: %s", o->name, msg);
    if (seen) seen[o - tc_options] = true;
  }
  return true;
}

static bool load_yaml(TrainConfig *c, const char *path, bool *seen, RtError *err);

bool tc_from_args(TrainConfig *c, int argc, char **argv, bool *seen, RtError *err) {
  tc_defaults(c);
  if (!tc_parse_args(c, argc, argv, seen, err)) return false;
  return !c->config[0] || load_yaml(c, c->config, seen, err);
}

/* ---- YAML scalars ---- */

typedef enum { Y_NULL, Y_BOOL, Y_INT, Y_FLOAT, Y_STR } YKind;
static const char *const ykind_name[] = {"null", "a boolean", "an integer", "a float", "a string"};
static const char *const type_name[] = {"an integer", "a number", "a string", "a boolean (true or false)"};

/* Whether s is word as YAML 1.1 spells it: lower case, Capitalised or UPPER. */
static bool yaml_word(const char *s, const char *word) {
  char cap[16], up[16];
  size_t n = strlen(word);
  for (size_t i = 0; i <= n; i++) up[i] = (char)toupper((unsigned char)word[i]), cap[i] = word[i];
  cap[0] = up[0];
  return !strcmp(s, word) || !strcmp(s, cap) || !strcmp(s, up);
}

/* The type of the plain scalar s; norm (TC_STR_MAX bytes) gets the text
 * set_option() reads: "true"/"false" for booleans, numbers without '_'. */
static YKind classify(const char *s, char *norm) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  snprintf(norm, TC_STR_MAX, "%s", s);
  if (!*s || !strcmp(s, "~") || yaml_word(s, "null")) return Y_NULL;
  for (size_t i = 0; i < COUNT(yes); i++) {
    if (yaml_word(s, yes[i])) return snprintf(norm, TC_STR_MAX, "true"), Y_BOOL;
    if (yaml_word(s, no[i])) return snprintf(norm, TC_STR_MAX, "false"), Y_BOOL;
  }
  const char *d = s + (*s == '+' || *s == '-');
  if (!isdigit((unsigned char)*d) && *d != '.') return Y_STR;
  size_t k = 0;
  for (const char *p = s; *p && k + 1 < TC_STR_MAX; p++)
    if (*p != '_') norm[k++] = *p;
  norm[k] = '\0';
  d = norm + (*norm == '+' || *norm == '-');
  if (*d && strspn(d, "0123456789") == strlen(d)) return Y_INT;
  char *end;
  if (strspn(norm, "0123456789+-.eE") == strlen(norm) && strpbrk(norm, "0123456789") && (strtod(norm, &end), !*end))
    return Y_FLOAT;
  snprintf(norm, TC_STR_MAX, "%s", s);
  return Y_STR;
}

/* ---- reading YAML ---- */

/* The whole file is parsed into events first, so that a malformed file is
 * reported as such rather than by what its first half seems to say. */
typedef struct {
  const char *path;
  yaml_event_t *ev;
  int n, pos;
  TrainConfig *c;
  RtError *err;
  size_t line[TC_NOPTS]; /* where each option was set, for duplicates */
} Loader;

static bool fail_at(Loader *L, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail_at(Loader *L, yaml_mark_t m, const char *fmt, ...) {
  char msg[MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return rt_fail(L->err, "%s:%zu:%zu: %s", L->path, m.line + 1, m.column + 1, msg);
}

static bool read_events(Loader *L, yaml_parser_t *p) {
  for (int cap = 0;;) {
    if (L->n == cap) {
      yaml_event_t *ev = realloc(L->ev, (size_t)(cap = 2 * cap + 16) * sizeof *ev);
      if (!ev) return rt_fail(L->err, "%s: out of memory", L->path);
      L->ev = ev;
    }
    if (yaml_parser_parse(p, &L->ev[L->n]) && L->ev[L->n++].type == YAML_STREAM_END_EVENT) return true;
    if (p->error == YAML_NO_ERROR) continue;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_MEMORY_ERROR) return rt_fail(L->err, "%s: out of memory", L->path);
    if (p->error == YAML_READER_ERROR)
      return rt_fail(L->err, "%s: malformed YAML: %s (at byte %zu)", L->path, problem, p->problem_offset);
    if (!p->context) return fail_at(L, p->problem_mark, "malformed YAML: %s", problem);
    return fail_at(L, p->problem_mark, "malformed YAML: %s %s at %zu:%zu", problem, p->context,
                   p->context_mark.line + 1, p->context_mark.column + 1);
  }
}

/* The next event; the parser has checked that the stream is well formed. */
static const yaml_event_t *next(Loader *L) { return &L->ev[L->pos < L->n - 1 ? L->pos++ : L->pos]; }

static const char *event_name(yaml_event_type_t t) {
  return t == YAML_MAPPING_START_EVENT ? "a mapping" : t == YAML_SEQUENCE_START_EVENT ? "a list"
       : t == YAML_ALIAS_EVENT ? "an alias (not supported)" : "something else";
}

/* The value event ev of option o. */
static bool load_value(Loader *L, const TcOption *o, const yaml_event_t *ev) {
  yaml_mark_t at = ev->start_mark;
  if (ev->type != YAML_SCALAR_EVENT)
    return fail_at(L, at, "%s: expected one value, found %s", o->key, event_name(ev->type));
  const char *s = (const char *)ev->data.scalar.value, *tag = (const char *)ev->data.scalar.tag;
  if (strlen(s) != ev->data.scalar.length) return fail_at(L, at, "%s: the value holds a NUL character", o->key);
  if (strlen(s) >= TC_STR_MAX) return fail_at(L, at, "%s: longer than %d bytes", o->key, TC_STR_MAX - 1);
  if (tag && strcmp(tag, YAML_STR_TAG) && strcmp(tag, "!"))
    return fail_at(L, at, "%s: tag %s is not supported", o->key, tag);
  char norm[TC_STR_MAX], msg[MSG];
  YKind kind = Y_STR;
  if (tag || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) snprintf(norm, sizeof norm, "%s", s);
  else kind = classify(s, norm);
  bool fits = o->type == TC_STR ? kind == Y_STR || kind == Y_NULL
            : o->type == TC_BOOL ? kind == Y_BOOL
            : o->type == TC_INT ? kind == Y_INT
                                : kind == Y_INT || kind == Y_FLOAT;
  if (!fits && kind == Y_NULL) return fail_at(L, at, "%s: expected %s, found no value", o->key, type_name[o->type]);
  if (!fits && o->type == TC_STR)
    return fail_at(L, at, "%s: expected a string, found %s '%s' (quote it: \"%s\")", o->key, ykind_name[kind], s, s);
  if (!fits) return fail_at(L, at, "%s: expected %s, found %s '%s'", o->key, type_name[o->type], ykind_name[kind], s);
  const char *d = norm + (*norm == '+' || *norm == '-');
  if (kind == Y_INT && d[0] == '0' && d[1])
    return fail_at(L, at, "%s: '%s' has a leading zero, which YAML 1.1 reads as octal", o->key, s);
  if (!set_option(L->c, o, kind == Y_NULL ? "" : norm, msg, sizeof msg)) return fail_at(L, at, "%s: %s", o->key, msg);
  return true;
}

/* mapping = (key value)* MAPPING-END, after MAPPING-START; keys name options */
static bool load_mapping(Loader *L) {
  for (const yaml_event_t *ev; (ev = next(L))->type != YAML_MAPPING_END_EVENT;) {
    yaml_mark_t at = ev->start_mark;
    if (ev->type != YAML_SCALAR_EVENT) return fail_at(L, at, "expected an option name, found %s", event_name(ev->type));
    const char *key = (const char *)ev->data.scalar.value;
    const TcOption *o = tc_find(key), *s;
    if (!o && (s = suggest(key, strlen(key))))
      return fail_at(L, at, "unknown key '%s' (did you mean '%s'?)", key, s->key);
    if (!o) return fail_at(L, at, "unknown key '%s'", key);
    size_t *line = &L->line[o - tc_options];
    if (*line) return fail_at(L, at, "%s is set twice (first on line %zu)", o->key, *line);
    *line = at.line + 1;
    if (!load_value(L, o, next(L))) return false;
  }
  return true;
}

/* stream = STREAM-START [DOCUMENT-START (mapping | empty) DOCUMENT-END] STREAM-END */
static bool load_stream(Loader *L) {
  next(L);
  if (next(L)->type == YAML_STREAM_END_EVENT) return true;
  const yaml_event_t *ev = next(L);
  bool empty = ev->type == YAML_SCALAR_EVENT && !ev->data.scalar.length &&
               ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (ev->type == YAML_MAPPING_START_EVENT) {
    if (!load_mapping(L)) return false;
  } else if (!empty) {
    return fail_at(L, ev->start_mark, "expected a mapping of option: value, found %s",
                   ev->type == YAML_SCALAR_EVENT ? "a scalar" : event_name(ev->type));
  }
  next(L);
  if ((ev = next(L))->type != YAML_STREAM_END_EVENT)
    return fail_at(L, ev->start_mark, "a second document (a config is one mapping)");
  return true;
}

/* tc_load_yaml; on success seen (may be NULL) also marks the keys read. */
static bool load_yaml(TrainConfig *c, const char *path, bool *seen, RtError *err) {
  struct stat st;
  FILE *f = fopen(path, "rb");
  if (!f) return rt_fail(err, "%s: cannot open: %s", path, strerror(errno));
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return rt_fail(err, "%s: is a directory", path);
  }
  yaml_parser_t parser;
  Loader *L = calloc(1, sizeof *L);
  TrainConfig *tmp = malloc(sizeof *tmp);
  bool ok = false;
  if (!L || !tmp || !yaml_parser_initialize(&parser)) {
    rt_fail(err, "out of memory");
    free(tmp), free(L), fclose(f);
    return false;
  }
  *tmp = *c;
  L->path = path, L->c = tmp, L->err = err;
  yaml_parser_set_input_file(&parser, f);
  if (read_events(L, &parser) && (ok = load_stream(L))) *c = *tmp;
  for (int i = 0; ok && seen && i < TC_NOPTS; i++) seen[i] = seen[i] || L->line[i] > 0;
  for (int i = 0; i < L->n; i++) yaml_event_delete(&L->ev[i]);
  yaml_parser_delete(&parser);
  free(L->ev), free(L), free(tmp), fclose(f);
  return ok;
}

bool tc_load_yaml(TrainConfig *c, const char *path, RtError *err) { return load_yaml(c, path, NULL, err); }

/* ---- writing YAML ---- */

/* The code point at p into *cp; its length in bytes, 0 if not UTF-8. */
static int utf8_decode(const unsigned char *p, uint32_t *cp) {
  static const uint32_t least[4] = {0, 0x80, 0x800, 0x10000};
  int n = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
  if (!n) return 0;
  uint32_t v = n == 1 ? p[0] : p[0] & (0x7Fu >> n);
  for (int i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    v = v << 6 | (p[i] & 0x3Fu);
  }
  if (v < least[n - 1] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

/* Whether a double-quoted YAML scalar may hold cp as it is (printable, no line break). */
static bool raw_ok(uint32_t cp) {
  return (cp >= 0x20 && cp <= 0x7E && cp != '"' && cp != '\\') || (cp >= 0xA0 && cp <= 0xD7FF) ||
         (cp >= 0xE000 && cp <= 0xFFFD && cp != 0xFEFF && cp != 0x2028 && cp != 0x2029) || cp >= 0x10000;
}

/* Whether s must be quoted to read back as this string. */
static bool needs_quotes(const char *s) {
  static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+,";
  char norm[TC_STR_MAX];
  if (!*s || *s == '-' || *s == ',' || strspn(s, safe) != strlen(s)) return true;
  return classify(s, norm) != Y_STR;
}

/* s as a YAML scalar; false if s is not UTF-8 (its stray bytes are
 * written as \xNN, which reads back as a different string). */
static bool write_str(FILE *out, const char *s) {
  bool utf8 = true;
  if (!needs_quotes(s)) return fputs(s, out), true;
  fputc('"', out);
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    uint32_t cp = 0;
    int n = utf8_decode(p, &cp);
    if (!n) fprintf(out, "\\x%02X", *p), utf8 = false;
    else if (raw_ok(cp)) fwrite(p, 1, (size_t)n, out);
    else if (cp == '"' || cp == '\\') fprintf(out, "\\%c", (char)cp);
    else if (cp == '\n' || cp == '\t') fputs(cp == '\n' ? "\\n" : "\\t", out);
    else fprintf(out, cp < 0x100 ? "\\x%02X" : "\\u%04X", (unsigned)cp);
    p += n ? n : 1;
  }
  fputc('"', out);
  return utf8;
}

/* The shortest %g text that reads back as x, with a '.' so that PyYAML
 * reads a float too (1e-08 is a string there, 1.0e-08 a float). */
static void format_float(double x, char *buf, size_t size) {
  char tmp[40];
  if (!isfinite(x)) {
    snprintf(buf, size, "%s", isnan(x) ? ".nan" : x < 0 ? "-.inf" : ".inf");
    return;
  }
  for (int p = 1; p <= 17; p++) {
    snprintf(tmp, sizeof tmp, "%.*g", p, x);
    if (strtod(tmp, NULL) == x) break;
  }
  size_t m = strcspn(tmp, "e");
  if (memchr(tmp, '.', m)) snprintf(buf, size, "%s", tmp);
  else snprintf(buf, size, "%.*s.0%s", (int)m, tmp, tmp + m);
}

/* The YAML text of a non-string option. */
static void format_value(const TrainConfig *c, const TcOption *o, char *buf, size_t size) {
  const void *f = cfield(c, o);
  if (o->type == TC_INT) snprintf(buf, size, "%" PRId64, *(const int64_t *)f);
  else if (o->type == TC_FLOAT) format_float(*(const double *)f, buf, size);
  else snprintf(buf, size, "%s", *(const bool *)f ? "true" : "false");
}

/* Every option; the first string that is not UTF-8, or NULL. */
static const TcOption *write_yaml(const TrainConfig *c, FILE *out) {
  const TcOption *bad = NULL;
  for (int i = 0; i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    char buf[48];
    fprintf(out, "%s: ", o->key);
    if (o->type == TC_STR && !write_str(out, cfield(c, o)) && !bad) bad = o;
    if (o->type != TC_STR) format_value(c, o, buf, sizeof buf), fputs(buf, out);
    fputc('\n', out);
  }
  return bad;
}

bool tc_write_yaml(const TrainConfig *c, FILE *out, RtError *err) {
  const TcOption *bad = write_yaml(c, out);
  if (bad) return rt_fail(err, "%s: the value is not UTF-8, which a YAML file cannot hold", bad->key);
  if (fflush(out) != 0 || ferror(out)) return rt_fail(err, "cannot write the configuration: %s", strerror(errno));
  return true;
}

bool tc_save_yaml(const TrainConfig *c, const char *path, RtError *err) {
  char *buf = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&buf, &len);
  if (!mem) return rt_fail(err, "out of memory");
  bool ok = tc_write_yaml(c, mem, err);
  if (fclose(mem) != 0 && ok) ok = rt_fail(err, "out of memory");
  if (ok) {
    const void *chunks[1] = {buf};
    size_t sizes[1] = {len};
    ok = rt_write_atomic(path, chunks, sizes, 1, err);
  }
  free(buf);
  return ok;
}

void tc_print(const TrainConfig *c, FILE *out) { write_yaml(c, out); }

void tc_print_help(FILE *out) {
  static const char *const metavar[] = {" N", " X", " S", "[=BOOL]"};
  TrainConfig *d = malloc(sizeof *d);
  if (!d) return;
  tc_defaults(d);
  for (int i = 0; i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    char flag[64], def[48];
    snprintf(flag, sizeof flag, "--%s%s", o->name, metavar[o->type]);
    if (o->type == TC_STR) snprintf(def, sizeof def, "\"%s\"", (const char *)cfield(d, o));
    else format_value(d, o, def, sizeof def);
    fprintf(out, "  %-34s %s (default %s)\n", flag, o->help, def);
  }
  free(d);
}

/* ---- whole configs ---- */

bool tc_equal(const TrainConfig *a, const TrainConfig *b) {
  for (int i = 0; i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    const void *x = cfield(a, o), *y = cfield(b, o);
    bool same = o->type == TC_INT     ? *(const int64_t *)x == *(const int64_t *)y
                : o->type == TC_FLOAT ? *(const double *)x == *(const double *)y
                : o->type == TC_BOOL  ? *(const bool *)x == *(const bool *)y
                                      : strncmp(x, y, TC_STR_MAX) == 0;
    if (!same) return false;
  }
  return true;
}

bool tc_validate(const TrainConfig *c, RtError *err) {
  TrainConfig *scratch = malloc(sizeof *scratch);
  if (!scratch) return rt_fail(err, "out of memory");
  *scratch = *c;
  bool ok = true;
  for (int i = 0; ok && i < TC_NOPTS; i++) {
    const TcOption *o = &tc_options[i];
    char buf[48], msg[MSG];
    const char *text = buf;
    if (o->type == TC_STR && !memchr(cfield(c, o), '\0', TC_STR_MAX))
      ok = rt_fail(err, "--%s: longer than %d bytes", o->name, TC_STR_MAX - 1);
    else if (o->type == TC_STR) text = cfield(c, o);
    else format_value(c, o, buf, sizeof buf);
    if (ok && !set_option(scratch, o, text, msg, sizeof msg)) ok = rt_fail(err, "--%s: %s", o->name, msg);
  }
  free(scratch);
  if (!ok) return false;
  if (!c->exp_name[0]) return rt_fail(err, "--exp-name is required (the run directory is output-dir/exp-name)");
  if (c->resume && c->resume_step > 0)
    return rt_fail(err, "--resume and --resume-step %" PRId64 " both say where to resume from; give one",
                   c->resume_step);
  return true;
}

/* ---- JiT ---- */

bool tc_is_jit(const TrainConfig *c) { return !strncmp(c->model, "JiT-", 4); }

/* Sets option opt to text unless seen, and appends " --name text" to
 * note. The texts below are within their checks: set_option cannot fail. */
static void jit_default(TrainConfig *c, const bool *seen, int opt, const char *text, char *note, size_t size) {
  char msg[MSG];
  if (seen && seen[opt]) return;
  set_option(c, &tc_options[opt], text, msg, sizeof msg);
  size_t n = strlen(note);
  snprintf(note + n, size - n, " --%s %s", tc_options[opt].name, text);
}

/* spec/training.md §4-5 where jit/main_jit.py differs from ldm/train.py
 * in what irepa acts on. The lr follows the batch size chosen, as
 * main_jit.py computes it after parsing. Epoch-based step counts need the
 * data set's size: train_sit.c sets those. */
void tc_jit_defaults(TrainConfig *c, const bool *seen, FILE *out) {
  static const struct {
    int opt;
    const char *text;
  } jit[] = {
      {TC_OPT_proj_kwargs_kernel_size, "3"}, {TC_OPT_zscore_alpha, "0.8"}, {TC_OPT_adam_beta2, "0.95"},
      {TC_OPT_max_grad_norm, "0"}, /* no clipping */
      {TC_OPT_warmup_epochs, "5"},           {TC_OPT_epochs, "200"},       {TC_OPT_batch_size, "128"},
      {TC_OPT_sampling_steps, "0"}, /* --sample_grid False */
      {TC_OPT_hflip, "true"},
      {TC_OPT_mixed_precision, "bf16"}, /* main_jit.py runs under bf16 autocast */
  };
  char note[512] = "", lr[48];
  for (size_t i = 0; i < COUNT(jit); i++) jit_default(c, seen, jit[i].opt, jit[i].text, note, sizeof note);
  format_float(c->blr * (double)c->batch_size / 256.0, lr, sizeof lr);
  jit_default(c, seen, TC_OPT_learning_rate, lr, note, sizeof note);
  if (out && *note) fprintf(out, "train: the jit trainer's defaults:%s\n", note);
}

void tc_warn(const TrainConfig *c, FILE *out) {
  TrainConfig *d = malloc(sizeof *d);
  if (!d) return;
  tc_defaults(d);
  if (!tc_is_jit(c) && (c->blr != d->blr || c->P_mean != d->P_mean || c->P_std != d->P_std || c->t_eps != d->t_eps ||
                        c->noise_scale != d->noise_scale || c->attn_dropout != d->attn_dropout ||
                        c->proj_dropout != d->proj_dropout))
    fputs("irepa-run: warning: --blr, --P-mean, --P-std, --t-eps, --noise-scale, --attn-dropout and --proj-dropout "
          "are for JiT models only; ignored for this model\n", out);
  if (!strcmp(c->report_to, "wandb"))
    fputs("irepa-run: warning: --report-to wandb is not supported; TensorBoard files are written instead\n", out);
  if (c->cls_token_weight != d->cls_token_weight)
    fputs("irepa-run: warning: --cls-token-weight is ignored, as in the reference\n", out);
  if (c->zscore_proj_skip_std != d->zscore_proj_skip_std)
    fputs("irepa-run: warning: --zscore-proj-skip-std is ignored, as in the reference\n", out);
  free(d);
}
