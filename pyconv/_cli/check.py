"""``python -m pyconv check``: every backend against the reference on random cases.

A *case* is one random small geometry (dimension, batch, channels, groups,
kernel, stride, padding, dilation, output_padding, dtype, bias or not).  Its
shapes are what pyconv's front layer makes of the calls
(:func:`pyconv._spec.conv_call`, :func:`~pyconv._spec.conv_transpose_call`):
nothing here re-derives an output size.  For every case and every backend,
each public function is called through the public API -- the six ops and the
gradient functions of :mod:`pyconv.grad` -- and three kinds of checks are
made:

* **agreement**: the result equals the reference backend's result (float32:
  relative error below 1e-4 of the largest reference value; float64: 1e-10).
  The reference backend itself is not compared with itself.
* **identities** (need no oracle, so they also test the reference backend):
  the convolution is bilinear, and its input and weight gradients are its
  adjoints, so for random ``x``, ``w`` and ``gy``::

      <conv(x, w), gy> == <x, conv_input(x.shape, w, gy)> == <w, conv_weight(x, w.shape, gy)>

  and the same for the transposed op, whose input gradient is a plain
  convolution.
* **inputs untouched**: after its calls, every array the backend was given
  still holds its original values.

A call that a backend declines (:class:`pyconv.BackendUnavailableError`, for
example float64 on an OpenCL device without ``cl_khr_fp64``) is counted as
skipped, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import pyconv
import pyconv.grad as grad
from pyconv._spec import ConvSpec, conv_call, conv_transpose_call

from ._output import EXIT_FAILED, EXIT_OK, Progress, table

__all__ = ["Case", "make_cases", "run_check", "format_check", "CheckReport"]

#: relative tolerances (of the largest reference magnitude) per dtype
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
#: identities compare inner products, sums of many terms: this many times RTOL
IDENTITY_SLACK = 10


@dataclass
class Case:
    """One random geometry, exercising a convolution and a transposed convolution."""

    index: int
    nd: int
    dtype: np.dtype[Any]
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    size: Tuple[int, ...]
    kernel: Tuple[int, ...]
    stride: Tuple[int, ...]
    padding: Tuple[int, ...]
    dilation: Tuple[int, ...]
    output_padding: Tuple[int, ...]
    bias: bool
    seed: int

    def describe(self) -> str:
        def t(v):
            return "x".join(map(str, v))
        return (f"case {self.index}: {self.nd}d {self.dtype.name} N{self.batch} "
                f"C{self.in_channels}->{self.out_channels} g{self.groups} S{t(self.size)} "
                f"K{t(self.kernel)} s{t(self.stride)} p{t(self.padding)} "
                f"d{t(self.dilation)} op{t(self.output_padding)}"
                f"{' bias' if self.bias else ''}")

    def conv_spec(self) -> ConvSpec:
        """The convolution's geometry, from the front layer."""
        x_shape = (self.batch, self.in_channels) + self.size
        w_shape = (self.out_channels, self.in_channels // self.groups) + self.kernel
        return conv_call(f"conv{self.nd}d", self.nd, x_shape, w_shape, None, self.stride,
                         self.padding, self.dilation, self.groups).spec

    def transposed_spec(self) -> ConvSpec:
        """The transposed convolution's geometry, from the front layer.

        Its input is as large as the convolution's output, grown (all sides
        at once) until the front layer accepts the call, that is until the
        output is not empty (a large padding crops a small output away).
        """
        w_shape = (self.in_channels, self.out_channels // self.groups) + self.kernel
        size = self.conv_spec().out_size

        def grown(grow: int) -> ConvSpec:
            x_shape = (self.batch, self.in_channels) + tuple(s + grow for s in size)
            return conv_transpose_call(
                f"conv_transpose{self.nd}d", self.nd, x_shape, w_shape, None, self.stride,
                self.padding, self.output_padding, self.groups, self.dilation).spec

        for grow in range(7):  # each step adds at least one output position per dim
            try:
                return grown(grow)
            except ValueError:
                pass
        return grown(7)


def make_cases(n: int, seed: int = 0) -> List[Case]:
    """``n`` random small geometries, cycling through 1-D, 2-D and 3-D and both dtypes.

    Case ``i`` is ``(i % 3) + 1``-D and float64 for even ``i``, float32 for
    odd ``i``, so any two consecutive cases cover both dtypes.  Every fourth
    case is *wide* (8 to 24 channels per group, larger images) so that the
    fast backends' blocked / GEMM paths run with several tiles, not only
    their small-problem paths.  Sizes stay small enough for the reference
    backend (a whole case takes well under a second there).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        nd = i % 3 + 1
        dtype = np.dtype(np.float64 if i % 2 == 0 else np.float32)
        wide = i % 4 == 3
        groups = int(rng.choice([1, 1, 2, 4] if wide else [1, 1, 2, 3]))
        lo, hi = (8, 25) if wide else (1, 4)
        cin = groups * int(rng.integers(lo, hi))
        cout = groups * int(rng.integers(lo, hi))
        kmax = (4, 3, 2)[nd - 1]
        extra = ((40, 10, 5) if wide else (6, 3, 2))[nd - 1]
        kernel = tuple(int(rng.integers(1, kmax + 1)) for _ in range(nd))
        stride = tuple(int(rng.integers(1, 3)) for _ in range(nd))
        dilation = tuple(int(rng.integers(1, 3)) for _ in range(nd))
        padding = tuple(int(rng.integers(0, 2)) for _ in range(nd))
        # smallest input the padding lets the dilated kernel fit into, plus some
        size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + int(rng.integers(0, extra + 1))
                     for k, d, p in zip(kernel, dilation, padding))
        output_padding = tuple(int(rng.integers(0, max(s, d)))
                               for s, d in zip(stride, dilation))
        cases.append(Case(i, nd, dtype, int(rng.integers(1, 3)), cin, cout, groups, size,
                          kernel, stride, padding, dilation, output_padding,
                          bool(rng.integers(0, 2)), int(rng.integers(0, 2**31))))
    return cases


@dataclass
class _Call:
    """One public call: a label and a function of nothing returning an array."""

    label: str
    fn: Callable[[], np.ndarray]


def _inner(a, c) -> float:
    return float(np.vdot(np.asarray(a, np.float64).ravel(), np.asarray(c, np.float64).ravel()))


def _spread(values) -> float:
    """How far apart numbers that should be equal are, relative to their size."""
    scale = max(1.0, max(abs(v) for v in values))
    return (max(values) - min(values)) / scale


def _calls(case: Case):
    """The public calls of one case, the identities to check on them, their arrays.

    Returns ``(calls, identities, arrays)``; each identity is ``(label, fn)``
    where ``fn()`` returns the relative discrepancy of three inner products;
    ``arrays`` maps names to the arrays the calls read (which no call may
    modify).
    """
    nd = case.nd
    rng = np.random.default_rng(case.seed)

    def rnd(shape):
        return rng.standard_normal(shape).astype(case.dtype)

    cs, ts = case.conv_spec(), case.transposed_spec()
    x, w, gy = rnd(cs.input_shape), rnd(cs.weight_shape), rnd(cs.output_shape)
    b = rnd((cs.out_channels,)) if case.bias else None
    xt, wt, gyt = rnd(ts.input_shape), rnd(ts.weight_shape), rnd(ts.output_shape)
    bt = rnd((ts.out_channels,)) if case.bias else None
    kw = dict(stride=case.stride, padding=case.padding, dilation=case.dilation,
              groups=case.groups)
    tkw = dict(kw, output_padding=case.output_padding)

    conv = getattr(pyconv, f"conv{nd}d")
    tconv = getattr(pyconv, f"conv_transpose{nd}d")
    c_in = getattr(grad, f"conv{nd}d_input")
    c_w = getattr(grad, f"conv{nd}d_weight")
    t_in = getattr(grad, f"conv_transpose{nd}d_input")
    t_w = getattr(grad, f"conv_transpose{nd}d_weight")

    calls = [
        _Call(f"conv{nd}d", lambda: conv(x, w, b, **kw)),
        _Call(f"conv_transpose{nd}d", lambda: tconv(xt, wt, bt, **tkw)),
        _Call(f"grad.conv{nd}d_input", lambda: c_in(x.shape, w, gy, **kw)),
        _Call(f"grad.conv{nd}d_weight", lambda: c_w(x, w.shape, gy, **kw)),
        _Call(f"grad.conv_transpose{nd}d_input", lambda: t_in(xt.shape, wt, gyt, **tkw)),
        _Call(f"grad.conv_transpose{nd}d_weight", lambda: t_w(xt, wt.shape, gyt, **tkw)),
    ]

    def conv_identity():
        return _spread([_inner(conv(x, w, None, **kw), gy),
                        _inner(x, c_in(x.shape, w, gy, **kw)),
                        _inner(w, c_w(x, w.shape, gy, **kw))])

    def tconv_identity():
        return _spread([_inner(tconv(xt, wt, None, **tkw), gyt),
                        _inner(xt, t_in(xt.shape, wt, gyt, **tkw)),
                        _inner(wt, t_w(xt, wt.shape, gyt, **tkw))])

    identities = [(f"adjoint conv{nd}d", conv_identity),
                  (f"adjoint conv_transpose{nd}d", tconv_identity)]
    arrays = {"x": x, "w": w, "b": b, "gy": gy, "xt": xt, "wt": wt, "bt": bt, "gyt": gyt}
    return calls, identities, {k: v for k, v in arrays.items() if v is not None}


@dataclass
class Outcome:
    """One check of one backend on one case."""

    backend: str
    case: int
    label: str
    status: str            # "pass", "fail", "skip"
    error: float = 0.0
    detail: str = ""


@dataclass
class CheckReport:
    """All outcomes of a check run, with per-backend counts."""

    backends: List[str]
    cases: List[Case]
    outcomes: List[Outcome] = field(default_factory=list)

    def counts(self, backend: str) -> Dict[str, object]:
        """Checks, passed, failed, skipped, cases and the largest error of ``backend``."""
        mine = [o for o in self.outcomes if o.backend == backend]
        errs = [o.error for o in mine if o.status != "skip" and math.isfinite(o.error)]
        return {
            "checks": len(mine),
            "passed": sum(o.status == "pass" for o in mine),
            "failed": sum(o.status == "fail" for o in mine),
            "skipped": sum(o.status == "skip" for o in mine),
            "cases": len({o.case for o in mine}),
            "max_error": max(errs) if errs else 0.0,
        }

    def result(self, backend: str) -> str:
        """``FAIL``, ``pass`` or ``skipped`` (every call declined) for ``backend``."""
        c = self.counts(backend)
        return "FAIL" if c["failed"] else ("pass" if c["passed"] else "skipped")

    @property
    def ok(self) -> bool:
        return not any(o.status == "fail" for o in self.outcomes)

    def failures(self) -> List[Outcome]:
        return [o for o in self.outcomes if o.status == "fail"]


def _rel_error(got, ref) -> float:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return math.inf
    if ref.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(ref))))
    diff = np.abs(got - ref)
    if not np.all(np.isfinite(diff)):
        return math.inf
    return float(np.max(diff)) / scale


def _first_mismatch(got, ref, tol) -> str:
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.shape != ref.shape:
        return f"shape {got.shape} != reference {ref.shape}"
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    bad = np.argwhere(~(np.abs(got - ref) <= tol * scale))
    if not len(bad):
        return ""
    idx = tuple(int(i) for i in bad[0])
    return f"first mismatch at {idx}: {got[idx]!r} vs reference {ref[idx]!r}"


def run_check(backends: Sequence[str], n_cases: int = 12, seed: int = 0, *,
              max_cases: Optional[Dict[str, int]] = None, progress: bool = False,
              stream=None) -> CheckReport:
    """Check each backend (by name; each must be available) on random cases.

    Parameters
    ----------
    backends : sequence of str
    n_cases, seed : int
        The cases are :func:`make_cases` ``(n_cases, seed)``.
    max_cases : dict, optional
        Backend name -> how many of the cases (the first ones) it runs; the
        others run them all.
    progress : bool
        Show a :class:`~pyconv._cli._output.Progress` bar on ``stream``
        (default stderr).

    Returns
    -------
    CheckReport
    """
    cases = make_cases(n_cases, seed)
    limit = {name: min(n_cases, (max_cases or {}).get(name, n_cases)) for name in backends}
    report = CheckReport(list(backends), cases)
    bar = Progress(sum(limit.values()), enabled=progress, stream=stream)
    for case in cases:
        names = [name for name in backends if case.index < limit[name]]
        if not names:
            continue
        calls, identities, arrays = _calls(case)
        snapshot = {k: v.copy() for k, v in arrays.items()}
        tol = RTOL[case.dtype]
        refs: Dict[str, object] = {}
        if any(name != "reference" for name in names):
            with pyconv.use_backend("reference"):
                for call in calls:
                    try:
                        refs[call.label] = call.fn()
                    except Exception as exc:  # the other backends must agree
                        refs[call.label] = exc
        for name in names:
            bar.step(f"{name}: {case.describe()}")
            with pyconv.use_backend(name):
                if name != "reference":
                    for call in calls:
                        report.outcomes.append(
                            _run_one(name, case, call.label, call.fn, refs[call.label], tol))
                for label, fn in identities:
                    report.outcomes.append(_run_identity(name, case, label, fn, tol))
            changed = [k for k, v in arrays.items() if not np.array_equal(v, snapshot[k])]
            if changed:
                report.outcomes.append(Outcome(
                    name, case.index, "inputs untouched", "fail", math.inf,
                    f"the backend modified its input array(s) {', '.join(changed)}"))
                for k in changed:  # restore them for the next backend
                    arrays[k][...] = snapshot[k]
            bar.advance()
    bar.close()
    return report


def _run_one(name, case, label, fn, ref, tol) -> Outcome:
    try:
        got = fn()
    except pyconv.BackendUnavailableError as exc:
        return Outcome(name, case.index, label, "skip", detail=str(exc))
    except Exception as exc:
        if isinstance(ref, Exception) and type(exc) is type(ref):
            # the front layer rejected the call, on the reference as here
            return Outcome(name, case.index, label, "pass", 0.0)
        return Outcome(name, case.index, label, "fail", math.inf,
                       f"{type(exc).__name__}: {exc}")
    if isinstance(ref, Exception):
        return Outcome(name, case.index, label, "fail", math.inf,
                       f"succeeded where the reference raised {type(ref).__name__}: {ref}")
    err = _rel_error(got, ref)
    if np.asarray(got).dtype != np.asarray(ref).dtype:
        return Outcome(name, case.index, label, "fail", err,
                       f"dtype {np.asarray(got).dtype} != reference {np.asarray(ref).dtype}")
    if err <= tol:
        return Outcome(name, case.index, label, "pass", err)
    return Outcome(name, case.index, label, "fail", err,
                   f"relative error {err:.3g} > {tol:g}; {_first_mismatch(got, ref, tol)}")


def _run_identity(name, case, label, fn, tol) -> Outcome:
    try:
        err = fn()
    except pyconv.BackendUnavailableError as exc:
        return Outcome(name, case.index, label, "skip", detail=str(exc))
    except Exception as exc:
        return Outcome(name, case.index, label, "fail", math.inf,
                       f"{type(exc).__name__}: {exc}")
    limit = IDENTITY_SLACK * tol
    if err <= limit:
        return Outcome(name, case.index, label, "pass", err)
    return Outcome(name, case.index, label, "fail", err,
                   f"inner products differ by {err:.3g} (relative) > {limit:g}")


def format_details(report: CheckReport, verbose: bool = False) -> List[str]:
    """One line per failure (and per skip when ``verbose``), naming the case."""
    cases = {c.index: c for c in report.cases}
    wanted = ("fail", "skip") if verbose else ("fail",)
    return [f"{o.status.upper()} {o.backend} {o.label} [{cases[o.case].describe()}]: "
            f"{o.detail}" for o in report.outcomes if o.status in wanted]


def format_check(report: CheckReport, verbose: bool = False) -> str:
    """A pass/fail table per backend, then the failures (and skips when verbose)."""
    headers = ["backend", "cases", "checks", "passed", "failed", "skipped", "max rel err",
               "result"]
    body = []
    for name in report.backends:
        c = report.counts(name)
        body.append([name, str(c["cases"]), str(c["checks"]), str(c["passed"]),
                     str(c["failed"]), str(c["skipped"]), f"{c['max_error']:.2g}",
                     report.result(name)])
    lines = [table(headers, body),
             f"({len(report.cases)} random cases; each non-reference backend is compared "
             "with the reference on the six ops and the gradients; every backend must pass "
             "the adjoint identities and leave its inputs untouched)"]
    return "\n".join(lines + format_details(report, verbose))


def command(args, out) -> int:
    """``python -m pyconv check``: the table and the failures; 1 if anything failed."""
    for name, reason in args.unavailable:
        print(f"backend {name!r} asked for but unavailable: {reason}", file=out)
    ok = True
    if args.backends:
        report = run_check(args.backends, args.cases, args.seed, progress=args.progress)
        print(format_check(report, verbose=args.verbose), file=out)
        ok = report.ok
    return EXIT_OK if ok and not args.unavailable else EXIT_FAILED
