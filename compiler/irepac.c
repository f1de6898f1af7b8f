/* irepac.c: the compiler's command line. Parses flags, runs the passes a
 * command needs, prints diagnostics and chooses the exit status:
 * 0 success, 1 errors in the program, 2 bad usage or unreadable input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff.h"
#include "flops.h"
#include "optim.h"
#include "elab.h"
#include "cuda_api.h"
#include "irx.h"
#include "program.h"
#include "parse.h"

#ifndef IREPA_VERSION
#define IREPA_VERSION "0.0.0-dev"
#endif

enum { EXIT_PROGRAM_ERROR = 1, EXIT_USAGE = 2, MAX_INCLUDES = 64 };

static const char usage[] =
    "usage: irepac COMMAND [options] FILE.irg\n"
    "\n"
    "commands:\n"
    "  check FILE.irg              parse and elaborate; report errors\n"
    "  dump --stage=STAGE FILE.irg print a compiler stage: ast, ir, grad\n"
    "                              (grad: the entry of --entry with its backward\n"
    "                              graph; its first output must be the loss),\n"
    "                              fused (the kernels the ops are grouped into),\n"
    "                              plan (buffers: lifetimes, offsets, arena size),\n"
    "                              c, cuda (the generated kernel source)\n"
    "  params FILE.irg             list the model's parameters and their total\n"
    "  compile FILE.irg -o OUT.irx compile to a program irepa-run loads: kernels,\n"
    "                              launch lists, buffer plans, parameter table\n"
    "\n"
    "options:\n"
    "  -I DIR          add DIR to the import search path (repeatable)\n"
    "  --entry NAME    only this entry point (dump --stage=ir, check)\n"
    "  --loc           show source locations in dumps\n"
    "  --grad          with dump --stage=fused|plan|c|cuda and compile: add each entry's\n"
    "                  backward graph (its first output must be the loss)\n"
    "  --train ENTRY   with compile and dump --stage=ir|fused|plan|c|cuda: add the entry\n"
    "                  train_step, one training step on the loss ENTRY (its first\n"
    "                  output): gradients, clipping, AdamW and EMA, state in place\n"
    "  -o FILE         compile: the .irx to write (replaced atomically)\n"
    "  --backend B     compile: kernels for c, cuda or all (default all)\n"
    "  --arch LIST     compile: also compile the CUDA kernels to CUBIN with NVRTC for\n"
    "                  these architectures ahead of time, e.g. sm_80,sm_90\n"
    "  -h, --help      show this help\n"
    "  --version       show the version\n";

typedef struct {
  const char *command;
  const char *file;
  const char *stage;
  const char *entry;
  bool with_locs;
  bool grad;
  const char *train;
  const char *output;
  const char *backend;
  const char *arch;
  const char *includes[MAX_INCLUDES];
  int ninclude;
} Options;

static int usage_error(const char *fmt, const char *arg) {
  fputs("irepac: error: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (see 'irepac --help')\n", stderr);
  return EXIT_USAGE;
}

/* Stages after fusion, which take --grad. */
static bool is_back_stage(const char *stage) {
  return !strcmp(stage, "fused") || !strcmp(stage, "plan") || !strcmp(stage, "c") || !strcmp(stage, "cuda");
}

/* Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, Options *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      return 0;
    }
    if (!strcmp(a, "--version")) {
      printf("irepac %s\n", IREPA_VERSION);
      return 0;
    }
    if (!strcmp(a, "--loc")) o->with_locs = true;
    else if (!strcmp(a, "--grad")) o->grad = true;
    else if ((v = cli_option_value("--stage", argc, argv, &i))) {
      if (!*v) return usage_error("%s needs a value", "--stage");
      o->stage = v;
    } else if ((v = cli_option_value("-o", argc, argv, &i))) {
      if (!*v) return usage_error("%s needs a file", "-o");
      o->output = v;
    } else if ((v = cli_option_value("--backend", argc, argv, &i))) {
      if (strcmp(v, "c") && strcmp(v, "cuda") && strcmp(v, "all"))
        return usage_error("unknown backend '%s' (c, cuda, all)", v);
      o->backend = v;
    } else if ((v = cli_option_value("--arch", argc, argv, &i))) {
      if (!*v) return usage_error("%s needs a list such as sm_80,sm_90", "--arch");
      o->arch = v;
    } else if ((v = cli_option_value("--train", argc, argv, &i))) {
      if (!*v) return usage_error("%s needs the loss entry's name", "--train");
      o->train = v;
    } else if ((v = cli_option_value("--entry", argc, argv, &i))) {
      if (!*v) return usage_error("%s needs a value", "--entry");
      o->entry = v;
    } else if ((v = cli_include_dir(argc, argv, &i))) {
      if (!*v) return usage_error("%s needs a directory", "-I");
      if (o->ninclude == MAX_INCLUDES) return usage_error("too many %s options", "-I");
      o->includes[o->ninclude++] = v;
    } else if (a[0] == '-' && a[1] != '\0') {
      return usage_error("unknown option '%s'", a);
    } else if (!o->command) {
      o->command = a;
    } else if (!o->file) {
      o->file = a;
    } else {
      return usage_error("unexpected argument '%s'", a);
    }
  }
  if (!o->command) return usage_error("%s", "no command given");
  bool compile = !strcmp(o->command, "compile");
  if (strcmp(o->command, "check") && strcmp(o->command, "dump") && strcmp(o->command, "params") && !compile)
    return usage_error("unknown command '%s'", o->command);
  if (compile && !o->output) return usage_error("%s", "compile needs -o OUT.irx");
  if (!compile && (o->output || o->backend || o->arch))
    return usage_error("-o, --backend and --arch are options of compile, not of %s", o->command);
  if (compile && o->arch && o->backend && !strcmp(o->backend, "c"))
    return usage_error("%s", "--arch compiles CUDA kernels; it does not go with --backend c");
  if (compile && o->grad && !o->entry)
    return usage_error("%s", "compile --grad needs --entry NAME (the entry whose first output is the loss)");
  if (!o->file) return usage_error("%s needs a FILE.irg", o->command);
  if (o->stage && strcmp(o->command, "dump"))
    return usage_error("--stage is an option of dump, not of %s", o->command);
  if (o->entry && !strcmp(o->command, "params"))
    return usage_error("%s", "params lists the whole model's parameters; --entry does not apply");
  if (o->grad && !compile && !o->stage) return usage_error("%s", "--grad goes with dump or compile");
  if (o->train && o->grad) return usage_error("%s", "--train already differentiates its entry; drop --grad");
  if (o->train && !compile && !(o->stage && (is_back_stage(o->stage) || !strcmp(o->stage, "ir"))))
    return usage_error("%s", "--train goes with compile and dump --stage=ir|fused|plan|c|cuda");
  if (!strcmp(o->command, "dump")) {
    if (!o->stage) return usage_error("%s", "dump needs --stage=ast|ir|grad");
    if (!is_back_stage(o->stage) && strcmp(o->stage, "ast") && strcmp(o->stage, "ir") && strcmp(o->stage, "grad"))
      return usage_error("unknown stage '%s' (stages: ast, ir, grad, fused, plan, c, cuda)", o->stage);
    if (o->grad && !is_back_stage(o->stage))
      return usage_error("%s", "--grad goes with dump --stage=fused|plan|c|cuda");
    if (o->grad && !o->entry)
      return usage_error("%s", "dump --grad needs --entry NAME");
    if (!strcmp(o->stage, "grad") && !o->entry)
      return usage_error("%s", "dump --stage=grad needs --entry NAME");
  }
  return -1;
}

/* The root file must be a readable regular file: a usage error if not. */
static int check_root_file(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "irepac: error: cannot read '%s': %s\n", path, strerror(errno));
    return EXIT_USAGE;
  }
  if (S_ISDIR(st.st_mode)) {
    fprintf(stderr, "irepac: error: cannot read '%s': is a directory\n", path);
    return EXIT_USAGE;
  }
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "irepac: error: cannot read '%s': %s\n", path, strerror(errno));
    return EXIT_USAGE;
  }
  fclose(f);
  return -1;
}

static void print_summary(const Options *o, const Program *prog, const IrProgram *ir) {
  if (!elab_has_model(prog)) {
    int modules = 0, fns = 0;
    const AstFile *f = prog->files[0];
    for (int i = 0; i < f->decls.n; i++) {
      modules += f->decls.items[i]->kind == D_MODULE;
      fns += f->decls.items[i]->kind == D_FN;
    }
    printf("%s: ok (library: %d module%s, %d function%s; no model to elaborate)\n", o->file,
           modules, modules == 1 ? "" : "s", fns, fns == 1 ? "" : "s");
    return;
  }
  int64_t total = 0;
  for (int i = 0; i < ir->params.n; i++) {
    Dim n;
    shape_numel(&ir->params.items[i].shape, &n);
    total += n.n;
  }
  printf("%s: ok (model %s: %d parameter tensors, %lld elements; entries:", o->file,
         ir->root_module, ir->params.n, (long long)total);
  for (int i = 0; i < ir->nentries; i++)
    printf("%s %s [%d nodes]", i ? "," : "", ir->entries[i]->name, ir->entries[i]->n);
  printf("%s)\n", ir->nentries ? "" : " none");
}

static int dump_back_stage(const Options *o, Arena *arena, DiagList *diags, IrProgram *ir) {
  CompileOptions copt = {o->grad, !strcmp(o->stage, "c"), !strcmp(o->stage, "cuda")};
  CompiledProgram cp;
  if (!program_compile(arena, diags, ir, &copt, &cp)) return EXIT_PROGRAM_ERROR;
  if (cp.c_source || cp.cuda_source) {
    fputs(cp.c_source ? cp.c_source : cp.cuda_source, stdout);
    return 0;
  }
  for (int i = 0; i < cp.nentries; i++) {
    if (i) fputc('\n', stdout);
    if (!strcmp(o->stage, "fused")) fuse_print(stdout, &cp.entries[i].sched);
    else plan_print(stdout, &cp.entries[i].sched, &cp.entries[i].plan);
  }
  return 0;
}

static uint64_t sources_hash(const SourceSet *sources) {
  uint64_t h = FNV1A64_INIT;
  for (int i = 0; i < sources->n; i++)
    if (sources->files[i]->text) h = fnv1a64_update(h, sources->files[i]->text, sources->files[i]->len);
  return h;
}

/* CUBINs for each architecture of the comma-separated list. */
static bool compile_cubins(const char *list, const char *source, XCubin *out, int *n, bool *failed_compile) {
  char *copy = strdup(list), *save = NULL;
  bool ok = copy != NULL;
  for (char *arch = copy ? strtok_r(copy, ",", &save) : NULL; ok && arch; arch = strtok_r(NULL, ",", &save)) {
    if (*n == 8) {
      fprintf(stderr, "irepac: error: at most 8 architectures\n");
      ok = false;
      break;
    }
    RtError err;
    if (!rtc_compile_cached(source, "program", arch, &out[*n].data, &out[*n].size, &err)) {
      fprintf(stderr, "irepac: error: NVRTC for %s: %s\n", arch, err.msg);
      *failed_compile = true;
      ok = false;
      break;
    }
    out[(*n)++].name = strdup(arch);
  }
  free(copy);
  return ok;
}

static void print_compiled(const Options *o, const CompiledProgram *cp) {
  for (int i = 0; i < cp->nentries; i++) {
    const CompiledEntry *e = &cp->entries[i];
    const Plan *p = &e->plan;
    printf("%s: entry %s: %d ops in %d kernels; arena %lld + %lld*B bytes (live peak %lld + %lld*B, "
           "without reuse %lld + %lld*B)\n",
           o->output, e->g->name, e->sched.unfused, e->sched.n, (long long)p->fixed_bytes,
           (long long)p->per_batch_bytes, (long long)p->live_fixed, (long long)p->live_per_batch,
           (long long)p->sum_fixed, (long long)p->sum_per_batch);
  }
}

/* Each entry's forward FLOPs, counted before compile appends backward
 * graphs; a training step's forward is that of its loss entry. */
static FlopCount *count_forward(const Options *o, Arena *arena, DiagList *diags, const IrProgram *ir) {
  FlopCount *fwd = arena_alloc(arena, sizeof(FlopCount) * (size_t)(ir->nentries + 1));
  for (int i = 0; fwd && i < ir->nentries; i++)
    if (!flops_count(diags, ir->entries[i], &fwd[i])) return NULL;
  for (int i = 0; fwd && o->train && i < ir->nentries; i++)
    if (!strcmp(ir->entries[i]->name, "train_step"))
      for (int j = 0; j < ir->nentries; j++)
        if (!strcmp(ir->entries[j]->name, o->train)) fwd[i] = fwd[j];
  return fwd;
}

/* One line per entry: forward FLOPs per sample, the multiply-adds of its
 * GEMMs (the figure DiT's paper calls Gflops), and the whole entry with
 * its backward graph and optimiser (docs/performance.md). */
static bool print_flops(const Options *o, DiagList *diags, const CompiledProgram *cp, const FlopCount *fwd) {
  for (int i = 0; i < cp->nentries; i++) {
    FlopCount all;
    if (!flops_count(diags, cp->entries[i].g, &all)) return false;
    FlopTerm f = flops_total(&fwd[i]), w = flops_total(&all);
    char a[32], b[32], c[32], d[32];
    printf("%s: entry %s: forward %s/sample (%s in matmul, conv and attention); whole entry %s/sample + %s\n",
           o->output, cp->entries[i].g->name, flops_format((double)f.per_batch, "FLOP", a, sizeof a),
           flops_format((double)fwd[i].gemm.per_batch / 2, "MAC", b, sizeof b),
           flops_format((double)w.per_batch, "FLOP", c, sizeof c), flops_format((double)w.fixed, "FLOP", d, sizeof d));
  }
  return true;
}

static int compile_program(const Options *o, Arena *arena, DiagList *diags, const SourceSet *sources, IrProgram *ir) {
  const char *backend = o->backend ? o->backend : "all";
  CompileOptions copt = {o->grad, strcmp(backend, "cuda") != 0, strcmp(backend, "c") != 0};
  CompiledProgram cp;
  FlopCount *fwd = count_forward(o, arena, diags, ir);
  if (!fwd || !program_compile(arena, diags, ir, &copt, &cp)) return EXIT_PROGRAM_ERROR;
  XCubin cubins[8] = {0};
  int ncubins = 0;
  bool nvrtc_failed = false;
  bool ok = !o->arch || compile_cubins(o->arch, cp.cuda_source, cubins, &ncubins, &nvrtc_failed);
  IrxMeta meta = {o->file, sources_hash(sources), cubins, ncubins};
  RtError err;
  if (ok && !irx_write(o->output, &cp, &meta, &err)) {
    fprintf(stderr, "irepac: error: %s\n", err.msg);
    ok = false;
  }
  for (int i = 0; i < ncubins; i++) {
    free(cubins[i].data);
    free(cubins[i].name);
  }
  if (!ok) return nvrtc_failed ? EXIT_PROGRAM_ERROR : EXIT_USAGE;
  print_compiled(o, &cp);
  return print_flops(o, diags, &cp, fwd) ? 0 : EXIT_PROGRAM_ERROR;
}

static int run(Options *o, Arena *arena, SourceSet *sources, DiagList *diags) {
  ParseOptions popt = {(const char **)o->includes, o->ninclude};
  Program prog;
  bool ok = irg_load_program(arena, diags, o->file, &popt, &prog);
  if (!strcmp(o->command, "dump") && !strcmp(o->stage, "ast")) {
    if (prog.nfiles > 0) ast_print(stdout, prog.files[0], sources, o->with_locs);
    return ok ? 0 : EXIT_PROGRAM_ERROR;
  }
  if (!ok) return EXIT_PROGRAM_ERROR;
  bool params = !strcmp(o->command, "params");
  ElabOptions eopt = {o->entry, params};
  IrProgram ir;
  if (!elab_program(arena, diags, &prog, &eopt, &ir)) return EXIT_PROGRAM_ERROR;
  if ((params || !strcmp(o->command, "dump") || !strcmp(o->command, "compile")) && !elab_has_model(&prog)) {
    diag_error(diags, (SrcLoc){prog.files[0]->file, 0, 0},
               "declares no model (add: model = SomeModule(...);)");
    return EXIT_PROGRAM_ERROR;
  }
  bool dump = !strcmp(o->command, "dump");
  if (o->train && !optim_add_train_step(arena, diags, &ir, o->train)) return EXIT_PROGRAM_ERROR;
  if (dump && !strcmp(o->stage, "grad"))
    for (int i = 0; i < ir.nentries; i++)
      if (!ad_build_grad(arena, diags, ir.entries[i], &ir.params, NULL)) return EXIT_PROGRAM_ERROR;
  if (dump && is_back_stage(o->stage)) return dump_back_stage(o, arena, diags, &ir);
  if (!strcmp(o->command, "compile")) return compile_program(o, arena, diags, sources, &ir);
  if (params) ir_print_params(stdout, &ir.params);
  else if (!strcmp(o->command, "dump"))
    for (int i = 0; i < ir.nentries; i++) {
      if (i) fputc('\n', stdout);
      ir_print_graph(stdout, ir.entries[i], o->with_locs, sources);
    }
  else print_summary(o, &prog, &ir);
  return 0;
}

int main(int argc, char **argv) {
  Options o = {0};
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0) return rc;
  rc = check_root_file(o.file);
  if (rc >= 0) return rc;
  Arena arena;
  arena_init(&arena);
  arena.limit_bytes = (size_t)4 << 30;
  SourceSet sources = {0};
  DiagList diags;
  diag_init(&diags, &arena, &sources);
  rc = run(&o, &arena, &sources, &diags);
  fflush(stdout);
  diag_print(stderr, &diags);
  if (rc == 0 && diags.nerrors) rc = EXIT_PROGRAM_ERROR;
  arena_free(&arena);
  return rc;
}
