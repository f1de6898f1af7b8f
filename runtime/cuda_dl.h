/* cuda_dl.h: internal to cuda_api.c, cuda_rtc.c, cuda_drv.c and cuda_blas.c.
 * How a CUDA library is found (a list of candidate names), how its symbols
 * are bound (a table of name -> function-pointer slot), and the load-once
 * state each part keeps: loaded under a mutex on first use, then checked
 * lock-free by every wrapper. A mutex rather than pthread_once because
 * cu_api_shutdown must be able to undo a load. */
#ifndef IREPA_CUDA_DL_H
#define IREPA_CUDA_DL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "tensor.h"

/* One symbol: its exported name and the address of the function pointer
 * that receives it. Optional symbols are left NULL when absent (newer
 * entry points that only improve messages). */
typedef struct {
  const char *name;
  void *slot;
  bool optional;
} CudaSym;

/* Load-once state of one library. */
typedef struct {
  pthread_mutex_t lock;
  atomic_bool ready; /* library open and every symbol bound */
  bool tried;        /* a load was attempted; why says how it failed */
  void *lib;
  RtError why;
} CudaLib;

#define CUDA_LIB_INIT {PTHREAD_MUTEX_INITIALIZER, false, false, NULL, {{0}}}

/* Fills l->lib and the part's symbol table; on failure leaves l->lib NULL
 * (closing what it opened) and returns false with a message. */
typedef bool (*CudaLoadFn)(CudaLib *l, RtError *err);

/* dlopens the first loadable of $env (when set and not empty) and names
 * (NULL-terminated). On failure: NULL, and err says "tried A, B, C (LAST
 * DLERROR)" for the caller to prefix. */
void *cuda_dl_open(const char *env, const char *const *names, RtError *err);

/* Binds each syms[i] from lib; false naming the first required symbol that
 * libname lacks. */
bool cuda_dl_bind(void *lib, const char *libname, const CudaSym *syms, size_t n, RtError *err);

/* True at once when l is ready; else runs load once and caches the outcome
 * (a failure is reported again, unchanged, by every later call). */
bool cuda_lib_ensure(CudaLib *l, CudaLoadFn load, RtError *err);

/* dlcloses l and forgets the outcome, so the next ensure loads again.
 * table/size: the part's function pointers, zeroed under the lock. */
void cuda_lib_close(CudaLib *l, void *table, size_t size);

/* Each part's teardown, in the order cu_api_shutdown runs them. */
void cuda_blas_shutdown(void);
void cuda_drv_shutdown(void);
void cuda_rtc_shutdown(void);

#endif
