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
 *   scatter_add:  y[i*incy]   += x[i]
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
PC_CLONES static void pc_scatter_add_##S(ptrdiff_t n, const T *restrict x,           \
                                         T *restrict y, ptrdiff_t incy)              \
{                                                                                    \
    ptrdiff_t i;                                                                     \
    if (incy == 1) {                                                                 \
        for (i = 0; i < n; i++) y[i] += x[i];                                        \
    } else if (incy == 2) {                                                          \
        for (i = 0; i < n; i++) y[2 * i] += x[i];                                    \
    } else {                                                                         \
        for (i = 0; i < n; i++) y[i * incy] += x[i];                                 \
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
                                    for (m = 0; m < len; m++) {                      \
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

#endif /* PYCONV_KERNELS_H */
