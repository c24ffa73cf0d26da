"""pyconv on Dask arrays: lazy, chunk by chunk, exact (see ``docs/dask.rst``).

The public functions (:mod:`pyconv.functional`, :mod:`pyconv.grad`, and the
module classes through them) hand a call to this package when one of its
array operands is a Dask collection; the result is then a lazy
``dask.array.Array`` with the in-memory call's shape, dtype and values.

Layout:

* this module: detection (:func:`is_dask`, :func:`any_dask`) and the entry
  points the public functions call.  It never imports Dask: ``import
  pyconv`` must stay free of it, and a Dask array can only reach pyconv
  when Dask is installed and imported already;
* :mod:`._api`: validation through the shared front layer and the choice
  of the backend, at graph-build time;
* :mod:`pyconv._windows`: the index arithmetic (which input window each output
  block reads: halos, strides, padding modes, transposed gathers);
* :mod:`._graph`: the Dask graphs (window pieces, block tasks, the
  weight-gradient tree reduction);
* :mod:`._tasks`: the functions the workers run, and the threads-per-task
  rule.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from .._typing import DaskArray

__all__ = ["is_dask", "any_dask", "conv", "conv_transpose", "grad"]


def is_dask(a: object) -> bool:
    """True for a Dask collection (checked without importing Dask)."""
    mod = type(a).__module__ or ""
    return (mod == "dask" or mod.startswith("dask.")) and hasattr(a, "__dask_graph__")


def any_dask(*arrays: object) -> bool:
    """Whether any of ``arrays`` (None allowed) is a Dask collection.

    Called on every public call, so NumPy arrays and None leave at once.
    """
    for a in arrays:
        if a is not None and type(a) is not np.ndarray and is_dask(a):
            return True
    return False


def conv(*args: Any) -> DaskArray:
    """:func:`pyconv.functional._conv` on Dask operands (same arguments)."""
    from ._api import conv as impl

    return impl(*args)


def conv_transpose(*args: Any) -> DaskArray:
    """:func:`pyconv.functional._conv_transpose` on Dask operands (same arguments)."""
    from ._api import conv_transpose as impl

    return impl(*args)


def grad(kind: str, *args: Any) -> DaskArray:
    """The ``pyconv.grad`` helper ``kind`` (``conv_input``, ``conv_weight``,
    ``convt_input``, ``convt_weight``) on Dask operands (same arguments)."""
    from . import _api

    return cast(DaskArray, getattr(_api, kind)(*args))
