"""The ``dilated`` path: stride-1 dilated convs of 1 or 2 spatial dims that
skip the kernel taps reading only padding (kernels: ``_dilated.pyx``).

A work item is a rectangle of output rows and columns of one image and
group.  It visits only the kernel rows and columns whose taps reach the
input for some output of the rectangle, copies their im2col rows (no
padding columns) a chunk of :data:`KC` at a time and multiplies them on the
register-blocked micro-kernel with weights packed tap-major, so that the
taps of a kernel row are one contiguous range (see ``kernels/dilated.h``).
Row tiles are cut where a kernel row starts or stops reaching the input,
and each is cut along x where a kernel column does (unless the narrow piece
would waste more in padded micro-kernel panels than it skips; see
``_dilated.tiles``).  With dilation 24 on a 33x33 map (a DeepLab ASPP
branch) more than half of a 3x3 kernel's multiply-adds are skipped, with
dilation 12 two fifths; unlike the implicit path no thrown-away padding
columns are computed; unlike the gemm path the weights are packed once per
call, not by BLAS once per tile.

Rule: a stride-1 conv with a dilation of at least :data:`MIN_DILATION` in
some dim, 1 or 2 spatial dims, at least ``MIN_GEMM`` channels per group in
and out (thinner ones take ``direct``), on a CPU with AVX2+FMA or AVX-512.
The plan does not fit when one thread's buffers take more than a quarter
of the workspace or the packed weights more than half.
"""

from __future__ import annotations

from .. import _dilated, _planning
from .._planning import Path, finish, geo, target

#: Smallest dilation (in some dim) the rule takes.
MIN_DILATION = 2
#: Taps per chunk (rows of the im2col chunk): the chunk's packed weights
#: (KC x C_out/g) and im2col rows stay in the L2 cache while every panel of
#: the tile reads them.
KC = 256
#: Output positions wanted per tile (whole rows): the packed weights are
#: streamed once per tile and chunk.
TILE_COLS = 512


class Dilated(Path):
    name = "dilated"
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        return spec.nd <= 2 and all(s == 1 for s in spec.stride)

    def chosen(self, op, spec, tgt):
        return (tgt.level >= 1 and max(spec.dilation) >= MIN_DILATION
                and min(spec.in_channels, spec.out_channels) // spec.groups
                >= _planning.MIN_GEMM)

    def plan(self, op, spec, tgt, n):
        gt = geo(spec)
        ox = spec.out_size[-1]
        oy = spec.out_size[0] if spec.nd == 2 else 1
        rows = max(1, min(oy, TILE_COLS // max(1, ox)))
        per_image = spec.batch * spec.groups * _dilated.pieces(gt)
        want = -(-_planning.TARGET_ITEMS // per_image)
        if want > 1:
            rows = min(rows, max(1, -(-oy // want)))
        rects = _dilated.tiles(gt, rows, tgt.nr)
        while rows > 1 and _dilated.workspace(gt, _dilated.positions(rects), KC, tgt.level,
                                              tgt.dbl)[0] > _planning.TILE_BYTES * 2:
            rows = max(1, rows // 2)
            rects = _dilated.tiles(gt, rows, tgt.nr)
        per, fixed = _dilated.workspace(gt, _dilated.positions(rects), KC, tgt.level, tgt.dbl)
        if per > _planning.WORKSPACE_BYTES // 4 or fixed > _planning.WORKSPACE_BYTES // 2:
            return None
        ntiles = len(rects) // 4
        return finish(self.name, spec.batch * spec.groups * ntiles, per, fixed, n, tile=rows,
                      simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        _dilated.conv(x, w, b, out, geo(spec), p.tile, KC, target(x.dtype, p.simd).level,
                      p.omp_threads)


DILATED = Dilated()
