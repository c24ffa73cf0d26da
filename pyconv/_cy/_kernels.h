/*
 * The C side of the cython backend, one header per kernel family (in
 * kernels/); the Cython modules declare what they use in _common.pxd.
 *
 *   common.h        build facts, geometry, aligned buffers, run control
 *   loops.h         vectorisable rows: direct paths, gathers, reductions
 *   cols.h          im2col / col2im tiles: BLAS GEMM paths
 *   microkernels.h  the register-blocked micro-kernels and their shape table
 *   packed.h        im2col into panels: packed conv path
 *   slab.h          zero-padded input slabs: implicit conv / conv_weight
 *   deint.h         de-interleaved slabs: strided 1-d conv
 *   peak.h          the CPU's multiply-add throughput (the bench's ceiling)
 *   depthwise.h     channel-interleaved boxes: depthwise conv path
 */
#ifndef PYCONV_KERNELS_H
#define PYCONV_KERNELS_H

#include "kernels/common.h"
#include "kernels/loops.h"
#include "kernels/cols.h"
#include "kernels/microkernels.h"
#include "kernels/packed.h"
#include "kernels/slab.h"
#include "kernels/deint.h"
#include "kernels/peak.h"
#include "kernels/depthwise.h"
#include "kernels/tgemm.h"

#endif /* PYCONV_KERNELS_H */
