/*
 * The strided 1-d conv path (conv_strided1d).
 */
#ifndef PYCONV_KERNELS_DEINT_H
#define PYCONV_KERNELS_DEINT_H

#include "common.h"

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

#endif /* PYCONV_KERNELS_DEINT_H */
