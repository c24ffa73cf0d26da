/*
 * The "tgemm" conv_transpose path: col = W_b^T @ x on register-blocked
 * micro-kernels that read the weight where it lies.
 *
 * A conv_transpose weight is (C_in, C_out/g, kernel...): for a fixed input
 * channel c the GEMM rows (output channel, tap) of W^T are contiguous, the
 * direction the micro-kernel broadcasts along.  So the weight needs no
 * packing: with one panel of columns the k-th step of a block of MR rows
 * reads MR consecutive values at a[k * lda] (lda = C_out/g * taps),
 * prefetched a few steps ahead since consecutive steps are lda apart; with
 * several, chunks of rows are copied into strips along those contiguous
 * rows (pc_tgemm).  x (small: it is the short side of these GEMMs) is
 * packed into panels of NR = nrv * VL columns.
 *
 * Small images and batches give few columns, so each row of
 * PC_MICROKERNEL_TABLE gets three blocks, nrv = 1, 2, 3 vectors of columns
 * by MR * NRV / nrv rows (the same accumulator count): a 16-column GEMM
 * does not compute 48.  Each output element is one sum over k in order,
 * whatever the blocking.
 */
#ifndef PYCONV_KERNELS_TGEMM_H
#define PYCONV_KERNELS_TGEMM_H

#include "common.h"
#include "cols.h"
#include "microkernels.h"

/* Steps (input channels) the weight is prefetched ahead of the k loop: the
   steps' lines are lda apart, often in one L1 set, so lines fetched further
   ahead were evicted before use (16 columns, 512 x 4096 weight, one thread:
   12 steps 1.27 ms, 32 1.25, 4 1.02) */
#define PC_TG_PREFETCH 4

/* Input channels per pass over the blocks (k chunk) ... */
#define PC_TG_KC 128
/* ... and with one panel, where each step of a block reads a line of another
   weight row (lda apart): few enough rows per pass that their lines stay
   cached from one block of rows to the next (1.02 against 1.16 ms above). */
#define PC_TG_KC1 16

/* Most values of the col2im planes (pc_tg_col2im): one output channel's
   uncropped output per image, 64 KiB of float32 in all, L1/L2-resident. */
#define PC_TG_PLANE 16384

/* Rows of the weight copied into strips at a time (several panels): the
   caller's strip buffer holds PC_TG_KC x PC_TG_MC values (pc_tg_strip_len). */
#define PC_TG_MC 384

/* Rows of the block of nrv column vectors: the accumulators of the table's
   block, or at most 16 rows of one vector (24 single-vector sums did not stay
   in the registers). */
#define PC_TG_MR(MR, NRV, nrv)                                                       \
    ((nrv) == 1 && (MR) * (NRV) > 16 ? 16 : (MR) * (NRV) / (nrv) > 0 ? (MR) * (NRV) / (nrv) : 1)

#define PC_DEFINE_TGUK(T, S, LV, ATTR, VL, MR_, NRV_, nrv)                            \
ATTR static void pc_tguk_##S##LV##_##nrv(                                            \
    ptrdiff_t kc, const T *restrict a, ptrdiff_t lda, const T *restrict bp,          \
    T *restrict out, ptrdiff_t ldo, ptrdiff_t arows, ptrdiff_t mrows, int more)     \
{                                                                                    \
    /* more: out holds the sums over the earlier k; continue them (the same      \
       additions in the same order as one pass over every k).  out's rows are   \
       NR wide (the caller pads them): whole vectors in and out */              \
    enum { MR = PC_TG_MR(MR_, NRV_, nrv), NR = (nrv) * (VL) };                       \
    pc_v##S##LV acc[MR][nrv];                                                        \
    ptrdiff_t mo[MR], k;                                                             \
    int m, v;                                                                        \
    for (m = 0; m < MR; m++) {                                                       \
        mo[m] = m < arows ? m : arows - 1;   /* rows past a's: recomputed */         \
        for (v = 0; v < nrv; v++) acc[m][v] = (pc_v##S##LV){0};                      \
        if (more && m < mrows)                                                       \
            for (v = 0; v < nrv; v++)                                                \
                acc[m][v] = *(const pc_vu##S##LV *)(out + m * ldo + v * VL);         \
    }                                                                                \
    if (arows >= MR) {                                                               \
        for (k = 0; k < kc; k++) {                                                   \
            const T *ak = a + k * lda;                                               \
            pc_v##S##LV c[nrv];                                                      \
            __builtin_prefetch(ak + PC_TG_PREFETCH * lda);                           \
            for (v = 0; v < nrv; v++) c[v] = *(const pc_vu##S##LV *)(bp + k * NR + v * VL); \
            for (m = 0; m < MR; m++) {                                               \
                pc_v##S##LV w = ak[m] - (pc_v##S##LV){0};                            \
                for (v = 0; v < nrv; v++) acc[m][v] += w * c[v];                     \
            }                                                                        \
        }                                                                            \
    } else {                                                                         \
        for (k = 0; k < kc; k++) {                                                   \
            const T *ak = a + k * lda;                                               \
            pc_v##S##LV c[nrv];                                                      \
            for (v = 0; v < nrv; v++) c[v] = *(const pc_vu##S##LV *)(bp + k * NR + v * VL); \
            for (m = 0; m < MR; m++) {                                               \
                pc_v##S##LV w = ak[mo[m]] - (pc_v##S##LV){0};                        \
                for (v = 0; v < nrv; v++) acc[m][v] += w * c[v];                     \
            }                                                                        \
        }                                                                            \
    }                                                                                \
    for (m = 0; m < MR && m < mrows; m++)                                            \
        for (v = 0; v < nrv; v++)                                                    \
            *(pc_vu##S##LV *)(out + m * ldo + v * VL) = acc[m][v];                   \
}                                                                                    \
ATTR static void pc_tgemm_##S##LV##_##nrv(                                           \
    ptrdiff_t kc, ptrdiff_t mrows, const T *a, ptrdiff_t lda, const T *bpack,        \
    ptrdiff_t ncols, T *out, ptrdiff_t ldo, T *apack)                                \
{                                                                                    \
    /* k in chunks of PC_TG_KC.  One panel: the blocks read the weight in     \
       place.  Several: the rows are taken PC_TG_MC at a time, their chunk of \
       the weight copied into strips of MR rows (read along the contiguous    \
       rows of each k), then each panel of x (L1-resident) meets every strip  \
       (from L2) before the next panel: a GEMM's usual order, where strips    \
       read in place would sit lda apart, often a multiple of 4 KiB, in one   \
       cache set, and the panels would stream from L2 once per block */       \
    enum { MR = PC_TG_MR(MR_, NRV_, nrv), NR = (nrv) * (VL),                         \
           MC = PC_TG_MC / MR * MR };                                                \
    ptrdiff_t n0, m0, k0, k, c0;                                                     \
    int m;                                                                           \
    const ptrdiff_t KC = ncols <= NR ? PC_TG_KC1 : PC_TG_KC;                        \
    for (k0 = 0; k0 < kc; k0 += KC) {                                                \
        ptrdiff_t kl = kc - k0 < KC ? kc - k0 : KC;                                  \
        if (ncols <= NR) {                                                           \
            for (m0 = 0; m0 < mrows; m0 += MR)                                       \
                pc_tguk_##S##LV##_##nrv(kl, a + k0 * lda + m0, lda, bpack + k0 * NR, \
                                        out + m0 * ldo, ldo, mrows - m0, mrows - m0, \
                                        k0 > 0);                                     \
            continue;                                                                \
        }                                                                            \
        for (c0 = 0; c0 < mrows; c0 += MC) {                                         \
            ptrdiff_t cl = mrows - c0 < MC ? mrows - c0 : MC;                        \
            for (k = 0; k < kl; k++) {                                               \
                const T *ak = a + (k0 + k) * lda + c0;                               \
                for (m0 = 0; m0 + MR <= cl; m0 += MR)                                \
                    memcpy(apack + m0 * kl + k * MR, ak + m0, MR * sizeof(T));       \
                if (m0 < cl) {                                                       \
                    T *d = apack + m0 * kl + k * MR;                                 \
                    for (m = 0; m < MR; m++) d[m] = m0 + m < cl ? ak[m0 + m] : (T)0; \
                }                                                                    \
            }                                                                        \
            for (n0 = 0; n0 < ncols; n0 += NR)                                       \
                for (m0 = 0; m0 < cl; m0 += MR)                                      \
                    pc_tguk_##S##LV##_##nrv(kl, apack + m0 * kl, MR,                 \
                                            bpack + (n0 / NR) * kc * NR + k0 * NR,   \
                                            out + (c0 + m0) * ldo + n0, ldo, MR,     \
                                            cl - m0, k0 > 0);                        \
        }                                                                            \
    }                                                                                \
}

#define PC_DEFINE_TG_ROW(T, S, LV, ATTR, VL, MR, NRV, MRW, NRVW)                     \
    PC_DEFINE_TGUK(T, S, LV, ATTR, VL, MR, NRV, 1)                                   \
    PC_DEFINE_TGUK(T, S, LV, ATTR, VL, MR, NRV, 2)                                   \
    PC_DEFINE_TGUK(T, S, LV, ATTR, VL, MR, NRV, 3)
PC_MICROKERNEL_TABLE(PC_DEFINE_TG_ROW)

/*
 * The entry points, per dtype:
 *   pc_tg_nrv:   the column vectors per panel for ncols columns at a level
 *                (the table's NRV, fewer when that pads the columns less);
 *   pc_tg_pack:  nb images' kc channels of np positions (image stride ldn,
 *                channel stride np) -> panels of nr columns, column
 *                bi * np + p, zeros past the end;
 *   pc_tg_plane: the values of one image's plane of pc_tg_col2im for a
 *                geometry (one channel's uncropped output), 0 when above
 *                PC_TG_PLANE;
 *   pc_tg_plane_images: the images of one pc_tg_col2im call in a block
 *                of nb, 0 when the planes do not fit;
 *   pc_tg_col2im: nb images' cout output channels (image b's planes of
 *                Pout at y + b * ldy) = bias + col2im of their columns of
 *                col (image b's at col + b * Pin; ld: col's row stride);
 *                plane: nb * pc_tg_plane() values of scratch;
 *   pc_tgemm:    out (mrows x ncols, ld ldo) = A^T-block @ packed x, A's
 *                row k at a + k * lda; out's rows are written whole panels
 *                wide (ldo at least ncols rounded up to nrv * VL, the
 *                columns past ncols garbage); apack: pc_tg_strip_len()
 *                values of scratch.
 */
static ptrdiff_t pc_tg_plane(const pc_geo *g)
{
    ptrdiff_t n = 1;
    int ax;
    for (ax = 0; ax < 3; ax++)
        n *= (g->isz[ax] - 1) * g->st[ax] + (g->ks[ax] - 1) * g->dl[ax] + 1;
    return n <= PC_TG_PLANE ? n : 0;
}

/* Images per pc_tg_col2im call, of a block of nb (their planes within
   PC_TG_PLANE values); 0 when one image's plane is above it. */
static ptrdiff_t pc_tg_plane_images(const pc_geo *g, ptrdiff_t nb)
{
    ptrdiff_t n = pc_tg_plane(g);
    if (n == 0) return 0;
    return PC_TG_PLANE / n < nb ? PC_TG_PLANE / n : nb;
}

static int pc_tg_nrv(int dbl, int level, ptrdiff_t ncols)
{
    /* the widest panel (at most the table's NRV) unless a narrower one pads
       the columns at least 10% less: 64 columns are 2 panels of 32, not 48 + 16,
       and 16 columns one vector (a block of 16 rows, PC_TG_MR), not 32 */
    pc_uk_shape sh = pc_shape(dbl, level);
    int nrv = sh.nrv < 3 ? sh.nrv : 3, best = nrv, v;
    ptrdiff_t pad, best_pad = (ncols + nrv * sh.vl - 1) / (nrv * sh.vl) * (nrv * sh.vl);
    for (v = nrv - 1; v >= 1; v--) {
        pad = (ncols + v * sh.vl - 1) / (v * sh.vl) * (v * sh.vl);
        if (10 * pad <= 9 * best_pad) {
            best = v;
            best_pad = pad;
        }
    }
    return best;
}

/* Values of the strip buffer pc_tgemm needs (several panels). */
static ptrdiff_t pc_tg_strip_len(void) { return (ptrdiff_t)PC_TG_KC * PC_TG_MC; }

/* Call the build of pc_tgemm for (level, nrv). */
#define PC_TG_NRV(LV, nrv, S, args)                                                  \
    do {                                                                             \
        if ((nrv) == 1) pc_tgemm_##S##LV##_1 args;                                   \
        else if ((nrv) == 2) pc_tgemm_##S##LV##_2 args;                              \
        else pc_tgemm_##S##LV##_3 args;                                              \
    } while (0)
#define PC_TG_AT(level, nrv, S, args)                                                \
    do {                                                                             \
        if ((level) == 2) PC_TG_NRV(2, nrv, S, args);                                \
        else if ((level) == 1) PC_TG_NRV(1, nrv, S, args);                           \
        else PC_TG_NRV(0, nrv, S, args);                                             \
    } while (0)

#define PC_DEFINE_TG_ENTRIES(T, S)                                                   \
static void pc_tg_pack_##S(const T *restrict x, ptrdiff_t nb, ptrdiff_t ldn,        \
                           ptrdiff_t kc, ptrdiff_t np, ptrdiff_t nr, T *restrict pack) \
{                                                                                    \
    /* one run per (image, channel, panel): contiguous on both sides */             \
    const ptrdiff_t ncols = nb * np, npad = (ncols + nr - 1) / nr * nr;              \
    ptrdiff_t c, bi, j, i;                                                           \
    for (bi = 0; bi < nb; bi++)                                                      \
        for (c = 0; c < kc; c++) {                                                   \
            const T *src = x + bi * ldn + c * np;                                    \
            ptrdiff_t q = bi * np, end = q + np;                                     \
            while (q < end) {                                                        \
                ptrdiff_t lane = q % nr, n = nr - lane;                              \
                T *d = pack + (q / nr) * kc * nr + c * nr + lane;                    \
                if (n > end - q) n = end - q;                                        \
                for (i = 0; i < n; i++) d[i] = src[i];                               \
                src += n;                                                            \
                q += n;                                                              \
            }                                                                        \
        }                                                                            \
    for (c = 0; c < kc; c++)                                                         \
        for (j = ncols; j < npad; j++)                                               \
            pack[(j / nr) * kc * nr + c * nr + j % nr] = 0;                          \
}                                                                                    \
PC_CLONES static void pc_tg_col2im_##S(const pc_geo *g, const T *restrict col,      \
                                      ptrdiff_t ld, ptrdiff_t nb, ptrdiff_t cout,    \
                                      const T *bias, T *restrict y, ptrdiff_t ldy,   \
                                      T *restrict plane)                             \
{                                                                                    \
    /* Each channel's taps are added into planes holding its whole uncropped    \
       output, one per image (every tap in range: no clipping per row, whole  \
       rows of x added in one loop, stride-2 tap pairs interleaved), then the \
       planes' windows are copied out.  The images' columns of a col row are  \
       adjacent, so each row is read in one sweep (one image at a time, its   \
       rows of Pin values 4 KiB or more apart, missed the caches: a third of  \
       the time of N16 8x8 K4 s2).  Per output element: the bias, then the    \
       taps in (kz, ky, kx) order, as pc_col2im adds them. */                  \
    const ptrdiff_t IZ = g->isz[0], IY = g->isz[1], IX = g->isz[2];                  \
    const ptrdiff_t KZ = g->ks[0], KY = g->ks[1], KX = g->ks[2];                     \
    const ptrdiff_t SX = g->st[2], DX = g->dl[2];                                    \
    const ptrdiff_t OZ = g->osz[0], OY = g->osz[1], OX = g->osz[2];                  \
    const ptrdiff_t HY = (IY - 1) * g->st[1] + (KY - 1) * g->dl[1] + 1;              \
    const ptrdiff_t HX = (IX - 1) * SX + (KX - 1) * DX + 1;                          \
    const ptrdiff_t HZ = (IZ - 1) * g->st[0] + (KZ - 1) * g->dl[0] + 1;              \
    const ptrdiff_t PL = HZ * HY * HX;                                               \
    const ptrdiff_t NX = HX - g->lo[2] < OX ? HX - g->lo[2] : OX;                    \
    ptrdiff_t j, bi, kz, ky, kx, iz, iy, m, oz, oy;                                  \
    for (j = 0; j < cout; j++) {                                                     \
        const T bj = bias != NULL ? bias[j] : (T)0;                                  \
        for (m = 0; m < nb * PL; m++) plane[m] = bj;                                 \
        for (kz = 0; kz < KZ; kz++)                                                  \
            for (ky = 0; ky < KY; ky++)                                              \
                for (kx = 0; kx < KX; kx++) {                                        \
                    const T *s0 = col + (((j * KZ + kz) * KY + ky) * KX + kx) * ld;  \
                    const int pair = SX == 2 && DX == 1 && kx + 1 < KX;              \
                    for (bi = 0; bi < nb; bi++)                                      \
                    for (iz = 0; iz < IZ; iz++)                                      \
                        for (iy = 0; iy < IY; iy++) {                                \
                            const T *r = s0 + bi * g->Pin + (iz * IY + iy) * IX;     \
                            T *d = plane + bi * PL                                   \
                                   + ((iz * g->st[0] + kz * g->dl[0]) * HY           \
                                      + iy * g->st[1] + ky * g->dl[1]) * HX          \
                                   + kx * DX;                                        \
                            if (pair) {                                              \
                                const T *r1 = r + ld;                                \
                                for (m = 0; m + 8 <= IX; m += 8)                     \
                                    pc_il8_##S(d + 2 * m, r + m, r1 + m);            \
                                for (; m + 4 <= IX; m += 4)                          \
                                    pc_il4_##S(d + 2 * m, r + m, r1 + m);            \
                                for (; m < IX; m++) {                                \
                                    d[2 * m] += r[m];                                \
                                    d[2 * m + 1] += r1[m];                           \
                                }                                                    \
                            } else if (SX == 1) {                                    \
                                for (m = 0; m < IX; m++) d[m] += r[m];               \
                            } else {                                                 \
                                for (m = 0; m < IX; m++) d[m * SX] += r[m];          \
                            }                                                        \
                        }                                                            \
                    kx += pair;                                                      \
                }                                                                    \
        for (bi = 0; bi < nb; bi++)                                                  \
            for (oz = 0; oz < OZ; oz++)                                              \
                for (oy = 0; oy < OY; oy++) {                                        \
                    T *yr = y + bi * ldy + j * g->Pout + (oz * OY + oy) * OX;        \
                    const T *pr = plane + bi * PL;                                   \
                    ptrdiff_t pz = oz + g->lo[0], py = oy + g->lo[1], n = 0;         \
                    if (pz < HZ && py < HY && NX > 0) {                              \
                        for (m = 0; m < NX; m++)                                     \
                            yr[m] = pr[(pz * HY + py) * HX + g->lo[2] + m];          \
                        n = NX;                                                      \
                    }                                                                \
                    for (m = n; m < OX; m++) yr[m] = bj;                             \
                }                                                                    \
    }                                                                                \
}                                                                                    \
static void pc_tgemm_##S(int level, int nrv, ptrdiff_t kc, ptrdiff_t mrows, const T *a, \
                         ptrdiff_t lda, const T *bpack, ptrdiff_t ncols, T *out,     \
                         ptrdiff_t ldo, T *apack)                                    \
{                                                                                    \
    PC_TG_AT(level, nrv, S, (kc, mrows, a, lda, bpack, ncols, out, ldo, apack));     \
}

PC_DEFINE_TG_ENTRIES(float, f)
PC_DEFINE_TG_ENTRIES(double, d)

#endif /* PYCONV_KERNELS_TGEMM_H */
