/* cuda_emu.h: runs generated CUDA C on the CPU. jit_load(JIT_LANG_CUDA_EMU)
 * compiles a kernel source as host C++ (g++ -x c++ -fopenmp) with this
 * header included first, so that the CUDA backend's kernels can be checked
 * against the reference interpreter on machines with no GPU. This header is
 * never seen by nvcc or NVRTC.
 *
 * What is emulated
 *   - qualifiers: __global__ __device__ __host__ __constant__ __forceinline__
 *     __noinline__ __launch_bounds__(...) __align__(n); __restrict__ is g++'s.
 *   - __shared__ is `static thread_local`: one copy per OS thread, and an OS
 *     thread runs one block at a time, so every block sees its own array.
 *   - threadIdx blockIdx blockDim gridDim (x, y, z), warpSize, dim3, uint3,
 *     float2/float4/int2/int4/uint2/uint4/double2 and make_*.
 *   - __syncthreads, __syncwarp, __shfl_sync, __shfl_xor_sync,
 *     __shfl_down_sync, __shfl_up_sync (any type of at most 8 bytes),
 *     __ballot_sync, __any_sync, __all_sync, __activemask.
 *   - atomicAdd (float, double, int, unsigned, unsigned long long),
 *     atomicSub, atomicExch, atomicMax/Min (int, unsigned), atomicCAS,
 *     __threadfence; relaxed, like CUDA's.
 *   - math: everything in <math.h>, plus rsqrtf rsqrt __expf __logf __log2f
 *     __powf __sinf __cosf __tanf __fdividef __saturatef __f*_rn min max
 *     __int_as_float __float_as_int (and uint/longlong/double variants),
 *     __popc __clz __ffs __ldg __ldcs __stcs, INFINITY CUDART_INF_F ...
 *     The fast intrinsics are the accurate libm functions here, so results
 *     may differ from a GPU in the last bits; compare with a tolerance.
 *   - __half and __nv_bfloat16 as 16-bit storage structs with
 *     __float2half(_rn) __half2float __float2bfloat16(_rn) __bfloat162float
 *     (round to nearest even; NaN stays NaN) and the __*_as_ushort casts.
 *     No half arithmetic: convert to float.
 *
 * How a launch runs: irepa_emu_launch(grid, block, uses_sync, fn) calls fn
 * once per CUDA thread with blockIdx/threadIdx set. Blocks are spread over
 * OpenMP threads (OMP_NUM_THREADS); each OS thread runs its blocks one after
 * another. Within a block:
 *   - uses_sync false: the threads are plain loop iterations, the fast path
 *     for kernels with no barrier and no warp collective. Such a kernel that
 *     calls one anyway is reported as an error (for blocks of > 1 thread).
 *   - uses_sync true: each CUDA thread is a fiber with its own stack.
 *     __syncthreads() and the warp collectives switch to the next runnable
 *     fiber until every thread of the block (or of the warp) has arrived;
 *     the last to arrive releases the others. A block where some threads
 *     exit while others wait at a barrier (a divergent barrier) cannot
 *     finish: the launch stops and reports it instead of hanging.
 *
 * Why fibers: a barrier in the middle of a kernel needs every thread's
 * registers and locals kept while the others catch up, and the generated
 * code is arbitrary C, so it cannot be split into phases. An OS thread per
 * CUDA thread would cost a kernel-mediated context switch per barrier; a
 * fiber switch is a dozen register moves. The switch is a small x86-64
 * assembly routine (swapcontext would make a sigprocmask system call per
 * switch); other architectures, or -DIREPA_EMU_UCONTEXT, use ucontext.
 * Fibers and their stacks live in a pool owned by the module and are
 * reused across blocks and launches; they are freed when it is unloaded.
 *
 * Contracts for the generated code
 *   - Warp collectives are called in warp-uniform control flow with every
 *     lane of the warp present (the mask argument is not checked). A lane
 *     that does not exist (a partial last warp) reads back its own value.
 *   - blockDim.x * y * z <= 1024; any grid size.
 *   - Only static __shared__ arrays (no `extern __shared__`), whatever size
 *     thread-local storage allows. Their contents do not survive the block.
 *   - Barriers are counted, not matched by call site: __syncthreads() at two
 *     different lines completes when every thread has reached either one
 *     (what a Volta+ GPU does); that misuse is not detected.
 *   - Each fiber stack is IREPA_EMU_STACK_KB kibibytes (default 64) with a
 *     guard page: a kernel with huge local arrays crashes on the guard.
 *   - No exceptions, longjmp or FP-environment changes inside kernels.
 *     The assembly switch is not compatible with CET shadow stacks (opt-in
 *     on Linux); build with -DIREPA_EMU_UCONTEXT where they are enabled.
 *   - Guard device-only code and <cuda_fp16.h>-style includes with
 *     #ifndef IREPA_EMULATE; this header defines IREPA_EMULATE.
 *   - Errors (divergent barrier, bad launch shape, a collective in a
 *     kernel launched without uses_sync) make irepa_emu_launch return
 *     false; the module-wide first message is taken with irepa_emu_error()
 *     (exported, extern "C"), which the runtime calls after launches. Until
 *     it is taken the error is sticky: later launches run nothing and
 *     return false.
 *
 * The header is compiled into exactly one translation unit per module. */
#ifndef IREPA_CUDA_EMU_H
#define IREPA_CUDA_EMU_H

#ifndef __cplusplus
#error "cuda_emu.h is C++: compile the generated CUDA C with c++ -x c++"
#endif

#define IREPA_EMULATE 1

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if !defined(__x86_64__) || defined(IREPA_EMU_UCONTEXT)
#define IREPA_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

/* ------------------------------------------------------------------ */
/* Qualifiers and built-in types                                        */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static thread_local

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
constexpr int warpSize = 32;

struct __align__(8) float2 { float x, y; };
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(8) int2 { int x, y; };
struct __align__(16) int4 { int x, y, z, w; };
struct __align__(8) uint2 { unsigned x, y; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
struct __align__(16) double2 { double x, y; };
static inline float2 make_float2(float x, float y) { return {x, y}; }
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline int2 make_int2(int x, int y) { return {x, y}; }
static inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
static inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
static inline double2 make_double2(double x, double y) { return {x, y}; }

/* What kernels read per OS thread, in one thread-local: code compiled
 * -fPIC pays a __tls_get_addr call per thread-local per kernel call, so
 * one variable costs a third of four. External linkage (hidden), so that
 * the compiler reloads the fields after a fiber switch, which it sees as
 * an opaque call that may write any global. */
namespace irepa_emu {
struct Sched;
struct Coords { /* every member initialised: constant-initialised, no TLS guard */
  uint3 thread_idx{}, block_idx{};
  dim3 block_dim, grid_dim;
  Sched *sched = nullptr; /* the fiber scheduler running this block, or null */
};
__attribute__((visibility("hidden"))) thread_local Coords tls;
}  // namespace irepa_emu

#define threadIdx (irepa_emu::tls.thread_idx)
#define blockIdx (irepa_emu::tls.block_idx)
#define blockDim (irepa_emu::tls.block_dim)
#define gridDim (irepa_emu::tls.grid_dim)

/* ------------------------------------------------------------------ */
/* Math, bit casts, loads                                               */

#define CUDART_INF_F __builtin_huge_valf()
#define CUDART_NAN_F __builtin_nanf("")
#define CUDART_INF __builtin_huge_val()
#define CUDART_NAN __builtin_nan("")
#define CUDART_PI_F 3.141592654f

static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
/* glibc declares __expf and friends itself: alias them by macro. */
#define __expf expf
#define __exp10f exp10f
#define __logf logf
#define __log2f log2f
#define __log10f log10f
#define __powf powf
#define __sinf sinf
#define __cosf cosf
#define __tanf tanf
static inline float __fdividef(float x, float y) { return x / y; }
static inline float fdividef(float x, float y) { return x / y; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
static inline float __fadd_rn(float x, float y) { return x + y; }
static inline float __fsub_rn(float x, float y) { return x - y; }
static inline float __fmul_rn(float x, float y) { return x * y; }
static inline float __fdiv_rn(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
static inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
static inline double normcdf(double x) { return 0.5 * erfc(-x * 0.70710678118654752); }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
static inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }

namespace irepa_emu {
template <class To, class From> static inline To bit_cast(From v) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between sizes");
  To t;
  memcpy(&t, &v, sizeof t);
  return t;
}
}  // namespace irepa_emu

static inline float __int_as_float(int v) { return irepa_emu::bit_cast<float>(v); }
static inline int __float_as_int(float v) { return irepa_emu::bit_cast<int>(v); }
static inline float __uint_as_float(unsigned v) { return irepa_emu::bit_cast<float>(v); }
static inline unsigned __float_as_uint(float v) { return irepa_emu::bit_cast<unsigned>(v); }
static inline double __longlong_as_double(long long v) { return irepa_emu::bit_cast<double>(v); }
static inline long long __double_as_longlong(double v) { return irepa_emu::bit_cast<long long>(v); }

static inline int __popc(unsigned v) { return __builtin_popcount(v); }
static inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
static inline int __clz(int v) { return v ? __builtin_clz((unsigned)v) : 32; }
static inline int __ffs(int v) { return __builtin_ffs(v); }

template <class T> static inline T __ldg(const T *p) { return *p; }
template <class T> static inline T __ldcs(const T *p) { return *p; }
template <class T> static inline void __stcs(T *p, T v) { *p = v; }

/* ------------------------------------------------------------------ */
/* 16-bit floats: storage only, converted with round to nearest even.   */

struct __half {
  unsigned short x;
  __half() = default;
  __half(float f);
  operator float() const;
};
struct __nv_bfloat16 {
  unsigned short x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f);
  operator float() const;
};
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

namespace irepa_emu {
/* Overflow (>= 65520) rounds to infinity; subnormals are rounded by the
 * same integer rule as normals, after shifting in the implicit bit. */
static inline unsigned short f32_to_f16(float f) {
  uint32_t b = bit_cast<uint32_t>(f);
  uint32_t sign = (b >> 16) & 0x8000u, x = b & 0x7fffffffu;
  if (x >= 0x7f800000u) return (unsigned short)(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
  if (x >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);
  if (x < 0x38800000u) {
    if (x < 0x33000000u) return (unsigned short)sign;
    uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(x >> 23);
    uint32_t h = mant >> (shift + 1), rem = mant & ((1u << (shift + 1)) - 1), mid = 1u << shift;
    if (rem > mid || (rem == mid && (h & 1u))) h++;
    return (unsigned short)(sign | h);
  }
  return (unsigned short)(sign | ((x - 0x38000000u + 0xfffu + ((x >> 13) & 1u)) >> 13));
}
static inline float f16_to_f32(unsigned short h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
    return sign ? -v : v;
  }
  if (e == 31) return bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return bit_cast<float>(sign | ((e + 112) << 23) | (m << 13));
}
static inline unsigned short f32_to_bf16(float f) {
  uint32_t b = bit_cast<uint32_t>(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((b >> 16) | 0x40u);
  return (unsigned short)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}
static inline float bf16_to_f32(unsigned short h) { return bit_cast<float>((uint32_t)h << 16); }
}  // namespace irepa_emu

inline __half::__half(float f) : x(irepa_emu::f32_to_f16(f)) {}
inline __half::operator float() const { return irepa_emu::f16_to_f32(x); }
inline __nv_bfloat16::__nv_bfloat16(float f) : x(irepa_emu::f32_to_bf16(f)) {}
inline __nv_bfloat16::operator float() const { return irepa_emu::bf16_to_f32(x); }

static inline __half __float2half_rn(float f) { __half h; h.x = irepa_emu::f32_to_f16(f); return h; }
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) { return irepa_emu::f16_to_f32(h.x); }
static inline unsigned short __half_as_ushort(__half h) { return h.x; }
static inline __half __ushort_as_half(unsigned short v) { __half h; h.x = v; return h; }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { __nv_bfloat16 h; h.x = irepa_emu::f32_to_bf16(f); return h; }
static inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
static inline float __bfloat162float(__nv_bfloat16 h) { return irepa_emu::bf16_to_f32(h.x); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short v) { __nv_bfloat16 h; h.x = v; return h; }

/* ------------------------------------------------------------------ */
/* Atomics: relaxed read-modify-writes, since blocks run in parallel.   */

namespace irepa_emu {
typedef uint32_t __attribute__((may_alias)) u32_alias;
typedef uint64_t __attribute__((may_alias)) u64_alias;
}  // namespace irepa_emu

static inline float atomicAdd(float *addr, float v) {
  irepa_emu::u32_alias *p = (irepa_emu::u32_alias *)addr;
  uint32_t old = __atomic_load_n(p, __ATOMIC_RELAXED), want;
  do want = irepa_emu::bit_cast<uint32_t>(irepa_emu::bit_cast<float>(old) + v);
  while (!__atomic_compare_exchange_n(p, &old, want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return irepa_emu::bit_cast<float>(old);
}
static inline double atomicAdd(double *addr, double v) {
  irepa_emu::u64_alias *p = (irepa_emu::u64_alias *)addr;
  uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), want;
  do want = irepa_emu::bit_cast<uint64_t>(irepa_emu::bit_cast<double>(old) + v);
  while (!__atomic_compare_exchange_n(p, &old, want, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return irepa_emu::bit_cast<double>(old);
}
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
static inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
static inline int atomicSub(int *p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
static inline unsigned atomicSub(unsigned *p, unsigned v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <class T> static inline T atomicExch(T *p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
static inline float atomicExch(float *p, float v) {
  uint32_t old = __atomic_exchange_n((irepa_emu::u32_alias *)p, irepa_emu::bit_cast<uint32_t>(v), __ATOMIC_RELAXED);
  return irepa_emu::bit_cast<float>(old);
}
template <class T> static inline T atomicCAS(T *p, T compare, T val) {
  __atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare; /* the old value, whether or not it was swapped */
}
template <class T> static inline T atomicMax(T *p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <class T> static inline T atomicMin(T *p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old > v && !__atomic_compare_exchange_n(p, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/* ------------------------------------------------------------------ */
/* Fibers                                                               */

namespace irepa_emu {

enum { MAX_THREADS = 1024, WARP = 32, MAX_WARPS = MAX_THREADS / WARP };

/* A saved execution context: a stack pointer for the assembly switch. */
struct Ctx {
#ifdef IREPA_EMU_USE_UCONTEXT
  ucontext_t uc;
#else
  void *sp;
#endif
};

struct Fiber {
  Ctx ctx;
  char *stack; /* mmap'ed, guard page at the low end */
  uint3 tid;
  unsigned warp, lane;
  unsigned parity; /* exchange buffer of this lane's next warp collective */
};

/* A warp's barrier count and double-buffered exchange slots: collective k
 * uses buffer k % 2, and no lane can write buffer k % 2 again before every
 * lane has passed collective k + 1, hence read collective k. */
struct Warp {
  unsigned size, arrived;
  unsigned long long slot[2][WARP];
};

/* One OS thread's block runner: the fibers, the runnable queue (a ring of
 * fiber indices, each fiber at most once) and the barrier counts. */
struct Sched {
  Sched *next_free;
  Ctx main;
  Fiber *cur;
  uint3 *tid_slot; /* threadIdx of the OS thread running this scheduler */
  void (*body)(const void *);
  const void *body_arg;
  unsigned nthreads, nfibers, block_arrived, done;
  bool deadlock;
  unsigned qhead, qlen;
  unsigned short queue[MAX_THREADS];
  Warp warps[MAX_WARPS];
  Fiber fibers[MAX_THREADS];
};

/* Module-wide state: the pool of idle schedulers and the first error. */
struct Module {
  pthread_mutex_t lock;
  Sched *pool;
  int failed; /* read without the lock to stop early: atomic */
  char error[512];
  size_t stack_bytes;
  ~Module();
};
static Module g_module = {PTHREAD_MUTEX_INITIALIZER, nullptr, 0, {0}, 0};

static void record_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record_error(const char *fmt, ...) {
  pthread_mutex_lock(&g_module.lock);
  if (!__atomic_load_n(&g_module.failed, __ATOMIC_RELAXED)) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_module.error, sizeof g_module.error, fmt, ap);
    va_end(ap);
    __atomic_store_n(&g_module.failed, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&g_module.lock);
}

static inline bool failed(void) { return __atomic_load_n(&g_module.failed, __ATOMIC_RELAXED) != 0; }

#ifndef IREPA_EMU_USE_UCONTEXT
/* irepa_emu_ctx_swap(save, load): pushes the callee-saved registers, stores
 * the stack pointer in *save, switches to the stack `load` and pops the
 * registers saved there. A local symbol, so modules never share it. */
__asm__(
    ".pushsection .text\n"
    ".p2align 4\n"
    ".type irepa_emu_ctx_swap, @function\n"
    "irepa_emu_ctx_swap:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size irepa_emu_ctx_swap, .-irepa_emu_ctx_swap\n"
    ".popsection\n");
extern "C" void irepa_emu_ctx_swap(void **save, void *load);

static inline void ctx_switch(Ctx *from, Ctx *to) { irepa_emu_ctx_swap(&from->sp, to->sp); }
#else
static inline void ctx_switch(Ctx *from, Ctx *to) { swapcontext(&from->uc, &to->uc); }
#endif

static void fiber_entry(void);

/* Set by the first sched_acquire, under the lock; read after one. */
static size_t stack_bytes(void) { return g_module.stack_bytes; }

/* Points f's context at a fresh start of fiber_entry. Stack tops are
 * staggered by `color` cache lines: equal offsets in many stacks would
 * compete for the same L1 sets. */
static void fiber_reset(Fiber *f, unsigned color) {
  size_t size = stack_bytes();
#ifdef IREPA_EMU_USE_UCONTEXT
  getcontext(&f->ctx.uc);
  f->ctx.uc.uc_stack.ss_sp = f->stack + 4096;
  f->ctx.uc.uc_stack.ss_size = size - (color % 64) * 64;
  f->ctx.uc.uc_link = nullptr;
  makecontext(&f->ctx.uc, fiber_entry, 0);
#else
  uintptr_t top = ((uintptr_t)f->stack + 4096 + size - (color % 64) * 64) & ~(uintptr_t)15;
  void **sp = (void **)top;
  *--sp = nullptr;               /* fiber_entry's return address: never used */
  *--sp = (void *)fiber_entry;   /* where the first switch's `ret` goes */
  for (int i = 0; i < 6; i++) *--sp = nullptr; /* rbp rbx r12-r15 */
  f->ctx.sp = sp;                /* fiber_entry starts with rsp = top - 8 */
#endif
}

static bool fiber_create(Fiber *f, unsigned color) {
  size_t size = stack_bytes() + 4096;
  void *p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  mprotect(p, 4096, PROT_NONE); /* overflowing the stack faults here */
  f->stack = (char *)p;
  fiber_reset(f, color);
  return true;
}

static void sched_free(Sched *s) {
  for (unsigned i = 0; i < s->nfibers; i++) munmap(s->fibers[i].stack, stack_bytes() + 4096);
  free(s);
}

Module::~Module() {
  while (pool) {
    Sched *s = pool;
    pool = s->next_free;
    sched_free(s);
  }
}

static Sched *sched_acquire(void) {
  pthread_mutex_lock(&g_module.lock);
  if (!g_module.stack_bytes) {
    const char *env = getenv("IREPA_EMU_STACK_KB");
    long kb = env ? atol(env) : 0;
    g_module.stack_bytes = (size_t)(kb >= 16 ? kb : 64) * 1024;
  }
  Sched *s = g_module.pool;
  if (s) g_module.pool = s->next_free;
  pthread_mutex_unlock(&g_module.lock);
  return s ? s : (Sched *)calloc(1, sizeof(Sched));
}

static void sched_release(Sched *s) {
  pthread_mutex_lock(&g_module.lock);
  s->next_free = g_module.pool;
  g_module.pool = s;
  pthread_mutex_unlock(&g_module.lock);
}

/* Gives s one fiber per thread of `block` and each its coordinates. */
static bool sched_prepare(Sched *s, dim3 block) {
  unsigned n = block.x * block.y * block.z;
  for (; s->nfibers < n; s->nfibers++)
    if (!fiber_create(&s->fibers[s->nfibers], s->nfibers)) return false;
  for (unsigned i = 0; i < n; i++) {
    Fiber *f = &s->fibers[i];
    f->tid = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    f->warp = i / WARP;
    f->lane = i % WARP;
  }
  for (unsigned w = 0; w * WARP < n; w++) s->warps[w].size = n - w * WARP < (unsigned)WARP ? n - w * WARP : (unsigned)WARP;
  s->nthreads = n;
  return true;
}

static inline void queue_push(Sched *s, unsigned i) {
  s->queue[(s->qhead + s->qlen++) % MAX_THREADS] = (unsigned short)i;
}

static inline Fiber *queue_pop(Sched *s) {
  if (!s->qlen) return nullptr;
  unsigned i = s->queue[s->qhead];
  s->qhead = (s->qhead + 1) % MAX_THREADS;
  s->qlen--;
  return &s->fibers[i];
}

/* A fiber's frames outlive its launch, and the pool may hand its scheduler
 * to another OS thread next time, while the compiler assumes a function
 * stays on one thread and may keep a thread-local's address in a register.
 * So the scheduler's own code never names a thread-local: it writes
 * threadIdx through tid_slot, set by the OS thread that runs it now.
 * (Kernel code may cache such addresses: a block never changes thread.) */
static inline void switch_to(Sched *s, Fiber *from, Fiber *to) {
  s->cur = to;
  *s->tid_slot = to->tid;
  ctx_switch(&from->ctx, &to->ctx);
}

/* The current fiber waits: run the next runnable one. With none left the
 * block can never finish, so go back to the launcher, which abandons this
 * fiber's stack. */
static void fiber_wait(Sched *s, Fiber *f) {
  Fiber *next = queue_pop(s);
  if (next) {
    switch_to(s, f, next);
    return;
  }
  s->deadlock = true;
  ctx_switch(&f->ctx, &s->main);
}

__attribute__((noinline)) static Sched *current_sched(void) { return tls.sched; }

/* Each fiber loops over blocks: run the body for the current block, then
 * hand over. The launcher resumes it for the next block, here. */
static void fiber_entry(void) {
  Sched *s = current_sched(); /* the fiber's scheduler and identity, for good */
  Fiber *f = s->cur;
  for (;;) {
    f->parity = 0;
    s->body(s->body_arg);
    s->done++;
    Fiber *next = queue_pop(s);
    if (next) {
      switch_to(s, f, next);
    } else { /* the block is done, or the others wait for this one forever */
      s->deadlock = s->done != s->nthreads;
      ctx_switch(&f->ctx, &s->main);
    }
  }
}

static void barrier_block(void) {
  Sched *s = tls.sched;
  if (!s) {
    if (blockDim.x * blockDim.y * blockDim.z > 1)
      record_error("__syncthreads() in a kernel launched with uses_sync=false");
    return;
  }
  Fiber *f = s->cur;
  if (++s->block_arrived < s->nthreads) {
    fiber_wait(s, f);
    return;
  }
  s->block_arrived = 0; /* the last to arrive releases every other thread */
  for (unsigned i = 0; i < s->nthreads; i++)
    if (&s->fibers[i] != f) queue_push(s, i);
}

static void barrier_warp(Sched *s, Fiber *f) {
  Warp *w = &s->warps[f->warp];
  if (++w->arrived < w->size) {
    fiber_wait(s, f);
    return;
  }
  w->arrived = 0;
  unsigned first = f->warp * WARP;
  for (unsigned i = first; i < first + w->size; i++)
    if (&s->fibers[i] != f) queue_push(s, i);
}

static inline unsigned lane_id(void) {
  unsigned tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  return tid % WARP;
}

/* No fibers (uses_sync false): a collective is an error unless the block
 * is one thread, where it is trivially satisfied. */
static bool collective_unsupported(const char *what) {
  if (blockDim.x * blockDim.y * blockDim.z > 1)
    record_error("%s in a kernel launched with uses_sync=false", what);
  return true;
}

/* Every lane publishes v; returns lane `src`'s value (own if no such lane). */
template <class T> static inline T warp_exchange(T v, unsigned src) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  Sched *s = tls.sched;
  if (!s && collective_unsupported("a warp shuffle")) return v;
  Fiber *f = s->cur;
  Warp *w = &s->warps[f->warp];
  unsigned p = f->parity;
  f->parity ^= 1;
  unsigned long long bits = 0;
  memcpy(&bits, &v, sizeof v);
  w->slot[p][f->lane] = bits;
  barrier_warp(s, f);
  if (src >= w->size) return v;
  memcpy(&v, &w->slot[p][src], sizeof v);
  return v;
}

/* Every lane publishes pred; returns the warp's ballot mask. */
static inline unsigned warp_ballot(int pred) {
  Sched *s = tls.sched;
  if (!s && collective_unsupported("a warp vote")) return pred ? 1u : 0u;
  Fiber *f = s->cur;
  Warp *w = &s->warps[f->warp];
  unsigned p = f->parity;
  f->parity ^= 1;
  w->slot[p][f->lane] = pred != 0;
  barrier_warp(s, f);
  unsigned mask = 0;
  for (unsigned i = 0; i < w->size; i++) mask |= (unsigned)w->slot[p][i] << i;
  return mask;
}

static inline void set_block(dim3 grid, unsigned long long b) {
  tls.block_idx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
}

/* The fast path: threads as loop iterations. */
static void run_blocks_loop(dim3 grid, dim3 block, unsigned long long first, unsigned long long end,
                            void (*body)(const void *), const void *fn) {
  uint3 *tid = &tls.thread_idx;
  for (unsigned long long b = first; b < end && !failed(); b++) {
    set_block(grid, b);
    for (unsigned z = 0; z < block.z; z++)
      for (unsigned y = 0; y < block.y; y++)
        for (unsigned x = 0; x < block.x; x++) {
          *tid = {x, y, z};
          body(fn);
        }
  }
}

/* Runs one block on s's fibers; false if it deadlocked, after putting
 * every fiber back at its start. */
static bool run_block_fibers(Sched *s) {
  s->block_arrived = s->done = s->qhead = s->qlen = 0;
  s->deadlock = false;
  for (unsigned w = 0; w * WARP < s->nthreads; w++) s->warps[w].arrived = 0;
  for (unsigned i = 0; i < s->nthreads; i++) queue_push(s, i);
  s->cur = queue_pop(s);
  tls.thread_idx = s->cur->tid;
  ctx_switch(&s->main, &s->cur->ctx);
  if (!s->deadlock) return true;
  unsigned warp_waiting = 0;
  for (unsigned w = 0; w * WARP < s->nthreads; w++) warp_waiting += s->warps[w].arrived;
  record_error("divergent barrier in block (%u,%u,%u): %u of %u threads exited while %u wait at "
               "__syncthreads() and %u at a warp collective",
               blockIdx.x, blockIdx.y, blockIdx.z, s->done, s->nthreads, s->block_arrived, warp_waiting);
  for (unsigned i = 0; i < s->nthreads; i++) fiber_reset(&s->fibers[i], i);
  return false;
}

/* A launch, as every OS thread taking part sees it. The one per-kernel
 * part is `body`, a small instantiation: the rest of a launch is compiled
 * once per module, not once per kernel (a program has hundreds). */
struct Job {
  dim3 grid, block;
  bool uses_sync;
  void (*body)(const void *fn); /* runs one CUDA thread: calls *fn */
  const void *fn;
};

/* One OS thread's share of the blocks, with its own scheduler. */
static void run_blocks_fibers(const Job *job, unsigned long long first, unsigned long long end) {
  Sched *s = sched_acquire();
  if (!s || !sched_prepare(s, job->block)) {
    record_error("out of memory for %u fiber stacks", job->block.x * job->block.y * job->block.z);
    if (s) sched_release(s);
    return;
  }
  s->body = job->body;
  s->body_arg = job->fn;
  tls.sched = s;
  s->tid_slot = &tls.thread_idx;
  for (unsigned long long b = first; b < end && !failed(); b++) {
    set_block(job->grid, b);
    if (!run_block_fibers(s)) break;
  }
  tls.sched = nullptr;
  sched_release(s);
}

template <class F> static void call_body(const void *fn) { (*(const F *)fn)(); }

static bool launch_shape_ok(dim3 grid, dim3 block) {
  unsigned long long n = (unsigned long long)block.x * block.y * block.z;
  if (n == 0 || n > MAX_THREADS || !grid.x || !grid.y || !grid.z) {
    record_error("bad launch: grid (%u,%u,%u), block (%u,%u,%u) (at most %d threads)", grid.x, grid.y,
                 grid.z, block.x, block.y, block.z, (int)MAX_THREADS);
    return false;
  }
  return true;
}

}  // namespace irepa_emu

static inline void __syncthreads(void) { irepa_emu::barrier_block(); }

static inline void __syncwarp(unsigned mask = 0xffffffffu) {
  (void)mask;
  irepa_emu::Sched *s = irepa_emu::tls.sched;
  if (!s && irepa_emu::collective_unsupported("__syncwarp()")) return;
  irepa_emu::barrier_warp(s, s->cur);
}

template <class T> static inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize) {
  (void)mask;
  unsigned lane = irepa_emu::lane_id(), w = (unsigned)width;
  return irepa_emu::warp_exchange(v, (lane & ~(w - 1)) + ((unsigned)src_lane & (w - 1)));
}

/* A source in a later width-group reads back the lane's own value. */
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize) {
  (void)mask;
  unsigned lane = irepa_emu::lane_id(), w = (unsigned)width, src = lane ^ (unsigned)lane_mask;
  return irepa_emu::warp_exchange(v, src >= (lane & ~(w - 1)) + w ? lane : src);
}

template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  (void)mask;
  unsigned lane = irepa_emu::lane_id(), w = (unsigned)width;
  return irepa_emu::warp_exchange(v, (lane & (w - 1)) + delta >= w ? lane : lane + delta);
}

template <class T> static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize) {
  (void)mask;
  unsigned lane = irepa_emu::lane_id(), w = (unsigned)width;
  return irepa_emu::warp_exchange(v, (lane & (w - 1)) < delta ? lane : lane - delta);
}

static inline unsigned __ballot_sync(unsigned mask, int pred) { return irepa_emu::warp_ballot(pred) & mask; }
static inline int __any_sync(unsigned mask, int pred) { return (irepa_emu::warp_ballot(pred) & mask) != 0; }
static inline int __all_sync(unsigned mask, int pred) {
  (void)mask;
  unsigned lanes = irepa_emu::tls.sched ? irepa_emu::tls.sched->warps[irepa_emu::tls.sched->cur->warp].size : 1;
  unsigned full = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  return irepa_emu::warp_ballot(pred) == full;
}
static inline unsigned __activemask(void) {
  irepa_emu::Sched *s = irepa_emu::tls.sched;
  unsigned lanes = s ? s->warps[s->cur->warp].size : 1;
  return lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
}

namespace irepa_emu {
/* Spreads the blocks over OpenMP threads in contiguous shares:
 * neighbouring blocks often touch neighbouring data. */
static bool launch(const Job *job) {
  if (!launch_shape_ok(job->grid, job->block)) return false;
  unsigned long long nblocks = (unsigned long long)job->grid.x * job->grid.y * job->grid.z;
#pragma omp parallel if (nblocks > 1)
  {
    tls.grid_dim = job->grid;
    tls.block_dim = job->block;
    int nt = 1, t = 0;
#ifdef _OPENMP
    nt = omp_get_num_threads();
    t = omp_get_thread_num();
#endif
    unsigned long long first = nblocks * (unsigned)t / (unsigned)nt;
    unsigned long long end = nblocks * (unsigned)(t + 1) / (unsigned)nt;
    if (job->uses_sync) run_blocks_fibers(job, first, end);
    else run_blocks_loop(job->grid, job->block, first, end, job->body, job->fn);
  }
  return !failed();
}
}  // namespace irepa_emu

/* Runs fn once per thread of the grid (see the top of this file); false on
 * an error, whose message irepa_emu_error() returns. */
template <class F> static bool irepa_emu_launch(dim3 grid, dim3 block, bool uses_sync, F fn) {
  irepa_emu::Job job = {grid, block, uses_sync, irepa_emu::call_body<F>, &fn};
  return irepa_emu::launch(&job);
}

/* Takes the module's first error since the last call: copies it into buf
 * and returns 1, or returns 0 when there was none. */
extern "C" __attribute__((visibility("default"))) int irepa_emu_error(char *buf, unsigned long size) {
  using namespace irepa_emu;
  pthread_mutex_lock(&g_module.lock);
  int had = __atomic_load_n(&g_module.failed, __ATOMIC_RELAXED);
  if (had && buf && size) snprintf(buf, size, "%s", g_module.error);
  g_module.error[0] = 0;
  __atomic_store_n(&g_module.failed, 0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&g_module.lock);
  return had;
}

#endif
