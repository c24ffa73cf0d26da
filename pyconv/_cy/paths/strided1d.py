"""The ``strided1d`` path: 1-d conv by implicit GEMM on a de-interleaved slab
(kernels: ``_strided1d.pyx``).

A work item is a tile of outputs; its slab holds the tile's input
regrouped by residue modulo the stride (row r of channel c: every s-th
input from r), so every tap is again a constant offset into the slab and
whole panels go straight into the output.

Rule: a 1-d conv with a stride of at most 8 on a CPU with AVX2+FMA or
AVX-512 (stride-1 calls reach it only when the implicit path does not
fit).  The plan does not fit when the packed weights or one thread's slab
would take more than a quarter of the workspace.
"""

from __future__ import annotations

from math import prod

from .. import _strided1d
from .._planning import Path, finish, fits, geo, panel_tile, target


class Strided1d(Path):
    name = "strided1d"
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        return spec.nd == 1

    def chosen(self, op, spec, tgt):
        return tgt.level >= 1 and spec.stride[0] <= 8

    def plan(self, op, spec, tgt, n):
        g = spec.groups
        cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
        s = int(spec.stride[0])
        pout = prod(spec.out_size)
        tile = panel_tile(cin_g * s + cout_g, pout, tgt.nr, tgt.itemsize, spec.batch * g)
        per, fixed = _strided1d.workspace(geo(spec), tile, tgt.mr, tgt.nr, tgt.dbl)
        if not fits(per, fixed):
            return None
        return finish(self.name, spec.batch * g * -(-pout // tile), per, fixed, n, tile=tile,
                      simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        tgt = target(x.dtype, p.simd)
        _strided1d.conv(x, w, b, out, geo(spec), p.tile, tgt.level, tgt.mr, tgt.nr,
                        p.omp_threads)


STRIDED1D = Strided1d()
