"""The ``direct`` path: loops over output rows, no GEMM (kernels: ``_direct.pyx``).

Rule: a call whose per-group GEMM would be too big for BLAS's 32-bit sizes
(2**31 positions or more per image, or ``M * K`` over 2**31 - 1), or thin,
``min(M, K) <`` :data:`~pyconv._cy._planning.MIN_GEMM`, in one of the cases
where the loops measured faster than the GEMM paths: a conv with ``K <
MIN_GEMM`` or at most 4 channel pairs per group (``C_in/g * C_out/g <= 4``:
1-d depthwise, channel multiplier 2 to 4), a conv_weight with ``K <
MIN_GEMM`` or one channel pair per group.  Wider groups with few output
channels (ResNeXt's 4 in x 4 out, a 64 -> 2 head) run on the GEMM paths
with some micro-kernel rows idle, and faster (one thread: conv N8
128->128 g32 56^2 3x3 8.3 ms on ``implicit`` against 23.4 here; its
weight gradient 2.8 on ``gemm`` against 19.1); transposed convs always do
(phases, ``tgemm`` or ``gemm``: N8 256->256 g128 L1024 K4 s2 3.2 ms on
``gemm`` against 11.8 here).  It supports every call, so it is also the
last resort.
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
        if not blas_sizes_ok(op, spec):
            return True
        m, k = gemm_shape(op, spec)
        if min(m, k) >= _planning.MIN_GEMM or op == "conv_transpose":
            return False
        pairs = (spec.in_channels // spec.groups) * (spec.out_channels // spec.groups)
        return k < _planning.MIN_GEMM or pairs <= (4 if op == "conv" else 1)

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
