"""Index arithmetic of the blocked convolutions: what each output block reads.

Pure integer arithmetic on one axis at a time, with no Dask in it (so it
can be read, and tested, on its own), shared by the Dask support
(:mod:`pyconv._dask`) and the in-memory blocks of :mod:`pyconv._blocks`.  An *output block* is a range
``[o0, o1)`` of one output axis; :func:`conv_axis` and :func:`transposed_axis`
say, for every output block, which range of the source axis it reads
(the *window*) and the per-side padding of the in-memory call that computes
the block, such that the block result is exactly the slice ``[o0, o1)`` of
the whole-array result.

Convolution (per spatial dim, input size ``S``, kernel ``K``, stride ``s``,
dilation ``d``, leading padding ``lo``, ``eff = d*(K-1) + 1``).  Output ``o``
reads input positions ``o*s - lo + k*d`` for ``k < K``, so the block
``[o0, o1)`` reads the window ``[o0*s - lo, (o1-1)*s - lo + eff)``:

* with zero padding, the part of the window inside ``[0, S)`` is gathered
  and the rest becomes the block call's own zero padding ``(max(0, -a),
  max(0, e - S))`` (a window entirely outside the input is a block of zeros);
* with ``reflect``/``replicate``/``circular``, every window position is
  mapped to the source position the mode reads (``np.pad``'s
  ``reflect``/``edge``/``wrap`` rule on the *whole* axis), so the modes act
  at the array's global borders only; interior windows map to themselves.

Transposed convolution (``y[i*s - lo + k*d] += x[i] * w[k]``, output size
``O``).  The block ``[o0, o1)`` receives from the inputs
``i0 = max(0, floor((o0 + lo - eff + 1) / s))`` to
``i1 = min(S - 1, floor((o1 - 1 + lo) / s))`` (a gather: no block writes into
another's output).  The block call is a transposed convolution of that input
range, cropped by ``lo' = o0 + lo - i0*s`` in front (``0 <= lo' < eff + s``)
and ``hi'`` at the back, which the size formula fixes and which can be
negative (the block reaches past its last input, as ``output_padding``
does); ``-hi' < max(s, d)`` holds for every block, as for the whole call.

Output blocks follow the input chunks: the boundary after input chunk ``j``
(ending at ``b``) is the first output whose window *centre* lies at or past
``b``: ``ceil((b + lo - (eff-1)//2) / s)`` for a convolution and
``b*s - lo + (eff-1)//2`` for a transposed one.  A stride-1 ``'same'``
convolution thus keeps the input's chunks, a stride-2 one halves them and a
stride-2 transposed upsampling doubles them.  Empty blocks are dropped.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["AxisBlock", "boundaries", "conv_out_bounds", "transposed_out_bounds",
           "conv_axis", "transposed_axis", "identity_axis", "pieces", "source_index"]


class AxisBlock(NamedTuple):
    """One output block along one axis, and what it reads there.

    Attributes
    ----------
    start, stop : int
        The output range ``[start, stop)``.
    runs : tuple of (int, int)
        Source ranges to gather, concatenated in this order (empty when
        ``kind`` is not ``'data'``).
    take : tuple of int or None
        Positions in that concatenation forming the window (None: the
        concatenation itself).  Only padding modes need it.
    in_len : int
        Length of the window the block call receives.
    pad : (int, int)
        The block call's per-side padding (zeros added for a convolution,
        positions cropped for a transposed one).
    kind : {'data', 'zeros', 'none'}
        ``'zeros'``: the window lies entirely in the zero padding (a window
        of ``in_len`` zeros is convolved, as the whole-array call would);
        ``'none'``: no input reaches the block (transposed; the block is
        the bias alone).
    """

    start: int
    stop: int
    runs: Tuple[Tuple[int, int], ...]
    take: Optional[Tuple[int, ...]]
    in_len: int
    pad: Tuple[int, int]
    kind: str = "data"


def boundaries(chunks: Sequence[int]) -> List[int]:
    """Chunk sizes -> cumulative boundaries ``[0, c0, c0 + c1, ...]``."""
    out = [0]
    for c in chunks:
        out.append(out[-1] + int(c))
    return out


def _dedup(cuts: Iterable[int], size: int) -> List[int]:
    """Sorted boundaries ``0 < ... < size`` from candidate cuts (empty blocks dropped)."""
    inner = sorted({min(max(int(c), 0), size) for c in cuts} - {0, size})
    return [0] + inner + [size] if size > 0 else [0]


def conv_out_bounds(in_bounds: Sequence[int], out_size: int, kernel: int, stride: int,
                    dilation: int, lo: int) -> List[int]:
    """Output block boundaries of a convolution axis, following the input chunks."""
    half = dilation * (kernel - 1) // 2
    return _dedup([-(-(b + lo - half) // stride) for b in in_bounds[1:-1]], out_size)


def transposed_out_bounds(in_bounds: Sequence[int], out_size: int, kernel: int, stride: int,
                          dilation: int, lo: int) -> List[int]:
    """Output block boundaries of a transposed-convolution axis."""
    half = dilation * (kernel - 1) // 2
    return _dedup([b * stride - lo + half for b in in_bounds[1:-1]], out_size)


def source_index(pos: NDArray[np.intp], size: int, mode: str) -> NDArray[np.intp]:
    """The input position a padded window position reads (``np.pad``'s rule).

    ``pos`` are input coordinates (negative or ``>= size`` in the padding);
    the front layer has checked that every pad is small enough for the mode
    (``reflect``: smaller than ``size``; ``circular``: at most ``size``), so
    one reflection or wrap suffices.
    """
    if mode == "reflect":
        pos = np.where(pos < 0, -pos, pos)
        return np.where(pos >= size, 2 * (size - 1) - pos, pos)
    if mode == "replicate":
        return np.clip(pos, 0, size - 1)
    if mode == "circular":
        return np.mod(pos, size)
    raise ValueError(f"unknown padding mode {mode!r}")


def _mode_window(a: int, e: int, size: int,
                 mode: str) -> Tuple[Tuple[Tuple[int, int], ...], Optional[Tuple[int, ...]]]:
    """Runs and take of the window ``[a, e)`` under a padding mode."""
    if a >= 0 and e <= size:
        return ((a, e),), None
    src = source_index(np.arange(a, e, dtype=np.int64), size, mode)
    uniq = np.unique(src)
    cuts = np.flatnonzero(np.diff(uniq) != 1) + 1
    runs = tuple((int(r[0]), int(r[-1]) + 1) for r in np.split(uniq, cuts))
    take = np.searchsorted(uniq, src)
    if np.array_equal(take, np.arange(len(src))):
        return runs, None
    return runs, tuple(int(t) for t in take)


def conv_axis(out_bounds: Sequence[int], in_size: int, kernel: int, stride: int,
              dilation: int, lo: int, mode: str = "zeros") -> List[AxisBlock]:
    """The :class:`AxisBlock` list of one spatial axis of a convolution.

    ``lo`` is the leading padding of the axis, ``in_size`` the unpadded
    input size; ``mode`` the padding mode (``'zeros'``: the block calls pad
    with zeros; else the window is built with the mode and the block call
    has no padding).
    """
    eff = dilation * (kernel - 1) + 1
    blocks = []
    for o0, o1 in zip(out_bounds[:-1], out_bounds[1:]):
        a = o0 * stride - lo
        e = (o1 - 1) * stride - lo + eff
        if mode != "zeros":
            runs, take = _mode_window(a, e, in_size, mode)
            blocks.append(AxisBlock(o0, o1, runs, take, e - a, (0, 0)))
            continue
        r0, r1 = max(a, 0), min(e, in_size)
        if r1 <= r0:
            blocks.append(AxisBlock(o0, o1, (), None, e - a, (0, 0), "zeros"))
        else:
            blocks.append(AxisBlock(o0, o1, ((r0, r1),), None, r1 - r0,
                                    (r0 - a, e - r1)))
    return blocks


def transposed_axis(out_bounds: Sequence[int], in_size: int, kernel: int, stride: int,
                    dilation: int, lo: int) -> List[AxisBlock]:
    """The :class:`AxisBlock` list of one spatial axis of a transposed convolution."""
    eff = dilation * (kernel - 1) + 1
    blocks = []
    for o0, o1 in zip(out_bounds[:-1], out_bounds[1:]):
        i0 = max(0, (o0 + lo - eff + 1) // stride)
        i1 = min(in_size - 1, (o1 - 1 + lo) // stride)
        if i1 < i0:
            blocks.append(AxisBlock(o0, o1, (), None, 0, (0, 0), "none"))
            continue
        plo = o0 + lo - i0 * stride
        phi = (i1 - i0) * stride + eff - plo - (o1 - o0)
        blocks.append(AxisBlock(o0, o1, ((i0, i1 + 1),), None, i1 + 1 - i0, (plo, phi)))
    return blocks


def identity_axis(out_bounds: Sequence[int]) -> List[AxisBlock]:
    """Blocks of an axis the op maps one to one (the batch axis)."""
    return [AxisBlock(o0, o1, ((o0, o1),), None, o1 - o0, (0, 0))
            for o0, o1 in zip(out_bounds[:-1], out_bounds[1:])]


def pieces(src_bounds: Sequence[int],
           runs: Iterable[Tuple[int, int]]) -> List[Tuple[int, int, int]]:
    """``(chunk, local_start, local_stop)`` triples covering ``runs`` in order.

    ``src_bounds`` are the source axis's chunk boundaries (zero-size chunks
    allowed; they contribute nothing).
    """
    out = []
    for start, stop in runs:
        j = bisect_right(src_bounds, start) - 1
        while start < stop:
            end = min(stop, src_bounds[j + 1])
            if end > start:
                out.append((j, start - src_bounds[j], end - src_bounds[j]))
            start = end
            j += 1
    return out
