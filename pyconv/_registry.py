"""Backend registry: which implementation runs a call, and with how many threads.

Precedence for choosing the backend of one call (first that is set wins):

1. the ``backend=`` keyword of the call;
2. the innermost ``with pyconv.use_backend(name):`` block (a ContextVar,
   so it is local to the thread / asyncio task that entered it);
3. :func:`set_backend` (process-wide);
4. the ``PYCONV_BACKEND`` environment variable, read at first use (and
   re-read until :func:`set_backend` is called, so setting it after
   ``import pyconv`` works);
5. ``"auto"``: the first available backend in :data:`AUTO_ORDER` whose
   ``prefers()`` accepts the call.

A backend named explicitly never falls back: if it is unavailable or cannot
run the call, :class:`BackendUnavailableError` says why.

Backends live in subpackages and are imported only when first needed, so
``import pyconv`` never imports pyopencl nor loads an OpenCL driver.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import importlib
import operator
import os
import threading
import warnings
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, TypedDict

import numpy as np

from ._typing import BackendArray

if TYPE_CHECKING:
    from ._spec import ConvSpec

__all__ = [
    "ALGORITHMS",
    "Backend",
    "BackendNotBuilt",
    "BackendUnavailableError",
    "BackendStatus",
    "backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "set_num_threads",
    "get_num_threads",
    "get_algorithms",
    "set_algorithms",
    "use_algorithms",
]

#: name -> module implementing it; each module defines ``load() -> Backend``.
_MODULES: Dict[str, str] = {
    "reference": "pyconv._reference",
    "cython": "pyconv._cy",
    "opencl": "pyconv._opencl",
}
#: The order in which ``auto`` tries backends.
AUTO_ORDER: Tuple[str, ...] = ("opencl", "cython", "reference")
_VALID = tuple(_MODULES) + ("auto",)
#: Device arrays: the top-level module of an array type -> the backend whose
#: device holds such arrays.  Only the type's module name is looked at, so no
#: optional package is imported to recognise (or rule out) a device array.
_ARRAY_OWNERS: Dict[str, str] = {"pyopencl": "opencl"}


class BackendUnavailableError(RuntimeError):
    """A backend asked for by name cannot be used (not built, no device, ...).

    Raised instead of silently falling back to another backend; the message
    says why (for example the ImportError of pyopencl, or a device without
    ``cl_khr_fp64`` for a float64 call).  It is a :class:`RuntimeError`.

    Examples
    --------
    >>> import numpy as np
    >>> import pyconv
    >>> names = [b["name"] for b in pyconv.backends() if not b["available"]]
    >>> for name in names:  # whatever this machine lacks
    ...     try:
    ...         pyconv.conv1d(np.ones((1, 1, 3)), np.ones((1, 1, 2)), backend=name)
    ...     except pyconv.BackendUnavailableError as exc:
    ...         assert name in str(exc)
    """


class BackendNotBuilt(ImportError):
    """A backend's compiled part is missing (a source checkout that was never built).

    ``auto`` then settles on a slower backend; it warns once when it does,
    since the fix (building the extension) is easy and the slowdown large.
    """


class Backend(abc.ABC):
    """Base class of a backend: three primitives on canonical arguments.

    Every primitive receives C-contiguous arrays of one dtype, float32 or
    float64 (``b`` may be None), and a validated :class:`~pyconv._spec.ConvSpec`.
    It returns a new array and never writes to its inputs.  A backend never
    validates user input: the front layer already did.
    """

    name = "?"
    #: Whether the backend still works in a child process forked after it was
    #: loaded (see :func:`_after_fork_in_child`).
    fork_safe = True

    def supports(self, op: str, spec: ConvSpec, dtype: np.dtype[Any]) -> Optional[str]:
        """None when the backend can run ``op`` on ``spec``/``dtype``, else the reason."""
        return None

    def prefers(self, op: str, spec: ConvSpec, dtype: np.dtype[Any]) -> bool:
        """Whether ``auto`` should pick this backend for the call."""
        return self.supports(op, spec, dtype) is None

    def info(self) -> Dict[str, object]:
        """Facts for ``python -m pyconv info`` (threads, devices, build flags...)."""
        return {}

    def thread_limit(self) -> Optional[int]:
        """A cap on :func:`get_num_threads` set outside pyconv, or None.

        Asked at every :func:`get_num_threads` of a loaded backend that
        defines it; the ``cython`` backend returns its OpenMP runtime's
        limit when something (``threadpoolctl.threadpool_limits``) lowered it.
        """
        return None

    # -- array placement ------------------------------------------------------
    # The front layer moves every operand through these hooks, so one code
    # path serves host and device arrays.  The defaults are NumPy's; a
    # backend with a device of its own (opencl) handles its own arrays and
    # leaves everything else to these defaults.

    def owns(self, a: object) -> bool:
        """Whether ``a`` is an array on this backend's device."""
        return False

    def asarray(self, a: BackendArray, dtype: np.dtype[Any]) -> BackendArray:
        """Operand ``a`` as the C-contiguous ``dtype`` array a primitive takes."""
        return np.ascontiguousarray(a, dtype=dtype)

    def zeros(self, shape: Tuple[int, ...], dtype: np.dtype[Any],
              like: Tuple[Optional[BackendArray], ...] = ()) -> BackendArray:
        """Zeros for an empty result, on the device when an operand in ``like`` is there."""
        return np.zeros(shape, dtype=dtype)

    def pad(self, x: BackendArray, mode: str,
            pads: Tuple[Tuple[int, int], ...]) -> BackendArray:
        """``x`` (batched) padded by ``padding_mode`` ``mode``, ``(lo, hi)`` per spatial dim."""
        from ._padding import apply_padding
        return apply_padding(x, mode, pads)

    @abc.abstractmethod
    def conv(self, x: BackendArray, w: BackendArray, b: Optional[BackendArray],
             spec: ConvSpec) -> BackendArray:
        """Convolution: ``(N, C_in, *S)`` -> ``(N, C_out, *O)``."""

    @abc.abstractmethod
    def conv_transpose(self, x: BackendArray, w: BackendArray, b: Optional[BackendArray],
                       spec: ConvSpec) -> BackendArray:
        """Transposed convolution (``spec.transposed`` is True)."""

    @abc.abstractmethod
    def conv_weight(self, x: BackendArray, grad_out: BackendArray,
                    spec: ConvSpec) -> BackendArray:
        """Weight gradient of conv: ``(C_out, C_in/groups, *K)`` (conv spec)."""


# --------------------------------------------------------------------------
# loading

_lock = threading.Lock()
_loaded: Dict[str, Backend] = {}
_failed: Dict[str, str] = {}
#: backends that failed with BackendNotBuilt (name -> message), and whether
#: auto already warned about falling back past them
_not_built: Dict[str, str] = {}
_warned_not_built = False
#: the loaded backends whose :meth:`Backend.thread_limit` is their own (a
#: tuple, so :func:`get_num_threads` iterates it safely while another
#: thread loads a backend; rebuilt by :func:`_load` and after a fork)
_thread_capping: Tuple[Backend, ...] = ()


def _note_capping() -> None:
    global _thread_capping
    _thread_capping = tuple(backend for backend in list(_loaded.values())
                            if type(backend).thread_limit is not Backend.thread_limit)


def _load(name: str) -> Tuple[Optional[Backend], Optional[str]]:
    """The backend object, or None and the reason it is unavailable."""
    if name in _loaded:
        return _loaded[name], None
    if name in _failed:
        return None, _failed[name]
    with _lock:
        if name in _loaded:
            return _loaded[name], None
        try:
            module = importlib.import_module(_MODULES[name])
            backend = module.load()
        except Exception as exc:  # a broken optional backend must not break pyconv
            reason = f"{type(exc).__name__}: {exc}"
            _failed[name] = reason
            if isinstance(exc, BackendNotBuilt):
                _not_built[name] = str(exc)
            return None, reason
        _loaded[name] = backend
        _note_capping()
        return backend, None


def _check_name(name: str) -> str:
    if name in _VALID and type(name) is str:   # already a canonical name (most calls)
        return name
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _VALID:
        raise ValueError(
            f"unknown backend {name!r}; valid names are {', '.join(map(repr, _VALID))}")
    return key


class BackendStatus(TypedDict):
    """One entry of :func:`backends` (a plain dict at run time)."""

    name: str
    available: bool
    reason: Optional[str]
    info: Dict[str, Any]


def backends() -> List[BackendStatus]:
    """Every registered backend, whether it is available and, if not, why.

    Returns
    -------
    list of dict
        One dict per backend with keys ``name``, ``available`` (bool),
        ``reason`` (None when available) and ``info`` (the backend's own
        facts when available, e.g. ``openmp`` and ``threads`` for cython or
        the device for opencl; empty otherwise).

    Examples
    --------
    >>> import pyconv
    >>> [b["name"] for b in pyconv.backends()]
    ['reference', 'cython', 'opencl']
    >>> pyconv.backends()[0]["available"]
    True
    """
    out: List[BackendStatus] = []
    for name in _MODULES:
        backend, reason = _load(name)
        out.append({"name": name, "available": backend is not None, "reason": reason,
                    "info": backend.info() if backend is not None else {}})
    return out


def load_backend(name: str) -> Backend:
    """The named backend, or :class:`BackendUnavailableError` with the reason."""
    key = _check_name(name)
    if key == "auto":
        raise ValueError("load_backend() needs a concrete backend name, not 'auto'")
    return _load_or_raise(key)


def _load_or_raise(key: str) -> Backend:
    backend, reason = _load(key)
    if backend is None:
        raise BackendUnavailableError(f"backend {key!r} is unavailable: {reason}")
    return backend


# --------------------------------------------------------------------------
# selection

def _environ(name: str) -> str:
    """``os.environ.get(name, "")``, read now, at a dict lookup's cost.

    pyconv reads its environment variables at every call (so that setting
    one mid-session takes effect), and most are unset: ``os.environ.get``
    then pays for a ``KeyError`` raised and caught inside the mapping,
    about a microsecond per variable and call.  On CPython ``os.environ``
    keeps its values in a dict of encoded names (``_data``) that
    ``os.environ[...] = ...`` and ``del`` update in place; while
    ``os.environ`` is still the mapping pyconv found at import, that dict
    is read directly.  Otherwise (a replaced ``os.environ``, another
    Python) the public ``get`` is used.
    """
    env = os.environ
    if env is not _os_environ:
        return env.get(name, "")
    key = _environ_keys.get(name)
    if key is None:
        key = _environ_keys[name] = env.encodekey(name)
    raw = env._data.get(key)  # type: ignore[attr-defined]
    return "" if raw is None else env.decodevalue(raw)


#: The names :func:`_environ` read, encoded as ``os.environ`` stores them.
_environ_keys: Dict[str, object] = {}
#: ``os.environ`` at import when it is CPython's mapping over a dict (see
#: :func:`_environ`), else None.
_os_environ: Optional[object] = (
    os.environ if type(getattr(os.environ, "_data", None)) is dict
    and hasattr(os.environ, "encodekey") and hasattr(os.environ, "decodevalue") else None)


_context: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "pyconv_backend", default=None)
_global: Optional[str] = None


def _readenv(name: str) -> Optional[str]:
    """A backend name from the environment (None when unset or empty).

    An unknown name is a ValueError, as for every other way of naming a
    backend: a misspelt ``PYCONV_BACKEND`` must not silently run elsewhere.
    """
    raw = _environ(name).strip()
    if raw == "":
        return None
    try:
        return _check_name(raw)
    except ValueError as exc:
        raise ValueError(f"{name}={raw!r} in the environment: {exc}") from None


def set_backend(name: Optional[str]) -> None:
    """Set the process-wide backend (``None`` goes back to ``PYCONV_BACKEND``/auto).

    Parameters
    ----------
    name : {'auto', 'reference', 'cython', 'opencl'} or None
        Backend to use when a call gives no ``backend=`` and no
        :func:`use_backend` block is active.

    Raises
    ------
    ValueError
        If the name is not a registered backend (the message lists them).

    Examples
    --------
    >>> import pyconv
    >>> pyconv.set_backend("reference")
    >>> pyconv.get_backend()
    'reference'
    >>> pyconv.set_backend(None)
    """
    global _global
    _global = None if name is None else _check_name(name)


def get_backend() -> str:
    """The backend name in force here (may be ``'auto'``), following the precedence.

    Returns
    -------
    str
        The innermost :func:`use_backend` name, else the :func:`set_backend`
        name, else ``PYCONV_BACKEND`` (read now), else ``'auto'``.

    Examples
    --------
    >>> import pyconv
    >>> with pyconv.use_backend("reference"):
    ...     pyconv.get_backend()
    'reference'
    """
    ctx = _context.get()
    if ctx is not None:
        return ctx
    if _global is not None:
        return _global
    return _readenv("PYCONV_BACKEND") or "auto"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager selecting the backend for calls made inside the block.

    The choice lives in a :class:`contextvars.ContextVar`: it is local to the
    thread (or asyncio task) that entered the block.  Threads started inside
    the block do not inherit it unless they run in a copied context
    (``contextvars.copy_context().run``).

    Parameters
    ----------
    name : {'auto', 'reference', 'cython', 'opencl'}

    Yields
    ------
    str
        The backend name now in force.

    Raises
    ------
    ValueError
        If the name is not a registered backend.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> with pyconv.use_backend("reference"):
    ...     y = pyconv.conv1d(np.ones((1, 1, 4)), np.ones((1, 1, 2)))
    >>> y
    array([[[2., 2., 2.]]])
    """
    key = _check_name(name)
    token = _context.set(key)
    try:
        yield key
    finally:
        _context.reset(token)


# --------------------------------------------------------------------------
# algorithms: every path, or only the exact ones

#: ``"fast"``: each call takes its backend's fastest path that meets the
#: tolerances, fewer-multiplication algorithms (Winograd, FFT) included;
#: ``"exact"``: only paths that sum the products themselves (GEMM, implicit
#: GEMM, direct loops), for the tightest float32 error.
ALGORITHMS: Tuple[str, ...] = ("fast", "exact")

_algorithms_context: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "pyconv_algorithms", default=None)
_algorithms_global: Optional[str] = None


def _check_algorithms(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"algorithms must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithms {name!r}; valid names are "
                         f"{', '.join(map(repr, ALGORITHMS))}")
    return key


def set_algorithms(name: Optional[str]) -> None:
    """Set the process-wide algorithm policy (``None`` goes back to ``PYCONV_ALGORITHMS``).

    Parameters
    ----------
    name : {'fast', 'exact'} or None
        ``'fast'`` (the default): every call takes the fastest path of its
        backend whose results meet pyconv's tolerances, Winograd and FFT
        paths included.  ``'exact'``: only the paths that sum every product
        themselves (GEMM, implicit GEMM and direct loops), for the tightest
        float32 error and results that do not change when a faster
        algorithm is added.

    Raises
    ------
    ValueError
        If the name is not ``'fast'`` or ``'exact'``.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.set_algorithms("exact")
    >>> pyconv.get_algorithms()
    'exact'
    >>> pyconv.set_algorithms(None)
    """
    global _algorithms_global
    _algorithms_global = None if name is None else _check_algorithms(name)


def get_algorithms() -> str:
    """The algorithm policy in force here: ``'fast'`` or ``'exact'``.

    The innermost :func:`use_algorithms` block, else :func:`set_algorithms`,
    else the ``PYCONV_ALGORITHMS`` environment variable (read now), else
    ``'fast'`` (the same precedence as the backend switch).

    Examples
    --------
    >>> import pyconv
    >>> pyconv.get_algorithms() in ("fast", "exact")
    True
    """
    ctx = _algorithms_context.get()
    if ctx is not None:
        return ctx
    if _algorithms_global is not None:
        return _algorithms_global
    raw = _environ("PYCONV_ALGORITHMS").strip()
    if not raw:
        return "fast"
    try:
        return _check_algorithms(raw)
    except ValueError as exc:
        raise ValueError(f"PYCONV_ALGORITHMS={raw!r} in the environment: {exc}") from None


@contextlib.contextmanager
def use_algorithms(name: str) -> Iterator[str]:
    """Context manager setting the algorithm policy for calls made inside the block.

    Local to the thread (or asyncio task) that entered it, like
    :func:`use_backend`.

    Parameters
    ----------
    name : {'fast', 'exact'}

    Yields
    ------
    str
        The policy now in force.

    Examples
    --------
    >>> import numpy as np, pyconv
    >>> with pyconv.use_algorithms("exact"):
    ...     y = pyconv.conv2d(np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3)))
    >>> float(y[0, 0, 0, 0])
    9.0
    """
    key = _check_algorithms(name)
    token = _algorithms_context.set(key)
    try:
        yield key
    finally:
        _algorithms_context.reset(token)


def device_owner(*arrays: object) -> Optional[str]:
    """The backend owning the device arrays among ``arrays`` (None: host arrays only).

    Raises
    ------
    ValueError
        If the arrays live on the devices of two different backends.
    """
    found = None
    for a in arrays:
        if a is None or type(a) is np.ndarray:
            continue
        owner = _ARRAY_OWNERS.get((type(a).__module__ or "").partition(".")[0])
        if owner is None or owner == found:
            continue
        if found is not None:
            raise ValueError(f"the operands live on the devices of several backends "
                             f"({', '.join(sorted((found, owner)))}); move them to one first")
        found = owner
    return found


def resolve(op: str, spec: ConvSpec, dtype: np.dtype[Any], backend: Optional[str] = None,
            device: Optional[str] = None) -> Backend:
    """The backend object that runs one call (used by the front layer).

    ``device`` is the backend owning the call's device arrays (see
    :func:`device_owner`): only that backend (named, or picked by ``auto``)
    may run the call.
    """
    name = _check_name(backend) if backend is not None else get_backend()
    if device is not None:
        if name not in ("auto", device):
            kinds = ", ".join(k for k, v in _ARRAY_OWNERS.items() if v == device)
            raise ValueError(f"{kinds} arrays can only be processed by the {device!r} "
                             f"backend, but backend {name!r} was selected")
        name = device
    if name != "auto":
        impl = _load_or_raise(name)
        reason = impl.supports(op, spec, dtype)
        if reason is not None:
            raise BackendUnavailableError(f"backend {name!r} cannot run this call: {reason}")
        return impl
    for candidate in AUTO_ORDER:
        found, _ = _load(candidate)
        if found is not None and found.prefers(op, spec, dtype):
            impl = found
            break
    else:
        impl = load_backend("reference")
    if impl.name == "reference" and _not_built and not _warned_not_built:
        _warn_not_built()
    return impl


def _warn_not_built() -> None:
    global _warned_not_built
    _warned_not_built = True
    for name, message in _not_built.items():
        warnings.warn(f"pyconv: 'auto' runs the pure-Python reference backend (10 to 1000 "
                      f"times slower) because backend {name!r} is not built: {message}",
                      RuntimeWarning, stacklevel=4)


# --------------------------------------------------------------------------
# threads

#: Most threads pyconv runs: far above any useful count (more threads than
#: CPUs only slow a kernel down), far below what makes an OpenMP runtime fail
#: to create them (libgomp aborts the process at tens of thousands).
MAX_THREADS = 1024

_num_threads: Optional[int] = None
#: A thread count for the calls made in this context only (set by the Dask
#: integration around each task, so concurrent tasks never oversubscribe).
_context_threads: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar(
    "pyconv_num_threads", default=None)


@contextlib.contextmanager
def context_threads(n: int) -> Iterator[int]:
    """Private: calls made inside the block (this thread/context only) use ``n`` threads."""
    count = max(1, int(n))
    token = _context_threads.set(count)
    try:
        yield count
    finally:
        _context_threads.reset(token)


def _env_threads() -> Optional[int]:
    for var in ("PYCONV_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = _environ(var)
        if not raw or not (raw := raw.strip()):
            continue
        try:
            value = int(raw.split(",")[0])
        except ValueError:
            warnings.warn(f"ignoring {var}={raw!r}: not an integer", RuntimeWarning,
                          stacklevel=3)
            continue
        if value > MAX_THREADS:
            warnings.warn(f"{var}={raw!r} is more than pyconv runs; using {MAX_THREADS} "
                          "threads", RuntimeWarning, stacklevel=3)
            return MAX_THREADS
        if value >= 1:
            return value
        warnings.warn(f"ignoring {var}={raw!r}: must be >= 1", RuntimeWarning, stacklevel=3)
    return None


def set_num_threads(n: Optional[int]) -> None:
    """Set the number of threads CPU backends use (``None``: back to the default).

    The default is ``PYCONV_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the
    number of CPUs this process may run on.

    Parameters
    ----------
    n : int, 1 <= n <= MAX_THREADS (1024), or None

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` is smaller than 1 or larger than :data:`MAX_THREADS`.

    Examples
    --------
    >>> import pyconv
    >>> pyconv.set_num_threads(1)
    >>> pyconv.get_num_threads()
    1
    >>> pyconv.set_num_threads(None)
    """
    global _num_threads, _cpu_count
    _cpu_count = None      # read the CPUs this process may run on again
    if n is None:
        _num_threads = None
        return
    if isinstance(n, (bool, np.bool_)) or not hasattr(type(n), "__index__"):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__} {n!r}")
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    if n > MAX_THREADS:
        raise ValueError(f"set_num_threads: n={n} is more threads than pyconv runs (at most "
                         f"{MAX_THREADS}; this machine has {_cpus()} CPUs)")
    _num_threads = n


#: The CPUs this process may run on, as last read (None: read at the next call).
_cpu_count: Optional[int] = None


def _cpus() -> int:
    """The CPUs this process may run on: read once, again after
    :func:`set_num_threads` or a fork (the system call costs microseconds
    that a small convolution would notice at every call)."""
    global _cpu_count
    if _cpu_count is None:
        try:
            _cpu_count = max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):  # pragma: no cover - non-Linux
            _cpu_count = max(1, os.cpu_count() or 1)
    return _cpu_count


def get_num_threads() -> int:
    """The number of threads CPU backends use for the next call.

    Returns
    -------
    int
        :func:`set_num_threads`'s value, else ``PYCONV_NUM_THREADS``, else
        ``OMP_NUM_THREADS``, else the CPUs this process may run on (read at
        the first call, and again after :func:`set_num_threads` or a fork:
        call ``set_num_threads(None)`` after changing the process's CPU
        affinity); 1 in a
        process forked from one whose OpenMP runtime was loaded (see
        :func:`_after_fork_in_child`).  Inside a task of a Dask graph built
        by pyconv: that task's share of them (see the Dask page of the
        documentation).  Whichever it is, it is capped by the OpenMP
        runtime's current limit (``omp_get_max_threads()``, read for every
        call) when that limit is below the one it had when pyconv loaded
        it: ``threadpoolctl.threadpool_limits(n)`` (or with
        ``user_api="openmp"``) holds pyconv to ``n`` threads, as it does
        scikit-learn's OpenMP code.

    Examples
    --------
    >>> import pyconv
    >>> with_default = pyconv.get_num_threads()
    >>> with_default >= 1
    True
    """
    if _fork_single_thread:
        return 1
    n = _context_threads.get()
    if n is None:
        n = _num_threads
    if n is None:
        n = _env_threads()
    if n is None:
        n = _cpus()
    for backend in _thread_capping:   # a cap set outside pyconv (threadpoolctl)
        limit = backend.thread_limit()
        if limit is not None and limit < n:
            n = max(1, limit)
    return n


# --------------------------------------------------------------------------
# fork

#: Set in a child process forked after an OpenMP runtime was loaded.
_fork_single_thread = False


def _openmp_runtime_loaded() -> bool:
    """Whether an OpenMP runtime (libgomp, LLVM's libomp, Intel's libiomp) is mapped here."""
    try:
        with open("/proc/self/maps") as fh:
            maps = fh.read()
    except OSError:  # not Linux: pyconv's own extension is the best sign there is
        import sys
        return "pyconv._cy._build" in sys.modules
    return any(name in maps for name in ("libgomp", "libomp", "libiomp"))


def _after_fork_in_child() -> None:
    """Make a forked child safe (registered with :func:`os.register_at_fork`).

    * OpenMP: a child forked (``multiprocessing``'s default start method on
      Linux) from a process whose OpenMP runtime had started its threads
      hangs in its first parallel region, because the runtime believes its
      thread pool (which did not survive the fork) still exists.  A single
      thread never touches the pool, so such a child runs pyconv on one
      thread: :func:`get_num_threads` returns 1 there.  Use the ``spawn`` or
      ``forkserver`` start method to keep several threads per process.
    * A backend that is not fork-safe (``fork_safe = False``: an OpenCL
      context, whose driver threads did not survive either) becomes
      unavailable in the child, with that reason: ``auto`` moves on to the
      next backend, and asking for it by name says why.
    """
    global _fork_single_thread, _lock, _cpu_count
    _lock = threading.Lock()  # another thread may have held it at the fork
    _cpu_count = None
    _fork_single_thread = _fork_single_thread or _openmp_runtime_loaded()
    for name, backend in list(_loaded.items()):
        if not getattr(backend, "fork_safe", True):
            del _loaded[name]
            _failed[name] = (f"it was initialised in the parent of this process, which was "
                             f"then forked; {backend.name} cannot be used after a fork (start "
                             "worker processes with the 'spawn' or 'forkserver' method)")
    _note_capping()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
