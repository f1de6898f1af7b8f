/* autocast.c: see autocast.h. The entry is rebuilt node by node in order;
 * a matmul becomes cast(matmul(cast(a, low), cast(b, low)), f32). */
#include "autocast.h"

#include <string.h>

static Graph *rebuild(Arena *a, DiagList *d, const Graph *g, DType low) {
  Graph *c = ir_new_graph(a, g->name, g->loc);
  Node **map = arena_alloc(a, sizeof(Node *) * ((size_t)g->n + 1));
  Node **inputs = arena_alloc(a, sizeof(Node *) * ((size_t)g->ninputs + 1));
  if (!c || !map || !inputs) return NULL;
  c->sym_name = g->sym_name;
  IrBuilder b = {a, d, c, 0};
  for (int i = 0; i < g->n; i++) {
    const Node *x = g->nodes[i];
    Node *src[8];
    for (int k = 0; k < x->nsrc && k < 8; k++) src[k] = map[x->src[k]->id];
    if (x->nsrc > 8) return NULL;
    if (x->op == OP_MATMUL && x->dtype == DT_F32) {
      Node *l = ir_cast(&b, src[0], low, x->loc), *r = l ? ir_cast(&b, src[1], low, x->loc) : NULL;
      Node *m = r ? ir_matmul(&b, l, r, x->loc) : NULL;
      map[i] = m ? ir_cast(&b, m, DT_F32, x->loc) : NULL;
    } else {
      map[i] = ir_copy_node(&b, x, src);
    }
    if (!map[i]) return NULL;
  }
  for (int i = 0; i < g->ninputs; i++) inputs[i] = map[g->inputs[i]->id];
  c->inputs = inputs;
  c->ninputs = g->ninputs;
  for (int i = 0; i < g->noutputs; i++) {
    if (!ir_add_output(a, c, map[g->outputs[i]->id], g->output_names[i])) return NULL;
    c->updates[i] = g->updates && g->updates[i] ? map[g->updates[i]->id] : NULL;
  }
  return c;
}

bool autocast_matmuls(Arena *a, DiagList *d, IrProgram *ir, const char *entry, DType low) {
  if (low != DT_BF16 && low != DT_F16) {
    diag_error(d, NO_LOC, "autocast: %s is not a low precision (bf16 or f16)", dtype_name(low));
    return false;
  }
  for (int i = 0; i < ir->nentries; i++)
    if (!strcmp(ir->entries[i]->name, entry)) {
      Graph *c = rebuild(a, d, ir->entries[i], low);
      if (!c) {
        diag_error(d, ir->entries[i]->loc, "autocast: out of memory rewriting entry %s", entry);
        return false;
      }
      ir->entries[i] = c;
      return ir_verify(d, c);
    }
  diag_error(d, NO_LOC, "autocast: no entry '%s'", entry);
  return false;
}
