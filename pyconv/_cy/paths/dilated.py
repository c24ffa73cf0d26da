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
and out (thinner ones take ``direct``), on a CPU with AVX2+FMA or AVX-512,
where it measured faster than ``implicit`` (one thread, 3x3 kernels):

* 1-d: only when fewer than :data:`MAX_VALID_1D` of the (tap, output)
  pairs read the input (long dilations over short signals: N2 256->256 L300
  d128 1.4 ms against 1.9); otherwise ``implicit`` reads its one slab row
  per channel at every tap offset as cheaply (N8 32->32 L8000 d512 3.8
  against 7.9; N4 128->128 L4000 K2 d64 8.2 against 18.1);
* 2-d: not with a dilation of 2 and at most 128 input channels per group
  or output rows of at most 28 (N8 32->32 28^2 0.9 against 2.2; N1
  256->256 28^2 7.6 against 9.1), nor with a dilation of at most 4 and at
  most 64 channels (N4 64->64 65^2 d4 10.6 against 12.6): ``implicit``'s
  slab holds only a few extra rows there; with wider dilations or more
  channels the taps it skips win (N1 256->256 33^2 d4 9.7 against 13.2;
  ASPP N2 2048->256 33^2 d12, d24).
The plan does not fit when one thread's buffers take more than a quarter
of the workspace or the packed weights more than half.
"""

from __future__ import annotations

from .. import _dilated, _planning
from .._planning import Path, finish, geo, target

#: Smallest dilation (in some dim) the rule takes.
MIN_DILATION = 2
#: 1-d: largest fraction of (tap, output) pairs inside the input it takes.
MAX_VALID_1D = 0.8


def valid_fraction(spec):
    """The fraction of the (tap, output position) pairs that read the input, not
    the padding (the taps the path skips are the others)."""
    frac = 1.0
    for n_in, n_out, k, d, lo in zip(spec.in_size, spec.out_size, spec.kernel_size,
                                     spec.dilation, spec.pad_lo):
        inside = sum(max(0, min(n_out, n_in + lo - t * d) - max(0, lo - t * d))
                     for t in range(k))
        frac *= inside / max(1, k * n_out)
    return frac
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
        dmax, cin = max(spec.dilation), spec.in_channels // spec.groups
        if not (tgt.level >= 1 and dmax >= MIN_DILATION
                and min(cin, spec.out_channels // spec.groups) >= _planning.MIN_GEMM):
            return False
        if spec.nd == 1:
            return valid_fraction(spec) < MAX_VALID_1D
        return not ((dmax == 2 and (cin <= 128 or spec.out_size[-1] <= 28))
                    or (dmax <= 4 and cin <= 64))

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
