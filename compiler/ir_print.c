/* ir_print.c: the deterministic text forms of the graph IR and of the
 * parameter table (`irepac dump --stage=ir`, `irepac params`). Nodes print
 * in topological order as %0, %1, ...; locations only on request. */
#include <inttypes.h>
#include <string.h>

#include "ir.h"

static void print_ints(FILE *out, const char *key, const int *v, int n) {
  fprintf(out, " %s=[", key);
  for (int i = 0; i < n; i++) fprintf(out, "%s%d", i ? "," : "", v[i]);
  fputc(']', out);
}

static void print_i64s(FILE *out, const char *key, const int64_t *v, int n) {
  fprintf(out, " %s=[", key);
  for (int i = 0; i < n; i++) fprintf(out, "%s%" PRId64, i ? "," : "", v[i]);
  fputc(']', out);
}

static void print_axes(FILE *out, uint32_t axes, bool keepdims) {
  fputs(" axes=[", out);
  bool first = true;
  for (int i = 0; i < 32; i++)
    if (axes & (1u << i)) {
      fprintf(out, "%s%d", first ? "" : ",", i);
      first = false;
    }
  fputc(']', out);
  if (keepdims) fputs(" keepdims", out);
}

static void print_attrs(FILE *out, const Node *n) {
  const Attr *a = &n->attr;
  switch (n->op) {
  case OP_INPUT:
  case OP_PARAM: fprintf(out, " %s", n->name); break;
  case OP_CONST: fprintf(out, " %.17g", a->value); break;
  case OP_UNIFORM:
  case OP_NORMAL: fprintf(out, " stream=%d", a->stream); break;
  case OP_BERNOULLI: fprintf(out, " p=%.17g stream=%d", a->value, a->stream); break;
  case OP_SUM:
  case OP_MEAN:
  case OP_RMAX: print_axes(out, a->axes, a->keepdims); break;
  case OP_PERMUTE: print_ints(out, "perm", a->perm, n->shape.rank); break;
  case OP_SLICE:
  case OP_PAD:
    print_i64s(out, "start", a->start, n->shape.rank);
    print_i64s(out, "step", a->step, n->shape.rank);
    break;
  case OP_CONCAT: fprintf(out, " axis=%d", a->axis); break;
  case OP_CONV2D:
  case OP_CONV2D_BWD_INPUT:
  case OP_CONV2D_BWD_WEIGHT:
    print_ints(out, "stride", a->stride, 2);
    print_ints(out, "pad", a->pad, 2);
    break;
  case OP_ATTENTION: fprintf(out, " scale=%.17g", a->value); break;
  case OP_ATTENTION_BWD: fprintf(out, " wrt=%d scale=%.17g", a->index, a->value); break;
  default: break;
  }
}

static void print_type(FILE *out, const Graph *g, DType t, const Shape *s) {
  StrBuf sb;
  sb_init(&sb);
  sb_printf(&sb, "%s[", dtype_name(t));
  for (int i = 0; i < s->rank; i++) {
    if (i) sb_putc(&sb, ',');
    ir_format_dim(&sb, s->d[i], g->sym_name);
  }
  sb_putc(&sb, ']');
  fputs(sb.data ? sb.data : "?", out);
  sb_free(&sb);
}

void ir_print_graph(FILE *out, const Graph *g, bool with_locs, const SourceSet *src) {
  fprintf(out, "entry %s(", g->name);
  for (int i = 0; i < g->ninputs; i++) {
    fprintf(out, "%s%s: ", i ? ", " : "", g->inputs[i]->name);
    print_type(out, g, g->inputs[i]->dtype, &g->inputs[i]->shape);
  }
  fputs(") -> (", out);
  for (int i = 0; i < g->noutputs; i++) {
    if (i) fputs(", ", out);
    print_type(out, g, g->outputs[i]->dtype, &g->outputs[i]->shape);
  }
  fputs(")\n", out);
  for (int i = 0; i < g->n; i++) {
    const Node *n = g->nodes[i];
    fprintf(out, "  %%%d = %s", n->id, op_name(n->op));
    for (int k = 0; k < n->nsrc; k++) fprintf(out, "%s%%%d", k ? ", " : " ", n->src[k]->id);
    print_attrs(out, n);
    fputs(" : ", out);
    print_type(out, g, n->dtype, &n->shape);
    if (with_locs && n->loc.file >= 0)
      fprintf(out, "  # %s:%d:%d", src_path(src, n->loc.file), n->loc.line, n->loc.col);
    fputc('\n', out);
  }
  fputs("  return", out);
  for (int i = 0; i < g->noutputs; i++) {
    fprintf(out, "%s%%%d", i ? ", " : " ", g->outputs[i]->id);
    if (g->updates && g->updates[i]) fprintf(out, " (-> %%%d)", g->updates[i]->id);
    else if (g->output_names && g->output_names[i]) fprintf(out, " (%s)", g->output_names[i]);
  }
  fputc('\n', out);
}

const char *ir_init_str(Arena *a, const InitRule *r) {
  switch (r->kind) {
  case INIT_ZEROS: return "zeros";
  case INIT_ONES: return "ones";
  case INIT_CONSTANT: return arena_printf(a, "constant(value=%.17g)", r->a);
  case INIT_NORMAL: return arena_printf(a, "normal(mean=%.17g,std=%.17g)", r->a, r->b);
  case INIT_UNIFORM: return arena_printf(a, "uniform(low=%.17g,high=%.17g)", r->a, r->b);
  case INIT_XAVIER_UNIFORM:
    return arena_printf(a, "xavier_uniform(fan_in=%" PRId64 ",fan_out=%" PRId64 ")",
                        r->fan_in, r->fan_out);
  case INIT_TORCH_DEFAULT: return arena_printf(a, "torch_default(fan_in=%" PRId64 ")", r->fan_in);
  case INIT_SINCOS_2D: return arena_printf(a, "sincos_2d(grid=%" PRId64 ")", r->grid);
  }
  return "?";
}

/* One line per parameter: name shape dtype init trainable|frozen numel, in
 * columns; then the total. Everything is static: parameters never carry the
 * batch symbol. */
void ir_print_params(FILE *out, const ParamTable *t) {
  Arena a;
  arena_init(&a);
  size_t wname = 4, wshape = 5, winit = 4;
  const char **shapes = arena_alloc(&a, sizeof(char *) * (size_t)(t->n + 1));
  const char **inits = arena_alloc(&a, sizeof(char *) * (size_t)(t->n + 1));
  if (!shapes || !inits) {
    arena_free(&a);
    return;
  }
  for (int i = 0; i < t->n; i++) {
    const ParamInfo *p = &t->items[i];
    const char *ty = ir_type_str(&a, p->dtype, &p->shape, NULL);
    shapes[i] = strchr(ty, '[');
    inits[i] = ir_init_str(&a, &p->init);
    if (strlen(p->name) > wname) wname = strlen(p->name);
    if (strlen(shapes[i]) > wshape) wshape = strlen(shapes[i]);
    if (strlen(inits[i]) > winit) winit = strlen(inits[i]);
  }
  fprintf(out, "# %-*s  %-*s  %-5s %-*s  %-9s %s\n", (int)wname - 2, "name",
          (int)wshape, "shape", "dtype", (int)winit, "init", "trainable", "numel");
  int64_t total = 0, trainable = 0;
  for (int i = 0; i < t->n; i++) {
    const ParamInfo *p = &t->items[i];
    Dim numel;
    shape_numel(&p->shape, &numel);
    total += numel.n;
    if (p->trainable) trainable += numel.n;
    fprintf(out, "%-*s  %-*s  %-5s %-*s  %-9s %" PRId64 "\n", (int)wname, p->name,
            (int)wshape, shapes[i], dtype_name(p->dtype), (int)winit, inits[i],
            p->trainable ? "trainable" : "frozen", numel.n);
  }
  fprintf(out, "total %" PRId64 " (%d tensors; trainable %" PRId64 ", frozen %" PRId64 ")\n",
          total, t->n, trainable, total - trainable);
  arena_free(&a);
}
