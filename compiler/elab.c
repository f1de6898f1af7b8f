/* elab.c: elaboration of modules, statements and calls.
 *
 * Consumes the parsed Program; produces an IrProgram: the parameter table
 * of the root model (PyTorch state_dict order: a module's own parameters,
 * then its children in registration order) and one Graph per entry.
 * Module bodies run once per instance at compile time; methods run each
 * time they are called, tracing tensor operations into the current graph,
 * so loops unroll and ifs are decided at compile time. */
#include <string.h>

#include "elab_internal.h"

/* ---- values and scopes ------------------------------------------------ */

Value *new_value(Elab *E, ValueKind k) {
  Value *v = arena_alloc(E->arena, sizeof *v);
  if (v) v->kind = k;
  else diag_error(E->diags, NO_LOC, "out of memory during elaboration");
  return v;
}

Value *int_value(Elab *E, int64_t i) {
  Value *v = new_value(E, V_INT);
  if (v) v->i = i;
  return v;
}

Value *float_value(Elab *E, double f) {
  Value *v = new_value(E, V_FLOAT);
  if (v) v->f = f;
  return v;
}

Value *bool_value(Elab *E, bool b) { return b ? E->true_v : E->false_v; }

Value *tensor_value(Elab *E, Node *n) {
  if (!n) return NULL;
  Value *v = new_value(E, V_TENSOR);
  if (v) v->node = n;
  return v;
}

Env *env_new(Elab *E, Env *parent, int file, Instance *self) {
  Env *env = arena_alloc(E->arena, sizeof *env);
  if (!env) {
    diag_error(E->diags, NO_LOC, "out of memory during elaboration");
    return NULL;
  }
  env->parent = parent;
  env->file = file;
  env->self = self;
  return env;
}

bool env_set(Elab *E, Env *env, const char *name, Value *v) {
  for (int i = 0; i < env->n; i++)
    if (!strcmp(env->names[i], name)) {
      env->values[i] = v;
      return true;
    }
  if (env->n == env->cap) {
    int cap = env->cap ? env->cap * 2 : 8;
    const char **names = arena_grow(E->arena, env->names, (size_t)env->cap, (size_t)cap, sizeof *names);
    Value **values = arena_grow(E->arena, env->values, (size_t)env->cap, (size_t)cap, sizeof *values);
    if (!names || !values) {
      diag_error(E->diags, NO_LOC, "out of memory during elaboration");
      return false;
    }
    env->names = names;
    env->values = values;
    env->cap = cap;
  }
  env->names[env->n] = name;
  env->values[env->n++] = v;
  return true;
}

Value *env_get_local(Env *env, const char *name) {
  for (int i = 0; i < env->n; i++)
    if (!strcmp(env->names[i], name)) return env->values[i];
  return NULL;
}

const char *kind_name(ValueKind k) {
  static const char *const names[] = {
      [V_NONE] = "None", [V_INT] = "int", [V_FLOAT] = "float", [V_BOOL] = "bool",
      [V_STR] = "str", [V_LIST] = "list", [V_TUPLE] = "tuple", [V_DIM] = "dimension",
      [V_TENSOR] = "tensor", [V_PARAM] = "parameter", [V_INSTANCE] = "module instance",
      [V_MODULE] = "module", [V_FN] = "function", [V_METHOD] = "method",
      [V_BUILTIN] = "built-in function", [V_DTYPE] = "dtype", [V_SLICE] = "slice",
  };
  return names[k];
}

const char *a_kind(ValueKind k) {
  switch (k) {
  case V_NONE: return "None";
  case V_INT: return "an int";
  case V_FLOAT: return "a float";
  case V_BOOL: return "a bool";
  case V_STR: return "a str";
  case V_LIST: return "a list";
  case V_TUPLE: return "a tuple";
  case V_DIM: return "a dimension";
  case V_TENSOR: return "a tensor";
  case V_PARAM: return "a parameter";
  case V_INSTANCE: return "a module instance";
  case V_MODULE: return "a module";
  case V_FN: return "a function";
  case V_METHOD: return "a method";
  case V_BUILTIN: return "a built-in function";
  case V_DTYPE: return "a dtype";
  case V_SLICE: return "a slice";
  }
  return "a value";
}

/* A short description of a value for messages. */
const char *value_str(Elab *E, Value *v) {
  switch (v->kind) {
  case V_INT: return arena_printf(E->arena, "%lld", (long long)v->i);
  case V_FLOAT: {
    /* Keep a '.' so that 4.0 does not read as the int 4. */
    const char *s = arena_printf(E->arena, "%g", v->f);
    return s && !strpbrk(s, ".eni") ? arena_printf(E->arena, "%s.0", s) : s;
  }
  case V_BOOL: return v->i ? "true" : "false";
  case V_STR: return arena_printf(E->arena, "\"%s\"", v->s);
  case V_TENSOR:
    return ir_type_str(E->arena, v->node->dtype, &v->node->shape, E->ir.g ? E->ir.g->sym_name : NULL);
  case V_PARAM:
    return ir_type_str(E->arena, v->param->info.dtype, &v->param->info.shape, NULL);
  case V_INSTANCE:
    return arena_printf(E->arena, "instance of %s", v->inst->decl ? v->inst->decl->name : "a module list");
  case V_MODULE: return arena_printf(E->arena, "module %s", v->decl->name);
  case V_FN: return arena_printf(E->arena, "function %s", v->decl->name);
  case V_DTYPE: return dtype_name(v->dtype);
  default: return kind_name(v->kind);
  }
}

/* ---- global names ----------------------------------------------------- */

static AstFile *file_ast(Elab *E, int file) {
  for (int i = 0; i < E->prog->nfiles; i++)
    if (E->prog->files[i]->file == file) return E->prog->files[i];
  return NULL;
}

static Decl *find_decl(AstFile *f, const char *name) {
  if (!f) return NULL;
  for (int i = 0; i < f->decls.n; i++) {
    Decl *d = f->decls.items[i];
    if ((d->kind == D_MODULE || d->kind == D_FN) && !strcmp(d->name, name)) return d;
  }
  return NULL;
}

/* A file sees its own declarations and those of the files it imports. */
static Decl *find_global(Elab *E, int file, const char *name) {
  AstFile *f = file_ast(E, file);
  Decl *d = find_decl(f, name);
  if (d || !f) return d;
  for (int i = 0; i < f->decls.n; i++) {
    Decl *imp = f->decls.items[i];
    if (imp->kind == D_IMPORT && imp->import_file >= 0) {
      d = find_decl(file_ast(E, imp->import_file), name);
      if (d) return d;
    }
  }
  return NULL;
}

static Value *decl_value(Elab *E, Decl *d) {
  Value *v = new_value(E, d->kind == D_MODULE ? V_MODULE : V_FN);
  if (v) v->decl = d;
  return v;
}

Value *lookup(Elab *E, Env *env, const char *name, SrcLoc loc, bool report) {
  int file = env ? env->file : -1;
  for (Env *e = env; e; e = e->parent) {
    Value *v = env_get_local(e, name);
    if (v) return v;
  }
  Decl *d = find_global(E, file, name);
  if (d) return decl_value(E, d);
  const Builtin *b = builtin_find(name);
  if (b) {
    Value *v = new_value(E, V_BUILTIN);
    if (v) v->builtin = b;
    return v;
  }
  Value *c = builtin_constant(E, name);
  if (c) return c;
  if (report) diag_error(E->diags, loc, "unknown name '%s'", name);
  return NULL;
}

static bool is_definition(const Decl *d) { return d->kind == D_MODULE || d->kind == D_FN; }

/* A name a file defines must not also come from one of its imports, and two
 * imports of one file must not define the same name. */
static bool check_import_clashes(Elab *E, AstFile *f) {
  bool ok = true;
  for (int i = 0; i < f->decls.n; i++) {
    Decl *imp = f->decls.items[i];
    AstFile *lib = imp->kind == D_IMPORT ? file_ast(E, imp->import_file) : NULL;
    for (int k = 0; lib && k < lib->decls.n; k++) {
      Decl *d = lib->decls.items[k];
      if (!is_definition(d)) continue;
      Decl *own = find_decl(f, d->name);
      Decl *earlier = NULL;
      for (int j = 0; j < i && !own && !earlier; j++) {
        Decl *prev = f->decls.items[j];
        Decl *other = prev->kind == D_IMPORT ? find_decl(file_ast(E, prev->import_file), d->name) : NULL;
        if (other && other != d) earlier = other;
      }
      if (!own && !earlier) continue;
      if (own)
        diag_error(E->diags, own->loc, "'%s' is defined both here and in %s", d->name,
                   src_path(E->diags->sources, d->file));
      else
        diag_error(E->diags, imp->loc, "'%s' of %s is already defined by an earlier import",
                   d->name, src_path(E->diags->sources, d->file));
      diag_note(E->diags, own ? d->loc : earlier->loc, "other definition of '%s'", d->name);
      ok = false;
    }
  }
  return ok;
}

/* Duplicate declarations within a file, or clashing with an import. */
static bool check_names(Elab *E) {
  bool ok = true;
  for (int i = 0; i < E->prog->nfiles; i++) ok &= check_import_clashes(E, E->prog->files[i]);
  for (int i = 0; i < E->prog->nfiles; i++) {
    AstFile *f = E->prog->files[i];
    for (int k = 0; k < f->decls.n; k++) {
      Decl *d = f->decls.items[k];
      if (d->kind != D_MODULE && d->kind != D_FN) continue;
      for (int j = 0; j < k; j++) {
        Decl *o = f->decls.items[j];
        if ((o->kind == D_MODULE || o->kind == D_FN) && !strcmp(o->name, d->name)) {
          diag_error(E->diags, d->loc, "duplicate definition of '%s'", d->name);
          diag_note(E->diags, o->loc, "first defined here");
          ok = false;
        }
      }
      if (builtin_find(d->name) || !strcmp(d->name, "self")) {
        diag_error(E->diags, d->loc, "'%s' is a built-in name and cannot be redefined", d->name);
        ok = false;
      }
    }
  }
  return ok;
}

/* ---- instances and parameters ----------------------------------------- */

static Instance *new_instance(Elab *E, Decl *decl, SrcLoc loc) {
  Instance *inst = arena_alloc(E->arena, sizeof *inst);
  if (!inst) {
    diag_error(E->diags, loc, "out of memory during elaboration");
    return NULL;
  }
  inst->decl = decl;
  inst->loc = loc;
  return inst;
}

static bool push_child(Elab *E, Instance *parent, Instance *child) {
  if (parent->nchildren == parent->capchildren) {
    int cap = parent->capchildren ? parent->capchildren * 2 : 4;
    Instance **c = arena_grow(E->arena, parent->children, (size_t)parent->capchildren,
                              (size_t)cap, sizeof *c);
    if (!c) return false;
    parent->children = c;
    parent->capchildren = cap;
  }
  parent->children[parent->nchildren++] = child;
  return true;
}

static bool register_child(Elab *E, Instance *parent, Instance *child, const char *name, SrcLoc loc) {
  if (child->parent || child->name) {
    diag_error(E->diags, loc,
               "this module instance is already registered as '%s'; create a new instance instead",
               child->name);
    return false;
  }
  child->parent = parent;
  child->name = name;
  return push_child(E, parent, child);
}

/* A module list or Sequential: a child named `name` whose children are 0..n-1. */
Instance *make_container(Elab *E, Value **items, int n, bool sequential, SrcLoc loc) {
  Instance *c = new_instance(E, NULL, loc);
  if (!c) return NULL;
  c->sequential = sequential;
  for (int i = 0; i < n; i++) {
    if (items[i]->kind != V_INSTANCE) {
      diag_error(E->diags, loc, "element %d of a module list is %s, not a module instance",
                 i, a_kind(items[i]->kind));
      return NULL;
    }
    if (!register_child(E, c, items[i]->inst, arena_printf(E->arena, "%d", i), loc)) return NULL;
  }
  return c;
}

static bool list_has_instance(Value *v) {
  for (int i = 0; i < v->n; i++)
    if (v->items[i]->kind == V_INSTANCE) return true;
  return false;
}

/* "first defined here" under a duplicate, where the old value has a place. */
static void note_previous(Elab *E, Value *old) {
  SrcLoc at = NO_LOC;
  if (old->kind == V_PARAM) at = old->param->info.loc;
  else if (old->kind == V_METHOD) at = old->method->loc;
  else if (old->kind == V_INSTANCE) at = old->inst->loc;
  if (at.file >= 0) diag_note(E->diags, at, "first defined here");
}

/* Whether v holds a module instance anywhere inside a tuple or list. */
static bool holds_instance(Value *v) {
  if (v->kind == V_INSTANCE) return true;
  if (v->kind != V_LIST && v->kind != V_TUPLE) return false;
  for (int i = 0; i < v->n; i++)
    if (holds_instance(v->items[i])) return true;
  return false;
}

/* Members can hold an instance or a flat list of them; anything else that
 * contains instances would hide their parameters from the model. */
static bool registrable(Elab *E, Value *v, SrcLoc loc) {
  if (v->kind == V_TUPLE && holds_instance(v)) {
    diag_error(E->diags, loc, "module instances in a tuple are not registered; use a list [a, b]");
    return false;
  }
  if (v->kind == V_LIST)
    for (int i = 0; i < v->n; i++)
      if (v->items[i]->kind != V_INSTANCE && holds_instance(v->items[i])) {
        diag_error(E->diags, loc,
                   "element %d nests module instances in a %s; a member may hold a flat list of "
                   "modules only", i, kind_name(v->items[i]->kind));
        return false;
      }
  return true;
}

/* Binds a member of a module body, registering instances as children. */
static bool bind_member(Elab *E, Env *env, const char *name, Value *v, SrcLoc loc) {
  Instance *self = env->self;
  Value *old = env_get_local(env, name);
  if (old && (old->kind == V_INSTANCE || old->kind == V_PARAM ||
              (old->kind == V_LIST && list_has_instance(old)))) {
    diag_error(E->diags, loc, "'%s' is already a %s of this module", name,
               old->kind == V_PARAM ? "parameter" : "sub-module");
    note_previous(E, old);
    return false;
  }
  if (!registrable(E, v, loc)) return false;
  if (v->kind == V_INSTANCE && !register_child(E, self, v->inst, name, loc)) return false;
  if (v->kind == V_LIST && list_has_instance(v)) {
    Instance *c = make_container(E, v->items, v->n, false, loc);
    if (!c || !register_child(E, self, c, name, loc)) return false;
  }
  return env_set(E, env, name, v);
}

static bool eval_init(Elab *E, Env *env, Expr *e, const Shape *s, InitRule *out);

/* param NAME: TYPE = INIT;  inside a module body. */
static bool declare_param(Elab *E, Env *env, Stmt *st) {
  Instance *self = env->self;
  Value *old = env_get_local(env, st->name);
  if (old) {
    diag_error(E->diags, st->loc, "'%s' is already defined in this module", st->name);
    note_previous(E, old);
    return false;
  }
  TypeExpr *t = st->type;
  DType dt;
  if (t->kind != TY_TENSOR || !dtype_from_name(t->dtype, &dt)) {
    diag_error(E->diags, t->loc, "parameter '%s' needs a tensor type such as f32[...]", st->name);
    return false;
  }
  if (!st->flag && !dtype_is_float(dt)) {
    /* PyTorch cannot train (requires_grad) integer or bool tensors. */
    diag_error(E->diags, t->loc,
               "parameter '%s' has dtype %s; only floating-point parameters are trainable "
               "(declare it 'frozen param')", st->name, t->dtype);
    return false;
  }
  if (t->any_rank) {
    diag_error(E->diags, t->loc, "parameter '%s' needs a shape: %s[d0, d1, ...]", st->name, t->dtype);
    return false;
  }
  if (t->ndims > IR_MAX_RANK) {
    diag_error(E->diags, t->loc, "parameter '%s' has %d axes; at most %d are supported",
               st->name, t->ndims, IR_MAX_RANK);
    return false;
  }
  Shape s = {0};
  s.rank = t->ndims;
  int64_t numel = 1;
  for (int i = 0; i < t->ndims; i++) {
    if (t->dims[i].ellipsis) {
      diag_error(E->diags, t->loc, "parameter shapes cannot use '...'");
      return false;
    }
    Value *v = eval(E, env, t->dims[i].expr);
    int64_t n;
    if (!v || !as_int(E, v, &n, t->dims[i].expr->loc, "parameter dimension")) return false;
    if (n <= 0) {
      diag_error(E->diags, t->dims[i].expr->loc,
                 "dimension %d of parameter '%s' is %lld; dimensions must be positive",
                 i, st->name, (long long)n);
      return false;
    }
    if (mul_overflows(numel, n, &numel) || numel > ((int64_t)1 << 40)) {
      diag_error(E->diags, t->loc, "shape of parameter '%s' overflows (more than 2^40 elements)", st->name);
      return false;
    }
    s.d[i] = (Dim){n, false};
  }
  OwnParam *p = arena_alloc(E->arena, sizeof *p);
  if (!p) return false;
  p->name = st->name;
  p->owner = self;
  p->index = -1;
  p->info.dtype = dt;
  p->info.shape = s;
  p->info.trainable = !st->flag;
  p->info.loc = st->loc;
  if (!eval_init(E, env, st->value, &s, &p->info.init)) return false;
  InitKind k = p->info.init.kind;
  if (!dtype_is_float(dt) && k != INIT_ZEROS && k != INIT_ONES && k != INIT_CONSTANT) {
    diag_error(E->diags, st->value->loc,
               "parameter '%s' is %s: only zeros, ones and constant initialise non-float parameters",
               st->name, dtype_name(dt));
    return false;
  }
  if (self->nparams == self->capparams) {
    int cap = self->capparams ? self->capparams * 2 : 4;
    OwnParam **ps = arena_grow(E->arena, self->params, (size_t)self->capparams, (size_t)cap, sizeof *ps);
    if (!ps) return false;
    self->params = ps;
    self->capparams = cap;
  }
  self->params[self->nparams++] = p;
  Value *v = new_value(E, V_PARAM);
  if (!v) return false;
  v->param = p;
  return env_set(E, env, st->name, v);
}

/* PyTorch's fans: fan_in = shape[1] * receptive field, fan_out = shape[0] * rf. */
static void default_fans(const Shape *s, int64_t *fan_in, int64_t *fan_out) {
  int64_t rf = 1;
  for (int i = 2; i < s->rank; i++) rf *= s->d[i].n;
  *fan_in = s->rank >= 2 ? s->d[1].n * rf : s->d[0].n;
  *fan_out = s->d[0].n * rf;
}

static const char *const init_names[] = {
    [INIT_ZEROS] = "zeros", [INIT_ONES] = "ones", [INIT_CONSTANT] = "constant",
    [INIT_NORMAL] = "normal", [INIT_UNIFORM] = "uniform",
    [INIT_XAVIER_UNIFORM] = "xavier_uniform", [INIT_TORCH_DEFAULT] = "torch_default",
    [INIT_SINCOS_2D] = "sincos_2d",
};

/* Keyword names each rule accepts, in positional order. */
static const char *const init_args[][2] = {
    [INIT_ZEROS] = {NULL, NULL}, [INIT_ONES] = {NULL, NULL},
    [INIT_CONSTANT] = {"value", NULL}, [INIT_NORMAL] = {"mean", "std"},
    [INIT_UNIFORM] = {"low", "high"}, [INIT_XAVIER_UNIFORM] = {"fan_in", "fan_out"},
    [INIT_TORCH_DEFAULT] = {"fan_in", NULL}, [INIT_SINCOS_2D] = {"grid", NULL},
};

static bool init_fail(Elab *E, SrcLoc loc, const char *msg, const char *rule) {
  diag_error(E->diags, loc, "%s: %s", rule, msg);
  return false;
}

/* An integer argument of a rule; 0 (which every rule rejects) when it is
 * not a whole number in 1..max (a huge double cannot become an int64_t). */
static int64_t init_int(double v, int64_t max) {
  return v >= 1 && v <= (double)max && v == (double)(int64_t)v ? (int64_t)v : 0;
}

static bool eval_init(Elab *E, Env *env, Expr *e, const Shape *s, InitRule *out) {
  if (e->kind != E_CALL || e->a->kind != E_NAME) {
    diag_error(E->diags, e->loc, "a parameter initialiser must be a rule such as zeros() or xavier_uniform()");
    return false;
  }
  const char *name = e->a->str;
  int kind = -1;
  for (int i = 0; i < (int)(sizeof init_names / sizeof init_names[0]); i++)
    if (!strcmp(name, init_names[i])) kind = i;
  if (kind < 0) {
    diag_error(E->diags, e->a->loc,
               "unknown initialiser '%s' (known: zeros, ones, constant, normal, uniform, "
               "xavier_uniform, torch_default, sincos_2d)", name);
    return false;
  }
  double vals[2] = {0, 0};
  bool given[2] = {false, false};
  for (int i = 0; i < e->args.n; i++) {
    Arg *a = &e->args.items[i];
    int slot = -1;
    if (!a->name) slot = i;
    else
      for (int k = 0; k < 2; k++)
        if (init_args[kind][k] && !strcmp(a->name, init_args[kind][k])) slot = k;
    if (slot < 0 || slot >= 2 || !init_args[kind][slot]) {
      int nargs = !!init_args[kind][0] + !!init_args[kind][1];
      if (a->name)
        diag_error(E->diags, a->loc, "%s has no argument '%s'", name, a->name);
      else
        diag_error(E->diags, a->loc, "%s takes at most %d argument%s", name, nargs,
                   nargs == 1 ? "" : "s");
      return false;
    }
    if (given[slot]) {
      diag_error(E->diags, a->loc, "%s: argument '%s' given twice", name, init_args[kind][slot]);
      return false;
    }
    Value *v = eval(E, env, a->value);
    if (!v || !as_float(E, v, &vals[slot], a->loc, "initialiser argument")) return false;
    given[slot] = true;
  }
  memset(out, 0, sizeof *out);
  out->kind = (InitKind)kind;
  int64_t fan_in, fan_out;
  default_fans(s, &fan_in, &fan_out);
  switch (out->kind) {
  case INIT_ZEROS:
  case INIT_ONES: break;
  case INIT_CONSTANT:
    if (!given[0]) return init_fail(E, e->loc, "needs value=", name);
    out->a = vals[0];
    break;
  case INIT_NORMAL: /* (mean, std), the order of PyTorch's normal_ */
    out->a = given[0] ? vals[0] : 0.0;
    out->b = given[1] ? vals[1] : 1.0;
    if (!(out->b >= 0)) return init_fail(E, e->loc, "std must be non-negative", name);
    break;
  case INIT_UNIFORM:
    if (!given[0] || !given[1]) return init_fail(E, e->loc, "needs low= and high=", name);
    out->a = vals[0];
    out->b = vals[1];
    if (!(out->a <= out->b)) return init_fail(E, e->loc, "needs low <= high", name);
    break;
  case INIT_XAVIER_UNIFORM:
  case INIT_TORCH_DEFAULT:
    out->fan_in = given[0] ? init_int(vals[0], (int64_t)1 << 40) : fan_in;
    out->fan_out = given[1] ? init_int(vals[1], (int64_t)1 << 40) : fan_out;
    if (out->kind == INIT_TORCH_DEFAULT) out->fan_out = 0;
    if (out->fan_in <= 0 || (out->kind == INIT_XAVIER_UNIFORM && out->fan_out <= 0))
      return init_fail(E, e->loc, "fan_in and fan_out must be positive whole numbers", name);
    break;
  case INIT_SINCOS_2D: {
    int64_t T = s->rank == 3 ? s->d[1].n : 0;
    int64_t g = given[0] ? init_int(vals[0], (int64_t)1 << 20) : 0; /* T <= 2^40 */
    if (!given[0])
      while ((g + 1) * (g + 1) <= T) g++;
    if (s->rank != 3 || s->d[0].n != 1 || g * g != T || s->d[2].n % 4 != 0) {
      const char *ty = ir_type_str(E->arena, DT_F32, s, NULL);
      return init_fail(E, e->loc, arena_printf(E->arena,
                       "needs a [1, grid*grid, D] parameter with D divisible by 4, found %s",
                       strchr(ty, '[')), name);
    }
    out->grid = g;
    break;
  }
  }
  return true;
}

/* ---- statements ------------------------------------------------------- */

typedef enum { BODY_MODULE, BODY_FUNCTION } BodyKind;

static Flow exec_block(Elab *E, Env *env, StmtList *body, BodyKind kind, Value **ret);

static bool count_unroll(Elab *E, SrcLoc loc) {
  if (++E->unrolled > ELAB_MAX_UNROLL * 10) {
    diag_error(E->diags, loc, "compile-time loops ran more than %d iterations in total",
               ELAB_MAX_UNROLL * 10);
    return false;
  }
  return true;
}

static Flow exec_for(Elab *E, Env *env, Stmt *st, BodyKind kind, Value **ret) {
  Value *it = eval(E, env, st->value);
  if (!it) return FLOW_ERROR;
  if (it->kind != V_LIST && it->kind != V_TUPLE) {
    diag_error(E->diags, st->value->loc, "for: cannot iterate over %s (use range(n) or a list)",
               a_kind(it->kind));
    return FLOW_ERROR;
  }
  for (int i = 0; i < it->n; i++) {
    if (!count_unroll(E, st->loc)) return FLOW_ERROR;
    if (!env_set(E, env, st->name, it->items[i])) return FLOW_ERROR;
    Flow f = exec_block(E, env, &st->body, kind, ret);
    if (f != FLOW_NEXT) return f;
  }
  return FLOW_NEXT;
}

static Flow exec_assign(Elab *E, Env *env, Stmt *st, BodyKind kind) {
  Value *v = eval(E, env, st->value);
  if (!v) return FLOW_ERROR;
  int n = st->targets.n;
  Value **vals = &v;
  if (n > 1) {
    if ((v->kind != V_TUPLE && v->kind != V_LIST) || v->n != n) {
      diag_error(E->diags, st->loc, "cannot unpack %s into %d names",
                 v->kind == V_TUPLE || v->kind == V_LIST
                     ? arena_printf(E->arena, "%d values", v->n) : kind_name(v->kind), n);
      return FLOW_ERROR;
    }
    vals = v->items;
  }
  for (int i = 0; i < n; i++) {
    const char *name = st->targets.items[i];
    if (!strcmp(name, "self")) {
      diag_error(E->diags, st->targets.locs[i], "cannot assign to 'self'");
      return FLOW_ERROR;
    }
    bool ok = kind == BODY_MODULE ? bind_member(E, env, name, vals[i], st->targets.locs[i])
                                  : env_set(E, env, name, vals[i]);
    if (!ok) return FLOW_ERROR;
  }
  return FLOW_NEXT;
}

static bool record_method(Elab *E, Env *env, Stmt *st) {
  Value *old = env_get_local(env, st->name);
  if (old) {
    diag_error(E->diags, st->loc, "'%s' is already defined in this module", st->name);
    note_previous(E, old);
    return false;
  }
  Value *m = new_value(E, V_METHOD);
  if (!m) return false;
  m->inst = env->self;
  m->method = st;
  return env_set(E, env, st->name, m);
}

static Flow exec_stmt(Elab *E, Env *env, Stmt *st, BodyKind kind, Value **ret) {
  switch (st->kind) {
  case S_ASSIGN: return exec_assign(E, env, st, kind);
  case S_EXPR: {
    Value *v = eval(E, env, st->value);
    if (!v) return FLOW_ERROR;
    if (v->kind == V_INSTANCE && !v->inst->name) {
      diag_error(E->diags, st->loc, "module instance is not assigned to a member; its parameters would be lost");
      return FLOW_ERROR;
    }
    return FLOW_NEXT;
  }
  case S_RETURN: {
    if (kind == BODY_MODULE) {
      diag_error(E->diags, st->loc, "'return' outside a function or method");
      return FLOW_ERROR;
    }
    Value *v = E->none;
    if (st->values.n == 1) {
      v = eval(E, env, st->values.items[0]);
    } else if (st->values.n > 1) {
      v = new_value(E, V_TUPLE);
      if (v) v->items = arena_alloc(E->arena, sizeof(Value *) * (size_t)st->values.n);
      if (!v || !v->items) return FLOW_ERROR;
      for (int i = 0; i < st->values.n; i++) {
        v->items[i] = eval(E, env, st->values.items[i]);
        if (!v->items[i]) return FLOW_ERROR;
      }
      v->n = st->values.n;
    }
    if (!v) return FLOW_ERROR;
    *ret = v;
    E->ret_loc = st->loc;
    return FLOW_RETURN;
  }
  case S_FOR: return exec_for(E, env, st, kind, ret);
  case S_IF: {
    Value *c = eval(E, env, st->value);
    bool b;
    if (!c || !truthy(E, c, &b, st->value->loc)) return FLOW_ERROR;
    return exec_block(E, env, b ? &st->body : &st->orelse, kind, ret);
  }
  case S_PARAM:
    if (kind != BODY_MODULE) {
      diag_error(E->diags, st->loc, "parameters are declared in a module body, not inside a method or function");
      return FLOW_ERROR;
    }
    return declare_param(E, env, st) ? FLOW_NEXT : FLOW_ERROR;
  case S_METHOD:
    if (kind != BODY_MODULE) {
      diag_error(E->diags, st->loc, "methods are declared in a module body, not inside a method or function");
      return FLOW_ERROR;
    }
    return record_method(E, env, st) ? FLOW_NEXT : FLOW_ERROR;
  }
  return FLOW_ERROR;
}

static Flow exec_block(Elab *E, Env *env, StmtList *body, BodyKind kind, Value **ret) {
  if (body->n > 0 && !nest_enter(E, body->items[0]->loc)) return FLOW_ERROR;
  Flow f = FLOW_NEXT;
  for (int i = 0; i < body->n && f == FLOW_NEXT; i++)
    f = exec_stmt(E, env, body->items[i], kind, ret);
  if (body->n > 0) E->nesting--;
  return f;
}

/* ---- calls ------------------------------------------------------------ */

/* Binds call arguments to declared parameters in `target`; defaults are
 * evaluated there, so they can use earlier parameters. */
/* Two parameters of one name would silently bind only the last. */
static bool distinct_params(Elab *E, const ParamList *params) {
  for (int i = 0; i < params->n; i++)
    for (int k = 0; k < i; k++)
      if (!strcmp(params->items[i].name, params->items[k].name)) {
        diag_error(E->diags, params->items[i].loc, "duplicate parameter '%s'", params->items[i].name);
        diag_note(E->diags, params->items[k].loc, "first declared here");
        return false;
      }
  return true;
}

static bool bind_params(Elab *E, ParamList *params, CallArgs *args, Env *target,
                        SrcLoc loc, const char *what) {
  if (!distinct_params(E, params)) return false;
  if (args->npos > params->n) {
    diag_error(E->diags, args->pos_locs[params->n], "%s takes %d argument%s but %d were given", what, params->n,
               params->n == 1 ? "" : "s", args->npos);
    return false;
  }
  for (int k = 0; k < args->nkw; k++) {
    int idx = -1;
    for (int i = 0; i < params->n; i++)
      if (!strcmp(params->items[i].name, args->kw_names[k])) idx = i;
    if (idx < 0) {
      diag_error(E->diags, args->kw_locs[k], "%s has no parameter named '%s'", what, args->kw_names[k]);
      return false;
    }
    if (idx < args->npos) {
      diag_error(E->diags, args->kw_locs[k], "%s: argument '%s' given twice", what, args->kw_names[k]);
      return false;
    }
  }
  for (int i = 0; i < params->n; i++) {
    Param *p = &params->items[i];
    Value *v = NULL;
    SrcLoc at = loc;
    if (i < args->npos) {
      v = args->pos[i];
      at = args->pos_locs[i];
    }
    for (int k = 0; k < args->nkw && !v; k++)
      if (!strcmp(p->name, args->kw_names[k])) {
        v = args->kw[k];
        at = args->kw_locs[k];
      }
    if (!v && p->deflt) {
      v = eval(E, target, p->deflt);
      if (!v) return false;
      at = p->deflt->loc;
    }
    if (!v) {
      diag_error(E->diags, loc, "%s: missing argument '%s'", what, p->name);
      diag_note(E->diags, p->loc, "parameter declared here");
      return false;
    }
    const char *pw = arena_printf(E->arena, "argument '%s' of %s", p->name, what);
    if (p->type && !check_type(E, target, target, v, p->type, at, pw)) return false;
    if (!env_set(E, target, p->name, v)) return false;
  }
  return true;
}

static bool enter(Elab *E, SrcLoc loc, const char *what) {
  if (E->depth >= ELAB_MAX_CALL_DEPTH) {
    diag_error(E->diags, loc, "calls nested more than %d deep at %s (recursive module or function?)",
               ELAB_MAX_CALL_DEPTH, what);
    return false;
  }
  E->depth++;
  return true;
}

/* Where a body's result came from: its return statement, or `fallback`
 * (the call) when it ran off its end. */
static SrcLoc returned_at(Elab *E, Flow f, SrcLoc fallback) {
  return f == FLOW_RETURN ? E->ret_loc : fallback;
}

static Value *check_return(Elab *E, Env *env, Value *ret, TypeList *rets, bool has_rets,
                           SrcLoc loc, const char *what) {
  if (!has_rets) return ret;
  const char *rw = arena_printf(E->arena, "return value of %s", what);
  if (rets->n == 1) return check_type(E, env, env, ret, rets->items[0], loc, rw) ? ret : NULL;
  if ((ret->kind != V_TUPLE && ret->kind != V_LIST) || ret->n != rets->n) {
    diag_error(E->diags, loc, "%s returns %s but is declared to return %d values", what,
               a_kind(ret->kind), rets->n);
    return NULL;
  }
  for (int i = 0; i < rets->n; i++)
    if (!check_type(E, env, env, ret->items[i], rets->items[i], loc, rw)) return NULL;
  return ret;
}

static Value *instantiate(Elab *E, Decl *d, CallArgs *args, SrcLoc loc) {
  if (E->in_method) {
    diag_error(E->diags, loc, "module %s is instantiated inside a method; instantiate it in a module body", d->name);
    return NULL;
  }
  if (!enter(E, loc, d->name)) return NULL;
  Value *result = NULL;
  Instance *inst = new_instance(E, d, loc);
  Env *env = inst ? env_new(E, NULL, d->file, inst) : NULL;
  if (env) {
    inst->env = env;
    Value *self = new_value(E, V_INSTANCE);
    if (self && env_set(E, env, "self", self)) {
      self->inst = inst;
      Value *ret = NULL;
      if (bind_params(E, &d->params, args, env, loc, d->name) &&
          exec_block(E, env, &d->body, BODY_MODULE, &ret) == FLOW_NEXT)
        result = self;
    }
  }
  E->depth--;
  return result;
}

static Value *call_function(Elab *E, Decl *d, CallArgs *args, SrcLoc loc) {
  if (!enter(E, loc, d->name)) return NULL;
  Value *result = NULL;
  Env *env = env_new(E, NULL, d->file, NULL);
  Value *ret = E->none;
  if (env && bind_params(E, &d->params, args, env, loc, d->name)) {
    Flow f = exec_block(E, env, &d->body, BODY_FUNCTION, &ret);
    if (f != FLOW_ERROR)
      result = check_return(E, env, ret, &d->rets, d->has_rets, returned_at(E, f, loc), d->name);
  }
  E->depth--;
  return result;
}

static Value *call_method(Elab *E, Instance *inst, Stmt *m, CallArgs *args, SrcLoc loc) {
  const char *what = arena_printf(E->arena, "%s.%s", inst->decl ? inst->decl->name : "?", m->name);
  if (!E->in_method || !E->ir.g) {
    diag_error(E->diags, loc, "%s is called outside a method; modules run only inside methods", what);
    return NULL;
  }
  if (!enter(E, loc, what)) return NULL;
  Value *result = NULL;
  Env *env = env_new(E, inst->env, inst->env->file, inst);
  Value *ret = E->none;
  if (env && bind_params(E, &m->params, args, env, loc, what)) {
    Flow f = exec_block(E, env, &m->body, BODY_FUNCTION, &ret);
    if (f != FLOW_ERROR)
      result = check_return(E, env, ret, &m->rets, m->has_rets, returned_at(E, f, loc), what);
  }
  E->depth--;
  return result;
}

static Value *call_instance(Elab *E, Instance *inst, CallArgs *args, SrcLoc loc) {
  if (inst->sequential) {
    Value *v = NULL;
    for (int i = 0; i < inst->nchildren; i++) {
      v = call_instance(E, inst->children[i], args, loc);
      if (!v) return NULL;
      CallArgs next = {&v, 1, NULL, NULL, NULL, 0, &loc};
      *args = next;
    }
    return v ? v : (args->npos == 1 ? args->pos[0] : E->none);
  }
  if (!inst->decl) {
    diag_error(E->diags, loc, "a module list cannot be called; index it (blocks[i]) or use Sequential(...)");
    return NULL;
  }
  Value *fwd = env_get_local(inst->env, "forward");
  if (!fwd || fwd->kind != V_METHOD) {
    diag_error(E->diags, loc, "module %s has no forward method", inst->decl->name);
    return NULL;
  }
  return call_method(E, inst, fwd->method, args, loc);
}

Value *call_value(Elab *E, Value *callee, CallArgs *args, SrcLoc loc, const char *what) {
  switch (callee->kind) {
  case V_MODULE: return instantiate(E, callee->decl, args, loc);
  case V_FN: return call_function(E, callee->decl, args, loc);
  case V_METHOD: return call_method(E, callee->inst, callee->method, args, loc);
  case V_INSTANCE: return call_instance(E, callee->inst, args, loc);
  case V_BUILTIN: return callee->builtin->fn(E, callee->builtin, args, loc);
  default:
    if (callee->kind == V_LIST && list_has_instance(callee))
      diag_error(E->diags, loc, "%s is a list of modules and cannot be called; "
                 "index it ([i]) or build it with Sequential(...)", what);
    else
      diag_error(E->diags, loc, "%s is %s and cannot be called", what, a_kind(callee->kind));
    return NULL;
  }
}

/* ---- parameter table -------------------------------------------------- */

static bool add_params(Elab *E, Instance *inst, const char *prefix) {
  ParamTable *t = &E->out->params;
  for (int i = 0; i < inst->nparams; i++) {
    OwnParam *p = inst->params[i];
    if (t->n == t->cap) {
      int cap = t->cap ? t->cap * 2 : 64;
      ParamInfo *items = arena_grow(E->arena, t->items, (size_t)t->cap, (size_t)cap, sizeof *items);
      if (!items) return false;
      t->items = items;
      t->cap = cap;
    }
    p->info.name = prefix ? arena_printf(E->arena, "%s%s", prefix, p->name) : NULL;
    if (!p->info.name) return false; /* out of memory */
    p->index = t->n;
    t->items[t->n++] = p->info;
  }
  for (int i = 0; i < inst->nchildren; i++) {
    Instance *c = inst->children[i];
    if (!add_params(E, c, arena_printf(E->arena, "%s%s.", prefix, c->name))) return false;
  }
  return true;
}

Node *param_node(Elab *E, OwnParam *p, SrcLoc loc) {
  if (!E->ir.g) {
    diag_error(E->diags, loc, "parameter '%s' can only be used inside a method", p->name);
    return NULL;
  }
  if (p->index < 0) {
    diag_error(E->diags, loc, "parameter '%s' belongs to a module that is not part of the model", p->name);
    return NULL;
  }
  if (!E->param_nodes[p->index])
    E->param_nodes[p->index] = ir_param(&E->ir, p->index, &E->out->params.items[p->index], p->info.loc);
  return E->param_nodes[p->index];
}

/* ---- entries ---------------------------------------------------------- */

/* Builds the input node of one entry argument; a bare unbound name in the
 * shape becomes the batch symbol (one per entry). */
static bool entry_input(Elab *E, Env *env, Param *p) {
  TypeExpr *t = p->type;
  DType dt;
  if (t && t->kind == TY_TENSOR && !dtype_from_name(t->dtype, &dt)) {
    diag_error(E->diags, t->loc, "entry argument '%s': unknown dtype '%s' (f32 f16 bf16 f64 i32 i64 u8 bool)",
               p->name, t->dtype);
    return false;
  }
  if (!t || t->kind != TY_TENSOR || t->any_rank) {
    diag_error(E->diags, p->loc, "entry argument '%s' needs a tensor type with a shape, such as f32[B, 4, 32, 32]", p->name);
    return false;
  }
  if (p->deflt) {
    diag_error(E->diags, p->loc, "entry argument '%s' cannot have a default", p->name);
    return false;
  }
  if (t->ndims > IR_MAX_RANK) {
    diag_error(E->diags, t->loc, "entry argument '%s' has more than %d axes", p->name, IR_MAX_RANK);
    return false;
  }
  Shape s = {0};
  s.rank = t->ndims;
  for (int i = 0; i < t->ndims; i++) {
    Expr *de = t->dims[i].expr;
    if (!de) {
      diag_error(E->diags, t->loc, "entry argument '%s': '...' is not allowed in entry shapes", p->name);
      return false;
    }
    if (de->kind == E_NAME && !lookup(E, env, de->str, de->loc, false)) {
      if (E->ir.g->sym_name && strcmp(E->ir.g->sym_name, de->str)) {
        diag_error(E->diags, de->loc, "entry %s uses two symbolic dimensions, '%s' and '%s'; only one (the batch) is allowed",
                   E->ir.g->name, E->ir.g->sym_name, de->str);
        return false;
      }
      E->ir.g->sym_name = de->str;
      Value *d = new_value(E, V_DIM);
      if (!d || !env_set(E, env, de->str, d)) return false;
      d->dim = (Dim){1, true};
    }
    Value *v = eval(E, env, de);
    if (!v || !as_dim(E, v, &s.d[i], de->loc, "entry dimension")) return false;
    if (s.d[i].n <= 0) {
      diag_error(E->diags, de->loc, "dimension %d of entry argument '%s' must be positive", i, p->name);
      return false;
    }
    for (int k = 0; k < i; k++)
      if (s.d[k].sym && s.d[i].sym) {
        diag_error(E->diags, de->loc, "entry argument '%s' has the batch dimension in axes %d and %d; "
                   "only one axis may depend on it", p->name, k, i);
        return false;
      }
  }
  Node *n = ir_input(&E->ir, p->name, dt, s, p->loc);
  return n && env_set(E, env, p->name, tensor_value(E, n));
}

static bool add_output(Elab *E, Graph *g, Value *v, SrcLoc loc) {
  Node *n = NULL;
  if (v->kind == V_TENSOR) n = v->node;
  else if (v->kind == V_PARAM) n = param_node(E, v->param, loc);
  else {
    diag_error(E->diags, loc, "entry %s returns %s; entries return tensors", g->name, a_kind(v->kind));
    return false;
  }
  if (!n) return false;
  return ir_add_output(E->arena, g, n, NULL);
}

static Graph *trace_entry(Elab *E, Instance *root, Stmt *m) {
  Graph *g = ir_new_graph(E->arena, m->name, m->loc);
  if (!g) return NULL;
  E->ir.g = g;
  E->ir.next_stream = 0;
  E->in_method = true;
  E->param_nodes = arena_alloc(E->arena, sizeof(Node *) * (size_t)(E->out->params.n + 1));
  Env *env = env_new(E, root->env, root->env->file, root);
  Value *ret = E->none;
  bool ok = E->param_nodes && env;
  ok = ok && distinct_params(E, &m->params);
  for (int i = 0; ok && i < m->params.n; i++) ok = entry_input(E, env, &m->params.items[i]);
  const char *what = arena_printf(E->arena, "entry %s", m->name);
  Flow f = ok ? exec_block(E, env, &m->body, BODY_FUNCTION, &ret) : FLOW_ERROR;
  ok = f != FLOW_ERROR;
  SrcLoc at = returned_at(E, f, m->loc);
  if (ok) ok = check_return(E, env, ret, &m->rets, m->has_rets, at, what) != NULL;
  if (ok) {
    if (ret->kind == V_TUPLE || ret->kind == V_LIST) {
      for (int i = 0; ok && i < ret->n; i++) ok = add_output(E, g, ret->items[i], at);
    } else if (ret->kind == V_NONE) {
      diag_error(E->diags, at, "entry %s returns nothing", m->name);
      ok = false;
    } else {
      ok = add_output(E, g, ret, at);
    }
  }
  ok = ok && ir_prune(E->arena, g) && ir_verify(E->diags, g);
  E->ir.g = NULL;
  E->in_method = false;
  return ok ? g : NULL;
}

static bool add_entry(Elab *E, Graph *g) {
  IrProgram *p = E->out;
  Graph **es = arena_grow(E->arena, p->entries, (size_t)p->nentries, (size_t)p->nentries + 1, sizeof *es);
  if (!es) return false;
  es[p->nentries++] = g;
  p->entries = es;
  return true;
}

static bool trace_entries(Elab *E, Instance *root, const ElabOptions *opt) {
  bool ok = true, found = false;
  for (int i = 0; i < root->env->n; i++) {
    Value *v = root->env->values[i];
    if (v->kind != V_METHOD || v->inst != root || !v->method->flag) continue;
    if (opt && opt->entry && strcmp(opt->entry, v->method->name)) continue;
    found = true;
    Graph *g = trace_entry(E, root, v->method);
    if (!g || !add_entry(E, g)) ok = false;
  }
  if (opt && opt->entry && !found) {
    StrBuf sb;
    sb_init(&sb);
    for (int i = 0; i < root->env->n; i++) {
      Value *v = root->env->values[i];
      if (v->kind == V_METHOD && v->inst == root && v->method->flag)
        sb_printf(&sb, "%s%s", sb.len ? ", " : "", v->method->name);
    }
    diag_error(E->diags, root->loc, "model %s has no entry named '%s' (entries: %s)",
               root->decl->name, opt->entry, sb.len ? sb.data : "none");
    sb_free(&sb);
    return false;
  }
  return ok;
}

/* ---- program ---------------------------------------------------------- */

static Decl *model_decl(const Program *prog, DiagList *d, bool *dup) {
  Decl *found = NULL;
  *dup = false;
  for (int i = 0; i < prog->nfiles && i < 1; i++) {
    AstFile *f = prog->files[i];
    for (int k = 0; k < f->decls.n; k++) {
      Decl *x = f->decls.items[k];
      if (x->kind != D_MODEL) continue;
      if (found) {
        diag_error(d, x->loc, "a program declares one model; this is a second");
        diag_note(d, found->loc, "first model declared here");
        *dup = true;
      } else {
        found = x;
      }
    }
  }
  return found;
}

bool elab_has_model(const Program *prog) {
  if (prog->nfiles < 1) return false;
  AstFile *f = prog->files[0];
  for (int k = 0; k < f->decls.n; k++)
    if (f->decls.items[k]->kind == D_MODEL) return true;
  return false;
}

static bool elaborate(Arena *a, DiagList *d, const Program *prog, const ElabOptions *opt,
                      IrProgram *out) {
  memset(out, 0, sizeof *out);
  Elab E = {0};
  E.arena = a;
  E.diags = d;
  E.prog = prog;
  E.out = out;
  E.ir.arena = a;
  E.ir.diags = d;
  E.none = new_value(&E, V_NONE);
  E.true_v = new_value(&E, V_BOOL);
  E.false_v = new_value(&E, V_BOOL);
  if (!E.none || !E.true_v || !E.false_v) return false;
  E.true_v->i = 1;
  if (!check_names(&E)) return false;
  bool dup;
  Decl *model = model_decl(prog, d, &dup);
  if (dup) return false;
  if (!model) return true; /* a library file */
  Value *root = eval(&E, env_new(&E, NULL, model->file, NULL), model->value);
  if (!root) return false;
  if (root->kind != V_INSTANCE || !root->inst->decl) {
    diag_error(d, model->value->loc, "model must be a module instance, such as SiT(...); found %s",
               a_kind(root->kind));
    return false;
  }
  out->root_module = root->inst->decl->name;
  if (!add_params(&E, root->inst, "")) return false;
  if (opt && opt->params_only) return true;
  return trace_entries(&E, root->inst, opt);
}

bool elab_program(Arena *a, DiagList *d, const Program *prog, const ElabOptions *opt,
                  IrProgram *out) {
  int nerrors = d->nerrors;
  bool ok = elaborate(a, d, prog, opt, out);
  /* Failures report themselves, except where a full arena stopped a list
   * from growing deep in a helper: the caller still gets a diagnostic. */
  if (!ok && d->nerrors == nerrors) diag_error(d, NO_LOC, "out of memory during elaboration");
  return ok;
}
