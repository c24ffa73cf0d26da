/*
 * Depthwise convolutions on channel-interleaved boxes (the "depthwise" path).
 *
 * In a depthwise conv every output channel reads one input channel, so the
 * work per output is only the kernel's taps: a GEMM has nothing to block on
 * and a loop along one image row leaves most vector lanes idle on the small
 * maps of real models (7x7, 14x14).  Here the lanes are channels instead:
 * a work item takes VL consecutive output channels of one image (a "block")
 * and a tile of output rows, and copies the input box those rows read into
 * a buffer where the VL channels of one pixel are adjacent (box[z][y][x][VL],
 * zero padded).  Every tap is then one vector FMA per output pixel, with
 * the VL per-channel weights of that tap as the other operand, whatever the
 * map's width.  R output pixels along x stay in registers over all taps;
 * the block is then written back to the VL channel planes (plus bias).
 *
 * Each output is one sum in a fixed order (taps z, y, x increasing, then the
 * bias), independent of the tiling and of the thread count.
 *
 * The box of a tile: output ranges [o0, o1) per axis (the x range rounded
 * up to a multiple of R, the extra outputs computed and dropped), input
 * start o0*s - lo, extent (n-1)*s + (k-1)*d + 1.
 */
#ifndef PYCONV_KERNELS_DEPTHWISE_H
#define PYCONV_KERNELS_DEPTHWISE_H

#include "common.h"
#include "microkernels.h"

/* Output pixels per register block, per SIMD level (32 vector registers at
   AVX-512, 16 below); a block at the end of a row takes half as many when
   that is enough.  A multiple of every lane count of the level. */
#define PC_DW_R(LV) ((LV) == 2 ? 16 : 8)

/*
 * In-register transpose of a VL x VL block (rows r[0..VL)), in log2(VL)
 * stages: the stage of bit b swaps bit b of the row index with bit b of
 * the column index, so after all stages element (i, j) sits at (j, i).
 * Each stage is VL two-vector shuffles with constant lane indices.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define PC_SHUF(M, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define PC_SHUF(M, a, b, ...) __builtin_shuffle(a, b, (M){__VA_ARGS__})
#endif
/* lane c of the new row with bit b clear (LO) / set (HI) of the pair (A, B) */
#define PC_TR_LO(c, b, V) ((((c) >> (b)) & 1) ? (V) + ((c) ^ (1 << (b))) : (c))
#define PC_TR_HI(c, b, V) ((((c) >> (b)) & 1) ? (V) + (c) : ((c) | (1 << (b))))
#define PC_IDX2(F, b) F(0, b, 2), F(1, b, 2)
#define PC_IDX4(F, b) F(0, b, 4), F(1, b, 4), F(2, b, 4), F(3, b, 4)
#define PC_IDX8(F, b) F(0, b, 8), F(1, b, 8), F(2, b, 8), F(3, b, 8), F(4, b, 8),        \
    F(5, b, 8), F(6, b, 8), F(7, b, 8)
#define PC_IDX16(F, b) F(0, b, 16), F(1, b, 16), F(2, b, 16), F(3, b, 16), F(4, b, 16),  \
    F(5, b, 16), F(6, b, 16), F(7, b, 16), F(8, b, 16), F(9, b, 16), F(10, b, 16),        \
    F(11, b, 16), F(12, b, 16), F(13, b, 16), F(14, b, 16), F(15, b, 16)
#define PC_TR_STAGE(M, r, V, IDX, b)                                                 \
    do {                                                                             \
        int i_;                                                                      \
        for (i_ = 0; i_ < (V); i_++)                                                 \
            if (!((i_ >> (b)) & 1)) {                                                \
                const int j_ = i_ | (1 << (b));                                      \
                __typeof__(r[0]) lo_ = PC_SHUF(M, r[i_], r[j_], IDX(PC_TR_LO, b));   \
                __typeof__(r[0]) hi_ = PC_SHUF(M, r[i_], r[j_], IDX(PC_TR_HI, b));   \
                r[i_] = lo_;                                                         \
                r[j_] = hi_;                                                         \
            }                                                                        \
    } while (0)
#define PC_TRANSPOSE_2(M, r) PC_TR_STAGE(M, r, 2, PC_IDX2, 0)
#define PC_TRANSPOSE_4(M, r)                                                         \
    do { PC_TR_STAGE(M, r, 4, PC_IDX4, 0); PC_TR_STAGE(M, r, 4, PC_IDX4, 1); } while (0)
#define PC_TRANSPOSE_8(M, r)                                                         \
    do {                                                                             \
        PC_TR_STAGE(M, r, 8, PC_IDX8, 0); PC_TR_STAGE(M, r, 8, PC_IDX8, 1);          \
        PC_TR_STAGE(M, r, 8, PC_IDX8, 2);                                            \
    } while (0)
#define PC_TRANSPOSE_16(M, r)                                                        \
    do {                                                                             \
        PC_TR_STAGE(M, r, 16, PC_IDX16, 0); PC_TR_STAGE(M, r, 16, PC_IDX16, 1);      \
        PC_TR_STAGE(M, r, 16, PC_IDX16, 2); PC_TR_STAGE(M, r, 16, PC_IDX16, 3);      \
    } while (0)

/* the lane indices of a shuffle of T vectors (for compilers without
   __builtin_shufflevector) */
#define PC_DW_MASK_f int32_t
#define PC_DW_MASK_d int64_t

typedef struct {
    ptrdiff_t o0[3], o1[3];   /* the tile's outputs per axis */
    ptrdiff_t start[3];       /* input coordinate of box index 0, per axis */
    ptrdiff_t len[3];         /* box extent per axis */
    ptrdiff_t nx;             /* outputs computed along x (o1 - o0 rounded up) */
} pc_dwbox;

/*
 * The box of output rows [t0, t1) along axis A (0 z, 1 y, 2 x); the axes
 * after A are whole, the ones before it trivial.  The tile's outputs are
 * then one contiguous run of each channel plane.
 */
static void pc_dw_box(const pc_geo *g, ptrdiff_t A, ptrdiff_t t0, ptrdiff_t t1, ptrdiff_t R,
                      pc_dwbox *bx)
{
    ptrdiff_t ax, n;
    for (ax = 0; ax < 3; ax++) {
        bx->o0[ax] = ax == A ? t0 : 0;
        bx->o1[ax] = ax == A ? t1 : g->osz[ax];
        n = bx->o1[ax] - bx->o0[ax];
        if (ax == 2) {      /* blocks of R, the last one of R/2 when that is enough */
            ptrdiff_t rem = n % R;
            n += rem == 0 ? 0 : (rem <= R / 2 ? R / 2 : R) - rem;
            bx->nx = n;
        }
        bx->start[ax] = bx->o0[ax] * g->st[ax] - g->lo[ax];
        bx->len[ax] = (n - 1) * g->st[ax] + (g->ks[ax] - 1) * g->dl[ax] + 1;
    }
}

/*
 * Elements of one thread's buffers for tiles of ``rows`` output rows along
 * A: the box, then the staged outputs (one vector per output: at most VL - 1
 * left from the rows before and one row), each with slack for the whole
 * vectors and blocks accessed past the end.
 * ``*box_elems``: where the staged outputs start.
 */
static ptrdiff_t pc_dw_elems(const pc_geo *g, ptrdiff_t A, ptrdiff_t rows, ptrdiff_t R,
                             ptrdiff_t VL, ptrdiff_t *box_elems)
{
    pc_dwbox bx;
    ptrdiff_t nbox, nout;
    pc_dw_box(g, A, 0, rows < g->osz[A] ? rows : g->osz[A], R, &bx);
    nbox = (bx.len[0] * bx.len[1] * bx.len[2] + VL) * VL;
    nout = (VL + bx.nx + R) * VL;
    if (box_elems)
        *box_elems = nbox;
    return nbox + nout;
}

/* full unrolling of the register-reuse loops (their trip counts are constants
   after inlining, but beyond what compilers unroll by themselves) */
#if defined(__clang__) || defined(__GNUC__)
#define PC_UNROLL _Pragma("GCC unroll 32")
#else
#define PC_UNROLL
#endif

/* dst[0..n) = src[0..n) for n < 16, in fixed-size pieces (a short copy of
   variable length would become a slow string instruction) */
#define PC_DEFINE_DW_PUT(T, S)                                                       \
static inline void pc_dw_put_##S(T *restrict dst, const T *restrict src, ptrdiff_t n) \
{                                                                                    \
    if (n & 8) { memcpy(dst, src, 8 * sizeof(T)); dst += 8; src += 8; }              \
    if (n & 4) { memcpy(dst, src, 4 * sizeof(T)); dst += 4; src += 4; }              \
    if (n & 2) { memcpy(dst, src, 2 * sizeof(T)); dst += 2; src += 2; }              \
    if (n & 1) *dst = *src;                                                          \
}
PC_DEFINE_DW_PUT(float, f)
PC_DEFINE_DW_PUT(double, d)

/*
 * The level-specific parts (VL lanes of T, blocks of R or R/2 pixels).
 * Both transposes work on VL consecutive elements of the channel planes
 * (the input's rows are contiguous, and so are the tile's outputs), so no
 * lane is wasted on a narrow map:
 *
 *   pc_dw_fill:  box[z][y][x][l] = x[n, channel read by output c0 + l] at
 *                (start + (z, y, x)), 0 outside the input and for l >= nl;
 *   pc_dw_tile:  the tile's outputs of the block from the box, the packed
 *                weights wp[tap][VL] and bias bp[VL] (NULL: none), staged
 *                one vector per output in ``out``, then transposed into the
 *                nl channel planes of y_n from channel c0.
 */
#define PC_DEFINE_DW(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                          \
typedef PC_DW_MASK_##S pc_dwm##S##LV __attribute__((vector_size(VL * sizeof(T))));  \
ATTR static void pc_dw_fill_##S##LV(const pc_geo *g, const pc_dwbox *bx,             \
                                    const T *restrict xn, ptrdiff_t c0, ptrdiff_t nl, \
                                    T *restrict box)                                 \
{                                                                                    \
    const ptrdiff_t LZ = bx->len[0], LY = bx->len[1], LX = bx->len[2];               \
    const ptrdiff_t H = g->isz[1], W = g->isz[2];                                    \
    const T *xend = xn + g->Cin * g->Pin;                                            \
    const T *src[VL];                                                                \
    /* box columns [a, b) and rows [y0, y1), planes [z0, z1) hold input */          \
    ptrdiff_t a = -bx->start[2], b = W - bx->start[2];                               \
    ptrdiff_t y0 = -bx->start[1], y1 = H - bx->start[1];                             \
    ptrdiff_t z0 = -bx->start[0], z1 = g->isz[0] - bx->start[0];                     \
    ptrdiff_t uz, uy, p, l, j;                                                       \
    if (a < 0) a = 0;                                                                \
    if (b > LX) b = LX;                                                              \
    if (y0 < 0) y0 = 0;                                                              \
    if (y1 > LY) y1 = LY;                                                            \
    if (z0 < 0) z0 = 0;                                                              \
    if (z1 > LZ) z1 = LZ;                                                            \
    for (uz = 0; uz < LZ; uz++)      /* the padding */                              \
        for (uy = 0; uy < LY; uy++) {                                                \
            T *d = box + (uz * LY + uy) * LX * VL;                                   \
            if (uz < z0 || uz >= z1 || uy < y0 || uy >= y1 || a >= b) {              \
                memset(d, 0, (size_t)(LX * VL) * sizeof(T));                         \
            } else {                                                                 \
                memset(d, 0, (size_t)(a * VL) * sizeof(T));                          \
                memset(d + b * VL, 0, (size_t)((LX - b) * VL) * sizeof(T));          \
            }                                                                        \
        }                                                                            \
    if (a >= b || y0 >= y1 || z0 >= z1)                                              \
        return;                                                                      \
    for (l = 0; l < VL; l++)                                                         \
        src[l] = l < nl ? xn + ((c0 + l) / g->cout_g) * g->Pin : NULL;               \
    for (uz = z0; uz < z1; uz++) {                                                   \
        /* the input rows the box holds: one run of each channel plane */            \
        const ptrdiff_t p0 = ((bx->start[0] + uz) * H + bx->start[1] + y0) * W;      \
        const ptrdiff_t p1 = p0 + (y1 - y0) * W;                                     \
        ptrdiff_t row = y0, col = 0;                                                 \
        for (p = p0; p < p1; p += VL) {                                              \
            const ptrdiff_t cnt = p1 - p < VL ? p1 - p : VL;                         \
            pc_v##S##LV r[VL];                                                       \
            for (l = 0; l < VL; l++) {                                               \
                if (!src[l]) {                                                       \
                    r[l] = (pc_v##S##LV){0};                                         \
                } else if (cnt == VL || src[l] + p + VL <= xend) {                   \
                    r[l] = *(const pc_vu##S##LV *)(src[l] + p);                      \
                } else {                                                             \
                    T tmp[16] = {0};                                                 \
                    for (j = 0; j < cnt; j++) tmp[j] = src[l][p + j];                \
                    r[l] = *(const pc_vu##S##LV *)tmp;                               \
                }                                                                    \
            }                                                                        \
            PC_TRANSPOSE_##VL(pc_dwm##S##LV, r);                                     \
            for (j = 0; j < cnt; j++) {   /* pixel p + j: (row, col) of the input */ \
                const ptrdiff_t ux = col - bx->start[2];                             \
                if (ux >= a && ux < b)                                               \
                    *(pc_v##S##LV *)(box + ((uz * LY + row) * LX + ux) * VL) = r[j]; \
                if (++col == W) {                                                    \
                    col = 0;                                                         \
                    row++;                                                           \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    }                                                                                \
}                                                                                    \
/* R staged outputs from box row pointer ``row0`` (stride sx, dilation dx in      \
   elements) */                                                                      \
__attribute__((always_inline)) ATTR static inline void pc_dw_block_##S##LV(          \
    const pc_geo *g, const T *restrict row0, ptrdiff_t LY, ptrdiff_t LX, ptrdiff_t sx, \
    ptrdiff_t dx, const T *restrict wp, pc_v##S##LV bias, T *restrict out,           \
    const int R)                                                                     \
{                                                                                    \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    pc_v##S##LV acc[PC_DW_R(LV)];                                                    \
    ptrdiff_t kz, ky, kx;                                                            \
    int r;                                                                           \
    for (r = 0; r < R; r++) acc[r] = bias - bias;                                    \
    for (kz = 0; kz < KZ; kz++)                                                      \
        for (ky = 0; ky < KY; ky++) {                                                \
            const T *row = row0 + ((kz * g->dl[0] * LY + ky * g->dl[1]) * LX) * VL;  \
            const T *wr = wp + (kz * KY + ky) * KX * VL;                             \
            for (kx = 0; kx < KX; kx++) {                                            \
                const pc_v##S##LV w = *(const pc_v##S##LV *)(wr + kx * VL);          \
                const T *src = row + kx * dx;                                        \
                for (r = 0; r < R; r++)                                              \
                    acc[r] += *(const pc_v##S##LV *)(src + r * sx) * w;              \
            }                                                                        \
        }                                                                            \
    /* all R: what lies past the row's end is overwritten by the next row (the  \
       buffer has room for one block past the tile) */                               \
    for (r = 0; r < R; r++)                                                          \
        *(pc_v##S##LV *)(out + r * VL) = acc[r] + bias;                              \
}                                                                                    \
/* n staged outputs (vectors at ``out``) to the nl channel planes at q, VL at a  \
   time (n < VL: partial stores) */                                                  \
ATTR static inline void pc_dw_flush_##S##LV(const pc_geo *g, const T *restrict out,  \
                                            ptrdiff_t n, T *restrict yq, ptrdiff_t nl) \
{                                                                                    \
    ptrdiff_t p, l;                                                                  \
    for (p = 0; p < n; p += VL) {                                                    \
        const ptrdiff_t cnt = n - p < VL ? n - p : VL;                               \
        pc_v##S##LV t[VL];                                                           \
        for (l = 0; l < VL; l++) t[l] = *(const pc_v##S##LV *)(out + (p + l) * VL);  \
        PC_TRANSPOSE_##VL(pc_dwm##S##LV, t);                                         \
        if (cnt == VL)                                                               \
            for (l = 0; l < nl; l++) *(pc_vu##S##LV *)(yq + l * g->Pout + p) = t[l]; \
        else                                                                         \
            for (l = 0; l < nl; l++) {                                               \
                T tmp[16];                                                           \
                *(pc_vu##S##LV *)tmp = t[l];                                         \
                pc_dw_put_##S(yq + l * g->Pout + p, tmp, cnt);                       \
            }                                                                        \
    }                                                                                \
}                                                                                    \
/* The same for stride 1, dilation 1 and KX taps along x known at compile    \
   time: each input vector of a kernel row is loaded once and feeds the (up to) \
   KX outputs it reaches, the row's KX weights held in registers.  The sums are \
   the same, in the same order. */                                                   \
__attribute__((always_inline)) ATTR static inline void pc_dw_blockk_##S##LV(         \
    const pc_geo *g, const T *restrict row0, ptrdiff_t LY, ptrdiff_t LX,             \
    const T *restrict wp, pc_v##S##LV bias, T *restrict out, const int R, const int KX) \
{                                                                                    \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1];                                    \
    pc_v##S##LV acc[PC_DW_R(LV)];                                                    \
    ptrdiff_t kz, ky;                                                                \
    int r, j, k;                                                                     \
    for (r = 0; r < R; r++) acc[r] = bias - bias;                                    \
    for (kz = 0; kz < KZ; kz++)                                                      \
        for (ky = 0; ky < KY; ky++) {                                                \
            const T *row = row0 + ((kz * g->dl[0] * LY + ky * g->dl[1]) * LX) * VL;  \
            const T *wr = wp + (kz * KY + ky) * KX * VL;                             \
            pc_v##S##LV w[7];                                                        \
            PC_UNROLL for (k = 0; k < KX; k++) w[k] = *(const pc_v##S##LV *)(wr + k * VL); \
            PC_UNROLL for (j = 0; j < R + KX - 1; j++) {                             \
                const pc_v##S##LV xv = *(const pc_v##S##LV *)(row + j * VL);         \
                PC_UNROLL for (k = 0; k < KX; k++)                                   \
                    if (j - k >= 0 && j - k < R) acc[j - k] += xv * w[k];            \
            }                                                                        \
        }                                                                            \
    for (r = 0; r < R; r++)                                                          \
        *(pc_v##S##LV *)(out + r * VL) = acc[r] + bias;                              \
}                                                                                    \
ATTR static void pc_dw_tile_##S##LV(const pc_geo *g, const pc_dwbox *bx,             \
                                    const T *restrict box, const T *restrict wp,     \
                                    const T *restrict bp, T *restrict out,           \
                                    T *restrict yn, ptrdiff_t c0, ptrdiff_t nl)      \
{                                                                                    \
    enum { R = PC_DW_R(LV) };                                                        \
    const ptrdiff_t LY = bx->len[1], LX = bx->len[2];                                \
    const ptrdiff_t sx = g->st[2] * VL, dx = g->dl[2] * VL;                          \
    const ptrdiff_t nx = bx->o1[2] - bx->o0[2];                                      \
    const pc_v##S##LV bias = bp ? *(const pc_v##S##LV *)bp : (pc_v##S##LV){0};       \
    /* the staged outputs: ns of them, the first at plane position q */              \
    ptrdiff_t q = (bx->o0[0] * g->osz[1] + bx->o0[1]) * g->osz[2] + bx->o0[2];       \
    ptrdiff_t ns = 0, oz, oy, ox, done;                                              \
    /* the taps along x of a kernel with a register-reuse build, else 0 */          \
    const ptrdiff_t kfix = sx == VL && dx == VL && (g->ks[2] == 3 || g->ks[2] == 5   \
                                                    || g->ks[2] == 7) ? g->ks[2] : 0; \
    T *yq = yn + c0 * g->Pout;                                                       \
    for (oz = 0; oz < bx->o1[0] - bx->o0[0]; oz++)                                   \
        for (oy = 0; oy < bx->o1[1] - bx->o0[1]; oy++) {                             \
            const T *row = box + ((oz * g->st[0] * LY + oy * g->st[1]) * LX) * VL;   \
            for (ox = 0; ox < nx; ox += R) {                                         \
                /* stride 1 (the common case) with constant offsets: the R loads  \
                   of a tap need no register each */                                 \
                T *o = out + (ns + ox) * VL;                                         \
                const ptrdiff_t nr = nx - ox < R ? nx - ox : R;                      \
                const T *src = row + ox * sx;                                        \
                if (kfix == 3)                                                       \
                    PC_DW_FIXED(S, LV, 3);                                           \
                else if (kfix == 5)                                                  \
                    PC_DW_FIXED(S, LV, 5);                                           \
                else if (kfix == 7)                                                  \
                    PC_DW_FIXED(S, LV, 7);                                           \
                else if (sx == VL && nr > R / 2)                                     \
                    pc_dw_block_##S##LV(g, src, LY, LX, VL, dx, wp, bias, o, R);     \
                else if (sx == VL)                                                   \
                    pc_dw_block_##S##LV(g, src, LY, LX, VL, dx, wp, bias, o, R / 2); \
                else if (nr > R / 2)                                                 \
                    pc_dw_block_##S##LV(g, src, LY, LX, sx, dx, wp, bias, o, R);     \
                else                                                                 \
                    pc_dw_block_##S##LV(g, src, LY, LX, sx, dx, wp, bias, o, R / 2); \
            }                                                                        \
            /* the row is staged: its whole VL-runs go out, the rest moves to   \
               the front */                                                          \
            ns += nx;                                                                \
            done = ns / VL * VL;                                                     \
            pc_dw_flush_##S##LV(g, out, done, yq + q, nl);                           \
            memmove(out, out + done * VL, (size_t)((ns - done) * VL) * sizeof(T));   \
            ns -= done;                                                              \
            q += done;                                                               \
        }                                                                            \
    pc_dw_flush_##S##LV(g, out, ns, yq + q, nl);                                     \
}

#define PC_DW_FIXED(S, LV, K)                                                        \
    do {                                                                             \
        if (nr > R / 2)                                                              \
            pc_dw_blockk_##S##LV(g, src, LY, LX, wp, bias, o, R, K);                 \
        else                                                                         \
            pc_dw_blockk_##S##LV(g, src, LY, LX, wp, bias, o, R / 2, K);             \
    } while (0)

PC_MICROKERNEL_TABLE(PC_DEFINE_DW)

/* Block shape at a level: lanes (channels per block) and pixels per block. */
typedef struct {
    int vl, r;
} pc_dw_shape_t;

#define PC_DW_SHAPE_ENTRY(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                    \
    [2 * (LV) + (sizeof(T) == 8)] = {VL, PC_DW_R(LV)},

static pc_dw_shape_t pc_dw_shape(int dbl, int level)
{
    static const pc_dw_shape_t shapes[6] = {PC_MICROKERNEL_TABLE(PC_DW_SHAPE_ENTRY)};
    return shapes[2 * level + (dbl != 0)];
}

/*
 * One work item: fill the box of the tile and compute it (entry points per
 * dtype; ``level`` picks the build).
 */
#define PC_DEFINE_DW_ENTRY(T, S)                                                     \
static void pc_dw_item_##S(int level, const pc_geo *g, const pc_dwbox *bx,           \
                           const T *xn, const T *wp, const T *bp, T *box, T *out,    \
                           T *yn, ptrdiff_t c0, ptrdiff_t nl)                        \
{                                                                                    \
    PC_AT_LEVEL(level, pc_dw_fill, S, (g, bx, xn, c0, nl, box));                     \
    PC_AT_LEVEL(level, pc_dw_tile, S, (g, bx, box, wp, bp, out, yn, c0, nl));        \
}

PC_DEFINE_DW_ENTRY(float, f)
PC_DEFINE_DW_ENTRY(double, d)

/*
 * The weights and bias of a call in the blocks' lane order:
 *   wp[block][tap][lane] = w[block * vl + lane, 0, tap],  bp[block][lane] = b[...]
 * (zero past C_out; bp NULL: no bias).  A block's taps are the columns of
 * its vl weight rows: at the AVX-512 level, float32, one 16-lane gather per
 * tap (slab.h's PC_PACK_GATHER), where the element-by-element copy, its stores a
 * vector apart, took a sixth of a batch-1 7x7 map's call (768 channels, 7x7
 * kernel).
 */
#define PC_DEFINE_DW_PACK(T, S, FAST)                                                \
static void pc_dw_pack_##S(int level, const pc_geo *g, const T *w, const T *b,       \
                           ptrdiff_t vl, T *restrict wp, T *restrict bp)             \
{                                                                                    \
    const ptrdiff_t nb = (g->Cout + vl - 1) / vl, K = g->Kp;                         \
    const int fast = FAST && level == 2 && vl == 16 && pc_gather16_ok(K);            \
    ptrdiff_t blk, k, l;                                                             \
    for (blk = 0; blk < nb; blk++) {                                                 \
        const ptrdiff_t c0 = blk * vl, nl = g->Cout - c0 < vl ? g->Cout - c0 : vl;   \
        T *d = wp + blk * K * vl;                                                    \
        if (fast)                                                                    \
            PC_PACK_GATHER(w + c0 * K, nl, K, 16, K, d);                             \
        else                                                                         \
            for (l = 0; l < vl; l++)                                                 \
                for (k = 0; k < K; k++)                                              \
                    d[k * vl + l] = l < nl ? w[(c0 + l) * K + k] : (T)0;             \
        if (bp != NULL)                                                              \
            for (l = 0; l < vl; l++) bp[blk * vl + l] = l < nl ? b[c0 + l] : (T)0;   \
    }                                                                                \
}
PC_DEFINE_DW_PACK(float, f, PYCONV_HAVE_CLONES)
PC_DEFINE_DW_PACK(double, d, 0)

#endif /* PYCONV_KERNELS_DEPTHWISE_H */
