/*
 * Winograd weight gradient: the output-gradient side of the "winograd_w" path.
 *
 * dW[co][ci][k] = sum_n sum_j gy[n][co][j] x[n][ci][j + k - lo] is, per
 * (co, ci) and axis, a correlation whose "kernel" is gy and whose 3 outputs
 * are the taps.  A 4-wide tile of gy and the 6 inputs its taps read give the
 * 3 taps' share by F(3, 4):
 *
 *   dW_tile = A^T [(G g) * (B^T d)]     (per axis; 2-d: G g G^T, B^T d B)
 *
 * B^T of F(3, 4) is that of F(4, 3) (it depends only on the alpha = 6
 * points), and the 6 inputs are the forward F(4x4, 3x3) tile's window on
 * the same geometry: the input side is winograd.h's pc_wino_load_block and
 * pc_wino_input as they are, with the forward conv's tiles (a segment's
 * extra column included).  This header transforms the gy tiles of the same
 * segments into the same columns (G g G^T; the extra column and the tiles
 * past the map hold zeros, so their products add nothing) and packs them
 * in the weight-gradient micro-kernel's panels of nrw output channels
 * (pc_wpanels: gyt[panel][j][nrw]).  Summed over the tiles, each of the 36
 * transformed positions is one GEMM ``Mw[p] += X[p] Gy[p]^T`` with the
 * tiles as its reduction; A^T Mw A once per call gives dW (in the planner,
 * in double).
 *
 * Only 2-d (z is a unit axis) float32 calls take it.
 */
#ifndef PYCONV_KERNELS_WINOGRAD_W_H
#define PYCONV_KERNELS_WINOGRAD_W_H

#include "winograd.h"

/* gy rows per tile (r of F(3, 4)) and transformed rows per axis (alpha). */
#define PC_WGW_R 4
#define PC_WGW_A 6

/* The 6 x 4 transform step (G), unrolled like winograd.h's shapes. */
PC_DEFINE_WINO_MAT(float, f, 6, 4)

/* Floats of the per-thread scratch of pc_wgw_gy_f: per step channel the
   loaded tile rows (R * R), the y step (A * R) and the transform (A * A),
   rows of ldv. */
static inline ptrdiff_t pc_wgw_scratch(ptrdiff_t ldv)
{
    return (ptrdiff_t)PC_WINO_CCH
           * (PC_WGW_R * PC_WGW_R + PC_WGW_A * PC_WGW_R + PC_WGW_A * PC_WGW_A) * ldv;
}

/*
 * The transformed gy tiles of output channels [c0, c1) of group grp for a
 * block of nseg segments (seg[4i..4i+3] = image, tz, ty, first tile, as for
 * pc_wino_load_block; segment i owns columns [i*w, i*w + w), its first
 * min(L, tiles left in the row) are tiles, the rest zeros), q = nseg * w
 * columns in all, packed into Gp: transformed position p, column j, channel
 * co at Gp[(p * npan + co / nrw) * q * nrw + j * nrw + co % nrw] (npan
 * panels of nrw channels; the padding channels of the last panel are never
 * written).  G: the 6 x 4 matrix of F(3, 4), row-major.  scratch:
 * pc_wgw_scratch(ldv) floats, ldv >= q.
 */
static void pc_wgw_gy_f(const pc_wino *wg, const double *G, const float *gy,
                        ptrdiff_t grp, const ptrdiff_t *seg, ptrdiff_t nseg, ptrdiff_t L,
                        ptrdiff_t w, ptrdiff_t ldv, ptrdiff_t c0, ptrdiff_t c1, ptrdiff_t nrw,
                        float *Gp, float *scratch)
{
    const pc_geo *g = &wg->g;
    const ptrdiff_t R = PC_WGW_R, A = PC_WGW_A;
    const ptrdiff_t nch = c1 - c0, OY = g->osz[1], OX = g->osz[2], q = nseg * w;
    const ptrdiff_t npan = (g->cout_g + nrw - 1) / nrw;
    float *D = scratch, *E = D + nch * R * R * ldv, *T = E + nch * A * R * ldv;
    ptrdiff_t so[PC_WINO_MAX_ALPHA], dof[PC_WINO_MAX_ALPHA];
    float gf[PC_WGW_A * PC_WGW_R];
    ptrdiff_t c, i, ky, k, j, p;
    for (i = 0; i < A * R; i++) gf[i] = (float)G[i];
    /* D[c][ky][k][i*w + j] = gy row ty*R + ky, column (a + j)*R + k; zero
       outside the map and past the segment's tiles */
    for (c = 0; c < nch; c++) {
        for (i = 0; i < nseg; i++) {
            const ptrdiff_t *sg = seg + 4 * i;
            const ptrdiff_t nt = wg->nt[2] - sg[3] < L ? wg->nt[2] - sg[3] : L;
            const float *gn = gy + (sg[0] * g->Cout + grp * g->cout_g + c0 + c) * g->Pout;
            for (ky = 0; ky < R; ky++) {
                const ptrdiff_t oy = sg[2] * R + ky;
                const float *row = oy < OY ? gn + oy * OX : NULL;
                for (k = 0; k < R; k++) {
                    float *d = D + ((c * R + ky) * R + k) * ldv + i * w;
                    for (j = 0; j < w; j++) {
                        const ptrdiff_t ox = (sg[3] + j) * R + k;
                        d[j] = (row != NULL && j < nt && ox < OX) ? row[ox] : 0.0f;
                    }
                }
            }
        }
    }
    /* y: E[c][py][k] = sum_ky G[py][ky] D[c][ky][k] */
    for (k = 0; k < R; k++) {
        for (ky = 0; ky < R; ky++) so[ky] = (ky * R + k) * ldv;
        for (p = 0; p < A; p++) dof[p] = (p * R + k) * ldv;
        pc_wino_mat_f_6x4(gf, D, so, R * R * ldv, E, dof, A * R * ldv, q, nch);
    }
    /* x: T[py * A + px][c] = sum_k G[px][k] E[c][py][k] */
    for (p = 0; p < A; p++) {
        ptrdiff_t px;
        for (k = 0; k < R; k++) so[k] = (p * R + k) * ldv;
        for (px = 0; px < A; px++) dof[px] = (p * A + px) * nch * ldv;
        pc_wino_mat_f_6x4(gf, E, so, A * R * ldv, T, dof, ldv, q, nch);
    }
    /* the panels */
    for (p = 0; p < A * A; p++)
        for (c = 0; c < nch; c++) {
            const ptrdiff_t co = c0 + c;
            const float *src = T + (p * nch + c) * ldv;
            float *dst = Gp + (p * npan + co / nrw) * q * nrw + co % nrw;
            for (j = 0; j < q; j++) dst[j * nrw] = src[j];
        }
    /* the last panel's padding channels: zeros (the micro-kernel reads them) */
    if (c1 == g->cout_g && g->cout_g % nrw != 0)
        for (p = 0; p < A * A; p++) {
            float *dst = Gp + (p * npan + npan - 1) * q * nrw;
            for (j = 0; j < q; j++)
                for (c = g->cout_g % nrw; c < nrw; c++) dst[j * nrw + c] = 0.0f;
        }
}

/*
 * The weight gradient of input channel ci of group grp from the slots'
 * partials mw[slot][grp][p][ci][co] (each G * 36 * cin_g * cout_g floats):
 * their sum in slot order, then A^T S A per output channel (At: the 3 x 6
 * A^T of F(3, 4)), all in double; dw is the (C_out, cin_g, 3, 3) gradient.
 * tmp: 54 * cout_g doubles.
 */
static void pc_wgw_finish_f(const double *At, const float *mw, ptrdiff_t nslots,
                            ptrdiff_t G, ptrdiff_t cin_g, ptrdiff_t cout_g, ptrdiff_t grp,
                            ptrdiff_t ci, double *tmp, float *dw)
{
    const ptrdiff_t A = PC_WGW_A, P = PC_WGW_A * PC_WGW_A, mwg = P * cin_g * cout_g;
    double *S = tmp, *Tq = tmp + P * cout_g;
    ptrdiff_t s, p, co, py, px, a, b;
    for (p = 0; p < P; p++) {
        double *d = S + p * cout_g;
        for (co = 0; co < cout_g; co++) d[co] = 0.0;
        for (s = 0; s < nslots; s++) {
            const float *m = mw + (s * G + grp) * mwg + (p * cin_g + ci) * cout_g;
            for (co = 0; co < cout_g; co++) d[co] += (double)m[co];
        }
    }
    /* x: Tq[py][b][co] = sum_px A^T[b][px] S[py * A + px][co] */
    for (py = 0; py < A; py++)
        for (b = 0; b < 3; b++) {
            double *d = Tq + (py * 3 + b) * cout_g;
            for (co = 0; co < cout_g; co++) d[co] = 0.0;
            for (px = 0; px < A; px++) {
                const double c = At[b * A + px];
                const double *src = S + (py * A + px) * cout_g;
                if (c == 0.0) continue;
                for (co = 0; co < cout_g; co++) d[co] += c * src[co];
            }
        }
    /* y: dw[co][ci][a][b] = sum_py A^T[a][py] Tq[py][b][co] */
    for (co = 0; co < cout_g; co++) {
        float *w = dw + ((grp * cout_g + co) * cin_g + ci) * 9;
        for (a = 0; a < 3; a++)
            for (b = 0; b < 3; b++) {
                double v = 0.0;
                for (py = 0; py < A; py++) v += At[a * A + py] * Tq[(py * 3 + b) * cout_g + co];
                w[a * 3 + b] = (float)v;
            }
    }
}

#endif /* PYCONV_KERNELS_WINOGRAD_W_H */
