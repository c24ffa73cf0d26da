/*
 * Direct convolution with output channels as vector lanes (the "ocvec" path).
 *
 * The GEMM paths put output positions in the vector lanes: on a small map
 * (7x7, 14x14) a panel of 48 positions is mostly padding columns and
 * leftovers.  Here the lanes are output channels instead, so the map's
 * shape costs nothing: a register block holds NV vectors of VL output
 * channels (a "channel block", OCB = NV * VL channels) for RB x CB output
 * positions (RB rows of CB consecutive outputs along x).  For each input
 * channel and tap, the block loads NV weight vectors and broadcasts one
 * input value per position:
 *
 *   acc[v][i][j] += wp[ci][tap][v] * slab[ci][row_i + tapoff[tap] + j * sx]
 *
 * RB x CB is chosen per call from pc_ocv_rb/pc_ocv_cb (about as many
 * positions as the register file holds, NV * RB * CB accumulators) to waste
 * the fewest positions on the map's width; positions past a row's end (read
 * from the next row, or the slack after the slab) or past the item's last
 * row (a repeat of it) are computed and dropped.
 *
 * A work item is (block of images, group, tile of output rows, part of the
 * group's channel blocks).  It copies the input rows of its tile, zero
 * padded, into a slab per image (slab[ci][row][col], rows as wide as the
 * padded input), then for each of its channel blocks runs the register
 * blocks over the rows of all its images in turn (a block's rows may come
 * from two images: a 7x7 map's seventh row shares its block with the next
 * image's first) and scatters them into y (plus bias).  The weights are
 * packed once per call, wp[group][block][ci][tap][OCB] (zero past the
 * group's channels), by a first pass, or by each item just before use where
 * every channel block belongs to one item (fused).  With shared slabs
 * (small maps, several images), the first pass fills every image's slab,
 * all rows, once into one buffer, and the items read their rows there
 * instead of filling their own.  For each input channel a register block
 * prefetches the rows it reads for the next one (a shared slab is read
 * from L3).
 *
 * Each output is one sum in a fixed order (input channels, then taps in
 * order, then the bias): the result does not depend on the tiling or the
 * thread count.  1-d and 2-d convs (canonical z trivial); any stride,
 * dilation and padding.
 */
#ifndef PYCONV_KERNELS_OCVEC_H
#define PYCONV_KERNELS_OCVEC_H

#include "common.h"
#include "microkernels.h"
#include "slab.h"
#include "depthwise.h"      /* PC_TRANSPOSE_16 */

/* full unrolling of the register block's loops (constant trip counts after
   inlining, beyond what compilers unroll by themselves) */
#if defined(__clang__) || defined(__GNUC__)
#define PC_OCV_UNROLL _Pragma("GCC unroll 32")
#else
#define PC_OCV_UNROLL
#endif

/* Input channels ahead that a register block prefetches its rows for. */
#ifndef PC_OCV_PFD
#define PC_OCV_PFD 1
#endif
/* Vectors of output channels per register block. */
#define PC_OCV_NV 2
/* Positions per register block at a level (32 vector registers at AVX-512:
   28 accumulators; 16 below: 12). */
#define PC_OCV_NP(LV) ((LV) == 2 ? 14 : 6)
/* The block shapes (RB rows x CB columns) a level offers, index 0..2. */
#define PC_OCV_NSHAPES 3
static const int pc_ocv_cb[2][PC_OCV_NSHAPES] = {{6, 3, 2}, {14, 7, 4}};
static const int pc_ocv_rb[2][PC_OCV_NSHAPES] = {{1, 2, 3}, {1, 2, 3}};

/* The geometry of one call, shared by its items. */
typedef struct {
    pc_geo g;
    ptrdiff_t rb, cb;      /* register block: rows x columns of outputs */
    ptrdiff_t ocb;         /* output channels per channel block: NV * VL */
    ptrdiff_t ncob;        /* channel blocks per group */
    ptrdiff_t rows;        /* output rows (y) per tile */
    ptrdiff_t ntiles;      /* tiles per image */
    ptrdiff_t parts;       /* parts of a group's channel blocks */
    ptrdiff_t imgs;        /* images per item (one slab each) */
    ptrdiff_t lx;          /* slab row length (the padded input row read) */
    int fused;             /* each item packs its channel blocks' weights itself,
                              into its buffer (every block is used by one item) */
    int shared;            /* the slabs of every image and group, all rows, are
                              filled once by a first pass into one shared buffer
                              (the items fill none of their own) */
    int level;
} pc_ocv;

/* Slab rows for a tile of ``rows`` output rows. */
static inline ptrdiff_t pc_ocv_ly(const pc_geo *g, ptrdiff_t rows)
{
    return (rows - 1) * g->st[1] + (g->ks[1] - 1) * g->dl[1] + 1;
}

/* Slab row length: the padded input row the outputs read.  A register
   block past a row's end reads on into the next row (or the slack after the
   slab's last row): those outputs are dropped. */
static inline ptrdiff_t pc_ocv_lx(const pc_geo *g)
{
    return (g->osz[2] - 1) * g->st[2] + (g->ks[2] - 1) * g->dl[2] + 1;
}

/* Output rows a slab holds: the tile's, or every row (shared slabs). */
static inline ptrdiff_t pc_ocv_slab_rows(const pc_ocv *o)
{
    return o->shared ? o->g.osz[1] : o->rows;
}

/* Elements of one image's slab: its rows, the slack a last register block
   reads past the last one, rounded up to whole cache lines. */
static inline ptrdiff_t pc_ocv_slab(const pc_ocv *o)
{
    return (o->g.cin_g * pc_ocv_ly(&o->g, pc_ocv_slab_rows(o)) * o->lx
            + o->cb * o->g.st[2] + 15) / 16 * 16;
}

/* Elements of the shared slabs (one per image and group), 0 when the items
   fill their own. */
static inline ptrdiff_t pc_ocv_shared(const pc_ocv *o)
{
    return o->shared ? o->g.N * o->g.G * pc_ocv_slab(o) : 0;
}

/* Elements of one channel block's packed weights. */
static inline ptrdiff_t pc_ocv_wblock(const pc_ocv *o)
{
    return o->g.cin_g * o->g.Kp * o->ocb;
}

/* Elements of the first pass's packed weights (every group's blocks), 0
   when the items pack their own. */
static inline ptrdiff_t pc_ocv_wpack(const pc_ocv *o)
{
    return o->fused ? 0 : o->g.G * o->ncob * pc_ocv_wblock(o);
}

/* The input span of one register block row along x, in elements. */
static inline ptrdiff_t pc_ocv_span(const pc_ocv *o)
{
    return (o->cb - 1) * o->g.st[2] + (o->g.ks[2] - 1) * o->g.dl[2] + 1;
}

/* Prefetch offsets of one register block row, elements of ``isz`` bytes:
   one per cache line of each kernel row's span, and its last element. */
static inline ptrdiff_t pc_ocv_npf(const pc_ocv *o, ptrdiff_t isz)
{
    const ptrdiff_t line = 64 / isz;
    return o->g.ks[1] * ((pc_ocv_span(o) + line - 1) / line + 1);
}

/* Elements of one thread's buffers: a channel block's packed weights (when
   fused), the slabs of ``imgs`` images (unless shared), then the staged
   block (NP positions x OCB channels), then the taps' offsets and the
   prefetch offsets (ptrdiff_t, counted as elements). */
static ptrdiff_t pc_ocv_elems(const pc_ocv *o, ptrdiff_t isz)
{
    const ptrdiff_t stage = o->rb * o->cb * o->ocb;
    const ptrdiff_t taps = ((o->g.Kp + pc_ocv_npf(o, isz)) * (ptrdiff_t)sizeof(ptrdiff_t)
                            + isz - 1) / isz;
    return (o->fused ? pc_ocv_wblock(o) : 0) + (o->shared ? 0 : o->imgs * pc_ocv_slab(o))
        + (stage + 15) / 16 * 16 + taps;
}

/*
 * The slab of output rows [oy0, oy1) of image n, group grp:
 * slab[ci][r][c] = x[n, grp * cin_g + ci, oy0 * sy - lo_y + r, c - lo_x],
 * 0 outside the input.
 */
#define PC_DEFINE_OCV_FILL(T, S)                                                     \
static void pc_ocv_fill_##S(const pc_ocv *o, const T *restrict xg, ptrdiff_t oy0,    \
                            ptrdiff_t oy1, T *restrict slab)                         \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t H = g->isz[1], W = g->isz[2], LX = o->lx;                        \
    const ptrdiff_t ly = pc_ocv_ly(g, oy1 - oy0), iy0 = oy0 * g->st[1] - g->lo[1];   \
    const ptrdiff_t a = g->lo[2] < LX ? g->lo[2] : LX;      /* first input column */ \
    const ptrdiff_t n = W < LX - a ? W : LX - a;            /* input columns held */ \
    const ptrdiff_t r0 = iy0 < 0 ? -iy0 : 0;                /* rows holding input */ \
    const ptrdiff_t r1 = H - iy0 < ly ? H - iy0 : ly;                                \
    ptrdiff_t ci, r;                                                                 \
    /* one fill of zeros, the slack included (a call per row of a small map   \
       cost more than the copies), then the input part of each row */                \
    memset(slab, 0, (size_t)(g->cin_g * ly * LX + o->cb * g->st[2]) * sizeof(T));   \
    if (n <= 0)                                                                      \
        return;                                                                      \
    for (ci = 0; ci < g->cin_g; ci++)                                                \
        for (r = r0; r < r1; r++)                                                    \
            memcpy(slab + (ci * ly + r) * LX + a, xg + (ci * H + iy0 + r) * W,       \
                   (size_t)n * sizeof(T));                                           \
}
PC_DEFINE_OCV_FILL(float, f)
PC_DEFINE_OCV_FILL(double, d)

/* One staged position's nl channels (st[l], l < nl) into their planes, y[l *
   plane], plus the bias (NULL: none); shared with winograd_oc.h. */
#define PC_DEFINE_OCV_SCATTER(T, S)                                                  \
static inline void pc_ocv_scatter_##S(T *restrict y, ptrdiff_t plane,                \
                                      const T *restrict st, const T *restrict bias,  \
                                      ptrdiff_t nl)                                  \
{                                                                                    \
    ptrdiff_t l;                                                                     \
    if (bias)                                                                        \
        for (l = 0; l < nl; l++) y[l * plane] = st[l] + bias[l];                     \
    else                                                                             \
        for (l = 0; l < nl; l++) y[l * plane] = st[l];                               \
}
PC_DEFINE_OCV_SCATTER(float, f)
PC_DEFINE_OCV_SCATTER(double, d)

/* The block of shape index SH (a constant) at stride SX, its rows and
   columns read from the shape table (folded to constants by the compiler,
   so that the block's loops unroll), and the dispatch over ``sh``. */
#define PC_OCV_BLOCK(S, LV, SH, SX)                                                  \
    pc_ocv_block_##S##LV(cin, cs, ntap, tapoff, npf, s0, r1off, r2off, wp, stage,    \
                         pc_ocv_rb[(LV) == 2][SH], pc_ocv_cb[(LV) == 2][SH], SX)
#define PC_OCV_SHAPES(S, LV, SX)                                                     \
    do {                                                                             \
        if (sh == 0) PC_OCV_BLOCK(S, LV, 0, SX);                                     \
        else if (sh == 1) PC_OCV_BLOCK(S, LV, 1, SX);                                \
        else PC_OCV_BLOCK(S, LV, 2, SX);                                             \
    } while (0)

/*
 * The level-specific parts.  pc_ocv_block: one register block of RB x CB
 * positions (compile-time after inlining, as is SX when it is 1 or 2), the
 * sums staged as stage[i * CB + j][OCB]; pc_ocv_tile: every block of one
 * channel block over the item's rows.
 */
#define PC_DEFINE_OCV(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                         \
__attribute__((always_inline)) ATTR static inline void pc_ocv_block_##S##LV(         \
    ptrdiff_t cin, ptrdiff_t cs, ptrdiff_t ntap, const ptrdiff_t *restrict tapoff,   \
    ptrdiff_t npf,                                                                   \
    const T *restrict s0, ptrdiff_t r1off, ptrdiff_t r2off, const T *restrict wp,    \
    T *restrict stage, const int RB, const int CB, const ptrdiff_t SX)               \
{                                                                                    \
    pc_v##S##LV acc[PC_OCV_NV][PC_OCV_NP(LV)];                                       \
    const T *r0 = s0, *r1 = s0 + r1off, *r2 = s0 + r2off;                            \
    ptrdiff_t ci, t;                                                                 \
    int i, j, v;                                                                     \
    PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++)                                        \
        PC_OCV_UNROLL for (i = 0; i < RB * CB; i++) acc[v][i] = (pc_v##S##LV){0};        \
    for (ci = 0; ci < cin; ci++, r0 += cs, r1 += cs, r2 += cs) {                     \
        ptrdiff_t k;                                                                 \
        if (ci + PC_OCV_PFD < cin)                                                   \
            for (k = 0; k < npf; k++) {                                              \
                const ptrdiff_t po = PC_OCV_PFD * cs + tapoff[ntap + k];             \
                PC_OCV_UNROLL for (i = 0; i < RB; i++)                               \
                    __builtin_prefetch((i == 0 ? r0 : i == 1 ? r1 : r2) + po);       \
            }                                                                        \
        for (t = 0; t < ntap; t++, wp += PC_OCV_NV * VL) {                           \
            const pc_v##S##LV w0 = *(const pc_v##S##LV *)wp;                         \
            const pc_v##S##LV w1 = *(const pc_v##S##LV *)(wp + VL);                  \
            const ptrdiff_t to = tapoff[t];                                          \
            PC_OCV_UNROLL for (i = 0; i < RB; i++) {                                     \
                const T *src = (i == 0 ? r0 : i == 1 ? r1 : r2) + to;                \
                PC_OCV_UNROLL for (j = 0; j < CB; j++) {                                 \
                    const pc_v##S##LV xv = src[j * SX] - (pc_v##S##LV){0};           \
                    acc[0][i * CB + j] += w0 * xv;                                   \
                    acc[1][i * CB + j] += w1 * xv;                                   \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    PC_OCV_UNROLL for (i = 0; i < RB * CB; i++)                                          \
        PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++)                                    \
            *(pc_v##S##LV *)(stage + i * PC_OCV_NV * VL + v * VL) = acc[v][i];       \
}                                                                                    \
/* The register block of shape ``sh`` at stride ``sx``: strides 1 and 2    \
   (the common ones) as constants. */                                                \
__attribute__((always_inline)) ATTR static inline void pc_ocv_shape_##S##LV(         \
    int sh, ptrdiff_t sx, ptrdiff_t cin, ptrdiff_t cs, ptrdiff_t ntap,               \
    const ptrdiff_t *tapoff, ptrdiff_t npf, const T *s0, ptrdiff_t r1off,            \
    ptrdiff_t r2off, const T *wp, T *stage)                                          \
{                                                                                    \
    if (sx == 1)                                                                     \
        PC_OCV_SHAPES(S, LV, 1);                                                     \
    else if (sx == 2)                                                                \
        PC_OCV_SHAPES(S, LV, 2);                                                     \
    else                                                                             \
        PC_OCV_SHAPES(S, LV, sx);                                                    \
}                                                                                    \
ATTR static void pc_ocv_tile_##S##LV(const pc_ocv *o, int sh, const T *restrict slabs, \
                                     ptrdiff_t SL, ptrdiff_t cs, ptrdiff_t nimg,     \
                                     const ptrdiff_t *restrict tapoff,               \
                                     const T *restrict wpc, const T *restrict bias,  \
                                     T *restrict stage, T *restrict yc, ptrdiff_t yimg, \
                                     ptrdiff_t nl, ptrdiff_t oy0, ptrdiff_t oy1)     \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t RB = o->rb, CB = o->cb, OX = g->osz[2], LX = o->lx;              \
    const ptrdiff_t sy = g->st[1], sx = g->st[2];                                    \
    const ptrdiff_t OCB = PC_OCV_NV * VL;                                            \
    const ptrdiff_t TR = oy1 - oy0, NR = nimg * TR;   /* the item's rows, image-major */ \
    ptrdiff_t q0, x0, i, j;                                                          \
    for (q0 = 0; q0 < NR; q0 += RB) {                                                \
        /* a block's rows may come from two images (their slabs have one layout);   \
           rows past the last repeat it (computed, dropped) */                       \
        const T *rp[3];                                                              \
        T *yr[3];                                                                    \
        for (i = 0; i < 3; i++) {                                                    \
            const ptrdiff_t q = q0 + i < NR ? q0 + i : NR - 1, n = q / TR, r = q % TR; \
            rp[i] = slabs + n * SL + r * sy * LX;                                    \
            yr[i] = yc + n * yimg + (oy0 + r) * OX;                                  \
        }                                                                            \
        for (x0 = 0; x0 < OX; x0 += CB) {                                            \
            pc_ocv_shape_##S##LV(sh, sx, g->cin_g, cs, g->Kp, tapoff,                  \
                                 pc_ocv_npf(o, sizeof(T)),                           \
                                 rp[0] + x0 * sx,                                    \
                                 rp[1] - rp[0], rp[2] - rp[0], wpc, stage);          \
            for (i = 0; i < RB && q0 + i < NR; i++)                                  \
                for (j = 0; j < CB && x0 + j < OX; j++)                              \
                    pc_ocv_scatter_##S(yr[i] + x0 + j, g->Pout, stage + (i * CB + j) * OCB, \
                                       bias, nl);                                    \
        }                                                                            \
    }                                                                                \
}

PC_MICROKERNEL_TABLE(PC_DEFINE_OCV)

/* Output channels per channel block at a level. */
#define PC_OCV_OCB_ENTRY(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                     \
    [2 * (LV) + (sizeof(T) == 8)] = PC_OCV_NV * VL,

static int pc_ocv_ocb(int dbl, int level)
{
    static const int ocb[6] = {PC_MICROKERNEL_TABLE(PC_OCV_OCB_ENTRY)};
    return ocb[2 * level + (dbl != 0)];
}

/* The shape (rows, columns) of register block ``sh`` at a level. */
static void pc_ocv_shape(int level, int sh, ptrdiff_t *rb, ptrdiff_t *cb)
{
    *rb = pc_ocv_rb[level == 2][sh];
    *cb = pc_ocv_cb[level == 2][sh];
}

/*
 * The weights of one channel block: dst[k][l] = w[l * ld + k], k < kc, for
 * the block's ``rows`` channels (rows ``ld`` apart: C_in/g * taps for a whole
 * row, more for a part of one), zero for l >= rows
 * (OCB lanes).  At the AVX-512 level, float32: 16 rows x 16 taps at a time,
 * loaded as 16 vectors and transposed in registers (one 16-lane gather per
 * tap, the previous way, took a fifth of a batch-1 7x7 x 512 call).
 */
#if PYCONV_HAVE_CLONES
typedef float pc_ocv_v16 __attribute__((vector_size(64)));
typedef float pc_ocv_vu16 __attribute__((vector_size(64), aligned(4)));
typedef int32_t pc_ocv_m16 __attribute__((vector_size(64)));
PC_TARGET("arch=x86-64-v4") static void pc_ocv_pack_v4(const float *w, ptrdiff_t rows,
                                                     ptrdiff_t kc, ptrdiff_t ld,
                                                     ptrdiff_t ocb, float *restrict dst)
{
    ptrdiff_t l0, k0, l, j;
    for (l0 = 0; l0 < ocb; l0 += 16) {
        const ptrdiff_t nl = rows - l0 < 0 ? 0 : rows - l0 < 16 ? rows - l0 : 16;
        for (k0 = 0; k0 + 16 <= kc; k0 += 16) {
            pc_ocv_v16 r[16];
            for (l = 0; l < 16; l++)
                r[l] = l < nl ? *(const pc_ocv_vu16 *)(w + (l0 + l) * ld + k0)
                              : (pc_ocv_v16){0};
            PC_TRANSPOSE_16(pc_ocv_m16, r);
            for (j = 0; j < 16; j++)
                *(pc_ocv_vu16 *)(dst + (k0 + j) * ocb + l0) = r[j];
        }
        for (; k0 < kc; k0++)
            for (l = 0; l < 16; l++)
                dst[k0 * ocb + l0 + l] = l < nl ? w[(l0 + l) * ld + k0] : 0.0f;
    }
}
#define PC_OCV_PACK_FAST(w, rows, kc, ld, ocb, dst)                                  \
    (ocb % 16 == 0 && pc_uk_level() == 2 ? (pc_ocv_pack_v4(w, rows, kc, ld, ocb, dst), 1) : 0)
#else
#define PC_OCV_PACK_FAST(w, rows, kc, ld, ocb, dst) 0
#endif
#define PC_OCV_PACK_NONE(w, rows, kc, ld, ocb, dst) 0

#define PC_DEFINE_OCV_PACK(T, S, FAST)                                               \
static void pc_ocv_pack_##S(const T *w, ptrdiff_t rows, ptrdiff_t kc, ptrdiff_t ld,  \
                            ptrdiff_t ocb, T *restrict dst)                          \
{                                                                                    \
    ptrdiff_t k, l;                                                                  \
    if (FAST(w, rows, kc, ld, ocb, dst))                                             \
        return;                                                                      \
    for (k = 0; k < kc; k++)                                                         \
        for (l = 0; l < ocb; l++)                                                    \
            dst[k * ocb + l] = l < rows ? w[l * ld + k] : (T)0;                      \
}
PC_DEFINE_OCV_PACK(float, f, PC_OCV_PACK_FAST)
PC_DEFINE_OCV_PACK(double, d, PC_OCV_PACK_NONE)

/* The shared slab of image n, group grp (every output row), filled by the
   first pass of a shared call. */
#define PC_DEFINE_OCV_FILL_SHARED(T, S)                                              \
static void pc_ocv_fill_shared_##S(const pc_ocv *o, ptrdiff_t e, const T *x, T *xs)  \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t n = e / g->G, grp = e % g->G;                                    \
    pc_ocv_fill_##S(o, x + (n * g->Cin + grp * g->cin_g) * g->Pin, 0, g->osz[1],     \
                    xs + e * pc_ocv_slab(o));                                        \
}
PC_DEFINE_OCV_FILL_SHARED(float, f)
PC_DEFINE_OCV_FILL_SHARED(double, d)

/* One work item: fill the slabs of its images (unless the call's slabs are
   shared: xs), then for every channel block of the part, its register
   blocks over each image (the block's packed weights are read from beyond
   L2 once per item, not once per image).  Fused (o->fused): the item packs
   each channel block from w into its buffer first, and wp is not used; else
   wp holds every block. */
#define PC_DEFINE_OCV_ENTRY(T, S)                                                    \
static void pc_ocv_item_##S(const pc_ocv *o, int sh, ptrdiff_t it, const T *x,       \
                            const T *w, const T *wp, const T *b, T *y, const T *xs,  \
                            T *buf)                                                  \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t part = it % o->parts, tile = (it / o->parts) % o->ntiles;        \
    const ptrdiff_t grp = (it / (o->parts * o->ntiles)) % g->G;                      \
    const ptrdiff_t n0 = it / (o->parts * o->ntiles * g->G) * o->imgs;               \
    const ptrdiff_t n1 = n0 + o->imgs < g->N ? n0 + o->imgs : g->N;                  \
    const ptrdiff_t oy0 = tile * o->rows;                                            \
    const ptrdiff_t oy1 = oy0 + o->rows < g->osz[1] ? oy0 + o->rows : g->osz[1];     \
    const ptrdiff_t b0 = part * o->ncob / o->parts, b1 = (part + 1) * o->ncob / o->parts; \
    const ptrdiff_t OCB = o->ocb, SL = pc_ocv_slab(o);                               \
    /* a channel's rows in the slab: the tile's (the last may be short), or all */   \
    const ptrdiff_t cs = pc_ocv_ly(g, o->shared ? g->osz[1] : oy1 - oy0) * o->lx;    \
    T *wbuf = buf;                                                                   \
    T *own = buf + (o->fused ? pc_ocv_wblock(o) : 0);                                \
    T *stage = own + (o->shared ? 0 : o->imgs * SL);                                 \
    ptrdiff_t *tapoff = (ptrdiff_t *)(stage + (o->rb * o->cb * OCB + 15) / 16 * 16);  \
    const T *slabs;                                                                  \
    ptrdiff_t istride, ky, kx, blk, n;                                               \
    for (ky = 0; ky < g->ks[1]; ky++)                                                \
        for (kx = 0; kx < g->ks[2]; kx++)                                            \
            tapoff[ky * g->ks[2] + kx] = ky * g->dl[1] * o->lx + kx * g->dl[2];      \
    {                     /* the prefetch offsets: a line apart, the last element */ \
        const ptrdiff_t span = pc_ocv_span(o), line = 64 / (ptrdiff_t)sizeof(T);     \
        const ptrdiff_t per = pc_ocv_npf(o, sizeof(T)) / g->ks[1];                   \
        for (ky = 0; ky < g->ks[1]; ky++)                                            \
            for (kx = 0; kx < per; kx++)                                             \
                tapoff[g->Kp + ky * per + kx] = ky * g->dl[1] * o->lx                \
                    + (kx * line < span - 1 ? kx * line : span - 1);                 \
    }                                                                                \
    if (o->shared) {           /* the tile's first row in the image's whole slab */ \
        slabs = xs + (n0 * g->G + grp) * SL + oy0 * g->st[1] * o->lx;                \
        istride = g->G * SL;                                                         \
    } else {                                                                         \
        for (n = n0; n < n1; n++)                                                    \
            pc_ocv_fill_##S(o, x + (n * g->Cin + grp * g->cin_g) * g->Pin, oy0, oy1, \
                            own + (n - n0) * SL);                                    \
        slabs = own;                                                                 \
        istride = SL;                                                                \
    }                                                                                \
    for (blk = b0; blk < b1; blk++) {                                                \
        const ptrdiff_t c0 = blk * OCB;                                              \
        const ptrdiff_t nl = g->cout_g - c0 < OCB ? g->cout_g - c0 : OCB;            \
        const T *wpc = o->fused ? wbuf : wp + (grp * o->ncob + blk) * pc_ocv_wblock(o); \
        if (o->fused)                                                                \
            pc_ocv_pack_##S(w + (grp * g->cout_g + c0) * g->cin_g * g->Kp, nl,       \
                            g->cin_g * g->Kp, g->cin_g * g->Kp, OCB, wbuf);          \
        PC_AT_LEVEL(o->level, pc_ocv_tile, S,                                        \
                    (o, sh, slabs, istride, cs, n1 - n0, tapoff, wpc,                \
                     b ? b + grp * g->cout_g + c0 : NULL, stage,                     \
                     y + (n0 * g->Cout + grp * g->cout_g + c0) * g->Pout,            \
                     g->Cout * g->Pout, nl, oy0, oy1));                              \
    }                                                                                \
}
PC_DEFINE_OCV_ENTRY(float, f)
PC_DEFINE_OCV_ENTRY(double, d)


#endif /* PYCONV_KERNELS_OCVEC_H */
