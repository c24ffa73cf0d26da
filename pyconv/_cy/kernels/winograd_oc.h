/*
 * Winograd F(m x m, 3 x 3) with output channels as vector lanes (the
 * "winograd_oc" path).
 *
 * The winograd paths run the products as GEMMs with tiles in the vector
 * lanes, on transformed weights computed for the whole call first: on a
 * small map with many channels (7x7 or 14x14 x 256-512) a call has a few
 * dozen tiles, so the GEMM panels are mostly empty and the transformed
 * weights (P x C_out x C_in, 9-38 MiB) go through memory.  Here the lanes are
 * output channels (as on the ocvec path) and the weight transform is fused
 * into the products:
 *
 * The tiles (t in (image, y, x) order) are taken in rounds of ``rt`` (V
 * holds one round's); per round, two passes:
 *
 * - pass 1, the input transform, item = (group, run of input channels):
 *   V[grp][p][ci][t] = (B^T d B)[p] of tile t, the elements of VL tiles
 *   gathered by a table of offsets (pc_wnoc_offsets; zero in the padding
 *   and for the tiles past the round, up to ``tv``);
 * - pass 2, item = (group, chunk of ``tc`` tiles, up to ``kbs`` blocks of
 *   OCB = NV * VL output channels, which share the reads of V).  For each
 *   run of ``cb`` input channels, the item packs each block's weights
 *   (channels as lanes) and transforms them, Ub[p][ci][OCB] = (G g G^T)[p],
 *   while they are in the L1/L2 cache, and adds their products into
 *   M[p][t][OCB]: a register block of R tiles x NV vectors of channels, per
 *   input channel 2 weight loads and R broadcasts of V (consecutive in
 *   memory) for 2 R FMAs.  Then Y = A^T M A per tile, vectors of channels,
 *   scattered into y (plus bias).
 *
 * The transforms of F(4x4) and F(2x2) are built with their matrices as
 * constants (wino_tables.h) when the call's are those; the positions of
 * V, Ub and M lie a cache line more than a row apart (pc_wnoc_ldv).
 *
 * Stride 2: tiles of m = 2 outputs per axis read windows of 5 inputs, 4
 * apart; F(2, 2) on the window's even positions (taps 0 and 2), its odd
 * ones (tap 1) as they are: alpha = 5 (paths/winograd_oc.py,
 * stride2_matrices).
 *
 * Each output is one sum in a fixed order (input channels in order, then
 * the output transform, then the bias): the result does not depend on the
 * chunks, channel runs or thread count.  2-d, 3x3 kernel, stride 1 or 2,
 * dilation 1, any padding and groups; alpha is 4 or 6 (stride 1), 5 (stride
 * 2).
 */
#ifndef PYCONV_KERNELS_WINOGRAD_OC_H
#define PYCONV_KERNELS_WINOGRAD_OC_H

#include "common.h"
#include "microkernels.h"
#include "ocvec.h"          /* PC_OCV_NV, PC_OCV_NP, PC_OCV_UNROLL, pc_ocv_pack */
#include "wino_tables.h"

/* The geometry of one call, shared by its items. */
typedef struct {
    pc_geo g;
    ptrdiff_t m, alpha, P;      /* outputs per tile and axis; alpha = m + 2 (stride 1) or
                                   2m + 1 (stride 2); P = alpha^2 */
    ptrdiff_t s;                /* the stride (1 or 2, both axes) */
    ptrdiff_t ntx, nty, nt;     /* tiles per row, per column, per call (N * nty * ntx) */
    ptrdiff_t R;                /* tiles per register block (at most PC_OCV_NP) */
    ptrdiff_t tc;               /* tiles per chunk (whole register blocks) */
    ptrdiff_t rt, tv;           /* tiles per round (whole chunks), V's rows (rt rounded up) */
    ptrdiff_t r0, nr, nchunks;  /* this round: its first tile, its tiles, its chunks */
    ptrdiff_t cb, ncb;          /* input channels per run of the weight transform, runs */
    ptrdiff_t cch, ncch;        /* input channels per item of the input transform, items */
    ptrdiff_t ocb, ncob;        /* output channels per block (NV * VL), blocks per group */
    ptrdiff_t kbs, nkg;         /* blocks per item (they share V's reads), items per group's chunk */
    int level;
    int consts;                 /* the matrices equal the tables (wino_tables.h) */
    double bt[36], gm[18], at[24];  /* B^T (alpha x alpha), G (alpha x 3), A^T (m x alpha) */
} pc_wnoc;

/* Elements of one thread's buffers (pass 2; pass 1 needs none): a run's
   packed weights, its transformed weights, the chunk's products, the
   staged outputs of one tile. */
static inline ptrdiff_t pc_wnoc_wp(const pc_wnoc *o) { return (o->cb * 9 * o->ocb + 15) / 16 * 16; }
/* The strides between transformed positions in Ub, M and V: a cache line
   more than their rows, so that the positions of one tile or channel (read
   or written together) do not fall in one L1 set (their rows are often
   whole multiples of 4 KiB). */
static inline ptrdiff_t pc_wnoc_ldu(const pc_wnoc *o) { return o->cb * o->ocb + 16; }
static inline ptrdiff_t pc_wnoc_ldm(const pc_wnoc *o) { return o->tc * o->ocb + 16; }
static inline ptrdiff_t pc_wnoc_ldv(const pc_wnoc *o) { return o->g.cin_g * o->tv + 16; }
static inline ptrdiff_t pc_wnoc_ub(const pc_wnoc *o) { return o->kbs * o->P * pc_wnoc_ldu(o); }
static inline ptrdiff_t pc_wnoc_m(const pc_wnoc *o) { return o->kbs * o->P * pc_wnoc_ldm(o); }

/* Tiles of one tile row whose outputs are staged and written together: 16
   output columns (a vector's worth). */
static inline ptrdiff_t pc_wnoc_run(const pc_wnoc *o) { return 16 / o->m; }

static ptrdiff_t pc_wnoc_elems(const pc_wnoc *o)
{
    return pc_wnoc_wp(o) + pc_wnoc_ub(o) + pc_wnoc_m(o) + pc_wnoc_run(o) * o->m * o->m * o->ocb;
}

/* Whether the call's matrices are the tables' (pc_wnoc.consts). */
static int pc_wnoc_tables(const pc_wnoc *o)
{
    if (o->alpha == 5)
        return memcmp(o->bt, pc_wino_tab_bt52, sizeof pc_wino_tab_bt52) == 0
               && memcmp(o->gm, pc_wino_tab_gm52, sizeof pc_wino_tab_gm52) == 0
               && memcmp(o->at, pc_wino_tab_at52, sizeof pc_wino_tab_at52) == 0;
    if (o->alpha == 6)
        return memcmp(o->bt, pc_wino_tab_bt43, sizeof pc_wino_tab_bt43) == 0
               && memcmp(o->gm, pc_wino_tab_gm43, sizeof pc_wino_tab_gm43) == 0
               && memcmp(o->at, pc_wino_tab_at43, sizeof pc_wino_tab_at43) == 0;
    return memcmp(o->bt, pc_wino_tab_bt23, sizeof pc_wino_tab_bt23) == 0
           && memcmp(o->gm, pc_wino_tab_gm23, sizeof pc_wino_tab_gm23) == 0
           && memcmp(o->at, pc_wino_tab_at23, sizeof pc_wino_tab_at23) == 0;
}

/* Elements of V, the transformed input (a fixed buffer, beside the table of
   offsets: P * tv int32). */
static inline ptrdiff_t pc_wnoc_vsize(const pc_wnoc *o)
{
    return o->g.G * o->P * pc_wnoc_ldv(o);
}

/*
 * Before the passes of a round, the offsets of every tile's input window:
 * ofs[k][t] (k = i * alpha + j, t < tv) is the offset of element (i, j) of
 * the window of the round's tile t in the input of the group's first
 * channel (image n's channels included), -1 where it falls in the padding
 * or past the round's last tile (32-bit: the input has fewer than 2**31
 * elements).  The transform gathers a vector of tiles' elements by it.
 */
static void pc_wnoc_offsets(const pc_wnoc *o, int32_t *ofs)
{
    const pc_geo *g = &o->g;
    const ptrdiff_t A = o->alpha, H = g->isz[1], W = g->isz[2];
    ptrdiff_t t, i, j;
    for (t = 0; t < o->tv; t++) {
        const ptrdiff_t tg = o->r0 + t;
        const ptrdiff_t n = tg / (o->ntx * o->nty), ty = tg / o->ntx % o->nty, tx = tg % o->ntx;
        for (i = 0; i < A; i++)
            for (j = 0; j < A; j++) {
                const ptrdiff_t iy = ty * o->m * o->s - g->lo[1] + i;
                const ptrdiff_t ix = tx * o->m * o->s - g->lo[2] + j;
                ofs[(i * A + j) * o->tv + t] =
                    t < o->nr && iy >= 0 && iy < H && ix >= 0 && ix < W
                        ? (int32_t)(n * g->Cin * g->Pin + iy * W + ix) : -1;
            }
    }
}

/* The input transform's gather of one element of VL tiles: dst[l] =
   xc[of[l]], 0 where of[l] < 0.  float32 at the AVX-512 level: one masked
   16-lane gather (the element-by-element loop took most of the transform). */
#define PC_WNOC_GATHER_LOOP(T, dst, xc, of, l, VL)                                   \
    for (l = 0; l < (VL); l++) (dst)[l] = (of)[l] >= 0 ? (xc)[(of)[l]] : (T)0
#define PC_WNOC_GATHER_f0(dst, xc, of, l) PC_WNOC_GATHER_LOOP(float, dst, xc, of, l, 4)
#define PC_WNOC_GATHER_f1(dst, xc, of, l) PC_WNOC_GATHER_LOOP(float, dst, xc, of, l, 8)
#define PC_WNOC_GATHER_d0(dst, xc, of, l) PC_WNOC_GATHER_LOOP(double, dst, xc, of, l, 2)
#define PC_WNOC_GATHER_d1(dst, xc, of, l) PC_WNOC_GATHER_LOOP(double, dst, xc, of, l, 4)
#define PC_WNOC_GATHER_d2(dst, xc, of, l) PC_WNOC_GATHER_LOOP(double, dst, xc, of, l, 8)
#if PYCONV_HAVE_CLONES
#define PC_WNOC_GATHER_f2(dst, xc, of, l)                                            \
    do {                                                                             \
        const __m512i ix_ = _mm512_loadu_si512((const void *)(of));                  \
        (void)l;                                                                     \
        _mm512_store_ps((dst), _mm512_mask_i32gather_ps(                             \
            _mm512_setzero_ps(), _mm512_cmpge_epi32_mask(ix_, _mm512_setzero_si512()), \
            ix_, (xc), 4));                                                          \
    } while (0)
#else
#define PC_WNOC_GATHER_f2(dst, xc, of, l) PC_WNOC_GATHER_LOOP(float, dst, xc, of, l, 16)
#endif

/* Outputs per tile and axis of the transforms of alpha A: F(A - 2, 3) at
   stride 1 (A = 4, 6), 2 at stride 2 (A = 5). */
#define PC_WNOC_M(A) ((A) == 5 ? 2 : (A) - 2)
/* The coefficient i of matrix NAME (bt, gm, at) of alpha A: with K, the
   table's (a constant after inlining), else the call's (arr). */
#define PC_WNOC_COEF(NAME, A, K, arr, i)                                             \
    ((K) ? ((A) == 6 ? pc_wino_tab_##NAME##43 : (A) == 4 ? pc_wino_tab_##NAME##23     \
            : pc_wino_tab_##NAME##52)[i]                                              \
         : (double)(arr)[i])
/* acc = sum_k c(k) * v(k), k < n, in order, the zero coefficients skipped
   (with constants the tests fold away; +-1 become additions). */
#define PC_WNOC_DOT(T, VT, acc, n, k, C, V)                                          \
    do {                                                                             \
        int first_ = 1;                                                              \
        acc = (VT){0};                                                               \
        PC_OCV_UNROLL for (k = 0; k < (n); k++) {                                    \
            const T c_ = (T)(C);                                                     \
            if (c_ == 0)                                                             \
                continue;                                                            \
            acc = first_ ? c_ * (V) : acc + c_ * (V);                                \
            first_ = 0;                                                              \
        }                                                                            \
    } while (0)

/* The build of a transform step for the call: alpha (4 or 6; 5 at stride
   2, the table's matrices only) and the matrices (the tables' constants, or
   the call's) as compile-time arguments. */
#define PC_WNOC_BUILD(o, fn, ...)                                                    \
    do {                                                                             \
        if ((o)->alpha == 5) fn(__VA_ARGS__, 5, 1);                                  \
        else if ((o)->alpha == 4 && (o)->consts) fn(__VA_ARGS__, 4, 1);              \
        else if ((o)->alpha == 4) fn(__VA_ARGS__, 4, 0);                             \
        else if ((o)->consts) fn(__VA_ARGS__, 6, 1);                                 \
        else fn(__VA_ARGS__, 6, 0);                                                  \
    } while (0)

/* Input channels ahead that the products prefetch V's rows for (a tile
   chunk's rows are a tile row apart, rarely in the L2 cache). */
#ifndef PC_WNOC_PFD
#define PC_WNOC_PFD 8
#endif
/* One case of the register block's tile count R (constant in the block). */
#define PC_WNOC_CASE(S, LV, r)                                                       \
    case r:                                                                          \
        pc_wnoc_block_##S##LV(ncb, vp, tv, up, mp, load, (r) <= PC_OCV_NP(LV) ? (r) : 1); \
        break;

/*
 * The level-specific parts.  pc_wnoc_block: the products of R tiles x NV
 * vectors of output channels over ncb input channels, added to mp[t][OCB]
 * (load) or stored there; pc_wnoc_filter: the weight transform of ncb input
 * channels, packed wk[ci][tap][OCB] -> Ub[p][ci][OCB]; pc_wnoc_output: A^T
 * M A of one tile, staged as st[i * m + j][OCB].
 */
#define PC_DEFINE_WNOC(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                        \
__attribute__((always_inline)) ATTR static inline void pc_wnoc_block_##S##LV(        \
    ptrdiff_t ncb, const T *restrict vp, ptrdiff_t tv, const T *restrict up,         \
    T *restrict mp, int load, const int R)                                           \
{                                                                                    \
    pc_v##S##LV acc[PC_OCV_NV][PC_OCV_NP(LV)];                                       \
    ptrdiff_t c;                                                                     \
    int i, v;                                                                        \
    PC_OCV_UNROLL for (i = 0; i < R; i++)                                            \
        PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++)                                \
            acc[v][i] = load ? *(const pc_v##S##LV *)(mp + (i * PC_OCV_NV + v) * VL) \
                             : (pc_v##S##LV){0};                                     \
    for (c = 0; c < ncb; c++, vp += tv, up += PC_OCV_NV * VL) {                      \
        __builtin_prefetch(vp + PC_WNOC_PFD * tv);                                   \
        __builtin_prefetch(vp + PC_WNOC_PFD * tv + R - 1);                           \
        const pc_v##S##LV w0 = *(const pc_v##S##LV *)up;                             \
        const pc_v##S##LV w1 = *(const pc_v##S##LV *)(up + VL);                      \
        PC_OCV_UNROLL for (i = 0; i < R; i++) {                                      \
            const pc_v##S##LV xv = vp[i] - (pc_v##S##LV){0};                         \
            acc[0][i] += w0 * xv;                                                    \
            acc[1][i] += w1 * xv;                                                    \
        }                                                                            \
    }                                                                                \
    PC_OCV_UNROLL for (i = 0; i < R; i++)                                            \
        PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++)                                \
            *(pc_v##S##LV *)(mp + (i * PC_OCV_NV + v) * VL) = acc[v][i];             \
}                                                                                    \
ATTR static void pc_wnoc_products_##S##LV(const pc_wnoc *o, const T *restrict V,     \
                                          const T *restrict Ub, T *restrict M,       \
                                          ptrdiff_t ncb, ptrdiff_t nkb, ptrdiff_t t0, \
                                          int load)                                  \
{                                                                                    \
    const ptrdiff_t OCB = PC_OCV_NV * VL, tv = o->tv, R = o->R, P = o->P, tc = o->tc; \
    ptrdiff_t p, tl, kb;                                                             \
    for (p = 0; p < P; p++)                                                          \
        for (tl = 0; tl < tc; tl += R)                                               \
            for (kb = 0; kb < nkb; kb++) {   /* the same V block, from L1 */        \
                const T *vp = V + p * pc_wnoc_ldv(o) + t0 + tl;                      \
                const T *up = Ub + (kb * P + p) * pc_wnoc_ldu(o);                    \
                T *mp = M + (kb * P + p) * pc_wnoc_ldm(o) + tl * OCB;                \
                switch (R) {                                                         \
                    PC_WNOC_CASE(S, LV, 1) PC_WNOC_CASE(S, LV, 2)                    \
                    PC_WNOC_CASE(S, LV, 3) PC_WNOC_CASE(S, LV, 4)                    \
                    PC_WNOC_CASE(S, LV, 5) PC_WNOC_CASE(S, LV, 6)                    \
                    PC_WNOC_CASE(S, LV, 7) PC_WNOC_CASE(S, LV, 8)                    \
                    PC_WNOC_CASE(S, LV, 9) PC_WNOC_CASE(S, LV, 10)                   \
                    PC_WNOC_CASE(S, LV, 11) PC_WNOC_CASE(S, LV, 12)                  \
                    PC_WNOC_CASE(S, LV, 13)                                          \
                    default: PC_WNOC_CASE(S, LV, 14)                                 \
                }                                                                    \
            }                                                                        \
}                                                                                    \
__attribute__((always_inline)) ATTR static inline void pc_wnoc_in_a_##S##LV(        \
    const pc_wnoc *o, const T *restrict xc, const int32_t *restrict ofs,             \
    T *restrict Vc, const int A, const int K)                                        \
{                                                                                    \
    const ptrdiff_t tv = o->tv, ps = pc_wnoc_ldv(o);                                 \
    T bt[36], dd[36 * VL] __attribute__((aligned(64)));                              \
    ptrdiff_t t0;                                                                    \
    int i, j, k, l;                                                                  \
    for (i = 0; i < A * A; i++) bt[i] = (T)o->bt[i];                                 \
    for (t0 = 0; t0 < tv; t0 += VL) {                                                \
        pc_v##S##LV s[36];                                                           \
        for (k = 0; k < A * A; k++)                                                  \
            PC_WNOC_GATHER_##S##LV(dd + k * VL, xc, ofs + k * tv + t0, l);           \
        PC_OCV_UNROLL for (i = 0; i < A; i++)                                        \
            PC_OCV_UNROLL for (j = 0; j < A; j++)                                    \
                PC_WNOC_DOT(T, pc_v##S##LV, s[i * A + j], A, k,                      \
                            PC_WNOC_COEF(bt, A, K, bt, i * A + k),                   \
                            *(const pc_v##S##LV *)(dd + (k * A + j) * VL));          \
        PC_OCV_UNROLL for (i = 0; i < A; i++)                                        \
            PC_OCV_UNROLL for (j = 0; j < A; j++) {                                  \
                pc_v##S##LV acc;                                                     \
                PC_WNOC_DOT(T, pc_v##S##LV, acc, A, k,                               \
                            PC_WNOC_COEF(bt, A, K, bt, j * A + k), s[i * A + k]);    \
                *(pc_v##S##LV *)(Vc + (i * A + j) * ps + t0) = acc;                  \
            }                                                                        \
    }                                                                                \
}                                                                                    \
ATTR static void pc_wnoc_input_##S##LV(const pc_wnoc *o, const T *xc,                \
                                       const int32_t *ofs, T *Vc)                    \
{                                                                                    \
    PC_WNOC_BUILD(o, pc_wnoc_in_a_##S##LV, o, xc, ofs, Vc);                          \
}                                                                                    \
__attribute__((always_inline)) ATTR static inline void pc_wnoc_filter_a_##S##LV(     \
    const pc_wnoc *o, const T *restrict wk, ptrdiff_t ncb, T *restrict Ub,           \
    const int A, const int K)                                                        \
{                                                                                    \
    const ptrdiff_t OCB = PC_OCV_NV * VL, ldu = pc_wnoc_ldu(o);                      \
    T gm[18];                                                                        \
    ptrdiff_t c;                                                                     \
    int i, j, a, b, v;                                                               \
    for (i = 0; i < A * 3; i++) gm[i] = (T)o->gm[i];                                 \
    for (c = 0; c < ncb; c++)                                                        \
        PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++) {                              \
            pc_v##S##LV gg[9], tmp[6][3];                                            \
            PC_OCV_UNROLL for (i = 0; i < 9; i++)                                    \
                gg[i] = *(const pc_v##S##LV *)(wk + (c * 9 + i) * OCB + v * VL);     \
            PC_OCV_UNROLL for (i = 0; i < A; i++)                                    \
                PC_OCV_UNROLL for (b = 0; b < 3; b++)                                \
                    PC_WNOC_DOT(T, pc_v##S##LV, tmp[i][b], 3, a,                     \
                                PC_WNOC_COEF(gm, A, K, gm, i * 3 + a), gg[a * 3 + b]); \
            PC_OCV_UNROLL for (i = 0; i < A; i++)                                    \
                PC_OCV_UNROLL for (j = 0; j < A; j++) {                              \
                    pc_v##S##LV acc;                                                 \
                    PC_WNOC_DOT(T, pc_v##S##LV, acc, 3, b,                           \
                                PC_WNOC_COEF(gm, A, K, gm, j * 3 + b), tmp[i][b]);   \
                    *(pc_v##S##LV *)(Ub + (i * A + j) * ldu + c * OCB + v * VL) = acc; \
                }                                                                    \
        }                                                                            \
}                                                                                    \
ATTR static void pc_wnoc_filter_##S##LV(const pc_wnoc *o, const T *wk, ptrdiff_t ncb, \
                                        T *Ub)                                       \
{                                                                                    \
    PC_WNOC_BUILD(o, pc_wnoc_filter_a_##S##LV, o, wk, ncb, Ub);                      \
}                                                                                    \
__attribute__((always_inline)) ATTR static inline void pc_wnoc_output_a_##S##LV(     \
    const pc_wnoc *o, const T *restrict M, ptrdiff_t tl, T *restrict st, const int A, \
    const int K)                                                                     \
{                                                                                    \
    const ptrdiff_t OCB = PC_OCV_NV * VL, ldm = pc_wnoc_ldm(o);                      \
    const int m = PC_WNOC_M(A);                                                      \
    T at[24];                                                                        \
    int i, j, a, b, v;                                                               \
    for (i = 0; i < m * A; i++) at[i] = (T)o->at[i];                                 \
    PC_OCV_UNROLL for (v = 0; v < PC_OCV_NV; v++) {                                  \
        pc_v##S##LV q[4][6];                                                         \
        PC_OCV_UNROLL for (i = 0; i < m; i++)                                        \
            PC_OCV_UNROLL for (b = 0; b < A; b++)                                    \
                PC_WNOC_DOT(T, pc_v##S##LV, q[i][b], A, a,                           \
                            PC_WNOC_COEF(at, A, K, at, i * A + a),                   \
                            *(const pc_v##S##LV *)(M + (a * A + b) * ldm + tl * OCB + v * VL)); \
        PC_OCV_UNROLL for (i = 0; i < m; i++)                                        \
            PC_OCV_UNROLL for (j = 0; j < m; j++) {                                  \
                pc_v##S##LV acc;                                                     \
                PC_WNOC_DOT(T, pc_v##S##LV, acc, A, b,                               \
                            PC_WNOC_COEF(at, A, K, at, j * A + b), q[i][b]);         \
                *(pc_v##S##LV *)(st + (i * m + j) * OCB + v * VL) = acc;             \
            }                                                                        \
    }                                                                                \
}                                                                                    \
ATTR static void pc_wnoc_output_##S##LV(const pc_wnoc *o, const T *M, ptrdiff_t tl,  \
                                        T *st)                                       \
{                                                                                    \
    PC_WNOC_BUILD(o, pc_wnoc_output_a_##S##LV, o, M, tl, st);                        \
}

PC_MICROKERNEL_TABLE(PC_DEFINE_WNOC)

/* Tiles per register block at a level (the ocvec block's positions). */
static int pc_wnoc_np(int level)
{
    return level == 2 ? PC_OCV_NP(2) : PC_OCV_NP(1);
}

/* Pass 1: item it = (group, run of cch input channels); ofs: the round's
   table (pc_wnoc_offsets). */
#define PC_DEFINE_WNOC_INPUT(T, S)                                                   \
static void pc_wnoc_input_##S(const pc_wnoc *o, ptrdiff_t it, const T *x,            \
                              const int32_t *ofs, T *V)                              \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t grp = it / o->ncch, c0 = it % o->ncch * o->cch;                  \
    const ptrdiff_t c1 = c0 + o->cch < g->cin_g ? c0 + o->cch : g->cin_g;            \
    ptrdiff_t ci;                                                                    \
    for (ci = c0; ci < c1; ci++)                                                     \
        PC_AT_LEVEL(o->level, pc_wnoc_input, S,                                      \
                    (o, x + (grp * g->cin_g + ci) * g->Pin, ofs,                     \
                     V + grp * o->P * pc_wnoc_ldv(o) + ci * o->tv));                 \
}
PC_DEFINE_WNOC_INPUT(float, f)
PC_DEFINE_WNOC_INPUT(double, d)

/*
 * The outputs of a run of ``run`` tiles of one tile row, staged as
 * st[u][i * m + j][OCB] (tile u of the run, output (i, j) of the tile), into
 * y: yb at the run's first output (channel 0 of the block), rows OW apart,
 * channels ``plane`` apart, ``rows`` x ``cols`` outputs (clipped to the
 * map), plus bias (NULL: none), for the block's first nl channels.
 * The default copies output by output (the channels of one output are a
 * plane apart: a store per channel); at the AVX-512 level, float32, the
 * 16 columns x 16 channels of each row are transposed in registers and
 * stored as 16 rows (one masked store per channel).
 */
#define PC_DEFINE_WNOC_WRITE(T, S)                                                   \
static void pc_wnoc_write_run_##S(const T *restrict st, ptrdiff_t m, ptrdiff_t ocb,  \
                                  ptrdiff_t rows, ptrdiff_t cols, T *restrict yb,    \
                                  ptrdiff_t OW, ptrdiff_t plane,                     \
                                  const T *restrict bias, ptrdiff_t nl)              \
{                                                                                    \
    ptrdiff_t i, x;                                                                  \
    for (i = 0; i < rows; i++)                                                       \
        for (x = 0; x < cols; x++)                                                   \
            pc_ocv_scatter_##S(yb + i * OW + x, plane,                               \
                               st + ((x / m) * m * m + i * m + x % m) * ocb, bias, nl); \
}
PC_DEFINE_WNOC_WRITE(float, f)
PC_DEFINE_WNOC_WRITE(double, d)

#if PYCONV_HAVE_CLONES
PC_TARGET("arch=x86-64-v4") static void pc_wnoc_write_run_v4(
    const float *restrict st, ptrdiff_t m, ptrdiff_t ocb, ptrdiff_t rows, ptrdiff_t cols,
    float *restrict yb, ptrdiff_t OW, ptrdiff_t plane, const float *restrict bias,
    ptrdiff_t nl)
{
    const __mmask16 cm = (__mmask16)((1u << cols) - 1u);
    ptrdiff_t i, x, c0, c;
    for (i = 0; i < rows; i++)
        for (c0 = 0; c0 < nl; c0 += 16) {
            pc_ocv_v16 r[16];
            for (x = 0; x < 16; x++)
                r[x] = x < cols ? *(const pc_ocv_v16 *)(st + ((x / m) * m * m + i * m + x % m)
                                                        * ocb + c0)
                                : (pc_ocv_v16){0};
            PC_TRANSPOSE_16(pc_ocv_m16, r);
            for (c = 0; c < 16 && c0 + c < nl; c++) {
                __m512 v = (__m512)r[c];
                if (bias)
                    v = _mm512_add_ps(v, _mm512_set1_ps(bias[c0 + c]));
                _mm512_mask_storeu_ps(yb + (c0 + c) * plane + i * OW, cm, v);
            }
        }
}
#define PC_WNOC_WRITE_FAST_f(st, m, ocb, rows, cols, yb, OW, plane, bias, nl, level)  \
    ((level) == 2 && (ocb) % 16 == 0                                                 \
         ? (pc_wnoc_write_run_v4(st, m, ocb, rows, cols, yb, OW, plane, bias, nl), 1) : 0)
#else
#define PC_WNOC_WRITE_FAST_f(st, m, ocb, rows, cols, yb, OW, plane, bias, nl, level) 0
#endif
#define PC_WNOC_WRITE_FAST_d(st, m, ocb, rows, cols, yb, OW, plane, bias, nl, level) 0

/*
 * Pass 2: item it = (group, chunk of tiles, block of output channels).
 * buf: wk (a run's packed weights), Ub, M, the staged tile.
 */
#define PC_DEFINE_WNOC_ITEM(T, S)                                                    \
static void pc_wnoc_item_##S(const pc_wnoc *o, ptrdiff_t it, const T *V, const T *w, \
                             const T *b, T *y, T *buf)                               \
{                                                                                    \
    const pc_geo *g = &o->g;                                                         \
    const ptrdiff_t kg = it % o->nkg, q = it / o->nkg % o->nchunks;                  \
    const ptrdiff_t grp = it / (o->nkg * o->nchunks), OCB = o->ocb;                  \
    const ptrdiff_t kb0 = kg * o->kbs;                                               \
    const ptrdiff_t nkb = o->ncob - kb0 < o->kbs ? o->ncob - kb0 : o->kbs;           \
    const ptrdiff_t t0 = q * o->tc, m = o->m, OH = g->osz[1], OW = g->osz[2];        \
    const ptrdiff_t kc = g->cin_g * 9;                                               \
    T *wk = buf, *Ub = wk + pc_wnoc_wp(o), *M = Ub + pc_wnoc_ub(o), *st = M + pc_wnoc_m(o); \
    const T *Vg = V + grp * o->P * pc_wnoc_ldv(o);                                   \
    ptrdiff_t r, kb, tl, j;                                                          \
    for (r = 0; r < o->ncb; r++) {                                                   \
        const ptrdiff_t c0r = r * o->cb;                                             \
        const ptrdiff_t ncb = g->cin_g - c0r < o->cb ? g->cin_g - c0r : o->cb;       \
        for (kb = 0; kb < nkb; kb++) {                                               \
            const ptrdiff_t k0 = (kb0 + kb) * OCB;                                   \
            const ptrdiff_t nl = g->cout_g - k0 < OCB ? g->cout_g - k0 : OCB;        \
            pc_ocv_pack_##S(w + (grp * g->cout_g + k0) * kc + c0r * 9, nl, ncb * 9, kc, \
                            OCB, wk);                                                \
            PC_AT_LEVEL(o->level, pc_wnoc_filter, S, (o, wk, ncb, Ub + kb * o->P * pc_wnoc_ldu(o))); \
        }                                                                            \
        PC_AT_LEVEL(o->level, pc_wnoc_products, S,                                   \
                    (o, Vg + c0r * o->tv, Ub, M, ncb, nkb, t0, r > 0));              \
    }                                                                                \
    for (kb = 0; kb < nkb; kb++) {                                                   \
        const ptrdiff_t k0 = (kb0 + kb) * OCB;                                       \
        const ptrdiff_t nl = g->cout_g - k0 < OCB ? g->cout_g - k0 : OCB;            \
        const T *bias = b ? b + grp * g->cout_g + k0 : NULL;                         \
        const T *Mk = M + kb * o->P * pc_wnoc_ldm(o);                                \
        for (tl = 0; tl < o->tc && t0 + tl < o->nr;) {                               \
            /* a run of tiles along one tile row, staged, then written */          \
            const ptrdiff_t t = o->r0 + t0 + tl, tx = t % o->ntx, ty = t / o->ntx % o->nty; \
            const ptrdiff_t n = t / (o->ntx * o->nty);                               \
            ptrdiff_t run = o->ntx - tx, rows, cols;                                 \
            T *yb = y + (n * g->Cout + grp * g->cout_g + k0) * g->Pout + ty * m * OW + tx * m; \
            if (run > pc_wnoc_run(o)) run = pc_wnoc_run(o);                          \
            if (run > o->tc - tl) run = o->tc - tl;                                  \
            if (run > o->nr - t0 - tl) run = o->nr - t0 - tl;                        \
            for (j = 0; j < run; j++)                                                \
                PC_AT_LEVEL(o->level, pc_wnoc_output, S, (o, Mk, tl + j, st + j * m * m * OCB)); \
            rows = OH - ty * m < m ? OH - ty * m : m;                                \
            cols = OW - tx * m < run * m ? OW - tx * m : run * m;                    \
            if (!PC_WNOC_WRITE_FAST_##S(st, m, OCB, rows, cols, yb, OW, g->Pout, bias, nl, \
                                        o->level))                                   \
                pc_wnoc_write_run_##S(st, m, OCB, rows, cols, yb, OW, g->Pout, bias, nl); \
            tl += run;                                                               \
        }                                                                            \
    }                                                                                \
}
PC_DEFINE_WNOC_ITEM(float, f)
PC_DEFINE_WNOC_ITEM(double, d)

#endif /* PYCONV_KERNELS_WINOGRAD_OC_H */
