/* irepa-run.c: the runtime's command line. For now one command, `run`:
 * run one entry of an .irg source (compiled here, optionally with its
 * backward graph) or of a compiled .irx program, on the reference
 * interpreter or a compiled backend, and write every output to a
 * safetensors file.
 * Exit status: 0 success, 1 a bad program or bad data, 2 bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff.h"
#include "bench_cmd.h"
#include "elab.h"
#include "eval_cmd.h"
#include "plot_cmd.h"
#include "exec.h"
#include "init.h"
#include "interp.h"
#include "safetensors.h"
#include "sample_cmd.h"
#include "spatial_cmd.h"
#include "train_cmd.h"

#ifndef IREPA_VERSION
#define IREPA_VERSION "0.0.0-dev"
#endif

enum { EXIT_DATA = 1, EXIT_USAGE = 2, MAX_INCLUDES = 64 };

static const char usage[] =
    "usage: irepa-run run FILE.irg|FILE.irx --entry NAME --out OUT.safetensors [options]\n"
    "       irepa-run train [options]           REPA / iREPA training (train --help)\n"
    "       irepa-run train-encoder [options]   the Fashion-MNIST encoder (train-encoder --help)\n"
    "       irepa-run eval S.npz REF.npz [opts]  FID, IS, precision/recall of samples (eval --help)\n"
    "       irepa-run sample --ckpt C [options] samples of a checkpoint (alias generate; sample --help)\n"
    "       irepa-run plot --out C.png S.tsv... a PNG line/scatter chart of series (plot --help)\n"
    "       irepa-run bench FILE --batch N [o] throughput, FLOP rate, memory of an entry (bench --help)\n"
    "       irepa-run spatial-metrics [opts]  LDS, CDS, SRSS, RMSC of patch tokens (spatial-metrics --help)\n"
    "       irepa-run spatial-corr T.tsv      spatial metrics against FID, and their figure (spatial-corr --help)\n"
    "       irepa-run viz-spatialnorm [opts]  cosine maps without/with spatial z-score (viz-spatialnorm --help)\n"
    "\n"
    "Runs one entry point of a model (an .irg source, or a program compiled by\n"
    "irepac compile) and writes every output (out.0, out.1, ...; with --grad\n"
    "also grad.<parameter>).\n"
    "\n"
    "options:\n"
    "  --entry NAME         the entry point to run (required)\n"
    "  --params FILE        parameter values, by state_dict name (safetensors)\n"
    "  --init               initialise the parameters by their rules instead\n"
    "  --inputs FILE        entry inputs, by argument name (safetensors)\n"
    "  --out FILE           where to write the outputs (refused if it exists)\n"
    "  --force              overwrite --out if it exists\n"
    "  --grad               also differentiate output 0 (the loss) w.r.t. the\n"
    "                       trainable parameters\n"
    "  --wrt A,B            with --grad: also w.r.t. these inputs\n"
    "  --backend B          interp (the reference interpreter; default for .irg),\n"
    "                       c (generated C on the CPU), cuda (generated CUDA on the\n"
    "                       GPU), cuda-emu (the CUDA kernels emulated on the CPU),\n"
    "                       auto (cuda where a GPU is present, else c; default for .irx)\n"
    "  --precision f64|f32  interpreter arithmetic: double (default), or each\n"
    "                       result rounded to its dtype\n"
    "  --seed N             seed of --init and of random ops (default 0)\n"
    "  -I DIR               import search path (repeatable)\n"
    "  -h, --help, --version\n";

typedef struct {
  const char *file, *entry, *params, *inputs, *out, *wrt, *backend, *precision;
  bool init, grad, force;
  uint64_t seed;
  const char *includes[MAX_INCLUDES];
  int ninclude;
} Options;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepa-run: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepa-run --help')\n", stderr);
  return EXIT_USAGE;
}

static int parse_flag(Options *o, int argc, char **argv, int *i) {
  const char *a = argv[*i], *v;
  struct { const char *name; const char **dst; } valued[] = {
      {"--entry", &o->entry}, {"--params", &o->params}, {"--inputs", &o->inputs},
      {"--out", &o->out}, {"--wrt", &o->wrt}, {"--backend", &o->backend},
      {"--precision", &o->precision},
  };
  for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
    if ((v = cli_option_value(valued[k].name, argc, argv, i))) {
      if (!*v) return usage_error("%s needs a value", valued[k].name);
      *valued[k].dst = v;
      return -1;
    }
  if ((v = cli_option_value("--seed", argc, argv, i))) {
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (!*v || *end || errno) return usage_error("--seed needs a non-negative integer, not '%s'", v);
    o->seed = s;
  } else if (!strcmp(a, "--init")) o->init = true;
  else if (!strcmp(a, "--grad")) o->grad = true;
  else if (!strcmp(a, "--force")) o->force = true;
  else if ((v = cli_include_dir(argc, argv, i))) {
    if (!*v) return usage_error("%s needs a directory", "-I");
    if (o->ninclude == MAX_INCLUDES) return usage_error("too many %s options", "-I");
    o->includes[o->ninclude++] = v;
  } else return usage_error("unknown option '%s'", a);
  return -1;
}

static int parse_args(int argc, char **argv, Options *o) {
  if (argc < 2) return usage_error("%s", "no command given");
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    fputs(usage, stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("irepa-run %s\n", IREPA_VERSION);
    return 0;
  }
  if (strcmp(argv[1], "run"))
    return usage_error("unknown command '%s' (commands: run, train, train-encoder, sample, eval, plot, bench, "
                       "spatial-metrics, spatial-corr, viz-spatialnorm)",
                       argv[1]);
  for (int i = 2; i < argc; i++) {
    if (argv[i][0] == '-' && argv[i][1]) {
      int rc = parse_flag(o, argc, argv, &i);
      if (rc >= 0) return rc;
    } else if (!o->file) o->file = argv[i];
    else return usage_error("unexpected argument '%s'", argv[i]);
  }
  if (!o->file) return usage_error("%s", "run needs a FILE.irg");
  if (!o->entry) return usage_error("%s", "run needs --entry NAME");
  if (!o->out) return usage_error("%s", "run needs --out FILE.safetensors");
  if (o->init && o->params) return usage_error("%s", "give --params or --init, not both");
  if (o->wrt && !o->grad) return usage_error("%s", "--wrt needs --grad");
  if (o->backend && strcmp(o->backend, "interp") && strcmp(o->backend, "c") && strcmp(o->backend, "cuda") &&
      strcmp(o->backend, "cuda-emu") && strcmp(o->backend, "auto"))
    return usage_error("unknown backend '%s' (interp, c, cuda, cuda-emu, auto)", o->backend);
  if (o->precision && o->backend && strcmp(o->backend, "interp"))
    return usage_error("%s", "--precision is an option of the interpreter (--backend interp)");
  if (o->precision && strcmp(o->precision, "f64") && strcmp(o->precision, "f32"))
    return usage_error("unknown precision '%s' (f64, f32)", o->precision);
  struct stat st;
  if (!o->force && stat(o->out, &st) == 0)
    return usage_error("'%s' exists; pass --force to overwrite it", o->out);
  return -1;
}

/* Compiles the entry (and its gradient); false with diagnostics printed. */
static bool compile(const Options *o, Arena *arena, DiagList *diags, IrProgram *ir) {
  ParseOptions popt = {(const char **)o->includes, o->ninclude};
  Program prog;
  ElabOptions eopt = {o->entry, false};
  if (!irg_load_program(arena, diags, o->file, &popt, &prog) ||
      !elab_program(arena, diags, &prog, &eopt, ir))
    return false;
  if (ir->nentries != 1) {
    diag_error(diags, NO_LOC, "%s declares no model with an entry '%s'", o->file, o->entry);
    return false;
  }
  if (!o->grad) return true;
  const char *names[64];
  int n = 0;
  char *list = o->wrt ? arena_strdup(arena, o->wrt) : NULL;
  for (char *t = list ? strtok(list, ",") : NULL; t && n < 64; t = strtok(NULL, ",")) names[n++] = t;
  AdOptions ad = {0, names, n};
  return ad_build_grad(arena, diags, ir->entries[0], &ir->params, &ad);
}

static bool init_params(const ParamTable *table, uint64_t seed, TensorList *out, RtError *err) {
  for (int i = 0; i < table->n; i++) {
    const ParamInfo *p = &table->items[i];
    int64_t shape[IR_MAX_RANK];
    for (int k = 0; k < p->shape.rank; k++) shape[k] = p->shape.d[k].n;
    Tensor *t = tensor_new(p->name, p->dtype, p->shape.rank, shape, err);
    if (!t || !tensorlist_add(out, t, err) || !init_param(t, p, seed, err)) {
      if (t && (out->n == 0 || out->items[out->n - 1] != t)) tensor_free(t);
      return false;
    }
  }
  return true;
}

/* The program to run: the interpreter's graph, or a compiled program. */
typedef struct {
  const ParamTable *params;
  const char *model;
  const Graph *graph;      /* backend interp */
  XProgram prog;           /* other backends */
  const XEntry *entry;
} Target;

/* Runs the target on the interpreter or a compiled backend. */
static bool execute(const Options *o, Target *t, const TensorList *params, const TensorList *inputs,
                    TensorList *outputs, RtError *err) {
  if (t->graph) {
    InterpOptions iopt = {o->precision && !strcmp(o->precision, "f32") ? INTERP_F32 : INTERP_F64, o->seed};
    return interp_run(t->graph, t->params, params, inputs, &iopt, outputs, err);
  }
  Backend *b = backend_open(o->backend ? o->backend : "auto", err);
  if (!b) return false;
  ExecOptions eopt = {o->seed};
  bool ok = exec_run(b, &t->prog, t->entry, params, inputs, &eopt, outputs, err);
  backend_close(b);
  return ok;
}

static int run(const Options *o, Target *tg) {
  RtError err = {{0}};
  TensorList owned = {0}, outputs = {0}, empty = {0};
  StFile *pf = NULL, *inf = NULL;
  const TensorList *params = &empty, *inputs = &empty;
  int rc = EXIT_DATA;
  if (o->params) {
    if (!(pf = st_open(o->params, &err))) goto done;
    params = st_tensors(pf);
  } else if (o->init) {
    if (!init_params(tg->params, o->seed, &owned, &err)) goto done;
    params = &owned;
  } else if (tg->params->n > 0) {
    rt_fail(&err, "model %s has %d parameters: give --params FILE or --init", tg->model, tg->params->n);
    goto done;
  }
  if (o->inputs) {
    if (!(inf = st_open(o->inputs, &err))) goto done;
    inputs = st_tensors(inf);
  }
  if (!execute(o, tg, params, inputs, &outputs, &err)) goto done;
  const char *meta[] = {"entry", o->entry, "source", o->file, "producer", "irepa-run " IREPA_VERSION, NULL};
  if (!st_write(o->out, outputs.items, outputs.n, meta, &err)) goto done;
  printf("%s: %d outputs written\n", o->out, outputs.n);
  rc = 0;
done:
  if (rc) fprintf(stderr, "irepa-run: error: %s\n", err.msg);
  tensorlist_free(&outputs);
  tensorlist_free(&owned);
  st_close(pf);
  st_close(inf);
  return rc;
}

/* Whether path is a compiled program (by its magic bytes, not its name). */
static bool is_program_file(const char *path) {
  unsigned char magic[8];
  FILE *f = fopen(path, "rb");
  bool yes = f && fread(magic, 1, 8, f) == 8 && irx_is_irx(magic, 8);
  if (f) fclose(f);
  return yes;
}

/* Compiles the .irg entry for a compiled backend, through the .irx bytes,
 * so that what runs is exactly what `irepac compile` would write. */
static bool compile_program(const Options *o, Arena *arena, DiagList *diags, IrProgram *ir, Target *t) {
  const char *b = o->backend;
  CompileOptions copt = {false, !strcmp(b, "c") || !strcmp(b, "auto"), strcmp(b, "c") != 0};
  CompiledProgram cp;
  if (!program_compile(arena, diags, ir, &copt, &cp)) return false;
  IrxMeta meta = {o->file, 0, NULL, 0};
  unsigned char *bytes;
  size_t len;
  RtError err;
  bool ok = irx_serialize(&cp, &meta, &bytes, &len, &err);
  if (ok) {
    ok = irx_parse(bytes, len, o->file, &t->prog, &err);
    free(bytes);
  }
  if (!ok) diag_error(diags, NO_LOC, "%s", err.msg);
  t->entry = ok ? &t->prog.entries[0] : NULL;
  return ok;
}

static int load_program(const Options *o, Target *t) {
  RtError err;
  if (o->grad || o->wrt || o->ninclude || o->precision) {
    fprintf(stderr, "irepa-run: error: %s is a compiled program: --grad, --wrt, -I and --precision apply to .irg "
                    "sources (compile gradients in with irepac compile --grad)\n", o->file);
    return EXIT_USAGE;
  }
  if (o->backend && !strcmp(o->backend, "interp")) {
    fprintf(stderr, "irepa-run: error: %s is a compiled program; the interpreter runs .irg sources\n", o->file);
    return EXIT_USAGE;
  }
  if (!irx_load(o->file, &t->prog, &err)) {
    fprintf(stderr, "irepa-run: error: %s\n", err.msg);
    return EXIT_DATA;
  }
  t->params = &t->prog.params;
  t->model = t->prog.model;
  if (!(t->entry = irx_entry(&t->prog, o->entry))) {
    fprintf(stderr, "irepa-run: error: %s has no entry named '%s'\n", o->file, o->entry);
    return EXIT_DATA;
  }
  return -1;
}

int main(int argc, char **argv) {
  diag_program_name = "irepa-run";
  /* OpenMP threads that spin while waiting for work steal the CPU from the
   * thread they wait for whenever anything else runs on the machine (3x
   * slower steps on 2 busy cores); libgomp reads this when the first
   * kernel module loads. The user's own setting wins. */
  if (!getenv("GOMP_SPINCOUNT")) setenv("OMP_WAIT_POLICY", "passive", 0);
  if (argc > 1 && !strcmp(argv[1], "train")) return train_command(argc - 2, argv + 2);
  if (argc > 1 && !strcmp(argv[1], "train-encoder")) return train_encoder_command(argc - 2, argv + 2);
  if (argc > 1 && !strcmp(argv[1], "eval")) return eval_command(argc - 2, argv + 2);
  if (argc > 1 && !strcmp(argv[1], "plot")) return plot_command(argc - 2, argv + 2);
  if (argc > 1 && !strcmp(argv[1], "bench")) return bench_command(argc - 2, argv + 2);
  int spatial_rc = argc > 1 ? spatial_command(argc - 1, argv + 1) : -1; /* spatial-metrics, spatial-corr, viz-spatialnorm */
  if (spatial_rc >= 0) return spatial_rc;
  if (argc > 1 && (!strcmp(argv[1], "sample") || !strcmp(argv[1], "generate")))
    return sample_command(argc - 2, argv + 2);
  Options o = {0};
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0) return rc;
  Target t = {0};
  if (is_program_file(o.file)) {
    rc = load_program(&o, &t);
    if (rc < 0) rc = run(&o, &t);
    irx_free(&t.prog);
    return rc;
  }
  Arena arena;
  arena_init(&arena);
  SourceSet sources = {0};
  DiagList diags;
  diag_init(&diags, &arena, &sources);
  IrProgram ir;
  bool interp = !o.backend || !strcmp(o.backend, "interp");
  if (!compile(&o, &arena, &diags, &ir) || (!interp && !compile_program(&o, &arena, &diags, &ir, &t))) {
    diag_print(stderr, &diags);
    arena_free(&arena);
    irx_free(&t.prog);
    return EXIT_DATA;
  }
  t.params = &ir.params;
  t.model = ir.root_module;
  t.graph = interp ? ir.entries[0] : NULL;
  rc = run(&o, &t);
  irx_free(&t.prog);
  arena_free(&arena);
  return rc;
}
