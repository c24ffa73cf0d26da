"""The ``tgemm`` path: conv_transpose of small images on the micro-kernels
(kernels: ``_tgemm.pyx``, ``kernels/tgemm.h``).

``col = W^T @ x`` then col2im, as on the ``gemm`` path, but the GEMM runs
on register-blocked micro-kernels that read the weight in its own layout:
for an input channel, the rows (output channel, tap) of ``W^T`` are
contiguous, the direction the micro-kernel broadcasts along, so the
weight needs no packing (BLAS packs it again in every call, which at
batch 1 costs as much as the multiply-adds: each weight value meets only
a few dozen columns): one panel of columns reads it in place, several
copy a chunk of its rows at a time into strips, read along those
contiguous rows.  The input is packed into panels of 2 or 3 vectors of
columns.

A work item is (block of ``images`` images, group, block of output
channels): the images side by side as the columns of one GEMM, so that
the weight is read once per block of images, and channel blocks to give
the threads work at batch 1 without reading any weight twice.  Each
item's col stays in the L2 cache until col2im adds it into the output.
col2im adds each channel's taps into small planes holding the channel's
whole uncropped output, one per image (no tap clipped per image row, whole
rows added in one loop), reading each row of col across the images in one
sweep, and copies their windows out; on 8x8 maps the clipped per-row
col2im (with the bias fill) took a third of the kernels' time (perf,
K4 s2, 16 images).  The channel blocks of one block of images share its
packed input: a thread packs it once for all the blocks it takes.

Rule: conv_transpose on a CPU with AVX2+FMA or AVX-512, not pointwise,
with input images of at most :data:`MAX_POSITIONS` positions and one image
of ``C_in/g`` channels within :data:`MAX_IMAGE_BYTES` (larger images:
``gemm``'s slabs of output rows, or ``phases``).
"""

from __future__ import annotations

from math import prod

from .. import _planning, _tgemm
from .._planning import Path, finish, fits, geo, target
from .gemm import is_pointwise

#: Fewest GEMM rows (output channels x taps) per channel block: every
#: item packs its images' input once, which thinner blocks would not repay
#: (64 rows measured as fast as 128 per multiply-add on a 1-d K4 layer).
MIN_ROWS = 64
#: Most input positions per image: larger images (3-d maps, long signals)
#: were faster on ``gemm``'s slabs of output rows (measured on 16**3 maps
#: and 12800-sample signals with few channels, where a channel block of a
#: col within TILE_BYTES would hold only a few rows).
MAX_POSITIONS = 1024
#: Largest image (``C_in/g`` channels) taken.  Up to 2 MiB measured faster
#: than ``phases`` and ``gemm`` (one thread: 1-d N2 512->256 L800 K16 s8 59 ms
#: against 87 and 101; 2-d N1 512->256 32^2 K4 s2 39 against 63 and 61;
#: N1 1024->512 16^2 37 against 66 and 66; N1 256->128 32^2 10.6 against
#: 12.7 and 14.0), where the rule once stopped at TILE_BYTES (512 KiB).
MAX_IMAGE_BYTES = 1 << 21
#: Work items wanted (channel blocks are cut finer to reach it while they
#: keep MIN_ROWS rows): enough to share two threads unevenly loaded.
ITEMS = 4


def _cut(spec, isz):
    """(images per item, channel blocks) of a call: fixed by the spec alone."""
    g = spec.groups
    cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
    kp = prod(spec.kernel_size)
    mt = cout_g * kp
    pin = prod(spec.in_size)
    # as many images as keep the packed input within TILE_BYTES (L2-resident)
    nb = int(max(1, min(spec.batch, _planning.TILE_BYTES // max(1, cin_g * pin * isz))))
    ncols = nb * pin
    nblk = -(-spec.batch // nb)
    # channel blocks: a col block within TILE_BYTES, and enough items, while
    # the blocks keep MIN_ROWS rows
    fit = -(-mt * ncols * isz // _planning.TILE_BYTES)
    want = -(-ITEMS // max(1, nblk * g))
    nchb = max(fit, min(want, max(1, mt // MIN_ROWS)))
    return nb, int(max(1, min(cout_g, nchb)))


class TGemm(Path):
    name = "tgemm"
    ops = frozenset({"conv_transpose"})

    def supports(self, op, spec, tgt):
        return not is_pointwise(spec)

    def chosen(self, op, spec, tgt):
        pin = prod(spec.in_size)
        return (tgt.level >= 1 and pin <= MAX_POSITIONS
                and spec.in_channels // spec.groups * pin * tgt.itemsize <= MAX_IMAGE_BYTES)

    def plan(self, op, spec, tgt, n):
        nb, nchb = _cut(spec, tgt.itemsize)
        per, fixed = _tgemm.workspace(geo(spec), nb, nchb, tgt.level, tgt.dbl)
        if not fits(per, fixed):
            return None
        items = -(-spec.batch // nb) * spec.groups * nchb
        return finish(self.name, items, per, fixed, n, images=nb, blocks=nchb,
                      simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        tgt = target(x.dtype, p.simd)
        _tgemm.conv_transpose(x, w, b, out, geo(spec), p.images, p.blocks, tgt.level,
                              p.omp_threads)


TGEMM = TGemm()
