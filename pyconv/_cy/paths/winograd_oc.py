"""The ``winograd_oc`` path: Winograd F(m x m, 3 x 3) with output channels as
vector lanes (kernels: ``_winograd_oc.pyx``, ``kernels/winograd_oc.h``).

The ``winograd4``/``winograd2`` products are GEMMs with tiles in the vector
lanes, on transformed weights made for the whole call first.  Deep layers on
small maps (7x7 and 14x14 maps, 256-512 channels) have few tiles and many
channel pairs: the GEMM panels run mostly empty, and the transformed weights
(9-38 MiB) go to memory and back.  Here a register block holds two vectors
of output channels for R tiles (as on ``ocvec``); per transformed position
and input channel it loads two vectors of transformed weights and
broadcasts R transformed inputs.  Each work item (a block of output
channels, a chunk of tiles) transforms its block's weights a run of input
channels at a time, just before their products, so they stay in the
L1/L2 cache.  The transforms' matrices are those of
:func:`pyconv._cy.paths.winograd.matrices`.

Rule (``chosen``): see :mod:`pyconv._cy` (the path list) and the constants
below.  The plan does not fit when the transformed input or one thread's
buffers take more than a quarter of the workspace.
"""

from __future__ import annotations

import functools
from math import prod

import numpy as np

from .. import _planning, _winograd_oc
from .._planning import Path, equal_runs, finish, fits, geo
from .winograd import matrices

#: One thread's products of a chunk of tiles (M, re-read from L2 for every
#: run of input channels) take at most this many bytes ...
M_BYTES = 1 << 20
#: ... and a run's transformed weights this many (read for every block of tiles).
U_BYTES = 1 << 19
#: A round's transformed input (the passes run per round of tiles) takes at
#: most this many bytes.
V_BYTES = 8 << 20
#: Most channel blocks per work item (they share the reads of V) ...
MAX_BLOCKS = 4
#: ... while the call keeps this many items.
MIN_ITEMS = 4
#: The rule (measured on the 2-core AVX-512 Xeon the project benchmarks on,
#: two threads, float32, against the path the rest of the list takes):
#: float32, at least MIN_CHANNELS channels per group in and out and from
#: MIN_TILES to MAX_TILES tiles of 4x4 per call.  Taken: 7x7 maps, batch 2
#: to 32, 64 to 1024 channels, against ``ocvec``: 1.07-2.79x (batch 8 x 512:
#: 1.6-1.8x); 14x14 maps, 64 to 512 channels, batch 1 to 8, against
#: ``winograd2``, ``ocvec`` or ``implicit``: 1.04-1.67x; 28x28 maps, batch
#: 1 and 2, 48 to 256 channels, against ``winograd4``, ``winograd2`` or
#: ``implicit``: 1.06-1.61x.  Since its outputs are written a run of tiles
#: at a time, also 196 to 512 tiles, against ``winograd4`` (``winograd2``
#: for batch-16 14x14), median of three processes: batch-1 56x56 x 64
#: 1.09x, x 128 1.06x; batch-2 56x56 x 64 1.11x; batch-4 28x28 x 128 1.13x,
#: batch 8 1.07x; batch-16 14x14 x 128 1.15x; batch-32 14x14 x 256 1.09x.
#: Left out: 4 tiles (batch-1 7x7 and 8x8 maps, 0.73-0.82x against
#: ``ocvec``) and more than 512 (batch-8 56x56 x 64, 1568 tiles: 0.88x
#: against ``winograd4``, whose panels are full there).
MIN_CHANNELS = 48
MIN_TILES = 8
MAX_TILES = 512
#: Stride 2 (tiles of 2x2 outputs, 25 products where the direct sum does
#: 36, see :func:`stride2_matrices`), measured against ``ocvec`` and
#: ``packed`` (AVX-512 only): from MIN_TILES_STRIDE2 to MAX_TILES_STRIDE2
#: tiles, and at most MAX_WASTE_STRIDE2 times as many tile outputs as the
#: map has (a 7x7 map's 4x4 tiles hold 64 outputs for 49: left to ``ocvec``).
MIN_TILES_STRIDE2 = 49
MAX_TILES_STRIDE2 = 2048
MAX_WASTE_STRIDE2 = 1.1
#: Local rounds (AVX-512): one work item per round of tiles, which
#: transforms the round's input into its thread's buffer and runs all of the
#: round's products on it, instead of an input-transform pass whose items
#: (runs of input channels) each product item then reads from the cores
#: that wrote them, after a barrier.  Two threads on one layer ran only
#: 1.1-1.25x faster than one with the two passes (batch-8 14x14 x 64: 0.64
#: and 0.58 ms; batch-1 56x56 x 64: 0.79 and 0.63 ms), against 1.7-1.9x on
#: ``ocvec`` and ``winograd2``; and with CPU-bound neighbours the barrier
#: waits for a descheduled partner (batch-8 28x28 -> 14x14 x 128 -> 256,
#: best of 15: 7.3 ms against 3.2 ms on an idle machine).  Measured against
#: the two passes (two threads, best of 20 interleaved calls, bitwise the
#: same results), with rounds of at most LOCAL_V_BYTES: stride 1, 1.07-1.37x
#: from 49 to 512 tiles (14x14 to 56x56 maps, batch 1 to 32, 64 to 256
#: channels), batch-8 14x14 x 256 0.98-1.04x, 0.47-1.00x on 7x7 maps with
#: 256-512 channels (16-64 tiles: every round transforms all the weights);
#: stride 2, 1.03-1.41x from 392 tiles of 2x2 (and 1.21x at 196 with 128
#: output channels), 0.77-1.04x below.  Thresholds in outputs (16 per tile
#: at stride 1, 4 at stride 2): from LOCAL_MIN_OUTPUTS, or LOCAL_FEW_OUTPUTS
#: with at most LOCAL_FEW_CHANNELS output channels per group; an even number
#: of rounds (pairs for the two cores measured; the cutting never depends on
#: the thread count) of at least LOCAL_MIN_ROUND outputs (batch-8 14x14 x
#: 1024, rounds of 13 tiles of 4x4: 0.80x; x 512, of 22: 1.00x; batch-16 x
#: 512, of 26: 1.10x).
LOCAL_MIN_OUTPUTS = 96 * 16
LOCAL_FEW_OUTPUTS = 48 * 16
LOCAL_FEW_CHANNELS = 128
LOCAL_V_BYTES = 2 << 20
LOCAL_MIN_ROUND = 24 * 16


def stride2_matrices(m):
    """(B^T, G, A^T) of m outputs of a 3-tap stride-2 correlation, alpha = 2m + 1.

    Output i of a tile reads window inputs 2i, 2i + 1 and 2i + 2 (taps 0, 1,
    2).  Taps 0 and 2 meet only the even window positions e_j = d[2j]
    (j <= m): a 2-tap correlation of e with (g0, g2), F(m, 2) on them.  Tap
    1 meets the odd positions d[2i + 1] once each: they are m more
    positions, transformed as they are, with weight g1.  So y = A^T [(G g) *
    (B^T d)] with B^T, G, A^T of F(m, 2) on the first m + 1 positions and
    identities on the last m.
    """
    bo, go, ao = matrices(m, 2)
    a = 2 * m + 1
    bt, g, at = np.zeros((a, a)), np.zeros((a, 3)), np.zeros((m, a))
    bt[:m + 1, 0::2] = bo
    g[:m + 1, 0], g[:m + 1, 2] = go[:, 0], go[:, 1]
    at[:, :m + 1] = ao
    for i in range(m):
        bt[m + 1 + i, 2 * i + 1] = 1
        g[m + 1 + i, 1] = 1
        at[i, m + 1 + i] = 1
    return bt, g, at


@functools.lru_cache(maxsize=None)
def coefficients(m, stride=1):
    """(B^T, G, A^T) of F(m, 3) (stride 1) or :func:`stride2_matrices`, each
    flattened row-major, as the kernels take them."""
    mats = matrices(m, 3) if stride == 1 else stride2_matrices(m)
    return tuple(tuple(float(v) for v in mat.ravel()) for mat in mats)


def alpha(m, stride):
    """Transformed positions per axis of a tile of m outputs."""
    return m + 2 if stride == 1 else 2 * m + 1


def tiles(spec, m):
    """Tiles of m x m outputs in a call."""
    oy, ox = spec.out_size
    return spec.batch * -(-oy // m) * -(-ox // m)


def tile_size(spec, np_, vl):
    """F(2x2) or F(4x4): the one with the fewer modelled operations per input and
    output channel pair (products over whole register blocks, the weight
    transform, the input transform's share per vector of output channels)."""
    def cost(m):
        t = tiles(spec, m)
        blocks = -(-t // np_)
        products = (m + 2) ** 2 * blocks * -(-t // blocks)
        filt = 162 if m == 4 else 84
        inputs = (250 if m == 4 else 80) * t * vl / max(1, spec.out_channels // spec.groups)
        return products + filt + inputs
    return min((4, 2), key=cost)


def local_round(spec, tgt, m, nt, vbytes):
    """Tiles per local round (see LOCAL_MIN_OUTPUTS), or None: the two passes.

    ``nt`` tiles of ``m`` x ``m`` outputs, ``vbytes`` bytes of transformed
    input per tile and input channel.
    """
    outs = nt * m * m
    if tgt.level != 2 or not (
            outs >= LOCAL_MIN_OUTPUTS
            or (outs >= LOCAL_FEW_OUTPUTS
                and spec.out_channels // spec.groups <= LOCAL_FEW_CHANNELS)):
        return None
    rounds = 2 * -(-(nt * spec.in_channels * vbytes) // (2 * LOCAL_V_BYTES))
    rt = -(-nt // rounds)
    return rt if rt * m * m >= LOCAL_MIN_ROUND else None


class WinogradOc(Path):
    name = "winograd_oc"
    exact = False
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        # the input offsets are 32-bit
        return (spec.nd == 2 and tuple(spec.kernel_size) == (3, 3)
                and tuple(spec.stride) in ((1, 1), (2, 2)) and tuple(spec.dilation) == (1, 1)
                and prod(spec.input_shape) < 2**31)

    def chosen(self, op, spec, tgt):
        """The measured rule (see :mod:`pyconv._cy`, the path list)."""
        g = spec.groups
        if tgt.level < 1 or tgt.dbl:
            return False
        if spec.stride[0] == 2:
            t = tiles(spec, 2)
            oy, ox = spec.out_size
            return (tgt.level == 2
                    and min(spec.in_channels // g, spec.out_channels // g) >= MIN_CHANNELS
                    and MIN_TILES_STRIDE2 <= t <= MAX_TILES_STRIDE2
                    and 4 * t <= MAX_WASTE_STRIDE2 * spec.batch * oy * ox)
        return (min(spec.in_channels // g, spec.out_channels // g) >= MIN_CHANNELS
                and MIN_TILES <= tiles(spec, 4) <= MAX_TILES)

    def plan(self, op, spec, tgt, n):
        np_, ocb = _winograd_oc.block(tgt.level, tgt.dbl)
        stride = spec.stride[0]
        m = tile_size(spec, np_, ocb // 2) if stride == 1 else 2
        P, isz = alpha(m, stride) ** 2, tgt.itemsize
        cin = spec.in_channels // spec.groups
        ncob = -(-(spec.out_channels // spec.groups) // ocb)
        kbs = max(1, min(MAX_BLOCKS if stride == 1 else 1, ncob * spec.groups // MIN_ITEMS))
        tc = max(1, M_BYTES // (kbs * P * ocb * isz))
        cb = max(1, U_BYTES // (kbs * P * ocb * isz))
        cb = equal_runs(cin, cb)
        rt = max(1, V_BYTES // (spec.in_channels * P * isz))
        nt = tiles(spec, m)
        if rt < nt:                                     # equal rounds of equal chunks
            rt = equal_runs(nt, rt)
            tc = equal_runs(rt, min(tc, rt))
        want = -(-_planning.TARGET_ITEMS * 2 // spec.groups)
        cch = max(1, -(-cin // want))
        local_rt = local_round(spec, tgt, m, nt, P * isz)
        local = local_rt is not None
        if local:
            rt = local_rt
            tc = equal_runs(rt, min(tc, rt))
            kbs, cch = 1, 0
        per, fixed = _winograd_oc.workspace(geo(spec), m, tc, rt, cb, kbs, tgt.level, tgt.dbl,
                                            local)
        if not fits(per, fixed):
            return None
        items = _winograd_oc.items(geo(spec), m, tc, rt, kbs, tgt.level, tgt.dbl, local)
        return finish(self.name, items, per, fixed, n, tile=tc, slabs=rt, blocks=cb,
                      segments=cch, images=kbs, shape=m, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        _winograd_oc.conv(x, w, b, out, geo(spec), p.shape, p.tile, p.slabs, p.blocks,
                          p.segments, p.images, coefficients(p.shape, spec.stride[0]), p.simd,
                          p.omp_threads)


WINOGRAD_OC = WinogradOc()
