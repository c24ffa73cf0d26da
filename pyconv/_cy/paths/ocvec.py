"""The ``ocvec`` path: direct convs with output channels as vector lanes
(kernels: ``_ocvec.pyx``).

The GEMM paths put output positions in the vector lanes; on the small maps
of deep layers (7x7, 14x14) their 48-position panels are padding columns
and leftovers for a quarter or more.  Here a register block holds two
vectors of output channels for a few rows of consecutive outputs (``RB x
CB``: 1 x 14, 2 x 7 or 3 x 4 at the AVX-512 level), so a 7x7 map fills
its blocks; per input channel and tap the block loads two weight vectors
and broadcasts one input value per output (``kernels/ocvec.h``).  A work
item is (block of images, group, tile of output rows, part of the group's
channel blocks); it copies its input rows, zero padded, into a slab per
image.  The weights are packed channel-block-major by a first pass, or,
where every channel block belongs to one item (a batch-1 map), by the
item itself just before it uses the block.

Rule (``chosen``): see :mod:`pyconv._cy` (the path list) and the constants
below.  The plan does not fit when the packed weights or one thread's
slabs take more than a quarter of the workspace.
"""

from __future__ import annotations

from math import prod

from .. import _ocvec, _planning
from .._planning import Path, canon, finish, fits, geo

#: Shape indices of the register blocks (``_ocvec.shape``).
SHAPES = (0, 1, 2)
#: Largest slabs of one item's images together.
IMAGES_BYTES = 1 << 20
#: The rule (measured on the 2-core AVX-512 Xeon the project benchmarks on,
#: two threads, float32, against the path the rest of the list took:
#: ``implicit`` for stride 1, ``packed`` or ``gemm`` for stride 2): 2-d,
#: dilation 1, more than one tap, at least MIN_CHANNELS channels per group in
#: and out, and
#:
#: - stride 1: output rows of at most MAX_WIDTH (7x7 maps, 32 to 1024
#:   channels, batch 1 and 8: 1.13-2.73x; 4x4 x 512: 1.16x), or of at most
#:   MAX_WIDTH_SMALL with at most MAX_POSITIONS_SMALL output positions per
#:   call (batch-1 8x8 x 256: 1.29x, 14x14 x 128: 1.10x; batch-8 8x8 x 128:
#:   0.86x, 14x14 x 256: 0.66x, where the implicit GEMM's panels are full);
#: - a stride: output rows of at most MAX_WIDTH_STRIDED (3x3 stride 2 onto
#:   14x14, 7x7 and 4x4 maps, 128-512 channels: 1.01-1.43x).
#:
#: A 1x1 kernel with a stride measured slower (0.81-0.97x).  These ratios are
#: the path's first version; the fused pack and the narrower slabs made it
#: faster since (batch-8 7x7 x 512: 8.6 -> 7.0 ms, batch-1: 1.7 -> 1.2 ms).
MIN_CHANNELS = 32
MAX_WIDTH = 7
MAX_WIDTH_SMALL = 14
MAX_POSITIONS_SMALL = 256
MAX_WIDTH_STRIDED = 14
#: Calls of more than one image with at most this many output positions per
#: image (7x7 and 8x8 maps) share their slabs: a first pass fills each
#: image's once, and every item (one channel block, all images) packs its
#: block's weights itself; measured against the plan below (items of a few
#: images and several blocks, each filling its own slabs, the weights packed
#: by a first pass): batch 2-32, 7x7 and 4x4 maps, 256-512 channels, stride 1
#: and 2, float32 and float64: 1.05-1.31x.  (14x14 maps measured 0.9-1.0x:
#: an item's slabs no longer stay in L2.)
SHARED_POSITIONS = 64


def _slots(out_y, out_x, rb, cb):
    """Output positions one image's register blocks compute (the map's, plus
    the ones past a row's end or the last row, dropped)."""
    return -(-out_y // rb) * rb * -(-out_x // cb) * cb


def _fused(spec, rows, imgs):
    """Whether each channel block is used by one work item (one block of images,
    one group, one tile: a batch-1 map): then the items pack their blocks'
    weights themselves, and the packed weights never go through memory."""
    _, oy, _ = canon(spec.out_size, 1)
    return -(-spec.batch // imgs) * spec.groups * -(-oy // rows) == 1


class OcVec(Path):
    name = "ocvec"
    ops = frozenset({"conv"})

    def supports(self, op, spec, tgt):
        return spec.nd <= 2

    def chosen(self, op, spec, tgt):
        """The measured rule (see :mod:`pyconv._cy`, the path list)."""
        g = spec.groups
        if (tgt.level < 1 or spec.nd != 2 or any(d != 1 for d in spec.dilation)
                or prod(spec.kernel_size) == 1
                or min(spec.in_channels // g, spec.out_channels // g) < MIN_CHANNELS):
            return False
        ox = spec.out_size[-1]
        if any(s > 1 for s in spec.stride):
            return ox <= MAX_WIDTH_STRIDED
        return ox <= MAX_WIDTH or (ox <= MAX_WIDTH_SMALL
                                   and spec.batch * prod(spec.out_size) <= MAX_POSITIONS_SMALL)

    def plan(self, op, spec, tgt, n):
        gt = geo(spec)
        _, oy, ox = canon(spec.out_size, 1)
        shapes = {sh: _ocvec.shape(tgt.level, sh, tgt.dbl) for sh in SHAPES}
        sh = min(SHAPES, key=lambda s: (_slots(oy, ox, *shapes[s][:2]), s))
        rb, _, ocb = shapes[sh]
        if spec.batch > 1 and oy * ox <= SHARED_POSITIONS:
            p = self._plan_shared(spec, tgt, n, gt, oy, sh, rb, ocb)
            if p is not None:
                return p

        def per_thread(rows, imgs=1):
            return _ocvec.workspace(gt, rows, imgs, False, False, tgt.level, sh, tgt.dbl)[0]

        # tiles of whole register blocks of rows whose slab stays within
        # TILE_BYTES (it is re-read from L2 for every channel block)
        rows = -(-oy // rb) * rb
        while rows > rb and per_thread(rows) > _planning.TILE_BYTES:
            rows -= rb
        ntiles = -(-oy // rows)
        per_tile = -(-oy // ntiles)                     # equal tiles ...
        rows = -(-per_tile // rb) * rb                  # ... of whole blocks of rows
        ntiles = -(-oy // rows)
        # several images per item while their slabs take at most IMAGES_BYTES
        # (each channel block's weights come from beyond L2 once per item,
        # not once per image) and the items can still be TARGET_ITEMS ...
        ncob = -(-(spec.out_channels // spec.groups) // ocb)
        imgs = 1
        while (imgs < spec.batch and per_thread(rows, imgs + 1) <= IMAGES_BYTES
               and -(-spec.batch // (imgs + 1)) * spec.groups * ntiles * ncob
               >= _planning.TARGET_ITEMS):
            imgs += 1
        imgs = -(-spec.batch // -(-spec.batch // imgs))  # the same count, evenly (8: 4 + 4)
        # ... with parts of the channel blocks
        base = -(-spec.batch // imgs) * spec.groups * ntiles
        parts = max(1, min(ncob, -(-_planning.TARGET_ITEMS // base)))
        fused = _fused(spec, rows, imgs)
        per, fixed = _ocvec.workspace(gt, rows, imgs, fused, False, tgt.level, sh, tgt.dbl)
        if not fits(per, fixed):
            return None
        return finish(self.name, base * parts, per, fixed, n, tile=rows, blocks=parts,
                      images=imgs, shape=sh, simd=tgt.level)

    def _plan_shared(self, spec, tgt, n, gt, oy, sh, rb, ocb):
        """The plan with shared slabs: every image in each item, one channel
        block per item (fused: packed by the item), tiles of rows only where
        the blocks make fewer than TARGET_ITEMS items."""
        ncob = -(-(spec.out_channels // spec.groups) // ocb)
        blocks = -(-oy // rb)                           # register blocks of rows
        ntiles = max(1, min(blocks, -(-_planning.TARGET_ITEMS // (spec.groups * ncob))))
        rows = -(-blocks // ntiles) * rb
        ntiles = -(-oy // rows)
        imgs = spec.batch
        fused = _fused(spec, rows, imgs)
        per, fixed = _ocvec.workspace(gt, rows, imgs, fused, True, tgt.level, sh, tgt.dbl)
        if not fits(per, fixed):
            return None
        return finish(self.name, spec.groups * ntiles * ncob, per, fixed, n, tile=rows,
                      blocks=ncob, images=imgs, slabs=1, shape=sh, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        _ocvec.conv(x, w, b, out, geo(spec), p.tile, p.blocks, p.images,
                    _fused(spec, p.tile, p.images), p.slabs == 1, p.simd, p.shape,
                    p.omp_threads)


OCVEC = OcVec()
