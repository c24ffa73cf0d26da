"""The ``winograd4`` and ``winograd2`` paths: stride-1 convs by Winograd minimal
filtering (kernels: ``_winograd.pyx``, ``kernels/winograd.h``).

Along an axis with an r-tap kernel, F(m, r) computes m outputs from
alpha = m + r - 1 inputs with alpha multiplications instead of m * r::

    y = A^T [(G g) * (B^T d)]

and on a 2-d or 3-d kernel the 1-d algorithms nest (one per axis).  For a
layer, the elementwise products become one GEMM per transformed position
(alpha**nd of them): ``M[p] = U[p] @ V[p]`` with ``U[p]`` the transformed
weight (C_out/g x C_in/g) and ``V[p]`` the transformed input tiles
(C_in/g x tiles); they run on the implicit-GEMM micro-kernel.  F(2x2, 3x3)
does 16 products per 4 outputs where a direct 3x3 conv does 36 (2.25x
fewer), F(4x4, 3x3) 36 per 16 where it does 144 (4x fewer).

The matrices are built exactly (rational arithmetic, :func:`matrices`) by
the Cook-Toom construction: evaluation at alpha - 1 finite points and at
infinity; B^T is the transposed inverse of the evaluation matrix, its rows
scaled to small integers with the scale moved into G.  The points:
``0, 1, -1`` (alpha 4), ``0, 1, -1, 1/2, -2`` (alpha 6) and
``0, 1, -1, 2, -2, 1/2, -1/2`` (alpha 8): of the sets tried, those gave the
smallest float32 error.  The input and output transforms run in the
call's dtype, the weight transform in double.

The units: ``winograd4`` tiles every axis with a kernel of 2 to 5 taps by
4 outputs, ``winograd2`` by 2.  Both compute conv and conv_transpose (the
input gradient of a stride-1 layer: a stride-1 conv with the flipped,
channel-swapped kernel, which the weight transform reads in place from the
transposed conv's weight).
They are not ``exact``: ``pyconv.use_algorithms("exact")`` skips them.

A 1-d conv with dilation d > 1 whose length and padding are multiples of
d is, on the ``(L / d, d)`` view of its input and output (no copy), the
2-d stride-1 conv with kernel ``(K, 1)``: each column is one residue class
of the positions modulo d, a dense stride-1 conv (:func:`dilated_view`).
``winograd4`` takes such layers (WaveNet's and TCNs' dilated K2/K3 convs)
as that 2-d conv: F(4, 2) does 5 products per 4 outputs where the direct
sum does 8; and their input gradients (a stride-1 conv_transpose, whose
one phase is such a conv).

Rule (``chosen``): see :mod:`pyconv._cy` (the path list).  The plan does not
fit when the transformed weights or one thread's blocks take more than a
quarter of the workspace.
"""

from __future__ import annotations

import functools
from fractions import Fraction
from math import gcd, lcm, prod

import numpy as np

from ..._spec import ConvSpec
from .. import _planning, _winograd
from .._planning import Path, canon, finish, fits, geo, target
from .phases import phase_specs

#: The finite evaluation points of F(m, r) by alpha = m + r - 1.
POINTS = {
    2: (0,),
    3: (0, 1),
    4: (0, 1, -1),
    5: (0, 1, -1, 2),
    6: (0, 1, -1, Fraction(1, 2), -2),
    7: (0, 1, -1, 2, -2, Fraction(1, 2)),
    8: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}
#: Largest alpha the kernels take (their matrices are at most 8 x 8).
MAX_ALPHA = 8
#: The rule (measured on the 2-core AVX-512 Xeon the project benchmarks on, float32,
#: against the implicit and phases paths): fewest channels per group, by tile
#: size and dims (a 3-d F(4^3, 3^3) does 8x fewer multiplications, F(4, 3)
#: 2x; F(2x2, 3x3) saves less than F(4x4, 3x3) and pays off only where the
#: products dominate the transforms; F(2x2) at batch 1 on one thread, 28x28:
#: 1.18x ``implicit`` with 96 channels, 1.07x with 64; as an input gradient
#: 1.19x ``phases`` with 96) ...
MIN_CHANNELS = {4: {1: 48, 2: 48, 3: 32}, 2: {2: 96}}
#: ... fewest output tiles per call, counted in the path's tiles (the weight
#: transform is paid once per call, the products' panels want columns; one
#: thread, batch 1, against ``implicit``: 2-d F(4x4) 1.35x at 98 tiles of
#: 128 channels, 0.94x at 49, where F(2x2) on 196 of its tiles is 1.23x,
#: on 100 1.14x and on 49 0.85x) ...
MIN_TILES = {4: {1: 150, 2: 96, 3: 150}, 2: {2: 100}}
#: (Layers with fewer tiles of 4x4, up to 512, from 48 channels: ``winograd_oc``,
#: earlier in the list; F(4x4) here had taken batch-1 28x28 x 128 from 49
#: tiles, F(2x2) batch-1 14x14 x 256.)
#: ... and narrowest output rows, per tile size (a row of tiles carries
#: (alpha - 1) // m spare columns).
MIN_WIDTH = {4: 20, 2: 8}
#: 2-d F(4x4) also takes narrower layers, 3x3 with at least NARROW_MIN_PAIRS
#: channel pairs per group and every 5x5 (F(4x4, 5x5): 64 products per 16
#: outputs where the direct sum does 400), from NARROW_MIN_CHANNELS channels
#: per group and NARROW_MIN_TILES tiles (one thread, against ``implicit``:
#: 3x3 N1 16->64 56^2 1.24x, N8 32->32 28^2 1.06x, 56^2 1.35x; 5x5 N8
#: 16->16 56^2 1.39x, N1 16->64 56^2 1.60x, N8 32->128 28^2 2.30x; 3x3
#: 16->16 lost at every size, and so did 128 tiles or fewer; float32 error
#: of F(4x4, 5x5) within the documented bound: 6e-6 of the largest output,
#: 64 channels, mixed magnitudes).
NARROW_MIN_CHANNELS = 16
NARROW_MIN_PAIRS = 1024
NARROW_MIN_TILES = 196
#: ... and 5x5 kernels with at least NARROW_MIN_PAIRS channel pairs from
#: WIDE5_MIN_TILES tiles and rows of WIDE5_MIN_WIDTH (one thread, against
#: ``implicit``: N8 16->64 14^2 1.13x, N8 48->48 14^2 1.30x, N1 32->128 28^2
#: 1.31x, N16 256->96 14^2 2.00x; 16 tiles, batch-1 14^2, lost).
WIDE5_MIN_TILES = 49
WIDE5_MIN_WIDTH = 14
#: 1-d dilated convs on their 2-d view (:func:`dilated_view`) take F(4, K)
#: with at least DILATED_MIN_CHANNELS channels per group in and out and a
#: dilation (the view's row) of at least DILATED_MIN_WIDTH[K] (two threads,
#: against ``implicit``: K2 N4 128ch L16000 d64 1.19x, d256 256ch 1.26x,
#: d512 1.30x, N1 d64 1.17x, but d16 0.94x, d8 0.75x, 64 channels d64
#: 0.95x, 32 channels 0.68x; K3 128ch d32 1.34x, 256ch d16 1.51x).
DILATED_MIN_CHANNELS = 128
DILATED_MIN_WIDTH = {2: 32, 3: 16}
#: Target size of one thread's buffers (transformed input, products and the
#: transform rows): the GEMMs re-read them from the L2 cache (2 MiB per core
#: here).
BLOCK_BYTES = 1 << 20
#: V's and M's rows are whole vectors of this many columns (PC_WINO_VEC).
VEC = 16
#: Transformed weights of at most this size stay in the L2 cache from block
#: to block (half of it).
U_CACHED_BYTES = 1 << 20


def _evaluation(points, cols):
    """Rows ``[p**0, p**1, ...]`` per point, then the point at infinity."""
    rows = [[p ** j for j in range(cols)] for p in points]
    rows.append([Fraction(int(j == cols - 1)) for j in range(cols)])
    return rows


def _inverse(a):
    """The inverse of a square matrix of Fractions (Gauss-Jordan)."""
    n = len(a)
    aug = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        piv = next(i for i in range(c, n) if aug[i][c] != 0)
        aug[c], aug[piv] = aug[piv], aug[c]
        aug[c] = [v / aug[c][c] for v in aug[c]]
        for i in range(n):
            if i != c and aug[i][c] != 0:
                f = aug[i][c]
                aug[i] = [x - f * y for x, y in zip(aug[i], aug[c])]
    return [row[n:] for row in aug]


@functools.lru_cache(maxsize=None)
def matrices(m: int, r: int):
    """(B^T, G, A^T) of F(m, r) as float64 arrays (alpha x alpha, alpha x r, m x alpha).

    ``A^T [(G g) * (B^T d)]`` is the correlation ``y[i] = sum_k g[k] d[i + k]``
    (i < m) of ``alpha = m + r - 1`` inputs ``d`` with ``r`` taps ``g``.
    Linear convolution of g and h by evaluation and interpolation is
    ``s = E^-1 [(G g) * (A h)]``; the correlation is its transpose in h,
    ``y = A^T [(G g) * (E^-T d)]``.
    """
    alpha = m + r - 1
    points = [Fraction(p) for p in POINTS[alpha]]
    a = _evaluation(points, m)
    g = _evaluation(points, r)
    c = _inverse(_evaluation(points, alpha))
    bt = [[c[k][j] for k in range(alpha)] for j in range(alpha)]
    for j in range(alpha):          # integer rows of B^T, the scale into G
        den = lcm(*[v.denominator for v in bt[j]])
        num = gcd(*[(v * den).numerator for v in bt[j]])
        scale = Fraction(den, num)
        bt[j] = [v * scale for v in bt[j]]
        g[j] = [v / scale for v in g[j]]
    at = [[a[j][i] for j in range(alpha)] for i in range(m)]
    return tuple(np.array(mat, dtype=np.float64) for mat in (bt, g, at))


@functools.lru_cache(maxsize=256)
def dilated_view(spec):
    """The 2-d stride-1 conv a 1-d dilated conv is on the ``(L / d, d)`` view of its
    input and output, or None (not 1-d, not dilated, strided, or a length or
    padding that is not a multiple of the dilation)."""
    if spec.transposed or spec.nd != 1 or spec.dilation[0] == 1 or spec.stride[0] != 1:
        return None
    d = spec.dilation[0]
    (lo, hi), = spec.padding
    if spec.in_size[0] % d or lo % d or hi % d:
        return None
    return ConvSpec(False, spec.batch, spec.in_channels, spec.out_channels, spec.groups,
                    (spec.in_size[0] // d, d), (spec.out_size[0] // d, d),
                    (spec.kernel_size[0], 1), (1, 1), ((lo // d, hi // d), (0, 0)), (1, 1))


def _narrow(ks, cin, cout, tiles, width):
    """Whether 2-d F(4x4) takes a layer below MIN_CHANNELS (the NARROW_* and
    WIDE5_* rules)."""
    k = ks[0]
    if ks[1] != k or k not in (3, 5) or min(cin, cout) < NARROW_MIN_CHANNELS:
        return False
    wide = cin * cout >= NARROW_MIN_PAIRS
    if k == 5 and wide and tiles >= WIDE5_MIN_TILES and width >= WIDE5_MIN_WIDTH:
        return True
    return (k == 5 or wide) and tiles >= NARROW_MIN_TILES and width >= MIN_WIDTH[4]


class Winograd(Path):
    exact = False
    ops = frozenset({"conv", "conv_transpose"})

    def __init__(self, m: int):
        self.m = m
        self.name = f"winograd{m}"

    # -- geometry -------------------------------------------------------------
    @staticmethod
    def as_conv(op, spec):
        """The stride-1 conv that computes the call (conv_transpose: its one phase;
        a 1-d dilated conv: its 2-d view)."""
        conv = spec if op == "conv" else next(phase_specs(spec))[1]
        return dilated_view(conv) or conv

    def tiles(self, spec):
        """Outputs per tile on each canonical axis: m where the kernel has taps, else 1."""
        return tuple(self.m if k > 1 else 1 for k in canon(spec.kernel_size, 1))

    def coefficients(self, spec):
        """The (3, 3, 64) array of per-axis (B^T, G, A^T) the kernels take."""
        coef = np.zeros((3, 3, 64))
        for ax, (m, r) in enumerate(zip(self.tiles(spec), canon(spec.kernel_size, 1))):
            for i, mat in enumerate(matrices(m, r) if r > 1 else (np.ones((1, 1)),) * 3):
                coef[ax, i, :mat.size] = mat.ravel()
        return coef

    # -- the unit -------------------------------------------------------------
    def supports(self, op, spec, tgt):
        if spec.nd == 1 and spec.dilation[0] > 1 and spec.stride[0] == 1:
            spec = self.as_conv(op, spec)       # the 2-d view, where there is one
        ks = spec.kernel_size
        return (all(s == 1 for s in spec.stride) and all(d == 1 for d in spec.dilation)
                and any(k > 1 for k in ks) and all(self.m + k - 1 <= MAX_ALPHA for k in ks))

    def chosen(self, op, spec, tgt):
        """The measured rule (see :mod:`pyconv._cy`, the path list)."""
        conv = self.as_conv(op, spec)
        nd, ks, g = conv.nd, conv.kernel_size, conv.groups
        if tgt.level < 1 or tgt.dbl or nd not in MIN_CHANNELS[self.m]:
            return False
        cin, cout = conv.in_channels // g, conv.out_channels // g
        tiles = conv.batch * prod(-(-o // self.m) for o in conv.out_size)
        if conv.nd > spec.nd:                       # a 1-d dilated conv's view
            return (self.m == 4 and min(cin, cout) >= DILATED_MIN_CHANNELS
                    and conv.in_size[1] >= DILATED_MIN_WIDTH.get(ks[0], conv.in_size[1] + 1))
        if self.m == 4 and nd == 2 and _narrow(ks, cin, cout, tiles, conv.out_size[-1]):
            return True
        if not (all(k == 3 for k in ks) or (nd == 1 and ks[0] == 5)):
            return False
        if min(cin, cout) < MIN_CHANNELS[self.m][nd]:
            return False
        return conv.out_size[-1] >= MIN_WIDTH[self.m] and tiles >= MIN_TILES[self.m][nd]

    def plan(self, op, spec, tgt, n):
        """Blocks of segments (runs of at most ``tile`` tiles of one row of tiles),
        ``segments`` of them per work item; see ``kernels/winograd.h``."""
        conv = self.as_conv(op, spec)
        gt, tiles = geo(conv), self.tiles(conv)
        nr = tgt.nr
        outs, ks = canon(conv.out_size, 1), canon(conv.kernel_size, 1)
        halo = (tiles[2] + ks[2] - 2) // tiles[2]
        tx = -(-outs[2] // tiles[2])
        rows = conv.batch * (-(-outs[0] // tiles[0])) * (-(-outs[1] // tiles[1]))

        def per_thread(length, count):
            return _winograd.workspace(gt, tiles, length, count, tgt.mr, tgt.dbl)[0]

        # the columns of a block: as many panels as fit BLOCK_BYTES (the
        # GEMMs re-read V and M from L2), at least one
        cols = nr
        while per_thread(cols + nr - halo, 1) <= BLOCK_BYTES:
            cols += nr
        if tx + halo <= cols:           # whole rows of tiles, several per block
            length, chunks = tx, 1
            count = cols // (tx + halo)
        else:                           # long rows cut into equal chunks
            chunks = -(-tx // (cols - halo))
            length, count = -(-tx // chunks), 1
        # ... and enough blocks to give every thread work: fewer segments per
        # block, as many as fill whole vectors (a block's last panel is only as
        # wide as it needs: at batch 1, 7 blocks of 2 rows of 15 tiles' columns
        # share two threads 4:3 where 5 blocks of 3 rows did 3:2; 56x56 x 64,
        # one thread, 1.07 against 1.12 ms), two vectors at least when every
        # block must read U from beyond the L2 cache (28x28 x 128: 4 blocks of
        # 16 columns 1.65 ms, 2 of 32 1.43)
        want = -(-_planning.TARGET_ITEMS // conv.groups)
        if -(-rows * chunks // count) < want:
            fewer = -(-rows * chunks // want)
            cin, cout = conv.in_channels // conv.groups, conv.out_channels // conv.groups
            ubytes = prod(t + k - 1 for t, k in zip(tiles, ks)) * cin * cout * tgt.itemsize
            vecs = max(1 if ubytes <= U_CACHED_BYTES else 2,
                       -(-fewer * (length + halo) // VEC))
            count = max(1, min(count, vecs * VEC // (length + halo)))
            if count == 1 and rows * chunks < want and length + halo > nr:
                chunks = min(-(-want // rows), -(-tx // max(1, nr - halo)))
                length = -(-tx // chunks)
        # the same number of blocks, filled evenly (7 segments: 4 + 3, not 6 + 1)
        count = -(-rows * chunks // -(-rows * chunks // count))
        per, fixed = _winograd.workspace(gt, tiles, length, count, tgt.mr, tgt.dbl)
        if not fits(per, fixed):
            return None
        items = conv.groups * (-(-rows * (-(-tx // length)) // count))
        return finish(self.name, items, per, fixed, n, tile=length, segments=count,
                      simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        tgt = target(x.dtype, p.simd)
        conv = self.as_conv(op, spec)
        # conv_transpose: the weight transform reads the transposed conv's weight
        # as the conv's (channels swapped, taps reversed: stride 1 has one phase
        # with every tap, in reverse order)
        _winograd.conv(x, w, b, out, geo(conv), self.tiles(conv), self.coefficients(conv),
                       p.tile, p.segments, tgt.level, tgt.mr, p.omp_threads,
                       op == "conv_transpose")


WINOGRAD4 = Winograd(4)
WINOGRAD2 = Winograd(2)
