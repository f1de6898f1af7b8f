/* cuda_test_kernels.h: the CUDA sources that test_nvrtc.c compiles and
 * test_cuda_driver.c runs. extern "C" so the driver finds them by name. */
#ifndef IREPA_CUDA_TEST_KERNELS_H
#define IREPA_CUDA_TEST_KERNELS_H

/* y = a*x + y over n elements with a grid-stride loop: any grid size works. */
static const char SAXPY_SRC[] =
    "extern \"C\" __global__ void saxpy(int n, float a, const float *x, float *y) {\n"
    "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
    "       i += blockDim.x * gridDim.x)\n"
    "    y[i] = a * x[i] + y[i];\n"
    "}\n";

/* out[b] = sum of block b's grid-stride share of x. blockDim.x is a
 * multiple of 32, at most 1024: warps reduce with shuffles, then warp 0
 * reduces the per-warp sums left in shared memory. */
static const char BLOCK_SUM_SRC[] =
    "extern \"C\" __global__ void block_sum(int n, const float *x, float *out) {\n"
    "  __shared__ float warp_sums[32];\n"
    "  float s = 0.0f;\n"
    "  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
    "       i += blockDim.x * gridDim.x)\n"
    "    s += x[i];\n"
    "  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);\n"
    "  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;\n"
    "  if (lane == 0) warp_sums[warp] = s;\n"
    "  __syncthreads();\n"
    "  if (warp == 0) {\n"
    "    s = lane < (int)(blockDim.x >> 5) ? warp_sums[lane] : 0.0f;\n"
    "    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);\n"
    "    if (lane == 0) out[blockIdx.x] = s;\n"
    "  }\n"
    "}\n";

#endif
