/* conv_gemm.cl -- convolution and transposed convolution as one
 * implicit GEMM, per group g (get_group_id(2)):
 *
 *     Y[m, col] = bias[m] + sum_kk A[m, kk] * B[kk, col]
 *
 * rows m: the group's output channels; columns col = (n, q): batch
 * index and a position q on the launch's output grid; reduction
 * kk = (c, tap): the group's input channels times the kernel taps of the
 * launch's tap table.  B is gathered from x on the fly (nothing is
 * materialised, out-of-range taps read zero):
 *
 *     B[(c, tap), (n, q)] = x[n, g*cin_g + c, q*istep - ioff + koff(tap)]
 *
 * conv: one launch; istep = stride, ioff = pad_lo, koff(tap) = k*dilation,
 * output position o = q.
 * conv_transpose: one launch per output phase r (o = r + stride*q in
 * every dim, o mod stride = r); only the taps k with
 * (r + pad_lo - k*dilation) divisible by the stride reach phase r, and
 * they read x at q + (r + pad_lo - k*dilation)/stride, so istep = 1,
 * ioff = 0 and koff(tap) is that quotient.  No zero is ever inserted.
 *
 * Every work-item accumulates RM x RN outputs in registers, over the
 * whole reduction, in a fixed order: results are deterministic.
 */

/* plan header (ints) */
#define H_M 0
#define H_T 1
#define H_KRED 2
#define H_N 3
#define H_QPROD 4
#define H_CIN_G 5
#define H_XC 6
#define H_SPROD 7
#define H_YC 8
#define H_OPROD 9
#define H_AM 10
#define H_AC 11
#define H_OBASE 12
#define H_HASBIAS 13
#define H_TAB 14
#define H_WGS 15
#define H_DIM 16   /* per dim d: H_DIM + 5*d + (Q, S, ISTEP, IOFF, OMUL) */

__kernel __attribute__((reqd_work_group_size(WGN, WGM, 1)))
void conv_gemm(__global const real* restrict x,
               __global const real* restrict w,
               __global const real* restrict bias,
               __global real* restrict y,
               __global const int* restrict plan,
               const int poff)
{
    __local real As[TK][TM + 1];
    __local real Bs[TK][TN];

    __global const int* P = plan + poff;
    const int tx = get_local_id(0);
    const int ty = get_local_id(1);
    const int lid = ty * WGN + tx;
    const int g = get_group_id(2);
    const int m0 = get_group_id(1) * TM;
    const idx_t col0 = (idx_t)get_group_id(0) * TN;

    const int M = P[H_M];
    const int T = P[H_T];
    const int KRED = P[H_KRED];
    const idx_t QPROD = P[H_QPROD];
    const idx_t NCOLS = (idx_t)P[H_N] * QPROD;
    const int CIN_G = P[H_CIN_G];
    const idx_t SPROD = P[H_SPROD];
    const idx_t OPROD = P[H_OPROD];
    const int AM = P[H_AM];
    const int AC = P[H_AC];
    __global const int* tab = plan + P[H_TAB];

    int Q[ND], S[ND], IST[ND], IOF[ND], OMUL[ND];
    idx_t XSTR[ND];
    for (int d = 0; d < ND; ++d) {
        Q[d] = P[H_DIM + 5 * d];
        S[d] = P[H_DIM + 5 * d + 1];
        IST[d] = P[H_DIM + 5 * d + 2];
        IOF[d] = P[H_DIM + 5 * d + 3];
        OMUL[d] = P[H_DIM + 5 * d + 4];
    }
    XSTR[ND - 1] = 1;
    for (int d = ND - 2; d >= 0; --d) XSTR[d] = XSTR[d + 1] * S[d + 1];

    /* per own column: where it reads x and where it writes y */
    idx_t xcol[RN], ycol[RN];
    int pos[RN][ND];
    bool cvalid[RN];
    for (int j = 0; j < RN; ++j) {
        const idx_t col = col0 + CIDX(tx, j);
        cvalid[j] = col < NCOLS;
        const idx_t cc = cvalid[j] ? col : 0;
        const idx_t n = cc / QPROD;
        idx_t rem = cc - n * QPROD;
        xcol[j] = (n * P[H_XC] + (idx_t)g * CIN_G) * SPROD;
        ycol[j] = n * P[H_YC] * OPROD + P[H_OBASE];
        for (int d = ND - 1; d >= 0; --d) {
            const idx_t qd = rem % Q[d];
            rem /= Q[d];
            pos[j][d] = (int)qd * IST[d] - IOF[d];
            xcol[j] += (idx_t)pos[j][d] * XSTR[d];
            ycol[j] += qd * OMUL[d];
        }
    }

    const idx_t wg = (idx_t)g * P[H_WGS];
    ACC_DECL;
    ACC_ZERO();

    for (int k0 = 0; k0 < KRED; k0 += TK) {
        /* A tile: TM x TK weights, consecutive work-items along kk */
        for (int e = lid; e < TM * TK; e += WG) {
            const int mm = e / TK;
            const int kr = e - mm * TK;
            const int kk = k0 + kr;
            const int m = m0 + mm;
            real v = ZERO;
            if (m < M && kk < KRED) {
                const int c = kk / T;
                const int tap = kk - c * T;
                v = w[wg + (idx_t)m * AM + (idx_t)c * AC + tab[tap * TAB_STRIDE + 4]];
            }
            As[kr][mm] = v;
        }
        /* B tile: TK x TN gathered inputs; each work-item fills its own
         * RN columns for rows ty, ty + WGM, ... */
        for (int kr = ty; kr < TK; kr += WGM) {
            const int kk = k0 + kr;
            const bool kvalid = kk < KRED;
            const int c = kvalid ? kk / T : 0;
            const int tap = kvalid ? kk - c * T : 0;
            __global const int* tr = tab + tap * TAB_STRIDE;
            int koff[ND];
            for (int d = 0; d < ND; ++d) koff[d] = tr[d];
            const idx_t xoff = (idx_t)c * SPROD + tr[3];
            for (int j = 0; j < RN; ++j) {
                bool ok = kvalid && cvalid[j];
                for (int d = 0; d < ND; ++d) {
                    const int t = pos[j][d] + koff[d];
                    ok = ok && (uint)t < (uint)S[d];  /* also rejects t < 0 */
                }
                real v = ZERO;
                if (ok) v = x[xcol[j] + xoff];
                Bs[kr][CIDX(tx, j)] = v;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        ACC_STAGE();
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const int hasbias = P[H_HASBIAS];
    for (int i = 0; i < RM; ++i) {
        const int m = m0 + RIDX(ty, i);
        if (m >= M) continue;
        const int co = g * M + m;
        const real bv = hasbias ? bias[co] : ZERO;
        real row[RN];
        ACC_ROW(i, row);
        for (int j = 0; j < RN; ++j)
            if (cvalid[j]) y[ycol[j] + (idx_t)co * OPROD] = row[j] + bv;
    }
}
