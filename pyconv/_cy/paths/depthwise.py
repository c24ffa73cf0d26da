"""The ``depthwise`` path: depthwise convs with channels as vector lanes
(kernels: ``_depthwise.pyx``).

A work item is a block of VL output channels of one image (VL: the vector
width, 16 float32 lanes with AVX-512) and a tile of output rows; it copies
the input box of the tile channel-interleaved and does one vector FMA per
tap and output pixel, so no lane idles however narrow the map (see
``kernels/depthwise.h``).

Rule: a conv with one input channel per group (``C_in / groups == 1``:
depthwise, with any channel multiplier) of 2 or 3 spatial dims, on a CPU
with AVX2+FMA or AVX-512.  1-d depthwise convs keep the ``direct`` path,
whose rows are long and already vectorise.  The plan does not fit when one
tile's box would take more than a quarter of the workspace.
"""

from __future__ import annotations

from .. import _depthwise, _planning
from .._planning import Path, canon, finish, fits, geo, outer_axis


class Depthwise(Path):
    name = "depthwise"
    # memory-bound: tens of GFLOP/s against the GEMM paths' hundreds (measured)
    serial_scale = 1 / 16
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        return spec.in_channels == spec.groups

    def chosen(self, op, spec, tgt):
        return tgt.level >= 1 and spec.nd >= 2

    def plan(self, op, spec, tgt, n):
        gt = geo(spec)
        vl, r = _depthwise.block(tgt.dbl, tgt.level)
        length = canon(spec.out_size, 1)[outer_axis(spec)]
        per_image = spec.batch * -(-spec.out_channels // vl)

        def per_thread(rows):
            return _depthwise.workspace(gt, rows, vl, r, tgt.dbl)[0]

        # the box of one tile stays within TILE_BYTES (it is re-read from L2
        # for every tap), and the tiles are cut so that the call has at least
        # TARGET_ITEMS items
        lo, hi = 1, max(1, length)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if per_thread(mid) <= _planning.TILE_BYTES:
                lo = mid
            else:
                hi = mid - 1
        rows = lo
        want = -(-_planning.TARGET_ITEMS // per_image)
        if want > 1:
            rows = min(rows, max(1, -(-length // want)))
        ntiles = -(-length // rows)
        rows = -(-length // ntiles)          # equal tiles
        per, fixed = _depthwise.workspace(gt, rows, vl, r, tgt.dbl)
        if not fits(per, fixed):
            return None
        return finish(self.name, per_image * ntiles, per, fixed, n, tile=rows, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        _depthwise.conv(x, w, b, out, geo(spec), p.tile, p.simd, p.omp_threads)


DEPTHWISE = Depthwise()
