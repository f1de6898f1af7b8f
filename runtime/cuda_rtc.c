/* cuda_rtc.c: NVRTC, loaded with dlopen. Consumes CUDA C++ source (the
 * generated kernels, which include nothing) and produces a CUBIN for one
 * GPU architecture. Needs no GPU and no driver, so CI compiles every
 * generated kernel for sm_80 and sm_90 on machines that cannot run them. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_api.h"
#include "cuda_dl.h"

/* From nvrtc.h (CUDA 13); values must match it. */
typedef enum { NVRTC_SUCCESS = 0, NVRTC_ERROR_COMPILATION = 6 } nvrtcResult;
typedef struct _nvrtcProgram *nvrtcProgram;

enum { RTC_MAX_EXTRA_OPTS = 32, RTC_MAX_ARCHS = 64 };

static struct {
  const char *(*GetErrorString)(nvrtcResult);
  nvrtcResult (*Version)(int *, int *);
  nvrtcResult (*GetNumSupportedArchs)(int *);
  nvrtcResult (*GetSupportedArchs)(int *);
  nvrtcResult (*CreateProgram)(nvrtcProgram *, const char *, const char *, int,
                               const char *const *, const char *const *);
  nvrtcResult (*DestroyProgram)(nvrtcProgram *);
  nvrtcResult (*CompileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*GetProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetProgramLog)(nvrtcProgram, char *);
  nvrtcResult (*GetCUBINSize)(nvrtcProgram, size_t *);
  nvrtcResult (*GetCUBIN)(nvrtcProgram, char *);
} nv;

static CudaLib nv_lib = CUDA_LIB_INIT;

static bool rtc_load(CudaLib *l, RtError *err) {
  static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12",
                                      "/usr/local/cuda/lib64/libnvrtc.so", NULL};
  const CudaSym syms[] = {
      {"nvrtcGetErrorString", &nv.GetErrorString, false},
      {"nvrtcVersion", &nv.Version, false},
      {"nvrtcGetNumSupportedArchs", &nv.GetNumSupportedArchs, true},
      {"nvrtcGetSupportedArchs", &nv.GetSupportedArchs, true},
      {"nvrtcCreateProgram", &nv.CreateProgram, false},
      {"nvrtcDestroyProgram", &nv.DestroyProgram, false},
      {"nvrtcCompileProgram", &nv.CompileProgram, false},
      {"nvrtcGetProgramLogSize", &nv.GetProgramLogSize, false},
      {"nvrtcGetProgramLog", &nv.GetProgramLog, false},
      {"nvrtcGetCUBINSize", &nv.GetCUBINSize, false},
      {"nvrtcGetCUBIN", &nv.GetCUBIN, false},
  };
  RtError why;
  l->lib = cuda_dl_open("IREPA_NVRTC_LIB", names, &why);
  if (!l->lib)
    return rt_fail(err, "NVRTC not found: %s; set IREPA_NVRTC_LIB to the library's path",
                   why.msg);
  if (cuda_dl_bind(l->lib, "libnvrtc", syms, sizeof syms / sizeof syms[0], err)) return true;
  dlclose(l->lib);
  l->lib = NULL;
  return false;
}

bool rtc_available(RtError *err) { return cuda_lib_ensure(&nv_lib, rtc_load, err); }

void cuda_rtc_shutdown(void) { cuda_lib_close(&nv_lib, &nv, sizeof nv); }

bool rtc_version(int *major, int *minor) {
  if (!rtc_available(NULL)) return false;
  return nv.Version(major, minor) == NVRTC_SUCCESS;
}

/* "sm_NN" or "sm_NNN", optionally with an 'a' or 'f' suffix (arch-specific
 * features); compute_NN is refused since it gives PTX, not a CUBIN. */
static bool parse_arch(const char *name, const char *arch, int *sm, RtError *err) {
  int digits = 0, v = 0;
  const char *p = arch;
  if (strncmp(arch, "sm_", 3) == 0) {
    for (p = arch + 3; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
      v = v * 10 + (*p - '0');
    if (*p == 'a' || *p == 'f') p++;
  }
  if (digits < 2 || digits > 3 || *p)
    return rt_fail(err, "NVRTC: kernel '%s': bad GPU architecture '%s' (expected sm_NN, "
                   "e.g. sm_80 or sm_90)", name, arch);
  *sm = v;
  return true;
}

/* Refuses an arch this NVRTC cannot target, listing the ones it can. */
static bool check_arch(const char *name, const char *arch, int sm, RtError *err) {
  int n = 0, archs[RTC_MAX_ARCHS];
  if (!nv.GetNumSupportedArchs || nv.GetNumSupportedArchs(&n) != NVRTC_SUCCESS ||
      n <= 0 || n > RTC_MAX_ARCHS || nv.GetSupportedArchs(archs) != NVRTC_SUCCESS)
    return true; /* cannot tell: let the compiler decide */
  char list[RTC_MAX_ARCHS * 8] = "";
  size_t used = 0;
  for (int i = 0; i < n; i++) {
    if (archs[i] == sm) return true;
    if (used < sizeof list)
      used += (size_t)snprintf(list + used, sizeof list - used, " sm_%d", archs[i]);
  }
  int major = 0, minor = 0;
  nv.Version(&major, &minor);
  return rt_fail(err, "NVRTC: kernel '%s': GPU architecture '%s' is not supported by "
                 "NVRTC %d.%d (it supports%s)", name, arch, major, minor, list);
}

/* Appends text to err's message, cut so that the whole fits, saying so. */
static void append_truncated(RtError *err, const char *text) {
  size_t used = strlen(err->msg), room = sizeof err->msg - used, len = strlen(text);
  while (len && (text[len - 1] == '\n' || text[len - 1] == ' ')) len--;
  if (len < room) {
    snprintf(err->msg + used, room, "%.*s", (int)len, text);
    return;
  }
  char note[64];
  int nn = snprintf(note, sizeof note, "\n... (log truncated, %zu bytes in all)", len);
  size_t keep = room > (size_t)nn + 1 ? room - (size_t)nn - 1 : 0;
  snprintf(err->msg + used, room, "%.*s%s", (int)keep, text, note);
}

/* The compile failure with NVRTC's log, which names lines as NAME(LINE). */
static bool fail_with_log(nvrtcProgram prog, nvrtcResult r, const char *name, const char *arch,
                          RtError *err) {
  rt_fail(err, "NVRTC: kernel '%s' for %s failed to compile (%s):\n", name, arch,
          nv.GetErrorString(r));
  size_t n = 0;
  char *log = NULL;
  if (err && nv.GetProgramLogSize(prog, &n) == NVRTC_SUCCESS && n > 1 && (log = malloc(n))) {
    if (nv.GetProgramLog(prog, log) == NVRTC_SUCCESS) {
      log[n - 1] = '\0';
      append_truncated(err, log);
    }
    free(log);
  }
  return false;
}

static bool take_cubin(nvrtcProgram prog, const char *name, void **cubin, size_t *size,
                       RtError *err) {
  size_t n = 0;
  nvrtcResult r = nv.GetCUBINSize(prog, &n);
  if (r != NVRTC_SUCCESS || n == 0)
    return rt_fail(err, "NVRTC: kernel '%s': nvrtcGetCUBINSize: %s", name,
                   r != NVRTC_SUCCESS ? nv.GetErrorString(r) : "empty CUBIN");
  char *buf = malloc(n);
  if (!buf) return rt_fail(err, "NVRTC: kernel '%s': out of memory (%zu bytes)", name, n);
  if ((r = nv.GetCUBIN(prog, buf)) != NVRTC_SUCCESS) {
    free(buf);
    return rt_fail(err, "NVRTC: kernel '%s': nvrtcGetCUBIN: %s", name, nv.GetErrorString(r));
  }
  *cubin = buf;
  *size = n;
  return true;
}

static bool compile_program(nvrtcProgram prog, const char *name, const char *arch,
                            const char *const *extra, int nextra, void **cubin, size_t *size,
                            RtError *err) {
  char arch_opt[48];
  const char *opts[3 + RTC_MAX_EXTRA_OPTS];
  snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s", arch);
  opts[0] = arch_opt;
  opts[1] = "-default-device";
  opts[2] = "--std=c++17";
  for (int i = 0; i < nextra; i++) opts[3 + i] = extra[i];
  nvrtcResult r = nv.CompileProgram(prog, 3 + nextra, opts);
  if (r != NVRTC_SUCCESS) return fail_with_log(prog, r, name, arch, err);
  return take_cubin(prog, name, cubin, size, err);
}

bool rtc_compile(const char *source, const char *name, const char *arch,
                 const char *const *extra_opts, int nopts, void **cubin, size_t *size,
                 RtError *err) {
  if (!source || !name || !arch || !cubin || !size || nopts < 0 || (nopts && !extra_opts))
    return rt_fail(err, "rtc_compile: missing argument");
  *cubin = NULL;
  *size = 0;
  if (nopts > RTC_MAX_EXTRA_OPTS)
    return rt_fail(err, "NVRTC: kernel '%s': %d extra options, at most %d", name, nopts,
                   RTC_MAX_EXTRA_OPTS);
  int sm = 0;
  if (!rtc_available(err) || !parse_arch(name, arch, &sm, err) ||
      !check_arch(name, arch, sm, err))
    return false;
  nvrtcProgram prog = NULL;
  nvrtcResult r = nv.CreateProgram(&prog, source, name, 0, NULL, NULL);
  if (r != NVRTC_SUCCESS)
    return rt_fail(err, "NVRTC: kernel '%s': nvrtcCreateProgram: %s", name,
                   nv.GetErrorString(r));
  bool ok = compile_program(prog, name, arch, extra_opts, nopts, cubin, size, err);
  nv.DestroyProgram(&prog);
  return ok;
}
