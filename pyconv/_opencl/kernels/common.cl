/* common.cl -- prepended to every pyconv OpenCL program.
 *
 * Maps the PRECISION define (32 or 64) to the scalar type `real` and
 * enables cl_khr_fp64 only for 64.  INDEX64 selects 64-bit index math
 * (`idx_t`), used when an array may hold 2**31 elements or more.
 * ND (1, 2 or 3) is the number of spatial dimensions.
 */
#ifndef PRECISION
#define PRECISION 32
#endif

#if PRECISION == 64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#define REAL_NAME double
#define ZERO 0.0
#else
#define REAL_NAME float
#define ZERO 0.0f
#endif
typedef REAL_NAME real;

#ifdef INDEX64
typedef long idx_t;
#else
typedef int idx_t;
#endif

#ifndef ND
#define ND 3
#endif

/* Tile geometry of the implicit-GEMM kernels (overridden by -D):
 * a work-group computes a TM x TN tile of the output matrix, each
 * work-item an RM x RN register block; TK is the depth of one
 * local-memory stage.  Work-group shape: (TN/RN, TM/RM). */
#ifndef TM
#define TM 64
#endif
#ifndef TN
#define TN 64
#endif
#ifndef TK
#define TK 16
#endif
#ifndef RM
#define RM 4
#endif
#ifndef RN
#define RN 4
#endif
#define WGM (TM / RM)
#define WGN (TN / RN)
#define WG (WGM * WGN)

/* Tap table: one row of TAB_STRIDE ints per kernel tap,
 * (offset along dim 0, 1, 2, linear input offset, weight tap index). */
#define TAB_STRIDE 5

/* Which outputs of the tile a work-item owns.  GPU layout: interleaved
 * (item t owns t, t + WGN, ...), so neighbouring work-items touch
 * neighbouring local-memory words (no bank conflicts) and neighbouring
 * global addresses (coalesced).  CPU layout (CONSECUTIVE): item t owns
 * t*RN ... t*RN + RN-1, so the register block is a contiguous run the
 * compiler turns into SIMD loads and FMAs (a CPU driver runs the
 * work-items of a group one after the other). */
#ifdef CONSECUTIVE
#define CIDX(t, j) ((t) * RN + (j))
#define RIDX(t, i) ((t) * RM + (i))
#else
#define CIDX(t, j) ((t) + (j) * WGN)
#define RIDX(t, i) ((t) + (i) * WGM)
#endif

/* The register block: acc[i][j] for i < RM, j < RN.  In the CPU layout
 * each row is RN/VW vectors of VW reals (the host sets VW so that a
 * vector is at most 32 bytes), loaded from local memory with vloadVW and
 * updated with vector multiply-adds. */
#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#ifdef CONSECUTIVE
#ifndef VW
#define VW RN
#endif
#define NV (RN / VW)
typedef PASTE(REAL_NAME, VW) realv;
#define VLOADN PASTE(vload, VW)
#define VSTOREN PASTE(vstore, VW)
#define ACC_DECL realv acc[RM][NV]
#define ACC_ZERO()                      \
    for (int i = 0; i < RM; ++i)        \
        for (int v = 0; v < NV; ++v)    \
            acc[i][v] = (realv)(ZERO)
/* one stage of TK products from the local tiles As (TK x TM) and Bs (TK x TN) */
#define ACC_STAGE()                                                 \
    for (int k = 0; k < TK; ++k) {                                  \
        realv bv[NV];                                               \
        for (int v = 0; v < NV; ++v)                                \
            bv[v] = VLOADN(tx * NV + v, &Bs[k][0]);                 \
        for (int i = 0; i < RM; ++i) {                              \
            const real a = As[k][RIDX(ty, i)];                      \
            for (int v = 0; v < NV; ++v) acc[i][v] += a * bv[v];    \
        }                                                           \
    }
/* row i of the block into the private array r[RN] */
#define ACC_ROW(i, r) for (int v = 0; v < NV; ++v) VSTOREN(acc[i][v], v, r)
#else
#define ACC_DECL real acc[RM][RN]
#define ACC_ZERO()                      \
    for (int i = 0; i < RM; ++i)        \
        for (int j = 0; j < RN; ++j)    \
            acc[i][j] = ZERO
#define ACC_STAGE()                                                          \
    for (int k = 0; k < TK; ++k) {                                           \
        real a[RM], bb[RN];                                                  \
        for (int i = 0; i < RM; ++i) a[i] = As[k][RIDX(ty, i)];              \
        for (int j = 0; j < RN; ++j) bb[j] = Bs[k][CIDX(tx, j)];             \
        for (int i = 0; i < RM; ++i)                                         \
            for (int j = 0; j < RN; ++j)                                     \
                acc[i][j] += a[i] * bb[j];                                   \
    }
#define ACC_ROW(i, r) for (int j_ = 0; j_ < RN; ++j_) r[j_] = acc[i][j_]
#endif
