/*
 * The Winograd matrices of F(4, 3) and F(2, 3) as the planner builds them
 * (``matrices`` in paths/winograd.py), as compile-time constants: the
 * kernels built on them skip the zero coefficients and turn the +-1 ones
 * into additions.  A call uses them only when its matrices equal these bit
 * for bit (the others: the general builds).
 */
#ifndef PYCONV_KERNELS_WINO_TABLES_H
#define PYCONV_KERNELS_WINO_TABLES_H

static const double pc_wino_tab_bt43[36] = {
    2, -3, -4, 3, 2, 0,   0, -2, 1, 5, 2, 0,   0, -2, 5, -1, -2, 0,
    0, 2, 1, -2, -1, 0,   0, 1, -2, -1, 2, 0,  0, 2, -3, -4, 3, 2};
static const double pc_wino_tab_at43[24] = {
    1, 1, 1, 1, 1, 0,   0, 1, -1, 0.5, -2, 0,   0, 1, 1, 0.25, 4, 0,
    0, 1, -1, 0.125, -8, 1};
static const double pc_wino_tab_bt23[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, -1, 0, 1};
static const double pc_wino_tab_at23[8] = {1, 1, 1, 0, 0, 1, -1, 1};
/* G (alpha x 3): the weight transform */
static const double pc_wino_tab_gm43[18] = {
    1.0 / 2, 0, 0,   1.0 / 6, 1.0 / 6, 1.0 / 6,   1.0 / 6, -1.0 / 6, 1.0 / 6,
    16.0 / 15, 8.0 / 15, 4.0 / 15,   1.0 / 30, -1.0 / 15, 2.0 / 15,   0, 0, 1.0 / 2};
static const double pc_wino_tab_gm23[12] = {1, 0, 0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0, 0, 1};


/* Stride 2 (winograd_oc): 2 outputs from the 5 inputs of a tile's window,
   F(2, 2) on the even window positions (taps 0 and 2) and the odd positions
   (tap 1) as they are (``stride2_matrices(2)`` in paths/winograd_oc.py). */
static const double pc_wino_tab_bt52[25] = {
    1, 0, -1, 0, 0,   0, 0, 1, 0, 0,   0, 0, -1, 0, 1,   0, 1, 0, 0, 0,   0, 0, 0, 1, 0};
static const double pc_wino_tab_gm52[15] = {1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0};
static const double pc_wino_tab_at52[10] = {1, 1, 0, 1, 0,   0, 1, 1, 0, 1};
#endif /* PYCONV_KERNELS_WINO_TABLES_H */
