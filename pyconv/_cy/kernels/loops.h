/*
 * Vectorisable row loops: the direct paths (depthwise and thin groups),
 * the gathers and fills of the GEMM paths and the partial-sum reduction.
 */
#ifndef PYCONV_KERNELS_LOOPS_H
#define PYCONV_KERNELS_LOOPS_H

#include "common.h"

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

#endif /* PYCONV_KERNELS_LOOPS_H */
