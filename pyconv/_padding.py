"""Padding modes other than zeros: constraints and the explicit pad.

With ``padding_mode`` reflect, replicate or circular the input is padded
explicitly (as ``torch.nn.functional.pad`` would) and then convolved with
no implicit padding.  For a 1-D pad of ``(lo, hi)`` on length ``L`` the
padded position ``j`` reads the source index ``i = j - lo`` mapped as:

=========  ==========================================  =====================
mode       source of an index outside ``[0, L)``        constraint
=========  ==========================================  =====================
reflect    ``-i`` / ``2(L-1) - i`` (edge not repeated)  ``lo < L``, ``hi < L``
replicate  ``clamp(i, 0, L-1)``                         ``L > 0``
circular   ``i mod L`` (wraps once at most)             ``lo <= L``, ``hi <= L``
=========  ==========================================  =====================

These are NumPy's ``np.pad`` modes ``reflect``, ``edge`` and ``wrap``.
"""

from __future__ import annotations

from typing import Any, Dict, Literal

import numpy as np
from numpy.typing import NDArray

from ._spec import IntTuple, Pads

__all__ = ["mode_pads", "apply_padding"]

_NUMPY_MODE: Dict[str, Literal["reflect", "edge", "wrap"]] = {
    "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def mode_pads(op: str, mode: str, in_size: IntTuple, pads: Pads, x_shape: IntTuple) -> None:
    """Raise ValueError if ``pads`` cannot be applied to ``in_size`` in ``mode``."""
    for dim, (size, (lo, hi)) in enumerate(zip(in_size, pads)):
        axis = dim + 2
        if mode == "reflect" and (lo >= size or hi >= size):
            raise ValueError(
                f"{op}(): padding_mode='reflect' needs each pad smaller than the input "
                f"size, got padding ({lo}, {hi}) at dimension {axis} of input "
                f"{list(x_shape)}")
        if mode == "circular" and (lo > size or hi > size):
            raise ValueError(
                f"{op}(): padding_mode='circular' can wrap around at most once: padding "
                f"({lo}, {hi}) at dimension {axis} exceeds the input size {size} "
                f"(input {list(x_shape)})")
        if mode == "replicate" and size == 0 and (lo or hi):
            raise ValueError(
                f"{op}(): padding_mode='replicate' cannot pad an empty dimension "
                f"({axis} of input {list(x_shape)})")


def apply_padding(x: NDArray[Any], mode: str, pads: Pads) -> NDArray[Any]:
    """A padded copy of the batched array ``x`` (spatial dims only)."""
    if x.size == 0:
        shape = x.shape[:2] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], pads))
        return np.zeros(shape, dtype=x.dtype)
    width = [(0, 0), (0, 0)] + [tuple(p) for p in pads]
    return np.ascontiguousarray(np.pad(x, width, mode=_NUMPY_MODE[mode]))
