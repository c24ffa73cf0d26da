"""The reference backend: the documented index formulas as plain loops.

This backend is the oracle every other backend is tested against.  It is
written to be read next to the formulas in :mod:`pyconv._spec` (and
PyTorch's documentation), not to be fast: one Python loop over the batch,
every output (or input) position and every kernel tap, with only the
channel sums of one group done as a small matrix product.  All arithmetic
is done in float64 and rounded once to the caller's dtype at the end.
"""

from __future__ import annotations

import itertools
from typing import Any, Dict, Iterator, Optional

import numpy as np
from numpy.typing import NDArray

from .._registry import Backend
from .._spec import ConvSpec, IntTuple

__all__ = ["ReferenceBackend", "load"]


def _positions(sizes: IntTuple) -> Iterator[IntTuple]:
    """Every multi-index of an array with spatial shape ``sizes``, C order."""
    return itertools.product(*(range(n) for n in sizes))


def _tap(o: IntTuple, k: IntTuple, spec: ConvSpec) -> IntTuple:
    """Input position read by output ``o`` through kernel tap ``k``: o*s - lo + k*d."""
    return tuple(oi * s - lo + ki * d
                 for oi, ki, s, lo, d in zip(o, k, spec.stride, spec.pad_lo, spec.dilation))


def _inside(t: IntTuple, sizes: IntTuple) -> bool:
    return all(0 <= ti < n for ti, n in zip(t, sizes))


class ReferenceBackend(Backend):
    """Slow, literal implementation of the three primitives (float64 inside)."""

    name = "reference"

    def info(self) -> Dict[str, object]:
        return {"accumulation": "float64", "threads": 1}

    def conv(self, x: NDArray[Any], w: NDArray[Any], b: Optional[NDArray[Any]],
             spec: ConvSpec) -> NDArray[Any]:
        g = spec.groups
        cin_g = spec.in_channels // g
        cout_g = spec.out_channels // g
        x64 = x.astype(np.float64)
        w64 = w.astype(np.float64)
        y = np.zeros(spec.output_shape, dtype=np.float64)
        for n in range(spec.batch):
            for o in _positions(spec.out_size):
                for k in _positions(spec.kernel_size):
                    t = _tap(o, k, spec)
                    if not _inside(t, spec.in_size):
                        continue  # zero padding contributes nothing
                    for grp in range(g):
                        cin = slice(grp * cin_g, (grp + 1) * cin_g)
                        cout = slice(grp * cout_g, (grp + 1) * cout_g)
                        # y[n, co, o] += sum_c w[co, c, k] * x[n, grp*cin_g + c, t]
                        y[(n, cout) + o] += w64[(cout, slice(None)) + k] @ x64[(n, cin) + t]
        if b is not None:
            y += b.astype(np.float64).reshape((1, -1) + (1,) * spec.nd)
        return y.astype(x.dtype)

    def conv_transpose(self, x: NDArray[Any], w: NDArray[Any], b: Optional[NDArray[Any]],
                       spec: ConvSpec) -> NDArray[Any]:
        g = spec.groups
        cin_g = spec.in_channels // g
        cout_g = spec.out_channels // g
        x64 = x.astype(np.float64)
        w64 = w.astype(np.float64)
        y = np.zeros(spec.output_shape, dtype=np.float64)
        for n in range(spec.batch):
            for i in _positions(spec.in_size):
                for k in _positions(spec.kernel_size):
                    t = _tap(i, k, spec)
                    if not _inside(t, spec.out_size):
                        continue  # cropped by padding (or beyond output_padding)
                    for grp in range(g):
                        cin = slice(grp * cin_g, (grp + 1) * cin_g)
                        cout = slice(grp * cout_g, (grp + 1) * cout_g)
                        # y[n, grp*cout_g + j, t] += sum_ci x[n, ci, i] * w[ci, j, k]
                        y[(n, cout) + t] += x64[(n, cin) + i] @ w64[(cin, slice(None)) + k]
        if b is not None:
            y += b.astype(np.float64).reshape((1, -1) + (1,) * spec.nd)
        return y.astype(x.dtype)

    def conv_weight(self, x: NDArray[Any], grad_out: NDArray[Any],
                    spec: ConvSpec) -> NDArray[Any]:
        g = spec.groups
        cin_g = spec.in_channels // g
        cout_g = spec.out_channels // g
        x64 = x.astype(np.float64)
        gy64 = grad_out.astype(np.float64)
        gw = np.zeros(spec.weight_shape, dtype=np.float64)
        for n in range(spec.batch):
            for o in _positions(spec.out_size):
                for k in _positions(spec.kernel_size):
                    t = _tap(o, k, spec)
                    if not _inside(t, spec.in_size):
                        continue
                    for grp in range(g):
                        cin = slice(grp * cin_g, (grp + 1) * cin_g)
                        cout = slice(grp * cout_g, (grp + 1) * cout_g)
                        # gw[co, c, k] += gy[n, co, o] * x[n, grp*cin_g + c, t]
                        gw[(cout, slice(None)) + k] += np.outer(gy64[(n, cout) + o],
                                                                x64[(n, cin) + t])
        return gw.astype(x.dtype)


def load() -> ReferenceBackend:
    """The reference backend is always available."""
    return ReferenceBackend()
