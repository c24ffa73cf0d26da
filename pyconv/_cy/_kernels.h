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

#endif /* PYCONV_KERNELS_H */
