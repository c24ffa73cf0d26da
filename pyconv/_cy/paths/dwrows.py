"""The ``dwrows`` path: stride-1 2-d depthwise 3x3 convs along the output rows
(kernels: ``_dwrows.pyx``, ``kernels/dwrows.h``).

The ``depthwise`` path puts channels in the vector lanes and pays two
transposes per tile (the input box channel-interleaved, the outputs back
into their planes); on the small maps of real models they take more than
half of its time.  Here the lanes are consecutive outputs of one row, read
straight from the input planes: one masked load per input row and tap
column, shared by the 4 output rows of a register block it feeds, and one
FMA per tap and vector of outputs (the masks zero the padding), nothing
copied.  AVX-512 only (masked loads and stores).

Rule: every call it supports (``chosen``; see :mod:`pyconv._cy`, the path
list).
"""

from __future__ import annotations

from .. import _dwrows, _planning
from .._planning import Path, finish, geo

#: A work item's input planes take about this many bytes (its block of
#: output channels of one image), with at least TARGET_ITEMS items a call.
ITEM_BYTES = 1 << 16


class DwRows(Path):
    name = "dwrows"
    # memory-bound, as ``depthwise``
    serial_scale = 1 / 16
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        return (spec.in_channels == spec.groups and spec.nd == 2 and tgt.level >= 2
                and _dwrows.available() and tuple(spec.stride) == (1, 1)
                and tuple(spec.dilation) == (1, 1) and tuple(spec.kernel_size) == (3, 3))

    def chosen(self, op, spec, tgt):
        """Every call it supports (measured on the 2-core AVX-512 Xeon the project
        benchmarks on, two threads, against ``depthwise``: float32, batch 1 and
        8, 7x7 to 112x112 maps, 32 to 960 channels, 1.14-3.16x; float64 1.8-2.0x
        on 7x7 and 14x14 maps, 0.88x on a batch-8 112x112 x 32 map)."""
        return True

    def plan(self, op, spec, tgt, n):
        plane = spec.in_size[0] * spec.in_size[1] * tgt.itemsize
        cpb = max(1, ITEM_BYTES // plane)
        # enough items for the threads (TARGET_ITEMS), in equal blocks
        per_image = max(1, -(-_planning.TARGET_ITEMS // spec.batch))
        cpb = max(1, min(cpb, -(-spec.out_channels // per_image)))
        cpb = -(-spec.out_channels // -(-spec.out_channels // cpb))
        items = _dwrows.items(geo(spec), cpb)
        return finish(self.name, items, 0, 0, n, tile=cpb, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        _dwrows.conv(x, w, b, out, geo(spec), p.tile, p.omp_threads)


DWROWS = DwRows()
