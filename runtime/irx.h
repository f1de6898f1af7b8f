/* irx.h: compiled programs (.irx): written by `irepac compile`, read by
 * irepa-run. Layout and fields in docs/formats.md. A loaded program needs
 * no compiler: it carries its kernels' sources (and CUBINs where compiled),
 * each entry's launch list and buffer plan, and the parameter table. */
#ifndef IREPA_IRX_H
#define IREPA_IRX_H

#include "codegen.h"
#include "flops.h"
#include "program.h"
#include "tensor.h"

enum { IRX_VERSION = 1, IRX_HEADER_BYTES = 32 };
extern const char IRX_MAGIC[8];

/* Where a kernel argument or an entry output lives. */
typedef enum { REF_INPUT, REF_PARAM, REF_BUFFER } RefKind;
typedef struct {
  RefKind kind;
  int index;
} XRef;

typedef struct {
  char *name;
  DType dtype;
  Shape shape;
} XTensor;

typedef struct {
  char *name;        /* function name in the sources */
  KernelKind kind;
  char *ops;         /* the graph ops it computes, for people */
  XRef *args;        /* inputs, then outputs */
  int nargs, ninputs;
  LaunchShape launch;
  bool has_gemm;
  GemmDesc gemm;
  DType dtype;       /* of the first output */
} XKernel;

typedef struct {
  int64_t offset, bytes;
  bool per_batch;
  int first, last;
} XBuffer;

typedef struct {
  char *name;
  XTensor *inputs;
  int ninputs;
  XTensor *outputs;
  XRef *output_refs;
  bool *updates;     /* per output: it replaces its ref's input or parameter
                        in place (a training step's state) */
  int noutputs;
  XBuffer *bufs;
  int nbufs;
  XKernel *kernels;
  int nkernels;
  int64_t fixed_bytes, per_batch_bytes;       /* the arena */
  int64_t live_fixed, live_per_batch;         /* live peak */
  int64_t sum_fixed, sum_per_batch;           /* without reuse */
  bool has_flops;                             /* the compiler's count (older files have none) */
  FlopCount flops;
} XEntry;

typedef struct {
  char *name;    /* "sm_80" */
  void *data;
  size_t size;
} XCubin;

typedef struct {
  Arena arena;  /* owns everything below */
  char *compiler, *source, *source_hash, *model;
  ParamTable params;
  XEntry *entries;
  int nentries;
  char *c_source, *cuda_source;  /* NULL when not compiled for that backend */
  XCubin *cubins;
  int ncubins;
} XProgram;

typedef struct {
  const char *source;       /* the .irg path, for the record */
  uint64_t source_hash;     /* of every source file's text */
  const XCubin *cubins;     /* CUBINs of cp->cuda_source, per architecture */
  int ncubins;
} IrxMeta;

/* The .irx bytes of a compiled program (malloc'ed into *out). */
bool irx_serialize(const CompiledProgram *cp, const IrxMeta *meta, unsigned char **out, size_t *len, RtError *err);
bool irx_write(const char *path, const CompiledProgram *cp, const IrxMeta *meta, RtError *err);
/* Parses and validates .irx bytes; `name` labels errors (a path). */
bool irx_parse(const unsigned char *data, size_t len, const char *name, XProgram *out, RtError *err);
bool irx_load(const char *path, XProgram *out, RtError *err);
void irx_free(XProgram *p);
const XEntry *irx_entry(const XProgram *p, const char *name);
/* Whether data starts like a .irx file. */
bool irx_is_irx(const unsigned char *data, size_t len);

#endif
