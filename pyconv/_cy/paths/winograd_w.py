"""The ``winograd_w`` path: the weight gradient of 2-d 3x3 stride-1 convs by
Winograd minimal filtering (kernels: ``_winograd_w.pyx``, ``kernels/winograd_w.h``).

Per (output channel, input channel) and axis, the weight gradient
``dW[k] = sum_j gy[j] x[j + k - pad]`` is a correlation whose kernel is the
output gradient and whose 3 outputs are the taps.  Cut gy into tiles of 4
per axis (the forward ``winograd4`` path's output tiles); a tile gives its
share of the 3 taps by F(3, 4) (alpha = 6)::

    dW_tile = A^T [(G g G^T) * (B^T d B)] A

where ``d`` is the 6x6 input window the tile's taps read (the forward
F(4x4, 3x3) tile's window: B^T is the same, it depends only on the
evaluation points).  Summed over the tiles, each of the 36 transformed
positions is one GEMM with the tiles as its reduction,
``Mw[p] = X[p] Gy[p]^T`` (C_in/g x C_out/g), on the weight-gradient
micro-kernel; ``dW = A^T Mw A`` once per call, in double.  36 multiply-adds
per tile and channel pair where the direct sum does 144 (4x fewer; a map
that is not a multiple of 4 wide pays for the padded last tile; the spare
column each row of tiles carries through the input transform is left out
of the products).

The tiles are taken in rounds of a fixed number of segments (runs of tiles
of one row of tiles, as the forward path cuts them); per round the threads
transform the round's input windows and output-gradient tiles (items: steps
of 16 channels), then compute the 36 products (items: one per transformed
position and group), each adding into the position's one sum ``Mw[p]``.
Each sum is written by one item per round and the rounds come in order: the
result is bitwise the same for any thread count, and there are no partial
sums.  The sums, one round's transforms and the threads' blocks are kept
from call to call (``_winograd_w``).  Not ``exact``:
``pyconv.use_algorithms("exact")`` skips it.

Rule (``chosen``): see :mod:`pyconv._cy` (the path list).  The plan does not
fit when one thread's block takes more than a quarter of the workspace or
the shared buffers more than :data:`SHARED_BYTES`.
"""

from __future__ import annotations

from math import prod

from .. import _winograd_w
from .._planning import Path, finish, fits, geo, target
from .winograd import matrices

#: The rule (measured on the 2-core AVX-512 Xeon the project benchmarks on,
#: float32, one thread CPU time, against ``implicit``, medians of 5): fewest
#: channels per group in and out (N8 16->16 56x56: 2.2x ``implicit``) ...
#: (raised from 16 after measuring against ``gemm``, which takes the thinner
#: weight gradients since: two threads, N8 16->16 56^2 2.35 ms against 1.68,
#: 24->24 3.30 against 2.83; 32->32 4.2 against 4.7) ...
MIN_CHANNELS = 32
#: ... fewest 4x4 tiles of the output gradient per call, all images (batch 1
#: 28x28 at 128 channels, 49 tiles: 1.10x; batch 2, 98 tiles: 1.41x; N4
#: 256->256 14x14, 64 tiles: 1.14x) ...
MIN_TILES = 96
#: ... output maps of at least MIN_WIDTH rows and columns (7x7 maps, a 4x4 tile of 16 holding
#: 12.25 outputs: N8 512->512 0.76x, N32 0.98x) ...
MIN_WIDTH = 8
#: ... and below WIDE_WIDTH (14x14: each row of 4 tiles has a quarter of
#: padding) at least WIDE_CHANNELS channels (N32 64->64 14x14 0.91x,
#: 128->128 1.19x, 256->256 1.6x) ...
WIDE_WIDTH = 20
WIDE_CHANNELS = 128
#: ... and at most MAX_CHANNELS channels per group in or out (the sums, 36 x
#: C_in x C_out floats, are the buffer that grows with them: N8 256->256
#: 28x28 2.2x; N64 512->512 14x14 1.1-1.4x on one thread, not measured on
#: two, is left to ``implicit``).
MAX_CHANNELS = 256
#: Most columns (tiles, plus one spare column per row of tiles) of a
#: segment: longer rows of tiles are cut into equal segments.
BLOCK_COLS = 128
#: Columns (tiles and spare columns) of one round: the micro-kernel's
#: reduction per pass over the sums ... 
ROUND_COLS = 96
#: ... fewer if two rounds' transformed input and output gradient (X and Gy,
#: all groups; the transforms of a round are computed while the products of
#: the one before run) would take more bytes (the rounds are fixed by the
#: call's shape alone, never the thread count).
ROUND_BYTES = 16 << 20
#: Most bytes of the buffers the threads share (the sums ``Mw``, 36 x C_in x
#: C_out / groups floats, and two rounds' X and Gy), within the workspace.
SHARED_BYTES = 48 << 20


class WinogradWeight(Path):
    name = "winograd_w"
    exact = False
    ops = frozenset({"conv_weight"})

    def supports(self, op, spec, tgt):
        return (spec.nd == 2 and tuple(spec.kernel_size) == (3, 3)
                and all(s == 1 for s in spec.stride) and all(d == 1 for d in spec.dilation))

    def chosen(self, op, spec, tgt):
        """The measured rule (see :mod:`pyconv._cy`, the path list)."""
        g = spec.groups
        channels = min(spec.in_channels // g, spec.out_channels // g)
        if tgt.level < 1 or tgt.dbl or channels < MIN_CHANNELS:
            return False
        if max(spec.in_channels // g, spec.out_channels // g) > MAX_CHANNELS:
            return False
        tiles = spec.batch * prod(-(-o // 4) for o in spec.out_size)
        width = min(spec.out_size)
        if tiles < MIN_TILES or width < MIN_WIDTH:
            return False
        return width >= WIDE_WIDTH or channels >= WIDE_CHANNELS

    def plan(self, op, spec, tgt, n):
        """Rounds of ``segments`` runs of at most ``tile`` tiles of one row of tiles."""
        gt = geo(spec)
        oy, ox = spec.out_size
        tx, ty = -(-ox // 4), -(-oy // 4)
        cols = max(2, BLOCK_COLS)       # a tile and its spare column at least
        chunks = -(-tx // (cols - 1))   # segments per row of tiles
        length = -(-tx // chunks)
        nseg = spec.batch * ty * chunks
        _, sums = _winograd_w.workspace(gt, length, 1, tgt.nrw, tgt.dbl)
        count = max(1, min(nseg, ROUND_COLS // (length + 1)))
        while True:
            per, shared = _winograd_w.workspace(gt, length, count, tgt.nrw, tgt.dbl)
            if count == 1 or (shared - sums <= ROUND_BYTES and shared <= SHARED_BYTES):
                break
            count = -(-count // 2)
        if not fits(per) or shared > SHARED_BYTES:
            return None
        items = spec.groups * 36
        return finish(self.name, items, per, shared, n, tile=length, segments=count,
                      slots=1, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        tgt = target(x.dtype, p.simd)
        bt = matrices(4, 3)[0]
        _, gm, at = matrices(3, 4)
        _winograd_w.conv_weight(x, w, out, geo(spec), bt.ravel(), gm.ravel(), at.ravel(), p.tile,
                                p.segments, tgt.level, tgt.nrw, p.omp_threads)


WINOGRAD_W = WinogradWeight()
