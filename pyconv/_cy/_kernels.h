/*
 * Inner loops of the cython backend, in plain C so that they can carry
 * GCC's target_clones attribute: each function is compiled for x86-64-v4
 * (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and the loader picks
 * the best one for the running CPU (ifunc).  A build that cannot use
 * target_clones (another compiler, another architecture) gets the plain
 * portable versions; the loops are written so that any auto-vectoriser
 * handles them.
 *
 * Every index is ptrdiff_t (64-bit): no int overflow whatever the array size.
 *
 * OpenMP: when the extension is compiled without OpenMP, the few runtime
 * functions the backend reports are replaced by serial stubs here.
 */
#ifndef PYCONV_KERNELS_H
#define PYCONV_KERNELS_H

#include <stddef.h>
#include <string.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#define PYCONV_HAVE_OPENMP 1
static int pc_omp_max_threads(void) { return omp_get_max_threads(); }
#else
#define PYCONV_HAVE_OPENMP 0
static int pc_omp_max_threads(void) { return 1; }
#endif

#if defined(PYCONV_USE_TARGET_CLONES) && defined(__GNUC__) && defined(__x86_64__)
#define PYCONV_HAVE_CLONES 1
#define PC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PYCONV_HAVE_CLONES 0
#define PC_CLONES
#endif

/* The instruction set the clones dispatch to on this CPU (for info()). */
static const char *pc_simd_level(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return PYCONV_HAVE_CLONES ? "avx512 (x86-64-v4 clone)" : "baseline (cpu has avx512)";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return PYCONV_HAVE_CLONES ? "avx2+fma (x86-64-v3 clone)" : "baseline (cpu has avx2)";
    return "baseline";
#else
    return "baseline";
#endif
}

/* Geometry of one call, canonicalised to three spatial dims (z, y, x). */
typedef struct {
    ptrdiff_t N, Cin, Cout, G, cin_g, cout_g;
    ptrdiff_t isz[3];   /* op input spatial size */
    ptrdiff_t osz[3];   /* op output spatial size */
    ptrdiff_t ks[3];    /* kernel size */
    ptrdiff_t st[3];    /* stride */
    ptrdiff_t dl[3];    /* dilation */
    ptrdiff_t lo[3];    /* leading padding (conv) / leading crop (transposed) */
    ptrdiff_t Pin, Pout, Kp;
} pc_geo;

/*
 * Work buffers are 64-byte aligned and padded to a multiple of 64 bytes:
 * BLAS may take an alignment-dependent path, and a buffer that moved
 * between allocations (another thread's malloc arena) must not change the
 * result.
 */
static void *pc_alloc(size_t bytes)
{
    void *p = NULL;
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0)
        n = 64;
    if (posix_memalign(&p, 64, n) != 0)
        return NULL;
    return p;
}

/* Floor and ceiling division for a possibly negative numerator, b > 0. */
static inline ptrdiff_t pc_floordiv(ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

static inline ptrdiff_t pc_ceildiv(ptrdiff_t a, ptrdiff_t b)
{
    ptrdiff_t q = a / b;
    return (a % b != 0 && a > 0) ? q + 1 : q;
}

/*
 * The loops, written once for float (suffix f) and double (suffix d).
 *
 *   axpy:         y[i]        += a * x[i*incx]
 *   axpy_scatter: y[i*incy]   += a * x[i]
 *   dot:          sum_i x[i*incx] * y[i]   (16 partial sums, fixed order)
 *   gather:       y[i]         = x[i*incx]
 *   add:          y[i]        += x[i]
 *   fill:         y[i]         = v
 */
#define PC_DEFINE_LOOPS(T, S)                                                        \
PC_CLONES static void pc_axpy_##S(ptrdiff_t n, T a, const T *restrict x,             \
                                  ptrdiff_t incx, T *restrict y)                     \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    if (incx == 1) {                                                                 \
        for (i = 0; i < n; i++) y[i] += a * x[i];                                    \
    } else if (incx == 2) {                                                          \
        for (i = 0; i < n; i++) y[i] += a * x[2 * i];                                \
    } else {                                                                         \
        for (i = 0; i < n; i++) y[i] += a * x[i * incx];                             \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_axpy_scatter_##S(ptrdiff_t n, T a, const T *restrict x,     \
                                          T *restrict y, ptrdiff_t incy)             \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    if (incy == 1) {                                                                 \
        for (i = 0; i < n; i++) y[i] += a * x[i];                                    \
    } else if (incy == 2) {                                                          \
        for (i = 0; i < n; i++) y[2 * i] += a * x[i];                                \
    } else {                                                                         \
        for (i = 0; i < n; i++) y[i * incy] += a * x[i];                             \
    }                                                                                \
}                                                                                    \
PC_CLONES static T pc_dot_##S(ptrdiff_t n, const T *restrict x, ptrdiff_t incx,      \
                              const T *restrict y)                                   \
{                                                                                    \
    T acc[16];                                                                       \
    ptrdiff_t i = 0, j;                                                              \
    for (j = 0; j < 16; j++) acc[j] = 0;                                             \
    if (incx == 1) {                                                                 \
        for (; i + 16 <= n; i += 16)                                                 \
            for (j = 0; j < 16; j++) acc[j] += x[i + j] * y[i + j];                  \
    } else {                                                                         \
        for (; i + 16 <= n; i += 16)                                                 \
            for (j = 0; j < 16; j++) acc[j] += x[(i + j) * incx] * y[i + j];         \
    }                                                                                \
    for (j = 0; i < n; i++, j++) acc[j] += x[i * incx] * y[i];                       \
    for (j = 0; j < 8; j++) acc[j] += acc[j + 8];                                    \
    for (j = 0; j < 4; j++) acc[j] += acc[j + 4];                                    \
    return (acc[0] + acc[2]) + (acc[1] + acc[3]);                                    \
}                                                                                    \
PC_CLONES static void pc_gather_##S(ptrdiff_t n, const T *restrict x, ptrdiff_t incx, \
                                    T *restrict y)                                   \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    if (incx == 1) {                                                                 \
        memcpy(y, x, (size_t)n * sizeof(T));                                         \
    } else if (incx == 2) {                                                          \
        for (i = 0; i < n; i++) y[i] = x[2 * i];                                     \
    } else {                                                                         \
        for (i = 0; i < n; i++) y[i] = x[i * incx];                                  \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_add_##S(ptrdiff_t n, const T *restrict x, T *restrict y)    \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    for (i = 0; i < n; i++) y[i] += x[i];                                            \
}                                                                                    \
PC_CLONES static void pc_fill_##S(ptrdiff_t n, T v, T *restrict y)                   \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    for (i = 0; i < n; i++) y[i] = v;                                                \
}

PC_DEFINE_LOOPS(float, f)
PC_DEFINE_LOOPS(double, d)

/*
 * im2col of one tile of output positions [p0, p0 + tl) of one group:
 *
 *   col[(c, kz, ky, kx), p - p0] = x_g[c, iz, iy, ix],  i* = o* s - lo + k* d
 *
 * (zero where the input position falls in the padding).  The tile is walked
 * as segments of output rows; xa[kx], xb[kx] bound the ox whose ix is
 * inside the input row.
 *
 * col2im of one tile of input positions [q0, q0 + tl) of one group (col rows
 * ``ld`` apart):
 *
 *   y_g[j, tz, ty, tx] += col[(j, kz, ky, kx), q - q0],  t* = i* s - lo + k* d
 *
 * for targets inside the owned box [olo, ohi) only; xa, xb bound the ix
 * whose tx is inside the box.  For a given output element the additions
 * happen in the order (kz, ky, input row, kx), fixed by the tile alone.
 */
/*
 * dd[2m] += p0[m], dd[2m+1] += p1[m] for m < 4 (one interleaved pair of
 * col2im rows; the very additions of the scalar loop, so bitwise the same).
 */
#if defined(__GNUC__) && !defined(__clang__)
typedef float pc_c4_f __attribute__((vector_size(16)));
typedef int pc_i4_f __attribute__((vector_size(16)));
typedef double pc_c4_d __attribute__((vector_size(32)));
typedef long long pc_i4_d __attribute__((vector_size(32)));
#define PC_IL4(T, S)                                                                 \
static inline void pc_il4_##S(T *dd, const T *p0, const T *p1)                       \
{                                                                                    \
    pc_c4_##S a, b, y0, y1;                                                          \
    memcpy(&a, p0, sizeof a);                                                        \
    memcpy(&b, p1, sizeof b);                                                        \
    memcpy(&y0, dd, sizeof y0);                                                      \
    memcpy(&y1, dd + 4, sizeof y1);                                                  \
    y0 += __builtin_shuffle(a, b, (pc_i4_##S){0, 4, 1, 5});                          \
    y1 += __builtin_shuffle(a, b, (pc_i4_##S){2, 6, 3, 7});                          \
    memcpy(dd, &y0, sizeof y0);                                                      \
    memcpy(dd + 4, &y1, sizeof y1);                                                  \
}
#else
#define PC_IL4(T, S)                                                                 \
static inline void pc_il4_##S(T *dd, const T *p0, const T *p1)                       \
{                                                                                    \
    int m;                                                                           \
    for (m = 0; m < 4; m++) {                                                        \
        dd[2 * m] += p0[m];                                                          \
        dd[2 * m + 1] += p1[m];                                                      \
    }                                                                                \
}
#endif
PC_IL4(float, f)
PC_IL4(double, d)

#define PC_DEFINE_COLS(T, S)                                                         \
PC_CLONES static void pc_im2col_##S(const pc_geo *g, const T *restrict xg,           \
                                    T *restrict col, ptrdiff_t p0, ptrdiff_t tl,     \
                                    const ptrdiff_t *xa, const ptrdiff_t *xb)        \
{                                                                                    \
    const ptrdiff_t OY = g->osz[1], OX = g->osz[2];                                  \
    const ptrdiff_t IZ = g->isz[0], IY = g->isz[1], IX = g->isz[2];                  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    ptrdiff_t c, kz, ky, kx, m;                                                      \
    for (c = 0; c < g->cin_g; c++) {                                                 \
        const T *xc = xg + c * g->Pin;                                               \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                T *rows = col + ((c * KZ + kz) * KY + ky) * KX * tl;                 \
                ptrdiff_t oz = p0 / (OY * OX);                                       \
                ptrdiff_t oy = (p0 - oz * OY * OX) / OX;                             \
                ptrdiff_t ox = p0 - (oz * OY + oy) * OX;                             \
                ptrdiff_t done = 0;                                                  \
                while (done < tl) {                                                  \
                    ptrdiff_t seg = OX - ox;                                         \
                    ptrdiff_t iz = oz * g->st[0] - g->lo[0] + kz * g->dl[0];         \
                    ptrdiff_t iy = oy * g->st[1] - g->lo[1] + ky * g->dl[1];         \
                    if (seg > tl - done) seg = tl - done;                            \
                    if (iz >= 0 && iz < IZ && iy >= 0 && iy < IY) {                  \
                        const T *xrow = xc + (iz * IY + iy) * IX;                    \
                        for (kx = 0; kx < KX; kx++) {                                \
                            T *dst = rows + kx * tl + done - ox;                     \
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ox + seg;          \
                            if (a < ox) a = ox;                                      \
                            if (a > e) a = e;                                        \
                            if (b > e) b = e;                                        \
                            if (b < a) b = a;                                        \
                            for (m = ox; m < a; m++) dst[m] = 0;                     \
                            if (b > a) {                                             \
                                const T *src = xrow + a * SX - LX + kx * DX;         \
                                T *d = dst + a;                                      \
                                ptrdiff_t len = b - a;                               \
                                if (SX == 1)                                         \
                                    for (m = 0; m < len; m++) d[m] = src[m];         \
                                else if (SX == 2)                                    \
                                    for (m = 0; m < len; m++) d[m] = src[2 * m];     \
                                else                                                 \
                                    for (m = 0; m < len; m++) d[m] = src[m * SX];    \
                            }                                                        \
                            for (m = b; m < e; m++) dst[m] = 0;                      \
                        }                                                            \
                    } else {                                                         \
                        for (kx = 0; kx < KX; kx++) {                                \
                            T *d = rows + kx * tl + done;                            \
                            for (m = 0; m < seg; m++) d[m] = 0;                      \
                        }                                                            \
                    }                                                                \
                    done += seg;                                                     \
                    ox += seg;                                                       \
                    if (ox == OX) {                                                  \
                        ox = 0;                                                      \
                        if (++oy == OY) { oy = 0; oz++; }                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_col2im_##S(const pc_geo *g, const T *restrict col,          \
                                    ptrdiff_t ld, T *restrict yg, ptrdiff_t q0,      \
                                    ptrdiff_t tl,                                    \
                                    const ptrdiff_t *olo, const ptrdiff_t *ohi,      \
                                    const ptrdiff_t *xa, const ptrdiff_t *xb)        \
{                                                                                    \
    const ptrdiff_t IY = g->isz[1], IX = g->isz[2], OY = g->osz[1], OX = g->osz[2];  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    ptrdiff_t j, kz, ky, kx, m;                                                      \
    for (j = 0; j < g->cout_g; j++) {                                                \
        T *yj = yg + j * g->Pout;                                                    \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                const T *rows = col + ((j * KZ + kz) * KY + ky) * KX * ld;           \
                ptrdiff_t iz = q0 / (IY * IX);                                       \
                ptrdiff_t iy = (q0 - iz * IY * IX) / IX;                             \
                ptrdiff_t ix = q0 - (iz * IY + iy) * IX;                             \
                ptrdiff_t done = 0;                                                  \
                while (done < tl) {                                                  \
                    ptrdiff_t seg = IX - ix;                                         \
                    ptrdiff_t tz = iz * g->st[0] - g->lo[0] + kz * g->dl[0];         \
                    ptrdiff_t ty = iy * g->st[1] - g->lo[1] + ky * g->dl[1];         \
                    if (seg > tl - done) seg = tl - done;                            \
                    if (tz >= olo[0] && tz < ohi[0] && ty >= olo[1] && ty < ohi[1]) { \
                        T *yrow = yj + (tz * OY + ty) * OX;                          \
                        const T *srow = rows + done - ix;                            \
                        for (kx = 0; kx < KX; kx++) {                                \
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ix + seg;          \
                            if (a < ix) a = ix;                                      \
                            if (b > e) b = e;                                        \
                            if (SX == 2 && DX == 1 && kx + 1 < KX) {                 \
                                /* taps kx, kx+1 fill the even and odd outputs of */ \
                                /* one contiguous run: interleave them in one pass */ \
                                ptrdiff_t a1 = xa[kx + 1], b1 = xb[kx + 1], c0, c1;  \
                                const T *s0 = srow + kx * ld;                        \
                                const T *s1 = s0 + ld;                               \
                                T *d0 = yrow - LX + kx;                              \
                                if (a1 < ix) a1 = ix;                                \
                                if (b1 > e) b1 = e;                                  \
                                c0 = a > a1 ? a : a1;                                \
                                c1 = b < b1 ? b : b1;                                \
                                if (c1 > c0) {                                       \
                                    T *dd = d0 + 2 * c0;                             \
                                    const T *p0 = s0 + c0, *p1 = s1 + c0;            \
                                    ptrdiff_t len = c1 - c0;                         \
                                    for (m = a; m < c0; m++) d0[2 * m] += s0[m];     \
                                    for (m = a1; m < c0; m++) d0[2 * m + 1] += s1[m]; \
                                    for (m = 0; m + 4 <= len; m += 4)                \
                                        pc_il4_##S(dd + 2 * m, p0 + m, p1 + m);      \
                                    for (; m < len; m++) {                           \
                                        dd[2 * m] += p0[m];                          \
                                        dd[2 * m + 1] += p1[m];                      \
                                    }                                                \
                                    for (m = c1; m < b; m++) d0[2 * m] += s0[m];     \
                                    for (m = c1; m < b1; m++) d0[2 * m + 1] += s1[m]; \
                                } else {                                             \
                                    for (m = a; m < b; m++) d0[2 * m] += s0[m];      \
                                    for (m = a1; m < b1; m++) d0[2 * m + 1] += s1[m]; \
                                }                                                    \
                                kx++;                                                \
                                continue;                                            \
                            }                                                        \
                            if (b > a) {                                             \
                                const T *src = srow + kx * ld + a;                   \
                                T *d = yrow + a * SX - LX + kx * DX;                 \
                                ptrdiff_t len = b - a;                               \
                                if (SX == 1)                                         \
                                    for (m = 0; m < len; m++) d[m] += src[m];        \
                                else if (SX == 2)                                    \
                                    for (m = 0; m < len; m++) d[2 * m] += src[m];    \
                                else                                                 \
                                    for (m = 0; m < len; m++) d[m * SX] += src[m];   \
                            }                                                        \
                        }                                                            \
                    }                                                                \
                    done += seg;                                                     \
                    ix += seg;                                                       \
                    if (ix == IX) {                                                  \
                        ix = 0;                                                      \
                        if (++iy == IY) { iy = 0; iz++; }                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_COLS(float, f)
PC_DEFINE_COLS(double, d)

/*
 * Register-blocked convolution GEMM (the "packed" conv path).
 *
 *   y[co, p] = bias[co] + sum_k W[co, k] * col[k, p]       k = (c, kz, ky, kx)
 *
 * ``col`` is written by pc_im2col_packed_* straight into panels of NR
 * positions (panel-major, then k, then the NR lanes), ``W`` is packed once
 * per call into panels of MR output channels (k-major, MR lanes).  The
 * micro-kernel keeps an MR x NR block of y in registers for the whole k
 * loop: one load of NR column values feeds MR broadcast FMAs.  Each y
 * element is one sum over k in increasing order, whatever the tiling.
 *
 * Three builds of the micro-kernel, chosen at run time from the CPU
 * (pc_uk_level): AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and the
 * baseline, each with the register block that fits its register file.
 */
#define PC_UK_PARAMS_f {{4, 2, 4}, {4, 3, 8}, {8, 3, 16}}   /* MR, NRV, VL */
#define PC_UK_PARAMS_d {{4, 2, 2}, {4, 3, 4}, {8, 3, 8}}

static int pc_uk_level(void)
{
#if PYCONV_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

static void pc_uk_params(int dbl, int level, ptrdiff_t *mr, ptrdiff_t *nr)
{
    static const int pf[3][3] = PC_UK_PARAMS_f;
    static const int pd[3][3] = PC_UK_PARAMS_d;
    const int *q = dbl ? pd[level] : pf[level];
    *mr = q[0];
    *nr = (ptrdiff_t)q[1] * q[2];
}

#if PYCONV_HAVE_CLONES
#define PC_TARGET(t) __attribute__((target(t)))
#else
#define PC_TARGET(t)
#endif

/* one micro-kernel + its panel loop, for one ISA */
#define PC_DEFINE_UK(T, S, LV, ATTR, MR, NRV, VL)                                      \
typedef T pc_v##S##LV __attribute__((vector_size(VL * sizeof(T))));                  \
typedef T pc_vu##S##LV __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T)))); \
ATTR static inline void pc_uk_##S##LV(                                     \
    ptrdiff_t kc, const T *restrict wp, const T *restrict cp, T *restrict out,       \
    ptrdiff_t ldo, ptrdiff_t mrows, ptrdiff_t ncols, const T *bias)                  \
{                                                                                    \
    pc_v##S##LV acc[MR][NRV];                                                        \
    ptrdiff_t k;                                                                     \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++)                                                         \
        for (v = 0; v < NRV; v++) acc[m][v] = (pc_v##S##LV){0};                      \
    for (k = 0; k < kc; k++) {                                                       \
        pc_v##S##LV c[NRV];                                                          \
        for (v = 0; v < NRV; v++) c[v] = *(const pc_vu##S##LV *)(cp + k * NRV * VL + v * VL); \
        for (m = 0; m < MR; m++) {                                                   \
            pc_v##S##LV w = wp[k * MR + m] - (pc_v##S##LV){0};                       \
            for (v = 0; v < NRV; v++) acc[m][v] += w * c[v];                         \
        }                                                                            \
    }                                                                                \
    if (bias)                                                                        \
        for (m = 0; m < MR && m < mrows; m++)                                        \
            for (v = 0; v < NRV; v++) acc[m][v] += bias[m];                          \
    if (ncols == NRV * VL) {                                                         \
        for (m = 0; m < MR && m < mrows; m++)                                        \
            for (v = 0; v < NRV; v++)                                                \
                *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];               \
    } else {                                                                         \
        for (m = 0; m < MR && m < mrows; m++) {                                      \
            T tmp[NRV * VL];                                                         \
            for (v = 0; v < NRV; v++) *(pc_vu##S##LV *)(tmp + v * VL) = acc[m][v];   \
            memcpy(out + m * ldo, tmp, (size_t)ncols * sizeof(T));                   \
        }                                                                            \
    }                                                                                \
}                                                                                    \
ATTR static void pc_panels_##S##LV(                                        \
    ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, const T *cpack, ptrdiff_t ncols,  \
    T *out, ptrdiff_t ldo, const T *bias)                                            \
{                                                                                    \
    const ptrdiff_t NR = NRV * VL;                                                   \
    ptrdiff_t n0, m0;                                                                \
    for (n0 = 0; n0 < ncols; n0 += NR) {                                             \
        const T *cp = cpack + (n0 / NR) * kc * NR;                                   \
        ptrdiff_t nc = ncols - n0 < NR ? ncols - n0 : NR;                            \
        for (m0 = 0; m0 < mrows; m0 += MR)                                           \
            pc_uk_##S##LV(kc, wpack + (m0 / MR) * kc * MR, cp, out + m0 * ldo + n0,  \
                          ldo, mrows - m0, nc, bias ? bias + m0 : NULL);             \
    }                                                                                \
}

#define PC_NO_ATTR
PC_DEFINE_UK(float, f, 0, PC_NO_ATTR, 4, 2, 4)
PC_DEFINE_UK(float, f, 1, PC_TARGET("arch=x86-64-v3"), 4, 3, 8)
PC_DEFINE_UK(float, f, 2, PC_TARGET("arch=x86-64-v4"), 8, 3, 16)
PC_DEFINE_UK(double, d, 0, PC_NO_ATTR, 4, 2, 2)
PC_DEFINE_UK(double, d, 1, PC_TARGET("arch=x86-64-v3"), 4, 3, 4)
PC_DEFINE_UK(double, d, 2, PC_TARGET("arch=x86-64-v4"), 8, 3, 8)

/*
 * The packed layouts and the driver, per dtype:
 *   pc_pack_w:  W (rows x kc, row-major) -> panels of MR rows, k-major,
 *               zero rows past the end.
 *   pc_im2col_packed: like pc_im2col but into panels of NR positions,
 *               zeroing the lanes past the tile.
 *   pc_panels:  y block (rows x ncols, ld ldo) = W @ col (+ bias).
 */
#define PC_DEFINE_PACKED(T, S)                                                       \
static void pc_pack_w_##S(const T *w, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t mr,    \
                          T *wpack)                                                  \
{                                                                                    \
    ptrdiff_t m0, m, k;                                                              \
    for (m0 = 0; m0 < rows; m0 += mr) {                                              \
        T *dst = wpack + (m0 / mr) * kc * mr;                                        \
        for (k = 0; k < kc; k++)                                                     \
            for (m = 0; m < mr; m++)                                                 \
                dst[k * mr + m] = (m0 + m < rows) ? w[(m0 + m) * kc + k] : (T)0;     \
    }                                                                                \
}                                                                                    \
static inline void pc_put_run_##S(T *restrict pack, ptrdiff_t kc, ptrdiff_t nr,      \
                                  ptrdiff_t r, ptrdiff_t q, ptrdiff_t len,           \
                                  const T *restrict src, ptrdiff_t sx)               \
{                                                                                    \
    /* positions q .. q+len-1 of row r <- src[i*sx] (zeros when src is NULL) */     \
    while (len > 0) {                                                                \
        ptrdiff_t lane = q % nr, n = nr - lane, i;                                   \
        T *d = pack + (q / nr) * kc * nr + r * nr + lane;                            \
        if (n > len) n = len;                                                        \
        if (!src)                                                                    \
            for (i = 0; i < n; i++) d[i] = 0;                                        \
        else if (sx == 1) {                                                          \
            for (i = 0; i < n; i++) d[i] = src[i];                                   \
            src += n;                                                                \
        } else if (sx == 2) {                                                        \
            for (i = 0; i < n; i++) d[i] = src[2 * i];                               \
            src += 2 * n;                                                            \
        } else {                                                                     \
            for (i = 0; i < n; i++) d[i] = src[i * sx];                              \
            src += n * sx;                                                           \
        }                                                                            \
        q += n;                                                                      \
        len -= n;                                                                    \
    }                                                                                \
}                                                                                    \
PC_CLONES static void pc_im2col_packed_##S(const pc_geo *g, const T *restrict xg,    \
                                           T *restrict pack, ptrdiff_t nr,           \
                                           ptrdiff_t p0, ptrdiff_t tl,               \
                                           const ptrdiff_t *xa, const ptrdiff_t *xb) \
{                                                                                    \
    const ptrdiff_t OY = g->osz[1], OX = g->osz[2];                                  \
    const ptrdiff_t IZ = g->isz[0], IY = g->isz[1], IX = g->isz[2];                  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], LX = g->lo[2], DX = g->dl[2];                     \
    const ptrdiff_t kc = g->cin_g * g->Kp;                                           \
    const ptrdiff_t tpad = (tl + nr - 1) / nr * nr;                                  \
    ptrdiff_t c, kz, ky, kx, r;                                                      \
    for (c = 0; c < g->cin_g; c++) {                                                 \
        const T *xc = xg + c * g->Pin;                                               \
        for (kz = 0; kz < KZ; kz++) {                                                \
            for (ky = 0; ky < KY; ky++) {                                            \
                ptrdiff_t rb = ((c * KZ + kz) * KY + ky) * KX;                       \
                ptrdiff_t oz = p0 / (OY * OX);                                       \
                ptrdiff_t oy = (p0 - oz * OY * OX) / OX;                             \
                ptrdiff_t ox = p0 - (oz * OY + oy) * OX;                             \
                ptrdiff_t done = 0;                                                  \
                while (done < tl) {                                                  \
                    ptrdiff_t seg = OX - ox;                                         \
                    ptrdiff_t iz = oz * g->st[0] - g->lo[0] + kz * g->dl[0];         \
                    ptrdiff_t iy = oy * g->st[1] - g->lo[1] + ky * g->dl[1];         \
                    if (seg > tl - done) seg = tl - done;                            \
                    if (iz >= 0 && iz < IZ && iy >= 0 && iy < IY) {                  \
                        const T *xrow = xc + (iz * IY + iy) * IX;                    \
                        for (kx = 0; kx < KX; kx++) {                                \
                            ptrdiff_t a = xa[kx], b = xb[kx], e = ox + seg;          \
                            if (a < ox) a = ox;                                      \
                            if (a > e) a = e;                                        \
                            if (b > e) b = e;                                        \
                            if (b < a) b = a;                                        \
                            r = rb + kx;                                             \
                            if (a > ox)                                              \
                                pc_put_run_##S(pack, kc, nr, r, done, a - ox, NULL, 0); \
                            if (b > a)                                               \
                                pc_put_run_##S(pack, kc, nr, r, done + a - ox, b - a,   \
                                               xrow + a * SX - LX + kx * DX, SX);    \
                            if (e > b)                                               \
                                pc_put_run_##S(pack, kc, nr, r, done + b - ox, e - b,   \
                                               NULL, 0);                             \
                        }                                                            \
                    } else {                                                         \
                        for (kx = 0; kx < KX; kx++)                                  \
                            pc_put_run_##S(pack, kc, nr, rb + kx, done, seg, NULL, 0); \
                    }                                                                \
                    done += seg;                                                     \
                    ox += seg;                                                       \
                    if (ox == OX) {                                                  \
                        ox = 0;                                                      \
                        if (++oy == OY) { oy = 0; oz++; }                            \
                    }                                                                \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    if (tpad > tl)                                                                   \
        for (r = 0; r < kc; r++)                                                     \
            pc_put_run_##S(pack, kc, nr, r, tl, tpad - tl, NULL, 0);                 \
}                                                                                    \
static void pc_panels_##S(int level, ptrdiff_t kc, ptrdiff_t mrows, const T *wpack,  \
                          const T *cpack, ptrdiff_t ncols, T *out, ptrdiff_t ldo,    \
                          const T *bias)                                             \
{                                                                                    \
    if (level == 2)                                                                  \
        pc_panels_##S##2(kc, mrows, wpack, cpack, ncols, out, ldo, bias);            \
    else if (level == 1)                                                             \
        pc_panels_##S##1(kc, mrows, wpack, cpack, ncols, out, ldo, bias);            \
    else                                                                             \
        pc_panels_##S##0(kc, mrows, wpack, cpack, ncols, out, ldo, bias);            \
}

PC_DEFINE_PACKED(float, f)
PC_DEFINE_PACKED(double, d)

/*
 * Implicit GEMM for stride-1 convolutions (the "implicit" conv path).
 *
 * A tile of output rows (along the outermost real axis) reads a box of the
 * input; that box is copied once, zero padded, into a "slab" whose rows are
 * as wide as the padded input.  In the slab's flat index a kernel tap k =
 * (c, kz, ky, kx) is a constant offset off[k], so the column k of the
 * im2col matrix at virtual position q is slab[q + off[k]]: the micro-kernel
 * reads the slab directly and no im2col is ever built.  Virtual positions
 * that fall in the padding columns are computed and thrown away when the
 * valid ones are copied (with the bias) into y.
 */
#define PC_DEFINE_UKI(T, S, LV, ATTR, MR, NRV, VL)                                    \
ATTR static inline void pc_uki_##S##LV(                                              \
    ptrdiff_t kc, const T *restrict wp, const T *restrict base,                      \
    const ptrdiff_t *restrict off, T *restrict out, ptrdiff_t ldo, ptrdiff_t mrows)  \
{                                                                                    \
    pc_v##S##LV acc[MR][NRV];                                                        \
    ptrdiff_t k;                                                                     \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++)                                                         \
        for (v = 0; v < NRV; v++) acc[m][v] = (pc_v##S##LV){0};                      \
    for (k = 0; k < kc; k++) {                                                       \
        const T *src = base + off[k];                                                \
        pc_v##S##LV c[NRV];                                                          \
        for (v = 0; v < NRV; v++) c[v] = *(const pc_vu##S##LV *)(src + v * VL);      \
        for (m = 0; m < MR; m++) {                                                   \
            pc_v##S##LV w = wp[k * MR + m] - (pc_v##S##LV){0};                       \
            for (v = 0; v < NRV; v++) acc[m][v] += w * c[v];                         \
        }                                                                            \
    }                                                                                \
    for (m = 0; m < MR && m < mrows; m++)                                            \
        for (v = 0; v < NRV; v++)                                                    \
            *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];                   \
}                                                                                    \
ATTR static void pc_ipanels_##S##LV(                                                 \
    ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, const T *slab,                    \
    const ptrdiff_t *off, ptrdiff_t ncols, T *out, ptrdiff_t ldo)                    \
{                                                                                    \
    const ptrdiff_t NR = NRV * VL;                                                   \
    ptrdiff_t n0, m0;                                                                \
    for (n0 = 0; n0 < ncols; n0 += NR)                                               \
        for (m0 = 0; m0 < mrows; m0 += MR)                                           \
            pc_uki_##S##LV(kc, wpack + (m0 / MR) * kc * MR, slab + n0, off,          \
                           out + m0 * ldo + n0, ldo, mrows - m0);                    \
}

PC_DEFINE_UKI(float, f, 0, PC_NO_ATTR, 4, 2, 4)
PC_DEFINE_UKI(float, f, 1, PC_TARGET("arch=x86-64-v3"), 4, 3, 8)
PC_DEFINE_UKI(float, f, 2, PC_TARGET("arch=x86-64-v4"), 8, 3, 16)
PC_DEFINE_UKI(double, d, 0, PC_NO_ATTR, 4, 2, 2)
PC_DEFINE_UKI(double, d, 1, PC_TARGET("arch=x86-64-v3"), 4, 3, 4)
PC_DEFINE_UKI(double, d, 2, PC_TARGET("arch=x86-64-v4"), 8, 3, 8)

/*
 * Slab geometry of one tile: output rows [t0, t1) along axis A.  Per axis
 * ax: start[ax] is the input coordinate of slab index 0, len[ax] the slab
 * extent; axes before A are trivial (size 1).
 */
typedef struct {
    ptrdiff_t A, t0, t1;
    ptrdiff_t start[3], len[3];
    ptrdiff_t plane;     /* len[0]*len[1]*len[2]: one channel of the slab */
    ptrdiff_t ncols;     /* virtual output positions of the tile */
} pc_slab;

static void pc_slab_geo(const pc_geo *g, ptrdiff_t A, ptrdiff_t t0, ptrdiff_t t1,
                        pc_slab *sl)
{
    ptrdiff_t ax;
    sl->A = A;
    sl->t0 = t0;
    sl->t1 = t1;
    for (ax = 0; ax < 3; ax++) {
        ptrdiff_t halo = (g->ks[ax] - 1) * g->dl[ax];
        if (ax < A) {
            sl->start[ax] = 0;
            sl->len[ax] = 1;
        } else if (ax == A) {
            sl->start[ax] = t0 - g->lo[ax];
            sl->len[ax] = (t1 - t0) + halo;
        } else {
            sl->start[ax] = -g->lo[ax];
            sl->len[ax] = g->osz[ax] + halo;
        }
    }
    sl->plane = sl->len[0] * sl->len[1] * sl->len[2];
    sl->ncols = (t1 - t0) * (A == 0 ? sl->len[1] * sl->len[2] : (A == 1 ? sl->len[2] : 1));
}

/* off[k] for k = (c, kz, ky, kx), c < cin_g */
static void pc_slab_offsets(const pc_geo *g, const pc_slab *sl, ptrdiff_t *off)
{
    ptrdiff_t c, kz, ky, kx, k = 0;
    for (c = 0; c < g->cin_g; c++)
        for (kz = 0; kz < g->ks[0]; kz++)
            for (ky = 0; ky < g->ks[1]; ky++)
                for (kx = 0; kx < g->ks[2]; kx++)
                    off[k++] = c * sl->plane
                               + (kz * g->dl[0] * sl->len[1] + ky * g->dl[1]) * sl->len[2]
                               + kx * g->dl[2];
}

#define PC_DEFINE_SLAB(T, S)                                                         \
/* slab[c, u] = x_g[c, start + u] (zero outside the input); tail zeroed */           \
PC_CLONES static void pc_slab_fill_##S(const pc_geo *g, const pc_slab *sl,           \
                                       const T *restrict xg, T *restrict slab,       \
                                       ptrdiff_t tail)                               \
{                                                                                    \
    const ptrdiff_t LZ = sl->len[0], LY = sl->len[1], LX = sl->len[2];               \
    ptrdiff_t c, uz, uy, i;                                                          \
    for (c = 0; c < g->cin_g; c++) {                                                 \
        const T *xc = xg + c * g->Pin;                                               \
        T *sc = slab + c * sl->plane;                                                \
        for (uz = 0; uz < LZ; uz++) {                                                \
            ptrdiff_t iz = sl->start[0] + uz;                                        \
            for (uy = 0; uy < LY; uy++) {                                            \
                ptrdiff_t iy = sl->start[1] + uy;                                    \
                T *d = sc + (uz * LY + uy) * LX;                                     \
                ptrdiff_t a = -sl->start[2], b = g->isz[2] - sl->start[2];          \
                if (iz < 0 || iz >= g->isz[0] || iy < 0 || iy >= g->isz[1]) {        \
                    for (i = 0; i < LX; i++) d[i] = 0;                               \
                    continue;                                                        \
                }                                                                    \
                if (a < 0) a = 0;                                                    \
                if (b > LX) b = LX;                                                  \
                if (b < a) b = a;                                                    \
                {                                                                    \
                    const T *src = xc + (iz * g->isz[1] + iy) * g->isz[2] + sl->start[2]; \
                    for (i = 0; i < a; i++) d[i] = 0;                                \
                    for (i = a; i < b; i++) d[i] = src[i];                           \
                    for (i = b; i < LX; i++) d[i] = 0;                               \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    for (i = 0; i < tail; i++) slab[g->cin_g * sl->plane + i] = 0;                   \
}                                                                                    \
/* y_g[co, valid outputs of the tile] = ybuf[co, q] + bias[co] */                     \
PC_CLONES static void pc_slab_store_##S(const pc_geo *g, const pc_slab *sl,          \
                                        const T *restrict ybuf, ptrdiff_t ld,        \
                                        T *restrict yg, const ptrdiff_t *ys,         \
                                        const T *bias)                               \
{                                                                                    \
    /* ys: element strides of y per (channel, z, y, x) */                            \
    const ptrdiff_t A = sl->A, LY = sl->len[1], LX = sl->len[2];                     \
    ptrdiff_t co, oz, oy, i;                                                         \
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];            \
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : g->osz[1];            \
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : g->osz[2];            \
    const ptrdiff_t xs = ys[3];                                                      \
    for (co = 0; co < g->cout_g; co++) {                                             \
        const T bv = bias ? bias[co] : (T)0;                                         \
        const T *yb = ybuf + co * ld;                                                \
        T *yc = yg + co * ys[0];                                                     \
        for (oz = z0; oz < z1; oz++)                                                 \
            for (oy = y0; oy < y1; oy++) {                                           \
                const T *s = yb + ((oz - z0) * LY + (oy - y0)) * LX;                 \
                T *d = yc + oz * ys[1] + oy * ys[2] + x0 * xs;                       \
                if (xs == 1)                                                         \
                    for (i = 0; i < x1 - x0; i++) d[i] = s[i] + bv;                  \
                else                                                                 \
                    for (i = 0; i < x1 - x0; i++) d[i * xs] = s[i] + bv;             \
            }                                                                        \
    }                                                                                \
}                                                                                    \
static void pc_ipanels_##S(int level, ptrdiff_t kc, ptrdiff_t mrows, const T *wpack, \
                           const T *slab, const ptrdiff_t *off, ptrdiff_t ncols,     \
                           T *out, ptrdiff_t ldo)                                    \
{                                                                                    \
    if (level == 2)                                                                  \
        pc_ipanels_##S##2(kc, mrows, wpack, slab, off, ncols, out, ldo);             \
    else if (level == 1)                                                             \
        pc_ipanels_##S##1(kc, mrows, wpack, slab, off, ncols, out, ldo);             \
    else                                                                             \
        pc_ipanels_##S##0(kc, mrows, wpack, slab, off, ncols, out, ldo);             \
}

PC_DEFINE_SLAB(float, f)
PC_DEFINE_SLAB(double, d)

/*
 * The strided 1-d conv (conv_strided1d): one de-interleaved slab row
 * row[u] = src[s*u] for u in [i0, i1), zero elsewhere in [0, L); and the
 * copy of an output block plus bias into y (in place when buf == y).
 */
#define PC_DEFINE_DEINT(T, S)                                                        \
PC_CLONES static void pc_deint_row_##S(const T *restrict src, ptrdiff_t s,           \
                                       ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t L,      \
                                       T *restrict row)                              \
{                                                                                    \
    ptrdiff_t u;                                                                     \
    for (u = 0; u < i0; u++) row[u] = 0;                                             \
    if (s == 2)                                                                      \
        for (u = i0; u < i1; u++) row[u] = src[2 * u];                               \
    else                                                                             \
        for (u = i0; u < i1; u++) row[u] = src[s * u];                               \
    for (u = i1 > i0 ? i1 : i0; u < L; u++) row[u] = 0;                              \
}                                                                                    \
PC_CLONES static void pc_store_rows_##S(const T *buf, ptrdiff_t ld,                 \
                                        T *y, ptrdiff_t ldy,                         \
                                        ptrdiff_t rows, ptrdiff_t n,                 \
                                        const T *bias)                               \
{                                                                                    \
    ptrdiff_t r, i;                                                                  \
    for (r = 0; r < rows; r++) {                                                     \
        const T bv = bias ? bias[r] : (T)0;                                          \
        const T *b = buf + r * ld;                                                   \
        T *d = y + r * ldy;                                                          \
        for (i = 0; i < n; i++) d[i] = b[i] + bv;                                    \
    }                                                                                \
}

PC_DEFINE_DEINT(float, f)
PC_DEFINE_DEINT(double, d)

/*
 * The panels of one slab tile.  In 3-d the last (KY-1)*DY rows of every
 * slab plane only feed thrown-away positions: each plane's panels stop at its
 * last valid row (ldo must leave NR columns of slack past the tile).
 */
#define PC_DEFINE_ITILE(T, S)                                                        \
static void pc_itile_##S(int level, const pc_geo *g, const pc_slab *sl, ptrdiff_t kc, \
                         ptrdiff_t mrows, const T *wpack, const T *slab,             \
                         const ptrdiff_t *off, T *out, ptrdiff_t ldo)                \
{                                                                                    \
    ptrdiff_t uz, pl = sl->len[1] * sl->len[2];                                      \
    if (sl->A != 0) {                                                                \
        pc_ipanels_##S(level, kc, mrows, wpack, slab, off, sl->ncols, out, ldo);     \
        return;                                                                      \
    }                                                                                \
    for (uz = 0; uz < sl->t1 - sl->t0; uz++)                                         \
        pc_ipanels_##S(level, kc, mrows, wpack, slab + uz * pl, off,                 \
                       g->osz[1] * sl->len[2], out + uz * pl, ldo);                  \
}

PC_DEFINE_ITILE(float, f)
PC_DEFINE_ITILE(double, d)

/*
 * Weight gradient on the same slabs (the "implicit" conv_weight path):
 *
 *   gw[co, k] += sum_{valid q} slab[q + off[k]] * gy[co, q]
 *
 * The tile's gy is packed transposed (valid positions only, panels of NRW
 * output channels); the micro-kernel keeps an MRW-tap x NRW-channel block in
 * registers over every valid position of the tile (one broadcast per tap
 * from the slab, NRW/VL vector loads from the packed gy per position), then
 * adds the block into the partial weight.  Positions in the padding columns
 * are never visited, so a non-finite input value in them cannot leak in.
 */
#define PC_W_PARAMS_f {{2, 4, 4}, {3, 4, 8}, {6, 4, 16}}    /* MRW, NRV, VL */
#define PC_W_PARAMS_d {{2, 4, 2}, {3, 4, 4}, {6, 4, 8}}

static void pc_w_params(int dbl, int level, ptrdiff_t *mrw, ptrdiff_t *nrw)
{
    static const int pf[3][3] = PC_W_PARAMS_f;
    static const int pd[3][3] = PC_W_PARAMS_d;
    const int *q = dbl ? pd[level] : pf[level];
    *mrw = q[0];
    *nrw = (ptrdiff_t)q[1] * q[2];
}

/* valid segments of a slab tile: virtual start q and packed start j, length */
static ptrdiff_t pc_slab_segments(const pc_geo *g, const pc_slab *sl, ptrdiff_t *seg)
{
    const ptrdiff_t A = sl->A, LY = sl->len[1], LX = sl->len[2];
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : g->osz[1];
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : g->osz[2];
    ptrdiff_t oz, oy, n = 0, j = 0;
    for (oz = z0; oz < z1; oz++)
        for (oy = y0; oy < y1; oy++) {
            seg[3 * n] = ((oz - z0) * LY + (oy - y0)) * LX;
            seg[3 * n + 1] = j;
            seg[3 * n + 2] = x1 - x0;
            j += x1 - x0;
            n++;
        }
    return n;
}

#define PC_DEFINE_WUK(T, S, LV, ATTR, MRW, NRV, VL)                                   \
ATTR static void pc_wpanels_##S##LV(                                                 \
    ptrdiff_t kc, ptrdiff_t cout, const T *slab, const ptrdiff_t *off,               \
    ptrdiff_t nseg, const ptrdiff_t *seg, const T *gyt, ptrdiff_t nval,              \
    T *acc)                                                                          \
{                                                                                    \
    /* acc[co * kc + k] += block; gyt: panels of NRW channels, nval positions */     \
    const ptrdiff_t NRW = NRV * VL;                                                  \
    ptrdiff_t c0, k0, s_, i;                                                         \
    int m, v;                                                                        \
    for (c0 = 0; c0 < cout; c0 += NRW) {                                             \
        const T *gp = gyt + (c0 / NRW) * nval * NRW;                                 \
        for (k0 = 0; k0 < kc; k0 += MRW) {                                           \
            pc_v##S##LV a[MRW][NRV];                                                 \
            ptrdiff_t o[MRW];                                                        \
            for (m = 0; m < MRW; m++) {                                              \
                o[m] = off[k0 + m < kc ? k0 + m : kc - 1];                           \
                for (v = 0; v < NRV; v++) a[m][v] = (pc_v##S##LV){0};                \
            }                                                                        \
            for (s_ = 0; s_ < nseg; s_++) {                                          \
                const T *sq = slab + seg[3 * s_];                                    \
                const T *gq = gp + seg[3 * s_ + 1] * NRW;                            \
                const ptrdiff_t len = seg[3 * s_ + 2];                               \
                for (i = 0; i < len; i++) {                                          \
                    pc_v##S##LV b[NRV];                                              \
                    for (v = 0; v < NRV; v++)                                        \
                        b[v] = *(const pc_vu##S##LV *)(gq + i * NRW + v * VL);       \
                    for (m = 0; m < MRW; m++) {                                      \
                        pc_v##S##LV xv = sq[i + o[m]] - (pc_v##S##LV){0};            \
                        for (v = 0; v < NRV; v++) a[m][v] += xv * b[v];              \
                    }                                                                \
                }                                                                    \
            }                                                                        \
            for (m = 0; m < MRW && k0 + m < kc; m++) {                               \
                T tmp[NRV * VL];                                                     \
                ptrdiff_t c;                                                         \
                for (v = 0; v < NRV; v++) *(pc_vu##S##LV *)(tmp + v * VL) = a[m][v]; \
                for (c = 0; c < NRW && c0 + c < cout; c++)                           \
                    acc[(c0 + c) * kc + k0 + m] += tmp[c];                           \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}

PC_DEFINE_WUK(float, f, 0, PC_NO_ATTR, 2, 4, 4)
PC_DEFINE_WUK(float, f, 1, PC_TARGET("arch=x86-64-v3"), 3, 4, 8)
PC_DEFINE_WUK(float, f, 2, PC_TARGET("arch=x86-64-v4"), 6, 4, 16)
PC_DEFINE_WUK(double, d, 0, PC_NO_ATTR, 2, 4, 2)
PC_DEFINE_WUK(double, d, 1, PC_TARGET("arch=x86-64-v3"), 3, 4, 4)
PC_DEFINE_WUK(double, d, 2, PC_TARGET("arch=x86-64-v4"), 6, 4, 8)

#define PC_DEFINE_WPACK(T, S)                                                        \
/* gyt[panel][j][c] = gy_g[c0 + c, valid position j of the tile] (0 past cout) */   \
PC_CLONES static void pc_pack_gy_##S(const pc_geo *g, const pc_slab *sl,             \
                                     const T *restrict gyg, ptrdiff_t nrw,           \
                                     T *restrict gyt, ptrdiff_t nval)                \
{                                                                                    \
    const ptrdiff_t A = sl->A, OY = g->osz[1], OX = g->osz[2];                       \
    ptrdiff_t z0 = A == 0 ? sl->t0 : 0, z1 = A == 0 ? sl->t1 : g->osz[0];            \
    ptrdiff_t y0 = A == 1 ? sl->t0 : 0, y1 = A == 1 ? sl->t1 : OY;                   \
    ptrdiff_t x0 = A == 2 ? sl->t0 : 0, x1 = A == 2 ? sl->t1 : OX;                   \
    ptrdiff_t c0, c, oz, oy, i, j;                                                   \
    for (c0 = 0; c0 < g->cout_g; c0 += nrw) {                                        \
        T *panel = gyt + (c0 / nrw) * nval * nrw;                                    \
        for (c = 0; c < nrw; c++) {                                                  \
            if (c0 + c >= g->cout_g) {                                               \
                for (j = 0; j < nval; j++) panel[j * nrw + c] = 0;                   \
                continue;                                                            \
            }                                                                        \
            j = 0;                                                                   \
            for (oz = z0; oz < z1; oz++)                                             \
                for (oy = y0; oy < y1; oy++) {                                       \
                    const T *src = gyg + (c0 + c) * g->Pout + (oz * OY + oy) * OX + x0; \
                    for (i = 0; i < x1 - x0; i++, j++) panel[j * nrw + c] = src[i];  \
                }                                                                    \
        }                                                                            \
    }                                                                                \
}                                                                                    \
static void pc_wpanels_##S(int level, ptrdiff_t kc, ptrdiff_t cout, const T *slab,   \
                           const ptrdiff_t *off, ptrdiff_t nseg, const ptrdiff_t *seg, \
                           const T *gyt, ptrdiff_t nval, T *acc)                     \
{                                                                                    \
    if (level == 2)                                                                  \
        pc_wpanels_##S##2(kc, cout, slab, off, nseg, seg, gyt, nval, acc);           \
    else if (level == 1)                                                             \
        pc_wpanels_##S##1(kc, cout, slab, off, nseg, seg, gyt, nval, acc);           \
    else                                                                             \
        pc_wpanels_##S##0(kc, cout, slab, off, nseg, seg, gyt, nval, acc);           \
}

PC_DEFINE_WPACK(float, f)
PC_DEFINE_WPACK(double, d)

#endif /* PYCONV_KERNELS_H */
