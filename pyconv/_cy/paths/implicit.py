"""The ``implicit`` path: stride-1 conv and any conv_weight on input slabs
(kernels: ``_implicit.pyx``, ``kernels/slab.h``).

A work item is a tile of output rows along the outermost real axis; it
copies the input box the rows read, zero padded, into a slab where every
kernel tap is a constant offset, and the register-blocked micro-kernel
reads the slab directly: no im2col.

conv_weight items take several images when one tile has few positions
(:data:`WEIGHT_POSITIONS`): the micro-kernel then runs over the positions of
all of them before it adds its block into the partial weight.

A strided weight gradient splits each slab into the stride's phases (the
box positions with one residue modulo the stride per axis), where every
tap is again a constant offset: no im2col there either.

Rule: the CPU has AVX2+FMA or AVX-512 (the micro-kernels' baseline build
is correct but slower than BLAS); a conv with every stride 1; a
conv_weight with enough channels or taps, and when strided, with more
than one tap and :data:`STRIDED_MIN_POSITIONS` output positions.  The plan
does not fit when one slab and output block, or the packed weights, would
take more than a quarter of the workspace.
"""

from __future__ import annotations

from math import prod

from .. import _implicit, _planning
from .._planning import (Path, canon, equal_runs, finish, fits, gemm_shape, geo, outer_axis,
                         slots, target)
from .gemm import is_pointwise

#: conv: fewest micro-kernel panels of output channels per part, when a
#: call of few tiles splits its output channels (the ``blocks`` field).
MIN_PART_PANELS = 2
#: conv_weight: valid output positions wanted per item (several images of
#: small maps); each micro-kernel call runs over them, then adds its
#: register block into the partial weight.
WEIGHT_POSITIONS = 768
#: conv_weight: output positions (all images together) per partial sum, at
#: least: a partial is allocated, zeroed and read by the reduction once per
#: call, which costs as much as the multiply-adds of about this many
#: positions; the slot count is a power of two (even shares for 2, 4, 8
#: threads).
SLOT_POSITIONS = 2048

#: Fewest channels per group (in and out) of a weight gradient taken.
WGRAD_MIN_CHANNELS = 48
#: A strided weight gradient (slabs split into the stride's phases) is taken
#: from this many output positions (all images) and with more than one tap;
#: ``gemm`` otherwise.  Two threads, against ``gemm``: 2-d 3x3 s2 N8 64->128
#: 56^2 5.35 ms against 5.86, 7x7 s2 N2 3->64 224^2 2.70 against 4.18, 3-d
#: 3x3x3 s2 N2 32->64 16x32x32 3.74 against 4.79, 1-d K5 s2 N32 64->128 L1024
#: 6.82 against 7.60; with fewer positions for a larger weight ``gemm`` won
#: (3x3 s2 N8 128->256 28^2, 1568 positions: 7.75 against 5.70; 256->512
#: 14^2: 9.88 against 6.71: each tile's block sums go through a partial
#: weight of millions of values), and so it did on 1x1 kernels (N8 64->128
#: 56^2 s2 1.16 against 1.08).
STRIDED_MIN_POSITIONS = 4096


class Implicit(Path):
    name = "implicit"
    ops = frozenset({"conv", "conv_weight"})

    def supports(self, op, spec, tgt):
        # a weight gradient reads its slabs split into the stride's phases
        return op == "conv_weight" or all(s == 1 for s in spec.stride)

    def chosen(self, op, spec, tgt):
        # a thin weight gradient (few output channels per group) leaves its
        # MRW x NRW block mostly empty: ``gemm`` (one thread, N8 64->2 56^2
        # 3x3: 3.7 ms against 16.1); a 1x1 one is one BLAS GEMM on the
        # arrays as they are: ``pointwise`` (N8 64->256 56^2: 10.0 against
        # 21.0; N2 32->64 112^2: 1.5 against 4.4)
        # ... and so is one with fewer than WGRAD_MIN_CHANNELS channels per
        # group and at most 9 taps (one thread, on ``gemm``: N8 12->12 56^2 3x3
        # 1.7 ms against 5.8, N8 32->32 112^2 29.7 against 38.3, N1 16->512
        # 56^2 3.8 against 6.2, 1-d N2 96->16 L4096 K5 d2 2.6 against 4.5; at
        # 48 a tie, at 64 ``implicit`` 16.4 against 21.9; with more taps
        # ``implicit`` stayed ahead: 3-d N2 64->64 g2 8^3 4x4x4 2.5 against 5.6,
        # 2-d N16 96->32 14^2 4x4 3.7 against 5.8)
        cmin = min(spec.in_channels, spec.out_channels) // spec.groups
        strided = any(s > 1 for s in spec.stride)
        return tgt.level >= 1 and (op != "conv_weight"
                                   or (min(gemm_shape(op, spec)) >= _planning.MIN_GEMM
                                       and (cmin >= WGRAD_MIN_CHANNELS
                                            or prod(spec.kernel_size) > 9)
                                       and not is_pointwise(spec)
                                       and not (strided and (
                                           prod(spec.kernel_size) == 1
                                           or spec.batch * prod(spec.out_size)
                                           < STRIDED_MIN_POSITIONS))))

    def plan(self, op, spec, tgt, n, reserved=0, split=True):
        """As :meth:`Path.plan`; ``reserved`` bytes held by the caller during the
        call (the phases path's phase weight) count against the workspace;
        ``split``: a conv of fewer tiles than TARGET_ITEMS may split each
        tile's output channels (``blocks`` parts, not for the phases path)."""
        gt = geo(spec)
        axis = outer_axis(spec)
        outs, ks, dl, st = (canon(v, 1) for v in (spec.out_size, spec.kernel_size,
                                                  spec.dilation, spec.stride))
        length = outs[axis]
        inner = 1
        for ax in range(axis + 1, 3):     # a slab row: one phase's (the stride's)
            inner *= -(-((outs[ax] - 1) * st[ax] + (ks[ax] - 1) * dl[ax] + 1) // st[ax])
        nr = tgt.nr if op == "conv" else tgt.nrw

        def per_thread(rows, images=1):
            if op == "conv":
                return _implicit.conv_workspace(gt, rows, tgt.mr, tgt.nr, tgt.dbl)[0]
            return _implicit.weight_workspace(gt, rows, tgt.nrw, images, 1, tgt.dbl,
                                              _planning.PARTIAL_BYTES)[0]

        # the slab and the output block of one item stay within TILE_BYTES
        # (the micro-kernel re-reads them from L2): as many rows as fit, at
        # least one
        lo, hi = 1, max(1, length)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if per_thread(mid) <= _planning.TILE_BYTES:
                lo = mid
            else:
                hi = mid - 1
        rows = lo
        # ... but enough columns for the micro-kernel panels, also when the
        # rows are cut to give every thread work (the halo rows only cost a copy)
        rows_min = max(1, -(-min(2 * nr, _planning.MIN_TILE) // inner))
        rows = max(rows, rows_min)
        per_image = spec.groups if op == "conv" else 1
        want = -(-_planning.TARGET_ITEMS // max(1, spec.batch * per_image))
        if want > 1:
            rows = min(rows, max(rows_min, -(-length // want)))
        rows = min(rows, length)
        ntiles = -(-length // rows)
        rows = -(-length // ntiles)          # equal tiles
        if op == "conv":
            per, fixed = _implicit.conv_workspace(gt, rows, tgt.mr, tgt.nr, tgt.dbl)
            if not fits(per, fixed + reserved):
                return None
            items = spec.batch * spec.groups * ntiles
            # too few tiles to give every thread work (a batch-1 7x7 map is one
            # tile): whole panels of each tile's output channels as items; the
            # slab is filled once per part (a copy of the input box, small
            # next to the part's products where this applies)
            panels = -(-(spec.out_channels // spec.groups) // tgt.mr)
            mparts = 1
            if split and panels >= 2 * MIN_PART_PANELS:
                if items < _planning.TARGET_ITEMS:
                    mparts = -(-_planning.TARGET_ITEMS // items)
                mparts = min(mparts, panels // MIN_PART_PANELS)
                mparts = equal_runs(panels, mparts)
            return finish(self.name, items * mparts, per, fixed + reserved, n, tile=rows,
                          simd=tgt.level, blocks=mparts)
        # images per item: up to WEIGHT_POSITIONS valid positions, keeping
        # TARGET_ITEMS items and the buffers within 4 TILE_BYTES
        positions = rows * (prod(outs) // length)
        images = max(1, min(WEIGHT_POSITIONS // max(1, positions),
                            spec.batch * ntiles // _planning.TARGET_ITEMS))
        while images > 1 and per_thread(rows, images) > 4 * _planning.TILE_BYTES:
            images -= 1
        items = -(-spec.batch // images) * ntiles
        share = spec.batch * prod(outs) // SLOT_POSITIONS
        nslots = min(slots(spec, items, tgt.itemsize), 1 << max(0, share.bit_length() - 1))
        per, fixed = _implicit.weight_workspace(gt, rows, tgt.nrw, images, nslots, tgt.dbl,
                                                _planning.PARTIAL_BYTES)
        if not fits(per):
            return None
        return finish(self.name, nslots, per, fixed, n, tile=rows, slots=nslots,
                      images=images, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out, yview=None):
        """As :meth:`Path.run`; ``yview`` writes a strided view of ``out`` (phases)."""
        tgt = target(x.dtype, p.simd)
        if op == "conv":
            _implicit.conv(x, w, b, out, geo(spec), p.tile, tgt.level, tgt.mr, tgt.nr,
                           p.omp_threads, yview, p.blocks)
        else:
            _implicit.conv_weight(x, w, out, geo(spec), p.tile, p.images, p.slots, tgt.level,
                                  tgt.nrw,
                                  p.omp_threads, _planning.PARTIAL_BYTES)


IMPLICIT = Implicit()
