/* common.h: the part of every generated program that the C and the CUDA
 * generators share: 16-bit float conversions and the Philox generator,
 * both bit for bit those of runtime/tensor.c and runtime/rng.c, so that
 * every backend stores and draws exactly what the interpreter does.
 * IREPA_FN is `static inline` in C and `__device__` in CUDA. */
typedef long long idx_t;

typedef union {
  float f;
  unsigned int u;
} irepa_f32bits;

IREPA_FN float irepa_bf2f(unsigned short h) {
  irepa_f32bits b;
  b.u = (unsigned int)h << 16;
  return b.f;
}

IREPA_FN unsigned short irepa_f2bf(float f) {
  irepa_f32bits b;
  b.f = f;
  if (f != f) return (unsigned short)((b.u >> 16) | 0x40);
  return (unsigned short)((b.u + 0x7FFFu + ((b.u >> 16) & 1u)) >> 16);
}

IREPA_FN float irepa_h2f(unsigned short h) {
  unsigned int sign = (unsigned int)(h & 0x8000) << 16, e = (h >> 10) & 0x1F, m = h & 0x3FF;
  irepa_f32bits b;
  if (e == 0) {
    float v = (float)m * 5.9604644775390625e-8f; /* 2^-24 */
    return sign ? -v : v;
  }
  b.u = e == 31 ? sign | 0x7F800000u | (m << 13) : sign | ((e + 112) << 23) | (m << 13);
  return b.f;
}

IREPA_FN unsigned short irepa_f2h(float f) {
  irepa_f32bits b;
  b.f = f;
  unsigned int sign = (b.u >> 16) & 0x8000, x = b.u & 0x7FFFFFFF;
  if (x >= 0x7F800000u) return (unsigned short)(sign | 0x7C00 | (x > 0x7F800000u ? 0x200 : 0));
  if (x >= 0x477FF000u) return (unsigned short)(sign | 0x7C00);
  if (x < 0x38800000u) {
    if (x < 0x33000000u) return (unsigned short)sign;
    unsigned int mant = (x & 0x7FFFFF) | 0x800000;
    int shift = 126 - (int)(x >> 23);
    unsigned int half = mant >> (shift + 1), rem = mant & ((1u << (shift + 1)) - 1), mid = 1u << shift;
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return (unsigned short)(sign | half);
  }
  return (unsigned short)(sign | ((x - 0x38000000u + 0xFFFu + ((x >> 13) & 1)) >> 13));
}

/* Philox4x32-10 on counter (i, stream) with key seed: docs/rng.md. */
IREPA_FN void irepa_philox(unsigned long long seed, unsigned long long stream, unsigned long long i,
                           unsigned int c[4]) {
  unsigned int k0 = (unsigned int)seed, k1 = (unsigned int)(seed >> 32);
  c[0] = (unsigned int)i;
  c[1] = (unsigned int)(i >> 32);
  c[2] = (unsigned int)stream;
  c[3] = (unsigned int)(stream >> 32);
  for (int r = 0; r < 10; r++) {
    if (r > 0) {
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    unsigned long long p0 = (unsigned long long)0xD2511F53u * c[0];
    unsigned long long p1 = (unsigned long long)0xCD9E8D57u * c[2];
    unsigned int x0 = (unsigned int)(p1 >> 32) ^ c[1] ^ k0;
    unsigned int x2 = (unsigned int)(p0 >> 32) ^ c[3] ^ k1;
    c[0] = x0;
    c[1] = (unsigned int)p1;
    c[2] = x2;
    c[3] = (unsigned int)p0;
  }
}

IREPA_FN unsigned long long irepa_bits53(unsigned int hi, unsigned int lo) {
  return (((unsigned long long)hi << 32) | lo) >> 11;
}

IREPA_FN double irepa_uniform(unsigned long long seed, unsigned long long stream, unsigned long long i) {
  unsigned int c[4];
  irepa_philox(seed, stream, i, c);
  return (double)irepa_bits53(c[0], c[1]) * 1.1102230246251565e-16; /* 2^-53 */
}

IREPA_FN double irepa_normal(unsigned long long seed, unsigned long long stream, unsigned long long i) {
  unsigned int c[4];
  irepa_philox(seed, stream, i, c);
  double u1 = (double)(irepa_bits53(c[0], c[1]) + 1) * 1.1102230246251565e-16;
  double u2 = (double)irepa_bits53(c[2], c[3]) * 1.1102230246251565e-16;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Convolution sizes: x[N,C,H,W], w[O,C,KH,KW], y[N,O,HO,WO], stride sh/sw,
 * zero padding ph/pw. */
typedef struct {
  idx_t N, C, H, W, O, KH, KW, HO, WO;
  int sh, sw, ph, pw;
} irepa_conv_dims;

