/* cuda_drv.c: the CUDA driver API, loaded with dlopen from libcuda.so.1.
 * Thin wrappers that turn a CUresult into an RtError naming the call, its
 * arguments and the result's name and description. Where there is no
 * driver, cu_available says so and every wrapper fails the same way, so
 * callers fall back to the CPU backend instead of crashing.
 *
 * Symbols are bound by the names cuda.h maps its API to in CUDA 12/13
 * (cuMemAlloc -> cuMemAlloc_v2, cuGraphInstantiate ->
 * cuGraphInstantiateWithFlags, ...), not by the legacy names. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"
#include "cuda_dl.h"

/* From cuda.h (CUDA 13); values must match it. */
typedef enum { CUDA_SUCCESS = 0, CUDA_ERROR_NO_DEVICE = 100 } CUresult;
typedef enum {
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
} CUdevice_attribute;
typedef enum { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 } CUfunction_attribute;
typedef enum { CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1 } CUstreamCaptureMode;
typedef struct CUgraph_st *CUgraph;
enum { CU_STREAM_NON_BLOCKING = 0x1 };

static struct {
  CUresult (*GetErrorName)(CUresult, const char **);
  CUresult (*GetErrorString)(CUresult, const char **);
  CUresult (*Init)(unsigned);
  CUresult (*DriverGetVersion)(int *);
  CUresult (*DeviceGetCount)(int *);
  CUresult (*DeviceGet)(CUdevice *, int);
  CUresult (*DeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
  CUresult (*DeviceGetName)(char *, int, CUdevice);
  CUresult (*PrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*PrimaryCtxRelease)(CUdevice);
  CUresult (*CtxGetCurrent)(CUcontext *);
  CUresult (*CtxSetCurrent)(CUcontext);
  CUresult (*CtxSynchronize)(void);
  CUresult (*MemAlloc)(CUdeviceptr *, size_t);
  CUresult (*MemFree)(CUdeviceptr);
  CUresult (*MemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*MemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*MemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*MemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*MemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
  CUresult (*MemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
  CUresult (*MemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
  CUresult (*ModuleLoadData)(CUmodule *, const void *);
  CUresult (*ModuleUnload)(CUmodule);
  CUresult (*ModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*FuncSetAttribute)(CUfunction, CUfunction_attribute, int);
  CUresult (*FuncGetName)(const char **, CUfunction); /* optional: CUDA >= 12.3 */
  CUresult (*LaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                           unsigned, unsigned, CUstream, void **, void **);
  CUresult (*StreamCreate)(CUstream *, unsigned);
  CUresult (*StreamSynchronize)(CUstream);
  CUresult (*StreamDestroy)(CUstream);
  CUresult (*StreamBeginCapture)(CUstream, CUstreamCaptureMode);
  CUresult (*StreamEndCapture)(CUstream, CUgraph *);
  CUresult (*GraphInstantiate)(CUgraphExec *, CUgraph, unsigned long long);
  CUresult (*GraphLaunch)(CUgraphExec, CUstream);
  CUresult (*GraphExecDestroy)(CUgraphExec);
  CUresult (*GraphDestroy)(CUgraph);
} drv;

static CudaLib cu_lib = CUDA_LIB_INIT;

static bool bind_driver(void *lib, RtError *err) {
  const CudaSym syms[] = {
      {"cuGetErrorName", &drv.GetErrorName, false},
      {"cuGetErrorString", &drv.GetErrorString, false},
      {"cuInit", &drv.Init, false},
      {"cuDriverGetVersion", &drv.DriverGetVersion, false},
      {"cuDeviceGetCount", &drv.DeviceGetCount, false},
      {"cuDeviceGet", &drv.DeviceGet, false},
      {"cuDeviceGetAttribute", &drv.DeviceGetAttribute, false},
      {"cuDeviceGetName", &drv.DeviceGetName, false},
      {"cuDevicePrimaryCtxRetain", &drv.PrimaryCtxRetain, false},
      {"cuDevicePrimaryCtxRelease_v2", &drv.PrimaryCtxRelease, false},
      {"cuCtxGetCurrent", &drv.CtxGetCurrent, false},
      {"cuCtxSetCurrent", &drv.CtxSetCurrent, false},
      {"cuCtxSynchronize", &drv.CtxSynchronize, false},
      {"cuMemAlloc_v2", &drv.MemAlloc, false},
      {"cuMemFree_v2", &drv.MemFree, false},
      {"cuMemcpyHtoD_v2", &drv.MemcpyHtoD, false},
      {"cuMemcpyDtoH_v2", &drv.MemcpyDtoH, false},
      {"cuMemcpyDtoD_v2", &drv.MemcpyDtoD, false},
      {"cuMemsetD8_v2", &drv.MemsetD8, false},
      {"cuMemcpyHtoDAsync_v2", &drv.MemcpyHtoDAsync, false},
      {"cuMemcpyDtoHAsync_v2", &drv.MemcpyDtoHAsync, false},
      {"cuMemsetD8Async", &drv.MemsetD8Async, false},
      {"cuModuleLoadData", &drv.ModuleLoadData, false},
      {"cuModuleUnload", &drv.ModuleUnload, false},
      {"cuModuleGetFunction", &drv.ModuleGetFunction, false},
      {"cuFuncSetAttribute", &drv.FuncSetAttribute, false},
      {"cuFuncGetName", &drv.FuncGetName, true},
      {"cuLaunchKernel", &drv.LaunchKernel, false},
      {"cuStreamCreate", &drv.StreamCreate, false},
      {"cuStreamSynchronize", &drv.StreamSynchronize, false},
      {"cuStreamDestroy_v2", &drv.StreamDestroy, false},
      {"cuStreamBeginCapture_v2", &drv.StreamBeginCapture, false},
      {"cuStreamEndCapture", &drv.StreamEndCapture, false},
      {"cuGraphInstantiateWithFlags", &drv.GraphInstantiate, false},
      {"cuGraphLaunch", &drv.GraphLaunch, false},
      {"cuGraphExecDestroy", &drv.GraphExecDestroy, false},
      {"cuGraphDestroy", &drv.GraphDestroy, false},
  };
  return cuda_dl_bind(lib, "libcuda.so.1", syms, sizeof syms / sizeof syms[0], err);
}

/* Formats "CALL(ARGS): CUDA_ERROR_NAME (description)" into err. */
__attribute__((format(printf, 3, 4))) static bool cu_fail(CUresult r, RtError *err,
                                                          const char *fmt, ...) {
  char call[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(call, sizeof call, fmt, ap);
  va_end(ap);
  const char *name = NULL, *desc = NULL;
  if (drv.GetErrorName(r, &name) != CUDA_SUCCESS || !name) name = "unknown CUresult";
  if (drv.GetErrorString(r, &desc) != CUDA_SUCCESS || !desc) desc = "no description";
  return rt_fail(err, "%s: %s (%s, code %d)", call, name, desc, (int)r);
}

/* cuInit and a device count: a driver with no device is "no device". */
static bool init_driver(RtError *err) {
  CUresult r = drv.Init(0);
  if (r == CUDA_ERROR_NO_DEVICE) return cu_fail(r, err, "no CUDA device (cuInit)");
  if (r != CUDA_SUCCESS) return cu_fail(r, err, "CUDA driver unusable: cuInit");
  int n = 0;
  if ((r = drv.DeviceGetCount(&n)) != CUDA_SUCCESS)
    return cu_fail(r, err, "CUDA driver unusable: cuDeviceGetCount");
  if (n < 1) return rt_fail(err, "no CUDA device (the driver reports none)");
  return true;
}

static bool cu_load(CudaLib *l, RtError *err) {
  static const char *const names[] = {"libcuda.so.1", NULL};
  RtError why;
  l->lib = cuda_dl_open("IREPA_CUDA_LIB", names, &why);
  if (!l->lib) return rt_fail(err, "no CUDA driver (libcuda.so.1 not found: %s)", why.msg);
  if (bind_driver(l->lib, err) && init_driver(err)) return true;
  dlclose(l->lib);
  l->lib = NULL;
  memset(&drv, 0, sizeof drv);
  return false;
}

bool cu_available(RtError *err) { return cuda_lib_ensure(&cu_lib, cu_load, err); }

void cuda_drv_shutdown(void) { cuda_lib_close(&cu_lib, &drv, sizeof drv); }

/* ---- devices and contexts ---- */

bool cu_driver_version(int *version, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.DriverGetVersion(version);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuDriverGetVersion");
}

bool cu_device_count(int *n, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.DeviceGetCount(n);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuDeviceGetCount");
}

static bool get_device(int ordinal, CUdevice *dev, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.DeviceGet(dev, ordinal);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuDeviceGet(%d)", ordinal);
}

bool cu_device_arch(int ordinal, int *sm, RtError *err) {
  CUdevice dev;
  int major = 0, minor = 0;
  if (!get_device(ordinal, &dev, err)) return false;
  CUresult r = drv.DeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  if (r == CUDA_SUCCESS)
    r = drv.DeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  if (r != CUDA_SUCCESS)
    return cu_fail(r, err, "cuDeviceGetAttribute(device %d, compute capability)", ordinal);
  *sm = major * 10 + minor;
  return true;
}

bool cu_device_name(int ordinal, char *buf, size_t size, RtError *err) {
  CUdevice dev;
  if (!get_device(ordinal, &dev, err)) return false;
  int len = size > 4096 ? 4096 : (int)size;
  CUresult r = drv.DeviceGetName(buf, len, dev);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuDeviceGetName(device %d)", ordinal);
}

bool cu_context_create(int ordinal, CuContext *c, RtError *err) {
  memset(c, 0, sizeof *c);
  c->ordinal = ordinal;
  if (!get_device(ordinal, &c->device, err)) return false;
  CUresult r = drv.PrimaryCtxRetain(&c->ctx, c->device);
  if (r != CUDA_SUCCESS) {
    c->ctx = NULL;
    return cu_fail(r, err, "cuDevicePrimaryCtxRetain(device %d)", ordinal);
  }
  if (cu_context_bind(c, err) && cu_device_arch(ordinal, &c->sm, err)) return true;
  cu_context_destroy(c);
  return false;
}

bool cu_context_bind(const CuContext *c, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.CtxSetCurrent(c->ctx);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuCtxSetCurrent(device %d)", c->ordinal);
}

bool cu_context_sync(RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.CtxSynchronize();
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuCtxSynchronize");
}

/* Unbinds the context from this thread first if it is current here, so
 * that no thread is left pointing at a context that may be gone. */
void cu_context_destroy(CuContext *c) {
  if (!c->ctx || !cu_available(NULL)) return;
  CUcontext cur = NULL;
  if (drv.CtxGetCurrent(&cur) == CUDA_SUCCESS && cur == c->ctx) drv.CtxSetCurrent(NULL);
  drv.PrimaryCtxRelease(c->device);
  c->ctx = NULL;
}

/* ---- memory ---- */

bool cu_alloc(CUdeviceptr *p, size_t bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemAlloc(p, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemAlloc(%zu bytes)", bytes);
}

bool cu_free(CUdeviceptr p, RtError *err) {
  if (!p) return true;
  if (!cu_available(err)) return false;
  CUresult r = drv.MemFree(p);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemFree(0x%llx)", p);
}

bool cu_memcpy_htod(CUdeviceptr dst, const void *src, size_t bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemcpyHtoD(dst, src, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemcpyHtoD(%zu bytes)", bytes);
}

bool cu_memcpy_dtoh(void *dst, CUdeviceptr src, size_t bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemcpyDtoH(dst, src, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemcpyDtoH(%zu bytes)", bytes);
}

bool cu_memcpy_dtod(CUdeviceptr dst, CUdeviceptr src, size_t bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemcpyDtoD(dst, src, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemcpyDtoD(%zu bytes)", bytes);
}

bool cu_memset(CUdeviceptr dst, unsigned char byte, size_t bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemsetD8(dst, byte, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemsetD8(%zu bytes)", bytes);
}

bool cu_memcpy_htod_async(CUdeviceptr dst, const void *src, size_t bytes, CUstream s,
                          RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemcpyHtoDAsync(dst, src, bytes, s);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemcpyHtoDAsync(%zu bytes)", bytes);
}

bool cu_memcpy_dtoh_async(void *dst, CUdeviceptr src, size_t bytes, CUstream s, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemcpyDtoHAsync(dst, src, bytes, s);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemcpyDtoHAsync(%zu bytes)", bytes);
}

bool cu_memset_async(CUdeviceptr dst, unsigned char byte, size_t bytes, CUstream s,
                     RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.MemsetD8Async(dst, byte, bytes, s);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuMemsetD8Async(%zu bytes)", bytes);
}

/* ---- modules and launches ---- */

bool cu_module_load(const void *cubin, CUmodule *m, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.ModuleLoadData(m, cubin);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuModuleLoadData");
}

void cu_module_unload(CUmodule m) {
  if (m && cu_available(NULL)) drv.ModuleUnload(m);
}

bool cu_function(CUmodule m, const char *name, CUfunction *fn, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.ModuleGetFunction(fn, m, name);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuModuleGetFunction('%s')", name);
}

/* The kernel's name for messages, where the driver can tell it. */
static const char *function_name(CUfunction fn) {
  const char *name = NULL;
  if (drv.FuncGetName && drv.FuncGetName(&name, fn) == CUDA_SUCCESS && name) return name;
  return "kernel";
}

bool cu_function_set_max_shared(CUfunction fn, int bytes, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.FuncSetAttribute(fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuFuncSetAttribute(%s, max dynamic shared %d)",
                                      function_name(fn), bytes);
}

bool cu_launch(CUfunction fn, const unsigned grid[3], const unsigned block[3],
               unsigned shared_bytes, CUstream stream, void **params, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.LaunchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                                shared_bytes, stream, params, NULL);
  return r == CUDA_SUCCESS ||
         cu_fail(r, err, "cuLaunchKernel(%s, grid %ux%ux%u, block %ux%ux%u, %u B shared)",
                 function_name(fn), grid[0], grid[1], grid[2], block[0], block[1], block[2],
                 shared_bytes);
}

/* ---- streams and graphs ---- */

bool cu_stream_create(CUstream *s, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.StreamCreate(s, CU_STREAM_NON_BLOCKING);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuStreamCreate");
}

bool cu_stream_sync(CUstream s, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.StreamSynchronize(s);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuStreamSynchronize");
}

void cu_stream_destroy(CUstream s) {
  if (s && cu_available(NULL)) drv.StreamDestroy(s);
}

bool cu_graph_begin(CUstream s, RtError *err) {
  if (!s) return rt_fail(err, "cuStreamBeginCapture: the default stream cannot be captured");
  if (!cu_available(err)) return false;
  CUresult r = drv.StreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuStreamBeginCapture");
}

/* The captured graph is only needed until it is instantiated. */
bool cu_graph_end(CUstream s, CUgraphExec *exec, RtError *err) {
  *exec = NULL;
  if (!cu_available(err)) return false;
  CUgraph graph = NULL;
  CUresult r = drv.StreamEndCapture(s, &graph);
  if (r != CUDA_SUCCESS) return cu_fail(r, err, "cuStreamEndCapture");
  r = drv.GraphInstantiate(exec, graph, 0);
  drv.GraphDestroy(graph);
  if (r != CUDA_SUCCESS) {
    *exec = NULL;
    return cu_fail(r, err, "cuGraphInstantiate");
  }
  return true;
}

bool cu_graph_launch(CUgraphExec exec, CUstream s, RtError *err) {
  if (!cu_available(err)) return false;
  CUresult r = drv.GraphLaunch(exec, s);
  return r == CUDA_SUCCESS || cu_fail(r, err, "cuGraphLaunch");
}

void cu_graph_destroy(CUgraphExec exec) {
  if (exec && cu_available(NULL)) drv.GraphExecDestroy(exec);
}
