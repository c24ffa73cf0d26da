"""``python -m pyconv check``: every backend against the reference on random cases.

A *case* is one random small geometry (dimension, batch, channels, groups,
kernel, stride, padding, dilation, output_padding, dtype, bias or not).  For
every case and every backend, each public function is called through the
public API -- the six ops and the gradient functions of :mod:`pyconv.grad`
-- and two kinds of checks are made:

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
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Case", "make_cases", "run_check", "format_check", "CheckReport"]

#: relative tolerances (of the largest reference magnitude) per dtype
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}


@dataclass
class Case:
    """One random geometry; ``transposed`` cases exercise the transposed op."""

    index: int
    nd: int
    dtype: np.dtype
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


def make_cases(n: int, seed: int = 0) -> List[Case]:
    """``n`` random small geometries, cycling through 1-D, 2-D and 3-D and both dtypes.

    Every fourth case is *wide* (8 to 24 channels per group, larger images)
    so that the fast backends' blocked / GEMM paths run with several tiles,
    not only their small-problem paths.  Sizes stay small enough for the
    reference backend (a whole case takes well under a second there).
    """
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        nd = (1, 2, 3)[i % 3]
        dtype = np.dtype(np.float64 if (i // 3) % 2 == 0 else np.float32)
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
        # the conv input is at least one effective kernel wide, minus padding
        size = tuple(max(1, d * (k - 1) + 1 - 2 * p) + int(rng.integers(0, extra + 1))
                     for k, d, p in zip(kernel, dilation, padding))
        output_padding = tuple(int(rng.integers(0, max(s, d)))
                               for s, d in zip(stride, dilation))
        cases.append(Case(i, nd, dtype, int(rng.integers(1, 3)), cin, cout, groups, size,
                          kernel, stride, padding, dilation, output_padding,
                          bool(rng.integers(0, 2)), int(rng.integers(0, 2**31))))
    return cases


def _conv_out(case: Case) -> Tuple[int, ...]:
    return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                 for n, k, s, p, d in zip(case.size, case.kernel, case.stride, case.padding,
                                         case.dilation))


def _tconv_out(case: Case, size) -> Tuple[int, ...]:
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for n, k, s, p, d, op in zip(size, case.kernel, case.stride, case.padding,
                                              case.dilation, case.output_padding))


@dataclass
class _Call:
    """One public call: a label and a function of nothing returning an array."""

    label: str
    fn: Callable[[], np.ndarray]


def _calls(case: Case):
    """The public calls of one case, the identities to check on them, their arrays.

    Returns ``(calls, identities, arrays)``; each identity is ``(label, fn,
    family)`` where ``fn()`` returns the relative discrepancy of three inner
    products; ``arrays`` maps names to the arrays the calls read (which no
    call may modify).
    """
    import pyconv
    import pyconv.grad as grad

    nd = case.nd
    rng = np.random.default_rng(case.seed)
    dt = case.dtype
    g = case.groups

    def rnd(shape):
        return rng.standard_normal(shape).astype(dt)

    kw = dict(stride=case.stride, padding=case.padding, dilation=case.dilation, groups=g)
    ks = tuple(case.kernel)
    # conv: x (N, Cin, S) -> (N, Cout, O)
    x = rnd((case.batch, case.in_channels) + case.size)
    w = rnd((case.out_channels, case.in_channels // g) + ks)
    b = rnd((case.out_channels,)) if case.bias else None
    out = _conv_out(case)
    gy = rnd((case.batch, case.out_channels) + out)
    # conv_transpose: xt (N, Cin, T) -> (N, Cout, U); weight (Cin, Cout/g, K)
    tsize = []
    for o, k, s_, p, d, op in zip(out, case.kernel, case.stride, case.padding,
                                  case.dilation, case.output_padding):
        t = max(1, o)
        while (t - 1) * s_ - 2 * p + d * (k - 1) + op + 1 < 1:  # keep the output non-empty
            t += 1
        tsize.append(t)
    tsize = tuple(tsize)
    xt = rnd((case.batch, case.in_channels) + tsize)
    wt = rnd((case.in_channels, case.out_channels // g) + ks)
    bt = rnd((case.out_channels,)) if case.bias else None
    uout = _tconv_out(case, tsize)
    gyt = rnd((case.batch, case.out_channels) + uout)
    tkw = dict(stride=case.stride, padding=case.padding, output_padding=case.output_padding,
               groups=g, dilation=case.dilation)

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

    def vdot(a, c):
        return float(np.vdot(np.asarray(a, np.float64).ravel(),
                             np.asarray(c, np.float64).ravel()))

    def spread(values):
        scale = max(1.0, max(abs(v) for v in values))
        return (max(values) - min(values)) / scale

    def conv_identity():
        y = conv(x, w, None, **kw)
        return spread([vdot(y, gy), vdot(x, c_in(x.shape, w, gy, **kw)),
                       vdot(w, c_w(x, w.shape, gy, **kw))])

    def tconv_identity():
        y = tconv(xt, wt, None, **tkw)
        return spread([vdot(y, gyt), vdot(xt, t_in(xt.shape, wt, gyt, **tkw)),
                       vdot(wt, t_w(xt, wt.shape, gyt, **tkw))])

    identities = [
        (f"adjoint conv{nd}d", conv_identity, "conv"),
        (f"adjoint conv_transpose{nd}d", tconv_identity, "conv_transpose"),
    ]
    arrays = {"x": x, "w": w, "b": b, "gy": gy, "xt": xt, "wt": wt, "bt": bt, "gyt": gyt}
    return calls, identities, {k: v for k, v in arrays.items() if v is not None}


@dataclass
class Outcome:
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
        mine = [o for o in self.outcomes if o.backend == backend]
        errs = [o.error for o in mine if o.status != "skip" and math.isfinite(o.error)]
        return {
            "checks": len(mine),
            "passed": sum(o.status == "pass" for o in mine),
            "failed": sum(o.status == "fail" for o in mine),
            "skipped": sum(o.status == "skip" for o in mine),
            "max_error": max(errs) if errs else 0.0,
        }

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


def run_check(backends: Sequence[str], n_cases: int = 12, seed: int = 0,
              progress: Optional[Callable[[str], None]] = None) -> CheckReport:
    """Check each backend (by name; each must be available) on ``n_cases`` random cases."""
    import pyconv

    cases = make_cases(n_cases, seed)
    report = CheckReport(list(backends), cases)
    for case in cases:
        calls, identities, arrays = _calls(case)
        snapshot = {k: v.copy() for k, v in arrays.items()}
        tol = RTOL[case.dtype]
        refs: Dict[str, object] = {}
        if any(name != "reference" for name in backends):
            with pyconv.use_backend("reference"):
                for call in calls:
                    try:
                        refs[call.label] = call.fn()
                    except Exception as exc:  # the other backends must agree
                        refs[call.label] = exc
        for name in backends:
            if progress is not None:
                progress(f"{name}: {case.describe()}")
            with pyconv.use_backend(name):
                if name != "reference":
                    for call in calls:
                        report.outcomes.append(
                            _run_one(name, case, call.label, lambda c=call: c.fn(),
                                     refs[call.label], tol))
                for label, fn, _family in identities:
                    report.outcomes.append(_run_identity(name, case, label, fn, tol))
            changed = [k for k, v in arrays.items() if not np.array_equal(v, snapshot[k])]
            if changed:
                report.outcomes.append(Outcome(
                    name, case.index, "inputs untouched", "fail", math.inf,
                    f"the backend modified its input array(s) {', '.join(changed)}"))
                for k in changed:  # restore them for the next backend
                    arrays[k][...] = snapshot[k]
    return report


def _run_one(name, case, label, fn, ref, tol) -> Outcome:
    import pyconv

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
    import pyconv

    try:
        err = fn()
    except pyconv.BackendUnavailableError as exc:
        return Outcome(name, case.index, label, "skip", detail=str(exc))
    except Exception as exc:
        return Outcome(name, case.index, label, "fail", math.inf,
                       f"{type(exc).__name__}: {exc}")
    # inner products sum many terms: allow a little more than elementwise
    limit = 10 * tol
    if err <= limit:
        return Outcome(name, case.index, label, "pass", err)
    return Outcome(name, case.index, label, "fail", err,
                   f"inner products differ by {err:.3g} (relative) > {limit:g}")


def format_check(report: CheckReport, verbose: bool = False) -> str:
    """A pass/fail table per backend, then the failures (and skips when verbose)."""
    headers = ["backend", "checks", "passed", "failed", "skipped", "max rel err", "result"]
    body = []
    for name in report.backends:
        c = report.counts(name)
        result = "FAIL" if c["failed"] else ("pass" if c["passed"] else "skipped")
        body.append([name, str(c["checks"]), str(c["passed"]), str(c["failed"]),
                     str(c["skipped"]), f"{c['max_error']:.2g}", result])
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]

    def fmt(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in body]
    lines.append(f"({len(report.cases)} random cases; each non-reference backend is "
                 "compared with the reference on the six ops and the gradients; "
                 "every backend must pass the adjoint identities and leave its inputs "
                 "untouched)")
    cases = {c.index: c for c in report.cases}
    for o in report.failures():
        lines.append(f"FAIL {o.backend} {o.label} [{cases[o.case].describe()}]: {o.detail}")
    if verbose:
        for o in report.outcomes:
            if o.status == "skip":
                lines.append(f"skip {o.backend} {o.label} [{cases[o.case].describe()}]: "
                             f"{o.detail}")
    return "\n".join(lines)
