"""Dask graphs of the blocked convolutions.

One task per output block.  A block's window (:mod:`pyconv._windows`)
is cut out of the source array's chunks: every source chunk it overlaps
contributes either itself (when the window covers it whole) or a slice,
which is a small task of its own (shared by the blocks that need the same
slice), so a block moves only its halo between workers, never whole
neighbouring chunks.  The block task joins the pieces and calls the
in-memory op (:mod:`pyconv._dask._tasks`).

The weight and the bias are one graph key each (a NumPy array is stored
once in the graph; a Dask array is rechunked to one chunk), so a
distributed cluster ships them once per worker.

Axis conventions: every array here is batched, ``(N, C, *spatial)``.  The
batch axis maps blocks one to one, the channel axis is one block that
reads all input channels (a chunked channel axis is joined inside each
task, as a rechunk to one channel chunk would: every output element's
channel sum is one in-memory call, in the in-memory order).
"""

from __future__ import annotations

import itertools
import operator
from math import prod
from typing import Any

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .._spec import ConvSpec
from ._tasks import (BlockCall, bias_block, conv_block, cut, finish, sum_partials,
                     weight_partial)
from .._windows import (AxisBlock, boundaries, conv_axis, conv_out_bounds, identity_axis,
                       pieces, transposed_axis, transposed_out_bounds)

__all__ = ["forward_blocks", "weight_blocks", "blocked", "reduced_weight", "param_key"]

#: Partial weight gradients summed per reduction task.
SPLIT_EVERY = 8


def _nonempty(bounds, size):
    """Boundaries without empty blocks (zero-size chunks)."""
    inner = sorted(set(bounds[1:-1]) - {0, size})
    return [0] + inner + [size] if size else [0]


def _channel_axis(c_in, c_out):
    return [AxisBlock(0, c_out, ((0, c_in),), None, c_in, (0, 0))]


def forward_blocks(x, spec, mode="zeros", mode_pads=None):
    """Per-axis block lists of a conv/conv_transpose whose input is the Dask array ``x``.

    ``x`` is batched and unpadded; with a padding ``mode`` other than zeros,
    ``spec`` is the front layer's (padded input, no padding) and
    ``mode_pads`` the per-dim ``(lo, hi)`` of the mode.
    """
    axes = [identity_axis(_nonempty(boundaries(x.chunks[0]), x.shape[0])),
            _channel_axis(spec.in_channels, spec.out_channels)]
    for i in range(spec.nd):
        size = x.shape[2 + i]
        bounds = boundaries(x.chunks[2 + i])
        k, s, d = spec.kernel_size[i], spec.stride[i], spec.dilation[i]
        out = spec.out_size[i]
        if spec.transposed:
            lo = spec.padding[i][0]
            ob = transposed_out_bounds(bounds, out, k, s, d, lo)
            axes.append(transposed_axis(ob, size, k, s, d, lo))
        else:
            lo = mode_pads[i][0] if mode != "zeros" else spec.padding[i][0]
            ob = conv_out_bounds(bounds, out, k, s, d, lo)
            axes.append(conv_axis(ob, size, k, s, d, lo, mode))
    return axes


def weight_blocks(grad_out, spec, in_size):
    """Per-axis block lists of a weight gradient: the blocks are ``grad_out``'s chunks."""
    axes = [identity_axis(boundaries(grad_out.chunks[0])),
            _channel_axis(spec.in_channels, spec.out_channels)]
    for i in range(spec.nd):
        ob = boundaries(grad_out.chunks[2 + i])
        axes.append(conv_axis(ob, in_size[i], spec.kernel_size[i], spec.stride[i],
                              spec.dilation[i], spec.padding[i][0]))
    return axes


def block_spec(spec, blocks):
    """The :class:`ConvSpec` of the block call for one output block."""
    sp = blocks[2:]
    return ConvSpec(spec.transposed, blocks[0].stop - blocks[0].start, spec.in_channels,
                    spec.out_channels, spec.groups, tuple(b.in_len for b in sp),
                    tuple(b.stop - b.start for b in sp), spec.kernel_size, spec.stride,
                    tuple(b.pad for b in sp), spec.dilation)


def largest_block_spec(spec, axes):
    """The block spec with the most output elements (to pick the backend once)."""
    biggest = [max(blocks, key=lambda b: b.stop - b.start) for blocks in axes]
    return block_spec(spec, biggest)


class _Windows:
    """Builds the nested key lists of windows, and the tasks that cut the halos.

    A window takes a source chunk whole (its key) or a slice of it.  All the
    slices taken from one chunk come from one task (:func:`~._tasks.cut`),
    whose result every window that needs one of them indexes inline: one
    scheduler task per source chunk, however many windows reach into it.
    Call :meth:`finish` once every window is built.
    """

    def __init__(self, x, name):
        self.x = x
        self.name = name
        self.bounds = [boundaries(c) for c in x.chunks]
        self.layer = {}
        self._groups = {}

    def _piece(self, idx, local):
        if all(lo == 0 and hi == self.x.chunks[a][j]
               for a, (j, (lo, hi)) in enumerate(zip(idx, local))):
            return (self.x.name,) + idx
        group = self._groups.setdefault(idx, {})
        position = group.setdefault(local, len(group))
        return (operator.getitem, (self.name,) + idx, position)

    def keys(self, blocks):
        """Nested lists (one level per axis) of the window's pieces (keys or inline tasks)."""
        per_axis = [pieces(self.bounds[a], b.runs) for a, b in enumerate(blocks)]

        def build(a, idx, local):
            if a == len(per_axis):
                return self._piece(idx, local)
            return [build(a + 1, idx + (j,), local + ((lo, hi),)) for j, lo, hi in per_axis[a]]

        return build(0, (), ())

    def finish(self):
        """Add one cutting task per source chunk that windows take slices of."""
        for idx, group in self._groups.items():
            slices = tuple(tuple(slice(lo, hi) for lo, hi in local) for local in group)
            self.layer[(self.name,) + idx] = (cut, (self.x.name,) + idx, slices)


def param_key(a, name, layer):
    """The graph key of a weight or bias (None stays None)."""
    if a is None:
        return None
    if isinstance(a, da.Array):
        return (a.name,) + (0,) * a.ndim
    key = f"pyconv-{name}-{tokenize(a)}"
    layer[key] = a
    return key


def _call(op, prim, spec, blocks, x, result, backend):
    local = block_spec(spec, blocks)
    takes = tuple(b.take for b in blocks)
    zeros = None
    if any(b.kind == "zeros" for b in blocks):
        zeros = (local.batch, local.in_channels) + tuple(local.in_size)
    return BlockCall(op, prim, local, takes, zeros, x.dtype, result, backend)


def blocked(op, prim, x, w, b, spec, axes, result, backend):
    """A conv or conv_transpose of the batched Dask array ``x``, block by block."""
    token = tokenize(prim, x.name, spec, axes, backend, result,
                     w.name if isinstance(w, da.Array) else tokenize(w),
                     None if b is None else (b.name if isinstance(b, da.Array)
                                             else tokenize(b)))
    name = f"pyconv-{prim}-{token}"
    windows = _Windows(x, f"pyconv-window-{token}")
    layer = windows.layer
    wkey, bkey = param_key(w, "weight", layer), param_key(b, "bias", layer)
    for index in itertools.product(*(range(len(blocks)) for blocks in axes)):
        blocks = [axes[a][j] for a, j in enumerate(index)]
        call = _call(op, prim, spec, blocks, x, result, backend)
        if any(blk.kind == "none" for blk in blocks):
            layer[(name,) + index] = (bias_block, bkey, call)
        elif call.zeros is not None:
            layer[(name,) + index] = (conv_block, None, wkey, bkey, call)
        else:
            layer[(name,) + index] = (conv_block, windows.keys(blocks), wkey, bkey, call)
    windows.finish()
    # (typed loosely: dask's stubs do not count its own Array as a DaskCollection)
    deps: list[Any] = [a for a in (x, w, b) if isinstance(a, da.Array)]
    graph = HighLevelGraph.from_collections(name, layer, dependencies=deps)
    chunks = tuple(tuple(blk.stop - blk.start for blk in blocks) for blocks in axes)
    return da.Array(graph, name, chunks, meta=np.empty((0,) * x.ndim, dtype=result))


def reduced_weight(op, x, grad_out, spec, axes, result, backend):
    """A weight gradient: per-block partials of ``grad_out``'s chunks, summed as a tree.

    ``x`` is gathered (windows), ``grad_out`` (channel axis one chunk, no
    empty chunks) defines the blocks.  The partials are summed
    :data:`SPLIT_EVERY` at a time in block order, level by level, so the
    result does not depend on the scheduler.
    """
    token = tokenize("conv_weight", x.name, grad_out.name, spec, axes, backend, result)
    name = f"pyconv-conv_weight-{token}"
    windows = _Windows(x, f"pyconv-window-{token}")
    layer = windows.layer
    level = []
    for index in itertools.product(*(range(len(blocks)) for blocks in axes)):
        blocks = [axes[a][j] for a, j in enumerate(index)]
        call = _call(op, "conv_weight", spec, blocks, x, result, backend)
        keys = None if call.zeros is not None else windows.keys(blocks)
        key = (f"{name}-partial",) + index
        layer[key] = (weight_partial, keys, (grad_out.name,) + index, call)
        level.append(key)
    windows.finish()
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt: list[tuple[str | int, ...]] = []
        for i in range(0, len(level), SPLIT_EVERY):
            key = (f"{name}-sum{depth}", i // SPLIT_EVERY)
            layer[key] = (sum_partials,) + tuple(level[i:i + SPLIT_EVERY])
            nxt.append(key)
        level = nxt
    out_key = (name,) + (0,) * len(spec.weight_shape)
    layer[out_key] = (finish, level[0], np.dtype(result))
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[x, grad_out])
    chunks = tuple((n,) for n in spec.weight_shape)
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(chunks), dtype=result))


def block_count(axes) -> int:
    """Number of output blocks."""
    return prod(len(blocks) for blocks in axes)
