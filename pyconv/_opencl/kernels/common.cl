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
typedef double real;
#define ZERO 0.0
#else
typedef float real;
#define ZERO 0.0f
#endif

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
