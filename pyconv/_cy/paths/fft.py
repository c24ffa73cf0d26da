"""The ``fft`` path: long kernels by overlap-save FFT correlation (kernels:
``_fft.pyx``; the transforms are :mod:`scipy.fft`'s).

One problem for every op
------------------------
Each op is rewritten, per group, as a stride-1 "valid" correlation with a
channel sum::

    Z[n, a, o] = sum_{b, q} H[a, b, q] * U[n, b, o + q]      (q < Q, per axis)

* **conv** (and its **conv_weight**): ``U`` is the input split by *phase*.
  Write each tap offset ``k*d = q*s + r`` (``0 <= r < s``); then
  ``y[o] = sum_k w[k] x[o*s + k*d - lo] = sum_{r, q} H_r[q] U_r[o + q]``
  with ``U_r[j] = x[j*s + r - lo]`` (zero outside the input) and ``H_r[q]``
  the tap with that ``(r, q)``.  The phases (the residues ``r`` some tap
  has) become extra input channels, ``b = (c, r)``: a stride costs nothing
  (no stride-1 output is computed and thrown away), and a dilated kernel is
  a sparse ``H`` of length ``Q = d*(K-1)//s + 1``.
* **conv_transpose** (the input gradient): output phase ``r`` of an axis
  (outputs ``r + s*u``) receives the taps with ``(r + lo - k*d) % s == 0``
  at ``x[u + m_k]``, ``m_k = (r + lo - k*d) // s``; with ``M0 = min m_k``,
  ``U[j] = x[j + M0]`` and ``q = m_k - M0``.  The output phases become
  extra output channels, ``a = (c_out, r)``, written back interleaved.
* **conv_weight**: ``gw[co, (c, r), q] = sum_{n, o} dY[n, co, o] U[n, (c, r), o + q]``,
  the correlation of ``U`` with ``dY`` at the lags ``q < Q``.

Overlap-save frames
-------------------
The outputs ``Z`` are cut, along every axis with ``Q > 1``, into blocks of
``B = N - Q + 1`` outputs; a *frame* is the ``N`` inputs a block reads
(``N`` an FFT-friendly length, chosen by the cost model below; an axis with
``Q == 1`` needs no transform and has frames of length 1).  Per frame:
``rfftn`` of its ``U`` rows, a ``(A x B_c) @ (B_c x frames)`` complex
product per frequency with the kernel's spectrum ``conj(rfftn(H))``
(computed once per call), ``irfftn``, and the first ``B`` outputs of each
axis are the valid (not wrapped-around) ones.  conv_weight instead sums
``conj(rfftn(dY frame)) * rfftn(U frame)`` over frames per frequency and
transforms back once; lags ``q < Q`` are free of wrap-around because the
``dY`` block is zero after its ``B`` positions.  Memory stays bounded
whatever the signal length: one work item holds ``T`` frames, and only the
kernel's spectrum (and conv_weight's partial sums) lives for the whole call.

Work items, threads, determinism
--------------------------------
An item is ``T`` consecutive frames (over images, then blocks) of one
group; the items run on Python threads, ``min(n, items)`` of them, the
caller's thread included, each taking the next item: gather (compiled,
no GIL), ``scipy.fft.rfftn`` with ``workers=1`` (SciPy releases the GIL),
the product (compiled, SIMD, no GIL), ``irfftn``, scatter with the bias.
Each output element is computed by one item whose arithmetic does not
depend on the thread that runs it, so results are bitwise identical for
any thread count.  (``scipy.fft``'s own ``workers=`` was checked to be
bitwise stable too, but an item keeps its frames hot in cache from the
gather to the scatter, and the gathers and products need the threads as
much as the transforms.)  conv_weight sums frames into a fixed number of
partial spectra (slots, fixed by the spec), added in slot order.

Ctrl-C: the signal handler runs in the main thread between items (an item
takes milliseconds); the other threads stop taking items and the
exception is raised once they have finished the one they hold.

The cost model (the rule)
-------------------------
See :func:`fft_seconds` and :func:`other_seconds`: the path is taken when
its modelled time, for the frame length that minimises it, is below the
modelled time of the path the planner would take otherwise, and the
kernel is long enough (:data:`MIN_TAPS`).  The constants were measured on
the development machine with ``tools/calibrate_fft.py``.
"""

from __future__ import annotations

import functools
import math
import threading
from math import prod
from typing import Any, List, NamedTuple, Optional, Tuple

import numpy as np
import scipy.fft

from .. import _fft, _planning
from .._planning import Path, canon, equal_runs, finish

# --------------------------------------------------------------------------
# the cost model (seconds, one thread; measured by tools/calibrate_fft.py)

#: The model's terms, each a count of one kind of work in a call (see
#: :func:`fft_seconds`), in the order of :data:`COST`'s constants.
FEATURES = ("fft", "cmac", "spectrum bytes", "moves", "group calls", "items", "call")
#: Seconds per unit of each term, per itemsize of the transforms:
#: ``fft`` per ``N log2 N`` of one real FFT (forward or inverse),
#: ``cmac`` per complex multiply-add of the product, ``spectrum bytes``
#: per byte of the kernel's spectrum streamed once per work item, ``moves``
#: per value gathered, packed or scattered, ``group calls`` per group in a
#: work item (the pack and product calls), ``items`` per work item (its
#: Python calls), ``call`` per call (the kernel's spectrum set-up, threads).
COST = {4: (0.22e-9, 0.14e-9, 0.05e-9, 0.5e-9, 5e-6, 55e-6, 100e-6),
        8: (0.36e-9, 0.33e-9, 0.05e-9, 1.0e-9, 5e-6, 55e-6, 100e-6)}
#: Seconds per multiply-add of the path taken otherwise, by path name (the
#: micro-kernel and BLAS paths run near the machine's peak; ``direct`` is
#: the one thin calls take: single channels, depthwise), per itemsize.
MAC_SECONDS = {"direct": {4: 0.10e-9, 8: 0.28e-9}, None: {4: 0.020e-9, 8: 0.029e-9}}
#: the fft path is taken when its modelled time is this many times shorter
#: than the other path's (a mistake near the break-even point must not make
#: a call slower)
MARGIN = 1.5
#: the kernel must have at least this many taps (the correlation's ``prod(Q)``):
#: shorter kernels belong to the GEMM and Winograd paths
MIN_TAPS = 32
#: most bytes of one thread's buffers (its work item's frames)
THREAD_BYTES = 8 << 20
#: most bytes of the kernel's spectrum (conv_weight: of all partial sums)
SPECTRUM_BYTES = _planning.PARTIAL_BYTES
#: frames per work item tried by the model (then cut to what fits)
PER_ITEM = (1, 2, 4, 8, 16, 32, 64)


# --------------------------------------------------------------------------
# geometry

class Axis(NamedTuple):
    """One canonical axis of the correlation (see the module docstring)."""

    q: int                 # Q: length of the correlation's kernel H
    zsize: int             # outputs Z per phase
    u: Tuple[Any, ...]     # the U gather: (array size, S, off, residues)
    z: Tuple[Any, ...]     # the Z scatter, or conv_weight's dY gather: likewise
    tap_phase: Tuple[int, ...]  # per kernel tap: its phase (U's; Z's for conv_transpose)
    tap_q: Tuple[int, ...]      # per kernel tap: its position q in H


def _conv_axis(size_in, size_out, k, s, d, lo):
    offsets = [kk * d for kk in range(k)]
    residues = sorted({o % s for o in offsets})
    tap_q = tuple(o // s for o in offsets)
    return Axis(max(tap_q) + 1, size_out, (size_in, s, -lo, tuple(residues)),
                (size_out, 1, 0, (0,)), tuple(residues.index(o % s) for o in offsets),
                tap_q)


def _transposed_axis(size_in, size_out, k, s, d, lo):
    phase = [(kk * d - lo) % s for kk in range(k)]
    m = [(r + lo - kk * d) // s for kk, r in enumerate(phase)]
    m0 = min(m)
    tap_q = tuple(v - m0 for v in m)
    return Axis(max(tap_q) + 1, -(-size_out // s), (size_in, 1, m0, (0,)),
                (size_out, s, 0, tuple(range(s))), tuple(phase), tap_q)


def axes_of(op, spec) -> Tuple[Axis, Axis, Axis]:
    """The three canonical axes (z, y, x) of the call's correlation."""
    make = _transposed_axis if op == "conv_transpose" else _conv_axis
    return tuple(make(*v) for v in zip(
        canon(spec.in_size, 1), canon(spec.out_size, 1), canon(spec.kernel_size, 1),
        canon(spec.stride, 1), canon(spec.dilation, 1), canon(spec.pad_lo, 0)))


class Geometry(NamedTuple):
    """How the fft path cuts one call (a function of op, spec and dtype only)."""

    axes: Tuple[Axis, Axis, Axis]
    groups: int
    rows_in: int           # U rows per group, B_c = C_in/g x U phases
    rows_out: int          # Z rows per group, A = C_out/g x Z phases (conv_weight: C_out/g)
    n: Tuple[int, int, int]        # frame (FFT) length per axis; 1 where Q == 1
    blocks: Tuple[int, int, int]   # frames per axis
    fft_axes: Tuple[int, ...]      # the transformed axes (0..2)
    spectrum: Tuple[int, int, int]  # shape of one row's spectrum
    frames: int            # frames per group (images x blocks)
    per_item: int          # frames per work item, T
    chunks: int            # ceil(frames / T)
    group_items: int       # groups per work item
    slots: int             # conv_weight: partial spectra
    compute: np.dtype      # dtype of the transforms
    seconds: float         # the modelled time (one thread)
    thread_bytes: int      # one thread's buffers
    fixed_bytes: int       # the kernel's spectrum, or conv_weight's partial sums
    features: Tuple[float, ...]    # the cost model's terms (see :data:`FEATURES`)

    @property
    def frame_points(self) -> int:
        return prod(self.n)

    @property
    def freqs(self) -> int:
        return prod(self.spectrum)

    @property
    def ranges(self) -> int:
        """Ranges of ``group_items`` groups."""
        return -(-self.groups // self.group_items)

    @property
    def items(self) -> int:
        """Work items: conv_weight's slots, else (group range, chunk of frames) pairs."""
        if self.slots:
            return self.slots
        return self.ranges * self.chunks

    def frames_map(self, which):
        """The :class:`_fft.Frames` of U (``"u"``), Z (``"z"``) or dY (``"dy"``)."""
        out = []
        for ax, n, nb in zip(self.axes, self.n, self.blocks):
            step = n - ax.q + 1
            if which == "u":
                size, S, off, res = ax.u
                out.append((size, S, off, step, n, n, nb, res))
            else:
                size, S, off, res = ax.z
                out.append((size, S, off, step, step, n, nb, res))
        return _fft.Frames(out)


def _fast_lengths(lo, hi):
    """FFT lengths 2**a, 3 * 2**a, 5 * 2**a in [lo, hi], and hi itself."""
    out = {hi}
    for base in (1, 3, 5):
        v = base
        while v <= hi:
            if v >= lo:
                out.add(v)
            v *= 2
    return sorted(out)


def compute_dtype(dtype):
    """The dtype of the transforms for inputs of ``dtype``."""
    return np.dtype(dtype)


def _rows(op, spec, axes):
    g = spec.groups
    p_u = prod(len(ax.u[3]) for ax in axes)
    p_z = prod(len(ax.z[3]) for ax in axes)
    if op == "conv_transpose":
        return spec.in_channels // g, spec.out_channels // g * p_z
    return spec.in_channels // g * p_u, spec.out_channels // g


def buffer_bytes(op, rows_in, rows_out, points, freqs, rsize):
    """Bytes of one frame's buffers in a work item (real frames, spectra, packed spectra)."""
    csize = 2 * rsize
    packed = freqs + 8      # rounded up to the chunk
    if op == "conv_weight":
        return (rows_in + rows_out) * (points * rsize + (freqs + packed) * csize)
    return (rows_in * (points * rsize + (freqs + packed) * csize)
            + rows_out * (freqs * csize + points * rsize))


def fft_seconds(op, spec, dtype, n, axes=None):
    """The modelled one-thread time of the fft path with frame lengths ``n``.

    The terms (:data:`FEATURES`), counted for the whole call:

    * ``fft``: ``(B_c + A) * N log2 N`` per frame (its transforms) and
      ``A * B_c * N log2 N`` per group (the kernel's spectrum);
    * ``cmac``: ``A * B_c * F`` per frame (the product, F frequencies);
    * ``spectrum bytes``: the kernel's spectrum of the item's groups, once
      per work item (it is streamed from memory);
    * ``moves``: ``(B_c + A) * N + B_c * F`` per frame (gather, scatter, pack);
    * ``group calls``, ``items``, ``call``: the fixed costs.

    The work items (``T`` frames of ``group_items`` groups) are cut to
    minimise the time within :data:`THREAD_BYTES` per thread, keeping at
    least ``TARGET_ITEMS`` items when the call has that many frames.
    Returns ``(seconds, geometry fields)``, or None when nothing fits.
    """
    axes = axes or axes_of(op, spec)
    rsize = compute_dtype(dtype).itemsize
    csize = 2 * rsize
    g = spec.groups
    rows_in, rows_out = _rows(op, spec, axes)
    blocks = tuple(-(-ax.zsize // (nn - ax.q + 1)) for ax, nn in zip(axes, n))
    frames = spec.batch * prod(blocks)
    fft_axes = tuple(a for a in range(3) if axes[a].q > 1)
    spectrum = list(n)
    spectrum[fft_axes[-1]] = n[fft_axes[-1]] // 2 + 1
    points, freqs = prod(n), prod(spectrum)
    rows = rows_in + rows_out
    frame_bytes = buffer_bytes(op, rows_in, rows_out, points, freqs, rsize)
    group_spectrum = rows_in * rows_out * (freqs + 8) * csize
    # conv_weight's lags (the inverse transform's kept part, about the weight's size)
    lag_bytes = (g * rows_in * rows_out * prod(ax.q for ax in axes) * rsize
                 if op == "conv_weight" else 0)
    if frame_bytes > THREAD_BYTES or g * group_spectrum + lag_bytes > SPECTRUM_BYTES:
        return None
    nlog = points * math.log2(points)
    per_frame = np.array([rows * nlog, rows_in * rows_out * freqs, 0,
                          rows * points + rows_in * freqs, 0, 0, 0], float)
    fixed = np.array([g * rows_in * rows_out * nlog, 0, 0, 0, 0, 0, 1], float)
    want = min(_planning.TARGET_ITEMS, g * frames)
    cost = np.array(COST[rsize])
    best = None
    for per_item in sorted({min(t, frames) for t in PER_ITEM}):
        chunks = -(-frames // per_item)
        for group_items in sorted({min(1 << k, g) for k in range(g.bit_length() + 1)}):
            ranges = -(-g // group_items)
            if per_item * group_items * frame_bytes > THREAD_BYTES:
                break
            if ranges * chunks < want and (per_item, group_items) != (1, 1):
                break
            slots = 0
            if op == "conv_weight":
                slots = max(1, min(chunks, _planning.MAX_SLOTS,
                                   (SPECTRUM_BYTES - lag_bytes) // (g * group_spectrum)))
                slots = equal_runs(chunks, slots)
            items = slots or ranges * chunks
            features = (g * frames * per_frame + fixed
                        + np.array([0, 0, ranges * chunks * group_items * group_spectrum,
                                    0, ranges * chunks * group_items, items, 0], float))
            seconds = float(features @ cost)
            if best is None or seconds < best[0]:
                best = (seconds, dict(
                    groups=g, rows_in=rows_in, rows_out=rows_out, n=tuple(n), blocks=blocks,
                    fft_axes=fft_axes, spectrum=tuple(spectrum), frames=frames,
                    per_item=per_item, chunks=chunks, group_items=group_items, slots=slots,
                    compute=compute_dtype(dtype), seconds=seconds,
                    thread_bytes=per_item * group_items * frame_bytes,
                    fixed_bytes=g * group_spectrum * max(1, slots) + lag_bytes,
                    features=tuple(float(v) for v in features)))
    return best


@functools.lru_cache(maxsize=256)
def geometry(op, spec, dtype) -> Optional[Geometry]:
    """The frame lengths that minimise the modelled time (None: nothing fits)."""
    axes = axes_of(op, spec)
    active = [a for a in range(3) if axes[a].q > 1]
    if not active:
        return None
    choices = []
    for a in range(3):
        ax = axes[a]
        if ax.q == 1:
            choices.append((1,))
        else:
            top = scipy.fft.next_fast_len(ax.zsize + ax.q - 1, real=True)
            choices.append(tuple(_fast_lengths(ax.q, top)))
    best = None
    for n0 in choices[0]:
        for n1 in choices[1]:
            for n2 in choices[2]:
                got = fft_seconds(op, spec, dtype, (n0, n1, n2), axes)
                if got is not None and (best is None or got[0] < best[0]):
                    best = got
    if best is None:
        return None
    return Geometry(axes=axes, **best[1])


def other_path(op, spec, tgt):
    """The path the planner takes for the call when this one does not."""
    from . import ORDER  # the order holds this unit: import at call time

    for unit in ORDER:
        if unit is FFT or op not in unit.ops:
            continue
        if unit.supports(op, spec, tgt) and unit.chosen(op, spec, tgt):
            return unit.name
    return "direct"


def other_seconds(op, spec, tgt):
    """The modelled one-thread time of :func:`other_path`: its multiply-adds
    at the path's rate (:data:`MAC_SECONDS`)."""
    per_mac = MAC_SECONDS.get(other_path(op, spec, tgt), MAC_SECONDS[None])[tgt.itemsize]
    return per_mac * spec.flops / 2


# --------------------------------------------------------------------------
# threads

def run_items(nitems, nthreads, work, state=None):
    """Call ``work(item, local)`` for every item on ``nthreads`` threads.

    The calling thread is one of them; ``local`` is a per-thread object made
    by ``state()`` (or None).  Items are taken in increasing order, each by
    whichever thread is free.  An exception in any thread (a ``MemoryError``,
    or ``KeyboardInterrupt`` raised in the calling thread by Ctrl-C) stops
    the others from taking more items and is raised once they have finished
    theirs.
    """
    lock = threading.Lock()
    cursor = [0]
    stop: List[BaseException] = []

    def take():
        with lock:
            if stop or cursor[0] >= nitems:
                return -1
            cursor[0] += 1
            return cursor[0] - 1

    def loop():
        local = state() if state is not None else None
        item = take()
        while item >= 0:
            work(item, local)
            item = take()

    def worker():
        try:
            loop()
        except BaseException as exc:  # handed to the calling thread
            stop.append(exc)

    threads = [threading.Thread(target=worker, daemon=True)
               for _ in range(max(0, min(nthreads, nitems) - 1))]
    for t in threads:
        t.start()
    failure = None
    try:
        loop()
    except BaseException as exc:
        failure = exc
        stop.append(exc)
    for t in threads:
        while t.is_alive():
            try:
                t.join()
            except BaseException as exc:  # Ctrl-C while waiting: stop the others
                failure = failure or exc
                stop.append(exc)
    if failure is None and stop:
        failure = stop[0]
    if failure is not None:
        raise failure


# --------------------------------------------------------------------------
# the steps of a call

def _taps(axes, which):
    """Broadcastable index arrays (phase, q) per axis for the kernel taps."""
    shapes = ((-1, 1, 1), (1, -1, 1), (1, 1, -1))
    if which == "phase":
        return tuple(np.asarray(ax.tap_phase).reshape(sh) for ax, sh in zip(axes, shapes))
    return tuple(np.asarray(ax.tap_q).reshape(sh) for ax, sh in zip(axes, shapes))


def correlation_kernel(op, spec, geo, w, grp, c0, c1):
    """The rows of H for output channels ``c0 .. c1-1`` of group ``grp``.

    Shape ``((c1 - c0) * Z phases, B_c, Q0, Q1, Q2)`` (conv_transpose; for
    conv and conv_weight ``(c1 - c0, B_c, ...)``) in the compute dtype: each
    kernel tap lands at its phase and position ``q``, zeros elsewhere.
    """
    axes = geo.axes
    g = spec.groups
    cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
    ks = canon(spec.kernel_size, 1)
    qs = tuple(ax.q for ax in axes)
    ph, qq = _taps(axes, "phase"), _taps(axes, "q")
    if op == "conv_transpose":
        pz = tuple(len(ax.z[3]) for ax in axes)
        w5 = w.reshape((g, cin_g, cout_g) + ks)[grp, :, c0:c1]
        h = np.zeros((c1 - c0,) + pz + (cin_g,) + qs, geo.compute)
        h[(slice(None),) + ph + (slice(None),) + qq] = w5.transpose(2, 3, 4, 1, 0)
    else:
        pu = tuple(len(ax.u[3]) for ax in axes)
        w5 = w.reshape((g, cout_g, cin_g) + ks)[grp, c0:c1]
        h = np.zeros((c1 - c0, cin_g) + pu + qs, geo.compute)
        h[(slice(None),) * 2 + ph + qq] = w5
    return h.reshape((-1, geo.rows_in) + qs)


def _rfftn(a, geo, lead):
    """rfftn of frames ``a`` (``lead`` leading dims, then the three axes), one worker."""
    axes = tuple(lead + v for v in geo.fft_axes)
    return scipy.fft.rfftn(a, s=[geo.n[v] for v in geo.fft_axes], axes=axes, workers=1)


def _irfftn(a, geo, lead):
    axes = tuple(lead + v for v in geo.fft_axes)
    return scipy.fft.irfftn(a, s=[geo.n[v] for v in geo.fft_axes], axes=axes, workers=1,
                            overwrite_x=True)


def kernel_spectrum(op, spec, geo, w, level, nthreads):
    """conj(rfftn(H)) of every group: packed for :func:`_fft.cgemm`,
    ``[group][chunk][A][B_c]``, or rows ``[group][F]`` when ``A == B_c == 1``
    (the product is then elementwise).

    Work items of a few output channels (``(group, channel)`` in order, so
    possibly of several groups): H of those rows only, their transforms,
    packed into place.
    """
    A, Bc, F = geo.rows_out, geo.rows_in, geo.freqs
    g = spec.groups
    cout_g = spec.out_channels // g
    phases = A // cout_g                   # Z phases per output channel
    cdt = np.result_type(geo.compute, np.complex64)
    fv = _fft.chunk(cdt == np.complex128, level)
    nf = -(-F // fv) * fv
    elementwise = A == Bc == 1
    out = np.empty(g * F if elementwise else g * A * Bc * nf, cdt)
    row_bytes = phases * Bc * (geo.frame_points * geo.compute.itemsize + 2 * F * cdt.itemsize)
    per = max(1, geo.thread_bytes // row_bytes)     # output channels per item
    total = g * cout_g

    def work(item, _):
        o0, o1 = item * per, min(total, (item + 1) * per)
        pieces = []
        for grp in range(o0 // cout_g, (o1 - 1) // cout_g + 1):
            c0, c1 = max(o0, grp * cout_g) - grp * cout_g, min(o1, (grp + 1) * cout_g) - grp * cout_g
            pieces.append((grp, c0, c1, correlation_kernel(op, spec, geo, w, grp, c0, c1)))
        h = pieces[0][3] if len(pieces) == 1 else np.concatenate([q[3] for q in pieces])
        rows = _rfftn(h, geo, 2)
        np.conjugate(rows, out=rows)
        if elementwise:
            out[o0 * F:o1 * F] = rows.reshape(-1)
            return
        rows = rows.reshape(-1)
        at = 0
        for grp, c0, c1, _ in pieces:
            n = (c1 - c0) * phases * Bc
            _fft.pack(level, F, n, F, 1, 0, rows, at * F, out,
                      grp * A * Bc * nf + c0 * phases * Bc * fv, A * Bc * fv)
            at += n

    run_items(-(-total // per), nthreads, work)
    return out


class Fft(Path):
    name = "fft"
    exact = False
    ops = frozenset({"conv", "conv_transpose", "conv_weight"})

    def supports(self, op, spec, tgt):
        return geometry(op, spec, tgt.dtype.str) is not None

    def chosen(self, op, spec, tgt):
        geo = geometry(op, spec, tgt.dtype.str)
        assert geo is not None              # supports() said so
        if prod(ax.q for ax in geo.axes) < MIN_TAPS:
            return False
        return geo.seconds * MARGIN < other_seconds(op, spec, tgt)

    def plan(self, op, spec, tgt, n):
        geo = geometry(op, spec, tgt.dtype.str)
        if geo is None:
            return None
        return finish(self.name, geo.items, geo.thread_bytes, geo.fixed_bytes, n,
                      tile=geo.per_item, slots=geo.slots, simd=tgt.level)

    def run(self, op, p, spec, x, w, b, out):
        geo = geometry(op, spec, x.dtype.str)
        x, w, out = x.reshape(-1), w.reshape(-1), out.reshape(-1)   # (slices of flat views)
        if op == "conv_weight":
            _conv_weight(p, spec, geo, x, w, out)
        else:
            _forward(op, p, spec, geo, x, w, b, out)


class _Call:
    """The sizes every work item of one call uses."""

    def __init__(self, spec, geo, level):
        g = spec.groups
        self.cin_g, self.cout_g = spec.in_channels // g, spec.out_channels // g
        self.in_ext, self.out_ext = prod(spec.in_size), prod(spec.out_size)
        self.A, self.Bc, self.F = geo.rows_out, geo.rows_in, geo.freqs
        self.T, self.G = geo.per_item, geo.group_items
        self.cdt = np.result_type(geo.compute, np.complex64)
        self.fv = _fft.chunk(self.cdt == np.complex128, level)
        self.nf = -(-self.F // self.fv) * self.fv
        self.level = level

    def frames(self, geo, chunk):
        """First frame and frame count of a chunk."""
        f0 = chunk * self.T
        return f0, min(self.T, geo.frames - f0)

    def groups(self, geo, rng):
        """First group and group count of a range."""
        g0 = rng * self.G
        return g0, min(self.G, geo.groups - g0)


def _forward(op, p, spec, geo, x, w, b, out):
    """conv and conv_transpose: items of T frames of a range of groups."""
    c = _Call(spec, geo, p.simd)
    wf = kernel_spectrum(op, spec, geo, w.reshape(spec.weight_shape), c.level, p.omp_threads)
    umap, zmap = geo.frames_map("u"), geo.frames_map("z")
    A, Bc, F, T, G = c.A, c.Bc, c.F, c.T, c.G
    points = geo.frame_points

    def state():
        return (np.empty(T * G * Bc * points, geo.compute), np.empty(T * Bc * c.nf, c.cdt),
                np.empty(T * G * A * F, c.cdt))

    def work(item, local):
        ubuf, xpack, ybuf = local
        rng, chunk = divmod(item, geo.chunks)
        f0, t = c.frames(geo, chunk)
        g0, ng = c.groups(geo, rng)
        _fft.gather(umap, x, g0 * c.cin_g * c.in_ext, spec.in_channels * c.in_ext, f0, t,
                    ng * c.cin_g, ubuf)
        X = _rfftn(ubuf[:t * ng * Bc * points].reshape((t, ng * Bc) + geo.n), geo, 2)
        if A == Bc == 1:      # one input and one output row per group: elementwise
            np.multiply(X.reshape(t, ng, F), wf.reshape(geo.groups, F)[g0:g0 + ng],
                        out=ybuf[:t * ng * F].reshape(t, ng, F))
        else:
            X = X.reshape(-1)
            for k in range(ng):       # frame-major rows of group k: [t][b]
                _fft.pack(c.level, F, t, ng * Bc * F, Bc, F, X, k * Bc * F, xpack, 0)
                _fft.cgemm(c.level, F, A, t, Bc, wf, (g0 + k) * A * Bc * c.nf, xpack, 0,
                           ybuf, k * A * F, F, ng * A * F, False, False, False)
        del X
        z = _irfftn(ybuf[:t * ng * A * F].reshape((t, ng * A) + geo.spectrum), geo, 2)
        _fft.scatter(zmap, z.reshape(-1), out, g0 * c.cout_g * c.out_ext,
                     spec.out_channels * c.out_ext, f0, t, ng * c.cout_g, b, g0 * c.cout_g)

    run_items(geo.items, p.omp_threads, work, state)


def _conv_weight(p, spec, geo, x, gy, out):
    """conv_weight: slots of frames, each summing its spectra; then one inverse."""
    c = _Call(spec, geo, p.simd)
    umap, dmap = geo.frames_map("u"), geo.frames_map("dy")
    A, Bc, F, T, G = c.A, c.Bc, c.F, c.T, c.G
    g = spec.groups
    points = geo.frame_points
    per_slot = -(-geo.chunks // geo.slots)
    partial = [np.zeros(g * A * Bc * c.nf, c.cdt) for _ in range(geo.slots)]

    def state():
        return (np.empty(T * G * Bc * points, geo.compute),
                np.empty(T * G * A * points, geo.compute),
                np.empty(T * Bc * c.nf, c.cdt), np.empty(T * A * c.nf, c.cdt))

    def work(slot, local):
        ubuf, dbuf, xpack, dpack = local
        acc = partial[slot]
        for chunk in range(slot * per_slot, min(geo.chunks, (slot + 1) * per_slot)):
            f0, t = c.frames(geo, chunk)
            for rng in range(geo.ranges):
                g0, ng = c.groups(geo, rng)
                _fft.gather(umap, x, g0 * c.cin_g * c.in_ext, spec.in_channels * c.in_ext,
                            f0, t, ng * c.cin_g, ubuf)
                _fft.gather(dmap, gy, g0 * c.cout_g * c.out_ext,
                            spec.out_channels * c.out_ext, f0, t, ng * c.cout_g, dbuf)
                X = _rfftn(ubuf[:t * ng * Bc * points].reshape((t, ng * Bc) + geo.n), geo, 2)
                D = _rfftn(dbuf[:t * ng * A * points].reshape((t, ng * A) + geo.n), geo, 2)
                X, D = X.reshape(-1), D.reshape(-1)
                for k in range(ng):   # channel-major rows of group k: [b][t], [a][t]
                    _fft.pack(c.level, F, Bc, F, t, ng * Bc * F, X, k * Bc * F, xpack, 0)
                    _fft.pack(c.level, F, A, F, t, ng * A * F, D, k * A * F, dpack, 0)
                    _fft.cgemm(c.level, F, A, Bc, t, dpack, 0, xpack, 0, acc,
                               (g0 + k) * A * Bc * c.nf, 0, 0, True, True, True)
                del X, D

    run_items(geo.slots, p.omp_threads, work, state)
    total = partial[0]
    for extra in partial[1:]:
        total += extra
    del partial
    # back to lags, a few output channels of one group at a time; keep q < Q
    qs = tuple(ax.q for ax in geo.axes)
    lags = np.empty((g * A, Bc) + qs, geo.compute)
    per = max(1, geo.thread_bytes // (Bc * (points * geo.compute.itemsize
                                            + 2 * F * c.cdt.itemsize)))
    chunks = -(-A // per)

    def back(item, _):
        grp, k = divmod(item, chunks)
        a0, a1 = k * per, min(A, (k + 1) * per)
        rows = np.empty((a1 - a0) * Bc * F, c.cdt)
        _fft.unpack(c.level, F, (a1 - a0) * Bc, F, 1, 0, total,
                    grp * A * Bc * c.nf + a0 * Bc * c.fv, rows, 0, A * Bc * c.fv)
        full = _irfftn(rows.reshape((a1 - a0, Bc) + geo.spectrum), geo, 2)
        lags[grp * A + a0:grp * A + a1] = full[(slice(None), slice(None))
                                               + tuple(slice(0, q) for q in qs)]

    run_items(g * chunks, p.omp_threads, back)
    pu = tuple(len(ax.u[3]) for ax in geo.axes)
    lags = lags.reshape((g, c.cout_g, c.cin_g) + pu + qs)
    gw = lags[(slice(None),) * 3 + _taps(geo.axes, "phase") + _taps(geo.axes, "q")]
    out[...] = gw.reshape(-1)


FFT = Fft()
