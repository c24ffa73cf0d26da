"""Module classes: signatures, validation, parameters, init, repr, forward / __call__,
output_size, padding modes, module == functional (docs/semantics.rst and the module
docstrings)."""

from __future__ import annotations

import inspect
import itertools
import math
import typing

import numpy as np
import pytest
from scipy import stats

import pyconv

from helpers import assert_close

CONVS = {1: pyconv.Conv1d, 2: pyconv.Conv2d, 3: pyconv.Conv3d}
TCONVS = {1: pyconv.ConvTranspose1d, 2: pyconv.ConvTranspose2d, 3: pyconv.ConvTranspose3d}
ALL = [(nd, cls) for nd in (1, 2, 3) for cls in (CONVS[nd], TCONVS[nd])]
IDS = [cls.__name__ for _, cls in ALL]


def call(backend, m, x, **kw):
    """``m(x)`` on ``backend`` (None: the backend in force, as the front_layer fixture gives)."""
    if backend is None:
        return m(x, **kw)
    with pyconv.use_backend(backend):
        return m(x, **kw)


# --------------------------------------------------------------------------
# signatures and stored attributes

CONV_PARAMS = ["in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
               "groups", "bias", "padding_mode", "dtype", "rng"]
TCONV_PARAMS = ["in_channels", "out_channels", "kernel_size", "stride", "padding",
                "output_padding", "groups", "bias", "dilation", "padding_mode", "dtype", "rng"]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_signatures(nd):
    for cls, names in ((CONVS[nd], CONV_PARAMS), (TCONVS[nd], TCONV_PARAMS)):
        sig = inspect.signature(cls)
        assert list(sig.parameters) == names, cls.__name__
        params = sig.parameters
        assert params["dtype"].kind is inspect.Parameter.KEYWORD_ONLY
        assert params["rng"].kind is inspect.Parameter.KEYWORD_ONLY
        assert np.dtype(params["dtype"].default) == np.float32
        assert params["rng"].default is None
        defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True,
                    "padding_mode": "zeros", "output_padding": 0}
        for name, value in defaults.items():
            if name in params:
                assert params[name].default == value, (cls.__name__, name)
    fsig = inspect.signature(TCONVS[nd].forward)
    assert list(fsig.parameters) == ["self", "input", "output_size"]
    assert fsig.parameters["output_size"].default is None


@pytest.mark.parametrize("cls", [cls for _, cls in ALL], ids=IDS)
def test_call_has_the_signature_of_forward(cls):
    """``__call__`` declares ``forward``'s parameters, annotations and overloads (so that
    type checkers and IDEs see them), not ``*args, **kwargs``."""
    assert inspect.signature(cls.__call__) == inspect.signature(cls.forward)
    get_overloads = getattr(typing, "get_overloads", None)  # Python 3.11+
    if get_overloads is not None:
        calls = [inspect.signature(f) for f in get_overloads(cls.__call__)]
        forwards = [inspect.signature(f) for f in get_overloads(cls.forward)]
        assert len(calls) == 2 and calls == forwards


@pytest.mark.parametrize("cls", [cls for _, cls in ALL], ids=IDS)
def test_call_runs_an_overridden_forward(cls):
    class Scaled(cls):
        def forward(self, input, output_size=None):
            return 2 * super().forward(input)

    m = Scaled(2, 2, 1, bias=False, dtype=np.float64, rng=0)
    x = np.ones((1, 2) + (3,) * m._nd)
    np.testing.assert_array_equal(m(x), 2 * cls.forward(m, x))


def test_positional_order():
    m = pyconv.Conv2d(3, 4, (3, 2), 2, 1, 2, 1, False, "circular")
    assert (m.stride, m.padding, m.dilation, m.groups, m.bias, m.padding_mode) == (
        (2, 2), (1, 1), (2, 2), 1, None, "circular")
    t = pyconv.ConvTranspose1d(3, 4, 3, 2, 1, 1, 1, False, 2)  # bias before dilation
    assert (t.stride, t.padding, t.output_padding, t.groups, t.bias, t.dilation) == (
        (2,), (1,), (1,), 1, None, (2,))


def test_stored_attributes():
    m = pyconv.Conv2d(4, 6, 3)
    assert m.kernel_size == (3, 3) and m.stride == (1, 1) and m.padding == (0, 0)
    assert m.dilation == (1, 1) and m.output_padding == (0, 0) and m.groups == 1
    assert m.transposed is False and m.in_channels == 4 and m.out_channels == 6
    assert m.padding_mode == "zeros"
    t = pyconv.ConvTranspose3d(4, 6, (1, 2, 3), stride=2)
    assert t.kernel_size == (1, 2, 3) and t.stride == (2, 2, 2) and t.transposed is True
    s = pyconv.Conv1d(4, 6, 3, padding="same")
    assert s.padding == "same"


# --------------------------------------------------------------------------
# §2.8 validation, in PyTorch's order

VALIDATION = [
    ("transposed-mode-first", lambda: pyconv.ConvTranspose2d(4, 6, 3, groups=0,
                                                             padding_mode="reflect"),
     r'Only "zeros" padding mode is supported for ConvTranspose2d'),
    ("transposed-mode-foo", lambda: pyconv.ConvTranspose1d(4, 6, 3, padding_mode="foo"),
     r'Only "zeros" padding mode is supported for ConvTranspose1d'),
    ("groups-0", lambda: pyconv.Conv2d(4, 6, 3, groups=0, padding="foo"),
     r"groups must be a positive integer"),
    ("groups-neg", lambda: pyconv.Conv3d(4, 6, 3, groups=-2), r"groups must be a positive integer"),
    ("in-divisible", lambda: pyconv.Conv2d(5, 6, 3, groups=2, padding="foo"),
     r"in_channels must be divisible by groups"),
    ("out-divisible", lambda: pyconv.ConvTranspose2d(4, 5, 3, groups=2),
     r"out_channels must be divisible by groups"),
    ("padding-string", lambda: pyconv.Conv2d(4, 6, 3, padding="foo", padding_mode="xyz"),
     r"[Ii]nvalid padding string 'foo'"),
    ("same-strided", lambda: pyconv.Conv2d(4, 6, 3, padding="same", stride=2,
                                           padding_mode="xyz"),
     r"padding='same' is not supported for strided convolutions"),
    ("padding_mode-xyz", lambda: pyconv.Conv1d(4, 6, 3, padding_mode="xyz"),
     r"padding_mode must be one of .*padding_mode='xyz'"),
    ("padding_mode-3", lambda: pyconv.Conv1d(4, 6, 3, padding_mode=3),
     r"padding_mode must be one of .*3"),
]


@pytest.mark.parametrize("case_id,make,pattern", VALIDATION, ids=[v[0] for v in VALIDATION])
def test_constructor_validation(case_id, make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("stride", [2, (1, 3), (4, 1)])
def test_same_strided_2d(stride):
    with pytest.raises(ValueError, match="strided"):
        pyconv.Conv2d(2, 2, 3, padding="same", stride=stride)


@pytest.mark.parametrize("stride", [(1, 1, 3), (1, 4, 1), (5, 1, 1)])
def test_same_strided_3d(stride):
    with pytest.raises(ValueError, match="strided"):
        pyconv.Conv3d(2, 2, 3, padding="same", stride=stride)


def test_padding_mode_message_is_ordered():
    """The valid modes in a fixed order (a set's order changes with PYTHONHASHSEED)."""
    for bad in ("xyz", 3):
        with pytest.raises(ValueError) as info:
            pyconv.Conv2d(3, 3, 3, padding_mode=bad)
        assert str(info.value) == ("Conv2d: padding_mode must be one of 'zeros', 'reflect', "
                                   f"'replicate', 'circular', but got padding_mode={bad!r}")


def test_not_validated_at_construction(front_layer):
    """Like torch: these build, and the call fails with the functional error."""
    x2 = np.ones((1, 4, 6, 6), np.float32)
    for m in (pyconv.Conv2d(4, 6, 3, padding=-1), pyconv.Conv2d(4, 6, 3, stride=0),
              pyconv.Conv2d(4, 6, 3, dilation=-1), pyconv.Conv2d(4, 6, 3, dilation=0),
              pyconv.Conv1d(4, 6, 3, stride=(2, 2)), pyconv.Conv2d(4, 6, (3, 3, 3)),
              pyconv.ConvTranspose2d(4, 6, 3, padding=-1),
              pyconv.ConvTranspose2d(4, 6, 3, output_padding=-1)):
        with pytest.raises(ValueError):
            call(front_layer, m, x2 if m.weight.ndim == 4 else np.ones((1, 4, 6), np.float32))
    assert pyconv.Conv2d(4, 6, (3, 3, 3)).weight.shape == (6, 4, 3, 3, 3)


@pytest.mark.parametrize("arg", ["kernel_size", "stride", "padding", "dilation"])
def test_non_int_sizes_name_the_class_and_argument(arg):
    kwargs = {"kernel_size": 3, arg: 2.5}
    with pytest.raises(TypeError, match=rf"^Conv2d: {arg} must be an int or a tuple of ints, "
                                        "got 2.5$"):
        pyconv.Conv2d(2, 2, **kwargs)
    with pytest.raises(TypeError, match=r"^ConvTranspose1d: output_padding must be an int"):
        pyconv.ConvTranspose1d(2, 2, 3, output_padding=None)


def test_zero_channels_allowed(backend):
    m = pyconv.Conv1d(0, 8, 2, stride=2)
    assert m.weight.shape == (8, 0, 2)
    assert call(backend, m, np.ones((2, 0, 15), np.float32)).shape == (2, 0, 7)
    m = pyconv.Conv2d(0, 33, 3, stride=2)
    assert call(backend, m, np.ones((2, 0, 10, 12), np.float32)).shape == (2, 0, 4, 5)
    m = pyconv.Conv3d(0, 3, 3, stride=2)
    assert call(backend, m, np.ones((2, 0, 5, 4, 6), np.float32)).shape == (2, 0, 2, 1, 2)
    # a 1-channel input to a 0-channel module: the channel error
    with pytest.raises(ValueError, match="channels"):
        call(backend, pyconv.Conv2d(0, 33, 3), np.ones((2, 1, 10, 10), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, object, "U3", "float128",
                                   "f4,f4"])
def test_invalid_dtype(dtype):
    with pytest.raises(TypeError, match="Conv2d: dtype must be a float or complex dtype"):
        pyconv.Conv2d(2, 2, 3, dtype=dtype)


@pytest.mark.parametrize("dtype", ["floot32", "torch", 3, 1.5, [np.float32]])
def test_dtype_not_a_dtype(dtype):
    with pytest.raises(TypeError, match=r"Conv2d: dtype must be a NumPy dtype or its name "
                                        r"\('float32', 'complex64' ...\), got "):
        pyconv.Conv2d(2, 2, 3, dtype=dtype)


class _TorchDtype:
    """Stands for a PyTorch dtype (the tests never import torch): its str() is torch's."""

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return f"torch.{self.name}"


ANY_FLOAT = "pass a NumPy float or complex dtype, such as np.float32"


@pytest.mark.parametrize("name,hint", [("float32", "pass np.float32 (or 'float32')"),
                                       ("complex128", "pass np.complex128 (or 'complex128')"),
                                       ("bfloat16", ANY_FLOAT), ("int64", ANY_FLOAT)])
def test_torch_dtype_says_what_to_pass(name, hint):
    for dtype in (_TorchDtype(name), f"torch.{name}"):
        with pytest.raises(TypeError) as info:
            pyconv.ConvTranspose1d(2, 2, 3, dtype=dtype)
        assert str(info.value) == ("ConvTranspose1d: dtype must be a NumPy dtype, got the "
                                   f"PyTorch dtype torch.{name}: {hint}")


@pytest.mark.parametrize("dtype,expected", [
    ("float32", np.float32), ("float64", np.float64), ("f2", np.float16),
    ("complex64", np.complex64), (np.dtype("c16"), np.complex128), (float, np.float64),
    (complex, np.complex128), (None, np.float32), (">f4", np.float32), (">c8", np.complex64),
    ("<f8", np.float64)])
def test_dtype_forms(dtype, expected, backend, rng):
    """Names, types and any byte order; stored native.  None is PyTorch's default."""
    m = pyconv.Conv1d(2, 3, 3, dtype=dtype, rng=0)
    assert m.dtype == np.dtype(expected) and m.dtype.isnative
    assert m.weight.dtype == m.dtype and m.bias.dtype == m.dtype and m.weight.dtype.isnative
    x = rng.standard_normal((1, 2, 6)).astype(expected)
    ref = pyconv.Conv1d(2, 3, 3, dtype=expected, rng=0)
    np.testing.assert_array_equal(m.weight, ref.weight)
    assert_close(call(backend, m, x), call(backend, ref, x), expected, "dtype form", rtol=0)


@pytest.mark.parametrize("rng,exc", [("seed", TypeError), (1.5, TypeError), (-1, ValueError),
                                     ([1, -2], ValueError),
                                     (object(), TypeError)])
def test_invalid_rng(rng, exc):
    with pytest.raises(exc, match=r"Conv2d: rng must be None, a non-negative int seed .*got "):
        pyconv.Conv2d(4, 6, 3, rng=rng)
    m = pyconv.Conv2d(4, 6, 3, rng=0)
    weight = m.weight.copy()
    with pytest.raises(exc, match=r"Conv2d.reset_parameters\(\): rng must be"):
        m.reset_parameters(rng)
    np.testing.assert_array_equal(m.weight, weight)


def test_rng_forms():
    """What numpy.random.default_rng takes: seeds, sequences, SeedSequence, BitGenerator."""
    a = pyconv.Conv1d(2, 3, 3, rng=[1, 2])
    np.testing.assert_array_equal(a.weight, pyconv.Conv1d(2, 3, 3, rng=[1, 2]).weight)
    b = pyconv.Conv1d(2, 3, 3, rng=np.random.SeedSequence(5))
    c = pyconv.Conv1d(2, 3, 3, rng=np.random.PCG64(5))
    np.testing.assert_array_equal(b.weight, c.weight)
    np.testing.assert_array_equal(b.weight, pyconv.Conv1d(2, 3, 3, rng=5).weight)


@pytest.mark.parametrize("make", [
    lambda: pyconv.Conv2d(4, 6, 2**62), lambda: pyconv.Conv2d(4, 6, 2**40),
    lambda: pyconv.Conv2d(2**62, 2**62, 1), lambda: pyconv.ConvTranspose3d(8, 8, (1, 2**61, 4)),
    lambda: pyconv.Conv1d(0, 4, 2**64)], ids=["k2^62", "k2^40", "c2^62", "t3d", "empty-k2^64"])
def test_weight_too_large_for_any_array(make):
    """A ValueError naming the sizes, before NumPy is asked to allocate."""
    with pytest.raises(ValueError, match=r"in_channels, out_channels and kernel_size give a "
                                         r"weight of shape \(.*\) \(float32\), too large for "
                                         "any array"):
        make()


def test_weight_larger_than_memory():
    """96 TiB fits an array's index range but no machine's memory: a ValueError too."""
    with pytest.raises(ValueError, match=r"^Conv1d: in_channels, out_channels and kernel_size "
                                         r"give a weight of shape \(6, 4, 1099511627776\) "
                                         r"\(float32\), which would need 96.0 TiB, more than "
                                         "this machine's .* of memory$"):
        pyconv.Conv1d(4, 6, 2**40)


# --------------------------------------------------------------------------
# parameters and initialisation

@pytest.mark.parametrize("nd,cls", ALL, ids=IDS)
def test_parameter_shapes(nd, cls):
    k = (3, 2, 4)[:nd]
    m = cls(4, 6, k, groups=2)
    if cls in TCONVS.values():
        assert m.weight.shape == (4, 3) + k
    else:
        assert m.weight.shape == (6, 2) + k
    assert m.bias.shape == (6,)
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    assert cls(4, 6, k, bias=False).bias is None
    assert len(m.parameters()) == 2 if hasattr(m, "parameters") else True


BOUNDS = [
    (pyconv.Conv2d, (16, 32, 3), {}, 1 / 12),
    (pyconv.ConvTranspose2d, (16, 32, 3), {}, 1 / math.sqrt(288)),
    (pyconv.ConvTranspose2d, (16, 32, (3, 5)), dict(groups=4), 1 / math.sqrt(120)),
    (pyconv.Conv1d, (6, 3, 5), dict(groups=3), 1 / math.sqrt(10)),
    (pyconv.Conv3d, (2, 4, (1, 2, 3)), {}, 1 / math.sqrt(12)),
    (pyconv.ConvTranspose1d, (4, 6, 3), dict(groups=2), 1 / 3),
    (pyconv.ConvTranspose3d, (3, 2, 2), {}, 1 / 4),
]


@pytest.mark.parametrize("cls,args,kw,bound", BOUNDS,
                         ids=[f"{c.__name__}{a}{k or ''}" for c, a, k, _ in BOUNDS])
def test_init_bounds(cls, args, kw, bound):
    m = cls(*args, **kw, dtype=np.float64, rng=0)
    fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
    assert math.isclose(bound, 1 / math.sqrt(fan_in))
    w = np.concatenate([cls(*args, **kw, dtype=np.float64, rng=s).weight.ravel()
                        for s in range(20)])
    b = np.concatenate([cls(*args, **kw, dtype=np.float64, rng=s).bias for s in range(20)])
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)
    assert np.max(np.abs(w)) > 0.97 * bound  # the bound is actually reached
    assert np.max(np.abs(b)) > 0.5 * bound


def test_init_distribution():
    """A large module: weights are U(-b, b) (KS test and moments)."""
    m = pyconv.Conv2d(64, 128, 3, dtype=np.float64, rng=123)
    b = 1 / math.sqrt(64 * 9)
    w = m.weight.ravel()
    assert w.size == 128 * 64 * 9
    ks = stats.kstest(w, stats.uniform(loc=-b, scale=2 * b).cdf)
    assert ks.pvalue > 1e-3, ks
    assert abs(w.mean()) < 0.02 * b
    assert abs(w.var() - b * b / 3) < 0.02 * b * b
    # not all the same value, not a normal distribution
    assert stats.kstest(w / (b / math.sqrt(3)), "norm").pvalue < 1e-6
    bias = pyconv.Conv2d(64, 4096, 1, dtype=np.float64, rng=5).bias
    b1 = 1 / 8
    assert stats.kstest(bias, stats.uniform(loc=-b1, scale=2 * b1).cdf).pvalue > 1e-3


def test_transposed_init_uses_out_channels():
    m = pyconv.ConvTranspose2d(4, 64, 3, dtype=np.float64, rng=3)
    b = 1 / math.sqrt(64 * 9)  # weight.shape[1] = out_channels / groups
    assert np.max(np.abs(m.weight)) <= b
    assert np.max(np.abs(m.weight)) > 0.9 * b
    assert np.max(np.abs(m.weight)) < 1 / math.sqrt(4 * 9) * 0.5


def test_complex_init():
    m = pyconv.Conv1d(4, 64, 3, dtype=np.complex128, rng=1)
    b = 1 / math.sqrt(12)
    assert m.weight.dtype == np.complex128 and m.bias.dtype == np.complex128
    for part in (m.weight.real, m.weight.imag):
        assert np.all(np.abs(part) <= b) and np.max(np.abs(part)) > 0.9 * b
    assert not np.allclose(m.weight.real, m.weight.imag)


def test_zero_element_weight():
    m = pyconv.Conv1d(0, 8, 2)
    assert m.weight.size == 0
    assert m.bias is None or np.all(m.bias == 0) or np.all(np.isfinite(m.bias))


def test_reproducibility():
    a = pyconv.Conv2d(3, 5, 3, rng=42)
    b = pyconv.Conv2d(3, 5, 3, rng=42)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)
    c = pyconv.Conv2d(3, 5, 3, rng=43)
    assert not np.array_equal(a.weight, c.weight)
    g1 = np.random.default_rng(7)
    g2 = np.random.default_rng(7)
    d = pyconv.ConvTranspose2d(3, 5, 3, rng=g1)
    e = pyconv.ConvTranspose2d(3, 5, 3, rng=g2)
    np.testing.assert_array_equal(d.weight, e.weight)
    np.testing.assert_array_equal(d.bias, e.bias)
    # the Generator is consumed: the next module differs
    f = pyconv.ConvTranspose2d(3, 5, 3, rng=g1)
    assert not np.array_equal(d.weight, f.weight)
    # weight first, then bias, from one stream: the first draws equal a plain uniform
    w = np.random.default_rng(11).uniform(-1 / math.sqrt(27), 1 / math.sqrt(27), (5, 3, 3, 3))
    np.testing.assert_allclose(pyconv.Conv2d(3, 5, 3, dtype=np.float64, rng=11).weight, w)
    # rng=None: fresh randomness each time
    assert not np.array_equal(pyconv.Conv2d(3, 5, 3).weight, pyconv.Conv2d(3, 5, 3).weight)


@pytest.mark.parametrize("dt", [np.float16, np.float32, np.float64, np.complex64,
                                np.complex128])
def test_dtype_param(dt, backend):
    m = pyconv.Conv2d(2, 3, 3, padding=1, dtype=dt, rng=0)
    assert m.weight.dtype == dt and m.bias.dtype == dt
    x = np.ones((1, 2, 4, 4), dtype=dt)
    y = call(backend, m, x)
    assert y.dtype == dt and y.shape == (1, 3, 4, 4)
    t = pyconv.ConvTranspose2d(2, 3, 3, dtype=dt, rng=0)
    assert call(backend, t, x).dtype == dt


# --------------------------------------------------------------------------
# repr (§7)

REPRS = [
    (lambda: pyconv.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=False,
                           padding_mode="circular"),
     "Conv2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), "
     "groups=2, bias=False, padding_mode=circular)"),
    (lambda: pyconv.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                    bias=False, dilation=2),
     "ConvTranspose2d(4, 6, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), "
     "dilation=(2, 2), output_padding=(1, 1), groups=2, bias=False)"),
    (lambda: pyconv.Conv1d(4, 6, 3), "Conv1d(4, 6, kernel_size=(3,), stride=(1,))"),
    (lambda: pyconv.Conv3d(4, 6, (1, 2, 3), padding="same"),
     "Conv3d(4, 6, kernel_size=(1, 2, 3), stride=(1, 1, 1), padding=same)"),
    (lambda: pyconv.ConvTranspose1d(4, 6, 3), "ConvTranspose1d(4, 6, kernel_size=(3,), stride=(1,))"),
    (lambda: pyconv.Conv2d(4, 6, 3, padding="valid"),
     "Conv2d(4, 6, kernel_size=(3, 3), stride=(1, 1), padding=valid)"),
    (lambda: pyconv.ConvTranspose3d(2, 4, 2, output_padding=1, stride=2),
     "ConvTranspose3d(2, 4, kernel_size=(2, 2, 2), stride=(2, 2, 2), "
     "output_padding=(1, 1, 1))"),
]


@pytest.mark.parametrize("make,text", REPRS, ids=[r[1].split("(")[0] + str(i)
                                                  for i, r in enumerate(REPRS)])
def test_repr(make, text):
    assert repr(make()) == text


def test_repr_other_dtype_mentions_dtype():
    r = repr(pyconv.Conv1d(4, 6, 3, dtype=np.float64))
    assert r.startswith("Conv1d(4, 6, kernel_size=(3,), stride=(1,)")


# --------------------------------------------------------------------------
# forward

@pytest.mark.parametrize("nd,cls", ALL, ids=IDS)
def test_forward_is_call_and_functional(nd, cls, backend, rng):
    k = (3, 2, 2)[:nd]
    kw = dict(stride=2, padding=1, dilation=(2, 1, 1)[:nd], groups=2)
    m = cls(4, 6, k, **kw, dtype=np.float64, rng=rng)
    x = rng.standard_normal((2, 4) + (7, 6, 5)[:nd])
    y = call(backend, m, x)
    with pyconv.use_backend(backend):
        assert_close(m.forward(x), y, np.float64, "forward != __call__", rtol=0)
    if cls in TCONVS.values():
        f = getattr(pyconv, f"conv_transpose{nd}d")
        expected = f(x, m.weight, m.bias, m.stride, m.padding, m.output_padding, m.groups,
                     m.dilation, backend=backend)
    else:
        f = getattr(pyconv, f"conv{nd}d")
        expected = f(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups,
                     backend=backend)
    assert_close(y, expected, np.float64, "module != functional", rtol=0)
    # unbatched
    assert_close(call(backend, m, x[0]), y[0], np.float64, "unbatched", rtol=0)


def test_module_uses_assigned_parameters(backend):
    m = pyconv.Conv1d(1, 1, 2, dtype=np.float64)
    m.weight = np.array([[[1.0, -1.0]]])
    m.bias = np.array([0.5])
    y = call(backend, m, np.array([[[1.0, 3.0, 6.0]]]))
    np.testing.assert_allclose(y, [[[-1.5, -2.5]]])
    m.bias = None
    np.testing.assert_allclose(call(backend, m, np.array([[[1.0, 3.0, 6.0]]])), [[[-2.0, -3.0]]])


def test_transposed_output_size_overrides_output_padding(backend, rng):
    m = pyconv.ConvTranspose2d(2, 3, 3, stride=3, output_padding=2, dtype=np.float64, rng=0)
    x = rng.standard_normal((1, 2, 4, 4))
    assert call(backend, m, x).shape == (1, 3, 14, 14)
    for size in (12, 13, 14):
        y = call(backend, m, x, output_size=(size, 12))
        assert y.shape == (1, 3, size, 12)
        ref = pyconv.conv_transpose2d(x, m.weight, m.bias, 3, 0, (size - 12, 0),
                                      backend=backend)
        assert_close(y, ref, np.float64, f"output_size {size}", rtol=0)


def _roundtrip_params():
    return list(itertools.product(range(13, 24), range(13, 17), range(2, 5), range(1, 5),
                                  range(1, 4), range(0, 3)))


def _roundtrip(backend, h, w, k, d, s, p):
    x = np.ones((2, 3, h, w), np.float32)
    if h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1:
        return
    conv = pyconv.Conv2d(3, 2, k, stride=s, padding=p, dilation=d, rng=0)
    tconv = pyconv.ConvTranspose2d(2, 3, k, stride=s, padding=p, dilation=d, rng=0)
    y = call(backend, conv, x)
    z = call(backend, tconv, y, output_size=x.shape)
    assert z.shape == x.shape, (h, w, k, d, s, p)


def test_downsample_upsample_subset(backend):
    """test_ConvTranspose2d_output_size_downsample_upsample (a deterministic subset)."""
    params = _roundtrip_params()
    for i in range(0, len(params), 97):
        _roundtrip(backend, *params[i])


@pytest.mark.slow
def test_downsample_upsample_full(backend):
    for params in _roundtrip_params():
        _roundtrip(backend, *params)


# --------------------------------------------------------------------------
# padding modes on modules (§5)

def test_same_with_mode_pads(backend, rng):
    """Conv2d(k=(4,3), dilation=(1,2), padding='same'): F.pad spec [2, 2, 1, 2]."""
    x = rng.standard_normal((1, 2, 6, 7))
    for mode, np_mode in (("replicate", "edge"), ("reflect", "reflect"), ("circular", "wrap"),
                          ("zeros", "constant")):
        m = pyconv.Conv2d(2, 3, (4, 3), dilation=(1, 2), padding="same", padding_mode=mode,
                          dtype=np.float64, rng=0)
        xp = np.pad(x, ((0, 0), (0, 0), (1, 2), (2, 2)), mode=np_mode)
        expected = pyconv.conv2d(xp, m.weight, m.bias, dilation=(1, 2), backend=backend)
        y = call(backend, m, x)
        assert y.shape == (1, 3, 6, 7)
        assert_close(y, expected, np.float64, mode)


@pytest.mark.parametrize("nd,k,pads", [(1, 10, [(4, 5)]), (2, (3, 4), [(1, 1), (1, 2)]),
                                       (3, (2, 3, 4), [(0, 1), (1, 1), (1, 2)])])
def test_module_same_padding_modes(nd, k, pads, backend, rng):
    """test_Conv{1,2,3}d_module_same_padding: modes with 'same' == explicit pads."""
    S = (12, 6, 6)[:nd]
    x = rng.standard_normal((1, 2) + S)
    for mode, np_mode in (("replicate", "edge"), ("reflect", "reflect"), ("circular", "wrap")):
        m = CONVS[nd](2, 2, k, padding="same", padding_mode=mode, dtype=np.float64, rng=0)
        xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=np_mode)
        expected = getattr(pyconv, f"conv{nd}d")(xp, m.weight, m.bias, backend=backend)
        assert_close(call(backend, m, x), expected, np.float64, f"{mode} nd={nd}")
    # zeros mode: module == functional 'same'
    m = CONVS[nd](2, 2, k, padding="same", dtype=np.float64, rng=0)
    f = getattr(pyconv, f"conv{nd}d")(x, m.weight, m.bias, padding="same", backend=backend)
    assert_close(call(backend, m, x), f, np.float64, "zeros same")


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("padding", [1, 0, "same"])
def test_zero_channels_with_reflect_or_replicate(nd, padding, backend):
    """Like PyTorch's padding of an input without channels: an error, whatever the padding.

    'zeros' and 'circular' give an empty result, also like PyTorch.
    """
    x = np.ones((2, 0) + (6,) * nd, np.float32)
    for mode in ("reflect", "replicate"):
        m = CONVS[nd](0, 4, 3, padding=padding, padding_mode=mode)
        for batch in (x, x[:0], x[0]):
            with pytest.raises(ValueError, match=rf"conv{nd}d\(\): padding_mode='{mode}' needs "
                                                 "an input with channels, got input of shape "
                                                 rf"\[\d, 0, 6.*\] with 0 channels"):
                call(backend, m, batch)
        f = getattr(pyconv, f"conv{nd}d")
        with pytest.raises(ValueError, match=f"padding_mode='{mode}' needs an input with channels"):
            f(x, m.weight, padding=padding, padding_mode=mode, backend=backend)
    for mode in ("zeros", "circular"):
        m = CONVS[nd](0, 4, 3, padding=padding, padding_mode=mode)
        size = 4 if padding == 0 else 6
        assert call(backend, m, x).shape == (2, 0) + (size,) * nd
        assert call(backend, m, x[0]).shape == (0,) + (size,) * nd


def test_padding_mode_n0_and_unbatched(backend):
    for mode in ("reflect", "replicate", "circular"):
        m = pyconv.Conv2d(2, 3, 3, padding=1, padding_mode=mode)
        assert call(backend, m, np.ones((0, 2, 5, 5), np.float32)).shape == (0, 3, 5, 5)
        assert call(backend, m, np.ones((2, 5, 5), np.float32)).shape == (3, 5, 5)


def test_padding_mode_constraints(backend):
    # reflect: pad must be < L (per side); replicate: L must be > 0; circular: pad <= L
    with pytest.raises(ValueError):
        call(backend, pyconv.Conv1d(1, 1, 9, padding="same", padding_mode="reflect"),
             np.ones((1, 1, 3), np.float32))
    with pytest.raises(ValueError):
        call(backend, pyconv.Conv2d(1, 1, 1, padding=(0, 4), padding_mode="reflect"),
             np.ones((1, 1, 5, 4), np.float32))
    assert call(backend, pyconv.Conv2d(1, 1, 1, padding=(0, 3), padding_mode="reflect"),
                np.ones((1, 1, 5, 4), np.float32)).shape == (1, 1, 5, 10)
    with pytest.raises(ValueError):
        call(backend, pyconv.Conv1d(1, 1, 1, padding=2, padding_mode="replicate"),
             np.ones((1, 1, 0), np.float32))
    with pytest.raises(ValueError, match="wrap"):
        call(backend, pyconv.Conv3d(1, 1, 1, padding=(0, 0, 3), padding_mode="circular"),
             np.ones((1, 1, 2, 2, 2), np.float32))


def test_padding_mode_complex_and_float16(backend, rng):
    x = (rng.standard_normal((1, 2, 5)) + 1j * rng.standard_normal((1, 2, 5)))
    m = pyconv.Conv1d(2, 2, 3, padding=2, padding_mode="circular", dtype=np.complex128, rng=0)
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2)), mode="wrap")
    assert_close(call(backend, m, x), pyconv.conv1d(xp, m.weight, m.bias, backend=backend),
                 np.complex128, "complex circular")
    m16 = pyconv.Conv1d(2, 2, 3, padding=2, padding_mode="reflect", dtype=np.float16, rng=0)
    y = call(backend, m16, x.real.astype(np.float16))
    assert y.dtype == np.float16 and y.shape == (1, 2, 7)


def test_module_promotes_input_dtype(backend, rng):
    """torch refuses float64 input on float32 parameters; pyconv promotes (docs/differences.rst)."""
    m = pyconv.Conv2d(2, 3, 3, rng=0)
    x = rng.standard_normal((1, 2, 5, 5))
    y = call(backend, m, x)
    assert y.dtype == np.float64
    expected = pyconv.conv2d(x, m.weight.astype(np.float64), m.bias.astype(np.float64),
                             backend="reference")
    assert_close(y, expected, np.float64, "promoted module")
    t = pyconv.ConvTranspose1d(2, 3, 3, rng=0)
    # NumPy promotion: result_type(int32, float32) is float64
    assert call(backend, t, np.ones((1, 2, 4), np.int32)).dtype == np.result_type(np.int32,
                                                                                  np.float32)


@pytest.mark.parametrize("kwargs", [dict(in_channels=2.0), dict(out_channels="4"),
                                    dict(kernel_size=(3.0,))])
def test_module_non_int_sizes_are_type_errors(kwargs):
    args = dict(in_channels=2, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(TypeError):
        pyconv.Conv1d(**args)
