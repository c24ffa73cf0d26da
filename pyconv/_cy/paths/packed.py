"""The ``packed`` path: conv by im2col straight into the micro-kernel's panels
(kernels: ``_packed.pyx``).

A work item is a tile of output positions of one (image, group), im2col'ed
into panels of NR positions and multiplied by the weights, packed once per
call into panels of MR output channels: one copy of the input per tile,
where BLAS would make two.

Rule: a conv on a CPU with AVX2+FMA or AVX-512 that the implicit and
strided 1-d paths did not take (strided 2-d and 3-d convs, mostly), with
at least ``MIN_GEMM`` output channels per group and :data:`MIN_POSITIONS`
output positions per image (thinner or smaller: BLAS, ``gemm``).  The
plan does not fit when the packed weights would take more than a quarter
of the workspace.
"""

from __future__ import annotations

from math import prod

from .. import _packed, _planning
from .._planning import Path, finish, fits, geo, panel_tile, target


#: Fewest output positions per image taken (smaller maps leave the
#: micro-kernel's 48-column panels mostly empty).
MIN_POSITIONS = 100


class Packed(Path):
    name = "packed"
    ops = frozenset({"conv"})

    def chosen(self, op, spec, tgt):
        # fewer output channels per group than MIN_GEMM, or fewer output
        # positions per image than MIN_POSITIONS: BLAS (one thread, N8
        # 128->128 g32 56^2 3x3 s2: 3.1 ms on ``gemm`` against 5.2; 3x3 s2 onto
        # 7x7 and 4x4 maps, 64-512 channels, batch 1 and 8: 1.16-2.97x
        # faster on ``gemm``, where from 14x14 outputs packed was 1.05-1.33x)
        return (tgt.level >= 1 and spec.out_channels // spec.groups >= _planning.MIN_GEMM
                and prod(spec.out_size) >= MIN_POSITIONS)

    def plan(self, op, spec, tgt, n):
        g = spec.groups
        kc = spec.in_channels // g * prod(spec.kernel_size)
        pout = prod(spec.out_size)
        tile = panel_tile(kc, pout, tgt.nr, tgt.itemsize, spec.batch * g)
        per, fixed = _packed.workspace(geo(spec), tile, tgt.mr, tgt.nr, tgt.dbl)
        if not fits(0, fixed):
            return None
        return finish(self.name, spec.batch * g * -(-pout // tile), per, fixed, n, tile=tile,
                      simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        tgt = target(x.dtype, p.simd)
        _packed.conv(x, w, b, out, geo(spec), p.tile, tgt.level, tgt.mr, tgt.nr, p.omp_threads)


PACKED = Packed()
