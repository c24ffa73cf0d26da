"""The functions Dask runs: one block of a convolution, and the thread rule.

Every task receives plain NumPy arrays (the pieces of its window, the
weight, the bias) and a :class:`BlockCall` describing the block, assembles
the window, and calls pyconv's in-memory front layer
(:func:`pyconv.functional.run`) with the block's own
:class:`~pyconv._spec.ConvSpec`, so dtypes, complex operands and backends
behave exactly as in memory.

A window made of several pieces is joined into a buffer that each thread
keeps from task to task (up to :data:`SCRATCH_MAX_BYTES`): Dask's workers
hand freed memory back to the system at once, so a fresh window per task
would pay for faulting in new pages every time.  The block call only reads
the window and returns a new array, so the buffer is free again when the
task ends.

Threads per task
----------------
A task runs pyconv with ``max(1, T // S)`` threads, set for that task only
(a context-local limit, so concurrent tasks do not interfere):

* ``T`` is :func:`pyconv.get_num_threads` in the process that runs the task
  (``set_num_threads``, ``PYCONV_NUM_THREADS``, ``OMP_NUM_THREADS``, else
  its CPUs).  A ``dask.distributed`` nanny starts its workers with
  ``OMP_NUM_THREADS=1``, so there ``T`` is 1 unless ``PYCONV_NUM_THREADS``
  is set in the workers' environment;
* ``S`` is the number of tasks that process runs at once: the worker
  threads of the ``dask.distributed`` workers living in it; for Dask's
  threaded (and multiprocessing) scheduler its ``num_workers`` setting
  (``dask.config``), else the CPU count; 1 for a task running in the main
  thread of the main process (the synchronous scheduler).

pyconv's results do not depend on the thread count (bitwise), so this rule
changes only the speed.
"""

from __future__ import annotations

import itertools
import multiprocessing
import sys
import threading
from math import prod

import numpy as np

from .. import _registry
from .._spec import ConvCall

__all__ = ["BlockCall", "cut", "conv_block", "bias_block", "weight_partial", "sum_partials",
           "finish", "task_threads", "task_slots"]


class BlockCall:
    """What one task computes: a plain object, opaque to Dask's graph traversal.

    Attributes
    ----------
    op : str
        The public function's name (for messages).
    prim : {'conv', 'conv_transpose', 'conv_weight'}
        The backend primitive.
    spec : ConvSpec
        The block's own geometry (window sizes, per-side padding).
    takes : tuple
        Per axis of the window, None or the positions forming the window
        (padding modes at the global border).
    zeros : tuple of int or None
        Shape of an all-zero window (it lies in the zero padding), else None.
    dtype : numpy.dtype
        dtype of the window (the gathered operand's).
    result : numpy.dtype
        dtype of the block result.
    backend : str
        The backend name every block runs on.
    """

    __slots__ = ("op", "prim", "spec", "takes", "zeros", "dtype", "result", "backend")

    def __init__(self, op, prim, spec, takes, zeros, dtype, result, backend):
        self.op = op
        self.prim = prim
        self.spec = spec
        self.takes = takes
        self.zeros = zeros
        self.dtype = np.dtype(dtype)
        self.result = np.dtype(result)
        self.backend = backend


#: Windows up to this size are joined in a buffer that each thread keeps and
#: reuses from task to task (a fresh allocation would fault in new pages for
#: every task: Dask's workers return freed memory to the system at once).
SCRATCH_MAX_BYTES = 256 << 20
_scratch = threading.local()


def _window_buffer(shape, dtype):
    """An uninitialised C-contiguous array for a window (this thread's buffer when small)."""
    nbytes = prod(shape) * dtype.itemsize
    if nbytes > SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype=dtype)
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _scratch.buf = np.empty(nbytes, dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def _join(pieces, dtype):
    """The nested lists of pieces (one level per axis) as one array."""
    ndim = 0
    level = pieces
    while isinstance(level, list):
        ndim += 1
        level = level[0]
    offsets = []
    level = pieces
    for axis in range(ndim):
        sizes = []
        for sub in level:
            while isinstance(sub, list):
                sub = sub[0]
            sizes.append(sub.shape[axis])
        offsets.append(np.concatenate([[0], np.cumsum(sizes)]))
        level = level[0]
    out = _window_buffer(tuple(int(o[-1]) for o in offsets), np.dtype(dtype))
    for index in itertools.product(*(range(len(o) - 1) for o in offsets)):
        piece = pieces
        for i in index:
            piece = piece[i]
        out[tuple(slice(o[i], o[i + 1]) for o, i in zip(offsets, index))] = piece
    return out


def _assemble(pieces, call):
    """The window: the pieces joined, then the padding-mode takes.

    The result may be this thread's reusable buffer: it is only read by the
    block call that follows, which returns a new array.
    """
    if call.zeros is not None:
        return np.zeros(call.zeros, dtype=call.dtype)
    leaf = pieces
    while isinstance(leaf, list) and len(leaf) == 1:
        leaf = leaf[0]
    window = leaf if not isinstance(leaf, list) else _join(pieces, call.dtype)
    for axis, take in enumerate(call.takes):
        if take is not None:
            window = np.take(window, take, axis=axis)
    return window


def _run(call, x, w, b):
    from ..functional import run

    with _registry.context_threads(task_threads()):
        return run(call.prim, ConvCall(call.op, call.spec, False), x, w, b, call.backend)


def cut(block, slices):
    """The slices of one source chunk that windows of other blocks need (views)."""
    return tuple(block[s] for s in slices)


def conv_block(pieces, w, b, call):
    """One output block of a convolution or transposed convolution."""
    return _run(call, _assemble(pieces, call), w, b)


def bias_block(b, call):
    """A transposed-convolution block that no input reaches: the bias alone."""
    out = np.zeros(call.spec.output_shape, dtype=call.result)
    if b is not None:
        out += b.astype(call.result).reshape((1, -1) + (1,) * call.spec.nd)
    return out


def weight_partial(pieces, grad_out, call):
    """The weight-gradient contribution of one block, in the accumulation dtype."""
    x = _assemble(pieces, call)
    if call.result == np.float16:  # accumulate in float32, round once at the end
        x, grad_out = x.astype(np.float32), grad_out.astype(np.float32)
    return _run(call, x, grad_out, None)


def sum_partials(*parts):
    """The sum of partial weight gradients, in the order given (deterministic)."""
    total = parts[0].copy()
    for p in parts[1:]:
        total += p
    return total


def finish(total, dtype):
    """The reduced weight gradient in the result dtype."""
    return total.astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# threads per task

def _distributed_worker():
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker
        return get_worker()
    except (ImportError, ValueError):
        return None


def task_slots() -> int:
    """How many tasks the process running this task runs at once (module docstring)."""
    worker = _distributed_worker()
    if worker is not None:
        workers = [w for w in getattr(type(worker), "_instances", ())
                   if getattr(getattr(w, "status", None), "name", "") in ("running", "paused")]
        return max(1, sum(int(w.state.nthreads) for w in (workers or [worker])))
    if (threading.current_thread() is threading.main_thread()
            and multiprocessing.parent_process() is None):
        return 1
    import dask
    from dask.system import CPU_COUNT

    pool = dask.config.get("pool", None)
    n = (dask.config.get("num_workers", None) or getattr(pool, "_max_workers", None)
         or getattr(pool, "_processes", None))
    return max(1, int(n or CPU_COUNT))


def task_threads() -> int:
    """pyconv threads for one task: ``max(1, get_num_threads() // task_slots())``."""
    return max(1, _registry.get_num_threads() // task_slots())
