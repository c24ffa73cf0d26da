"""The ``direct`` path: loops over output rows, no GEMM (kernels: ``_direct.pyx``).

Rule: the per-group GEMM the call would do is thin, ``min(M, K) <``
:data:`~pyconv._cy._planning.MIN_GEMM` (depthwise, small groups), or too big
for BLAS's 32-bit sizes (2**31 positions or more per image, or ``M * K``
over 2**31 - 1).  It supports every call, so it is also the last resort.
"""

from __future__ import annotations

from .. import _direct, _planning
from .._planning import INT_MAX, Path, finish, gemm_shape, geo, positions


def blas_sizes_ok(op, spec):
    """Whether a BLAS GEMM of this call fits BLAS's 32-bit sizes."""
    m, k = gemm_shape(op, spec)
    return max(positions(spec)) <= INT_MAX // 2 and m * k <= INT_MAX


class Direct(Path):
    name = "direct"
    # memory-bound: tens of GFLOP/s against the GEMM paths' hundreds (measured)
    serial_scale = 1 / 16
    ops = frozenset({"conv", "conv_transpose", "conv_weight"})

    def chosen(self, op, spec, tgt):
        return min(gemm_shape(op, spec)) < _planning.MIN_GEMM or not blas_sizes_ok(op, spec)

    def plan(self, op, spec, tgt, n):
        if op == "conv_weight":
            items = spec.out_channels * (spec.in_channels // spec.groups)
        else:
            items = spec.batch * spec.out_channels
        per_thread, fixed = _direct.workspace(geo(spec))
        return finish(self.name, items, per_thread, fixed, n, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        if op == "conv_weight":
            _direct.conv_weight(x, w, out, geo(spec), p.omp_threads)
        else:
            getattr(_direct, op)(x, w, b, out, geo(spec), p.omp_threads)


DIRECT = Direct()
