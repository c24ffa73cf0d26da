"""Every golden case (PyTorch 2.13 outputs, tests/data/golden.npz) on every backend.

The fixture is made by ``tests/gen_golden.py``; the cases cover every op and
every argument (stride, padding incl. 'same'/'valid' and the padding modes,
dilation, groups incl. depthwise, output_padding, output_size, unbatched,
N = 0, C_in = 0, bias None), all dtypes (float16/32/64, complex64/128), the
OpInfo and common_nn configurations of PyTorch's own tests, and the gradients of
:mod:`pyconv.grad` (those are run by test_grad.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyconv

from helpers import assert_close, golden, tuplify

CASES, ARRAYS = golden()

#: cases whose reference-backend cost (loop iterations) exceeds this are "slow"
SLOW_COST = 100000


def _cost(case):
    """Inner-loop iterations of the reference backend for the case (x3 for complex).

    The reference loops over (batch, conv output position, kernel tap, group);
    for a transposed op the loop runs over its input positions.
    """
    factor = 3 if np.dtype(case["dtype"]).kind == "c" else 1
    if case["kind"] == "grad":
        kinds = case["arg_kinds"]
        w_shape = (ARRAYS[case["args"][1]].shape if kinds[1] == "array"
                   else tuple(case["args"][1]))
        gy = ARRAYS[case["args"][2]].shape
        x_shape = (tuple(case["args"][0]) if kinds[0] == "size"
                   else ARRAYS[case["args"][0]].shape)
        positions = math.prod(x_shape[2:]) if "transpose" in case["fn"] else math.prod(gy[2:])
        return (factor * gy[0] * positions * math.prod(w_shape[2:])
                * case["kwargs"].get("groups", 1))
    x = ARRAYS[case["input"]]
    w = ARRAYS[case["weight"]]
    nd = w.ndim - 2
    out = list(case["shape"])
    xs = x.shape if x.ndim == nd + 2 else (1,) + x.shape
    os_ = out if len(out) == nd + 2 else [1] + out
    transposed = "transpose" in case.get("op", "") or "Transpose" in case.get("cls", "")
    positions = math.prod(xs[2:]) if transposed else math.prod(os_[2:])
    groups = case.get("kwargs", case.get("ctor", {})).get("groups", 1)
    return factor * xs[0] * positions * math.prod(w.shape[2:]) * groups


def _param(case):
    marks = [pytest.mark.slow] if _cost(case) > SLOW_COST else []
    return pytest.param(case, id=case["id"], marks=marks)


FUNCTIONAL = [_param(c) for c in CASES if c["kind"] == "functional"]
MODULE = [_param(c) for c in CASES if c["kind"] == "module"]
GRAD = [_param(c) for c in CASES if c["kind"] == "grad"]


def _arr(key):
    return None if key is None else ARRAYS[key]


def describe(case):
    keys = ("op", "cls", "fn", "ctor", "kwargs", "forward", "dtype")
    parts = [f"{k}={case[k]}" for k in keys if k in case and case[k] not in (None, {})]
    shapes = [f"{k}{ARRAYS[case[k]].shape}" for k in ("input", "weight", "bias")
              if case.get(k)]
    return f"golden case {case['id']} ({', '.join(parts + shapes)})"


def check(case, got):
    expected = ARRAYS[case["output"]]
    label = describe(case)
    assert isinstance(got, np.ndarray), f"{label}: returned {type(got).__name__}"
    assert got.dtype == expected.dtype, f"{label}: dtype {got.dtype} != {expected.dtype}"
    assert got.shape == expected.shape, f"{label}: shape {got.shape} != {expected.shape}"
    assert_close(got, expected, case["dtype"], label)


@pytest.mark.parametrize("case", FUNCTIONAL)
def test_functional(case, backend):
    fn = getattr(pyconv, case["op"])
    kwargs = tuplify(case["kwargs"])
    got = fn(_arr(case["input"]), _arr(case["weight"]), _arr(case["bias"]), **kwargs,
             backend=backend)
    check(case, got)


@pytest.mark.parametrize("case", MODULE)
def test_module(case, backend):
    cls = getattr(pyconv, case["cls"])
    ctor = tuplify(case["ctor"])
    m = cls(**ctor, dtype=np.dtype(case["dtype"]), rng=0)
    weight = ARRAYS[case["weight"]]
    assert m.weight.shape == weight.shape, f"{describe(case)}: weight shape"
    assert (m.bias is None) == (case["bias"] is None), f"{describe(case)}: bias presence"
    m.weight = weight.copy()
    if case["bias"] is not None:
        m.bias = ARRAYS[case["bias"]].copy()
    forward = tuplify(case["forward"])
    with pyconv.use_backend(backend):
        if forward:
            got = m.forward(_arr(case["input"]), **forward)
        else:
            got = m(_arr(case["input"]))
    check(case, got)


@pytest.mark.parametrize("case", MODULE)
def test_module_case_through_functional(case, backend):
    """The same module case through the functional op (padding_mode=, output_size=)."""
    ctor = tuplify(case["ctor"])
    nd = int(case["cls"][-2])
    transposed = case["cls"].startswith("ConvTranspose")
    args = dict(stride=ctor.get("stride", 1), padding=ctor.get("padding", 0),
                dilation=ctor.get("dilation", 1), groups=ctor.get("groups", 1))
    forward = tuplify(case["forward"])
    if transposed:
        fn = getattr(pyconv, f"conv_transpose{nd}d")
        if "output_size" in forward:
            args["output_size"] = forward["output_size"]
        else:
            args["output_padding"] = ctor.get("output_padding", 0)
    else:
        fn = getattr(pyconv, f"conv{nd}d")
        args["padding_mode"] = ctor.get("padding_mode", "zeros")
    got = fn(_arr(case["input"]), _arr(case["weight"]), _arr(case["bias"]), **args,
             backend=backend)
    check(case, got)


def test_fixture_is_complete():
    """The fixture covers every op, module class, grad function and dtype."""
    ops = {c["op"] for c in CASES if c["kind"] == "functional"}
    assert ops == {f"conv{d}d" for d in (1, 2, 3)} | {f"conv_transpose{d}d" for d in (1, 2, 3)}
    classes = {c["cls"] for c in CASES if c["kind"] == "module"}
    assert classes == ({f"Conv{d}d" for d in (1, 2, 3)}
                       | {f"ConvTranspose{d}d" for d in (1, 2, 3)})
    fns = {c["fn"] for c in CASES if c["kind"] == "grad"}
    assert fns == {f"conv{t}{d}d_{w}" for t in ("", "_transpose") for d in (1, 2, 3)
                   for w in ("input", "weight")}
    dtypes = {c["dtype"] for c in CASES}
    assert dtypes == {"float16", "float32", "float64", "complex64", "complex128"}
    kw = [c.get("kwargs", {}) for c in CASES if c["kind"] == "functional"]
    for name in ("stride", "padding", "dilation", "groups", "output_padding", "output_size"):
        assert any(name in k for k in kw), name
    assert any(k.get("padding") == "same" for k in kw)
    assert any(k.get("padding") == "valid" for k in kw)
    modes = {c["ctor"].get("padding_mode", "zeros") for c in CASES if c["kind"] == "module"}
    assert modes == {"zeros", "reflect", "replicate", "circular"}
    # the CI subset (not slow) still covers every op and dtype
    fast = [p.values[0] for p in FUNCTIONAL + MODULE + GRAD if not p.marks]
    assert {c.get("op") for c in fast if c["kind"] == "functional"} == ops
    assert {c["dtype"] for c in fast} == dtypes
