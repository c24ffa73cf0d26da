"""84 edge cases of PyTorch 2.13's convolutions, and further corners, as pyconv does them.

Each case's outcome (shape, or error and the facts its message carries) was
checked against PyTorch 2.13 when it was written down here; the rules they
follow are on docs/semantics.rst.  Validation cases run once (the
``front_layer`` fixture: checks are the front layer's), the others on every
backend.

* Successes check the output shape (and dtype).
* Errors: pyconv raises ``ValueError`` where PyTorch raises ``RuntimeError`` /
  ``NotImplementedError`` (and ``TypeError`` where PyTorch does); the message
  must carry the same facts as PyTorch's (the argument and the values), which
  are checked with order-free regular expressions, never full texts.
* Deliberate differences (docs/differences.rst): mixed dtypes follow
  NumPy promotion instead of raising, integer and bool inputs are computed in
  float64 (so no int8 wrap-around and no bool NotImplementedError), the
  functional transposed ops accept ``output_size=``, and a zero dilation is a
  ``ValueError`` mentioning "dilation".
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import pyconv

from helpers import assert_close

RNG = np.random.default_rng(7)


def t(*shape, dtype=np.float32):
    """A random float32 array of ``shape``."""
    return RNG.standard_normal(shape).astype(dtype)


def shp(*dims):
    """Regex for a shape printed as [a, b] or (a, b) (a 1-tuple may print as (a,))."""
    inner = r",\s*".join(str(d) for d in dims)
    return r"[\[(]" + inner + r",?[\])]"


def run_module(backend, module, x, **kw):
    """Call a module on ``backend`` (None: the one in force)."""
    if backend is None:
        return module(x, **kw) if not kw else module.forward(x, **kw)
    with pyconv.use_backend(backend):
        return module(x, **kw) if not kw else module.forward(x, **kw)


def check_facts(exc, facts, case_id):
    msg = str(exc)
    for fact in facts:
        assert re.search(fact, msg, flags=re.S), (
            f"{case_id}: message {msg!r} lacks the fact /{fact}/")


# --------------------------------------------------------------------------
# Shapes / successes (33)

C = pyconv
SUCCESSES = [
    ("conv1d-stride-pad-dil",
     lambda B: C.conv1d(t(2, 4, 10), t(6, 4, 3), stride=2, padding=1, dilation=2, backend=B),
     (2, 6, 4)),
    ("conv2d-groups-stride",
     lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 2, 3, 3), groups=2, stride=(2, 1), backend=B),
     (2, 6, 4, 7)),
    ("conv2d-dil-per-dim",
     lambda B: C.conv2d(t(1, 4, 5, 5), t(1, 4, 2, 3), stride=2, padding=1, dilation=(2, 3),
                        backend=B), (1, 1, 3, 1)),
    ("conv3d-groups3-stride2",
     lambda B: C.conv3d(t(3, 9, 3, 1, 9), t(3, 3, 3, 1, 9), groups=3, stride=2, backend=B),
     (3, 3, 1, 1, 1)),
    ("conv2d-1tuple-broadcast",
     lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 4, 3, 3), stride=(2,), backend=B), (2, 6, 4, 4)),
    ("conv1d-kernel-eq-input", lambda B: C.conv1d(t(1, 1, 3), t(1, 1, 3), backend=B), (1, 1, 1)),
    ("conv2d-padded-eq-kernel",
     lambda B: C.conv2d(t(1, 1, 5, 5), t(1, 1, 7, 7), padding=1, backend=B), (1, 1, 1, 1)),
    ("convt1d-op",
     lambda B: C.conv_transpose1d(t(1, 3, 4), t(3, 3, 3), stride=2, padding=2, output_padding=1,
                                  backend=B), (1, 3, 6)),
    ("convt1d-positional",
     lambda B: C.conv_transpose1d(t(2, 2, 4), t(2, 2, 4), None, 3, 1, 2, 2, 4, backend=B),
     (2, 4, 22)),
    ("convt2d-positional-op-lt-dilation",
     lambda B: C.conv_transpose2d(t(2, 2, 4, 4), t(2, 2, 4, 5), None, (3, 2), (1, 2), (2, 3), 2,
                                  4, backend=B), (2, 4, 22, 22)),
    ("convt3d-default",
     lambda B: C.conv_transpose3d(t(1, 4, 5, 5, 5), t(4, 8, 3, 3, 3), backend=B), (1, 8, 7, 7, 7)),
    ("convt2d-stride1-dil2-op1",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(4, 6, 3, 3), stride=1, dilation=2,
                                  output_padding=1, backend=B), (2, 6, 14, 14)),
    ("convt1d-output-exactly-1",
     lambda B: C.conv_transpose1d(t(1, 1, 1), t(1, 1, 3), padding=1, backend=B), (1, 1, 1)),
    ("conv2d-unbatched", lambda B: C.conv2d(t(4, 9, 9), t(6, 4, 3, 3), backend=B), (6, 7, 7)),
    ("convt3d-unbatched",
     lambda B: C.conv_transpose3d(t(4, 5, 5, 5), t(4, 6, 3, 3, 3), backend=B), (6, 7, 7, 7)),
    ("conv1d-same-even",
     lambda B: C.conv1d(t(2, 4, 10), t(5, 4, 4), padding="same", backend=B), (2, 5, 10)),
    ("conv3d-same-dil3",
     lambda B: C.conv3d(t(1, 1, 10, 11, 12), t(1, 1, 4, 4, 4), padding="same", dilation=3,
                        backend=B), (1, 1, 10, 11, 12)),
    ("conv1d-same-kernel-gt-input",
     lambda B: C.conv1d(t(1, 1, 2), t(1, 1, 5), padding="same", backend=B), (1, 1, 2)),
    ("conv1d-valid-stride",
     lambda B: C.conv1d(t(1, 4, 5), t(1, 4, 3), stride=(2,), padding="valid", backend=B),
     (1, 1, 2)),
    ("conv2d-N0",
     lambda B: C.conv2d(t(0, 4, 9, 9), t(6, 4, 3, 3), t(6), stride=2, padding=1, backend=B),
     (0, 6, 5, 5)),
    ("conv1d-Cin0", lambda B: C.conv1d(t(2, 0, 10), t(6, 0, 3), backend=B), (2, 0, 8)),
    ("convt2d-N0",
     lambda B: C.conv_transpose2d(t(0, 4, 3, 3), t(4, 3, 3, 3), groups=2, stride=2, backend=B),
     (0, 6, 7, 7)),
    ("Conv1d-same-replicate",
     lambda B: run_module(B, C.Conv1d(4, 5, 4, padding="same", padding_mode="replicate"),
                          t(2, 4, 10)), (2, 5, 10)),
    ("Conv2d-reflect",
     lambda B: run_module(B, C.Conv2d(2, 3, 3, 2, (1, 2), padding_mode="reflect"),
                          t(2, 2, 4, 4)), (2, 3, 2, 3)),
    ("Conv3d-circular",
     lambda B: run_module(B, C.Conv3d(2, 3, 3, 2, (1, 2, 3), padding_mode="circular"),
                          t(2, 2, 4, 4, 4)), (2, 3, 2, 3, 4)),
    ("Conv1d-circular-pad-eq-L",
     lambda B: run_module(B, C.Conv1d(1, 1, 3, padding=3, padding_mode="circular"),
                          t(1, 1, 3)), (1, 1, 7)),
    ("Conv1d-replicate-pad10",
     lambda B: run_module(B, C.Conv1d(1, 1, 3, padding=10, padding_mode="replicate"),
                          t(1, 1, 1)), (1, 1, 19)),
    ("ConvTranspose2d-output_size",
     lambda B: run_module(B, C.ConvTranspose2d(3, 4, 3, 3, 0, 2), t(2, 3, 6, 6),
                          output_size=(19, 20)), (2, 4, 19, 20)),
    ("ConvTranspose2d-output_size-unbatched",
     lambda B: run_module(B, C.ConvTranspose2d(1, 1, 16, 16, 7, bias=False), t(1, 15, 13),
                          output_size=(1, 240, 200)), (1, 240, 200)),
    ("ConvTranspose3d-output_size-5",
     lambda B: run_module(B, C.ConvTranspose3d(2, 2, 2), t(1, 2, 1, 1, 1),
                          output_size=(1, 2, 2, 2, 2)), (1, 2, 2, 2, 2)),
    ("ConvTranspose1d-output_size-leading-ignored",
     lambda B: run_module(B, C.ConvTranspose1d(4, 6, 3, stride=2), t(2, 4, 5),
                          output_size=[99, 99, 12]), (2, 6, 12)),
    ("ConvTranspose2d-grouped-weight-shape",
     lambda B: C.ConvTranspose2d(4, 6, 3, groups=2).weight, (4, 3, 3, 3)),
    ("Conv2d-grouped-weight-shape", lambda B: C.Conv2d(4, 8, (3, 5), groups=4).weight,
     (8, 1, 3, 5)),
]


@pytest.mark.parametrize("case_id,call,shape", SUCCESSES, ids=[c[0] for c in SUCCESSES])
def test_success(case_id, call, shape, backend):
    y = call(backend)
    assert isinstance(y, np.ndarray), case_id
    assert y.shape == shape, f"{case_id}: shape {y.shape} != {shape}"
    assert y.dtype == np.float32, f"{case_id}: dtype {y.dtype}"


# --------------------------------------------------------------------------
# Errors (51; of which 6 dtype cases are successes in pyconv, see below)

V, T = ValueError, TypeError
ERRORS = [
    ("conv1d-rank-1", lambda B: C.conv1d(t(10), t(6, 4, 3), backend=B), V,
     [r"conv1d", r"\b2\b.*\b3\b", shp(10)]),
    ("conv2d-rank-5", lambda B: C.conv2d(t(1, 10, 1, 28, 28), t(6, 1, 5, 5), backend=B), V,
     [r"conv2d", r"\b3\b.*\b4\b", shp(1, 10, 1, 28, 28)]),
    ("weight-rank-2", lambda B: C.conv1d(t(2, 4, 10), t(6, 4), backend=B), V,
     [r"weight", r"(three|3)"]),
    ("weight-rank-vs-input", lambda B: C.conv1d(t(2, 4, 10), t(6, 4, 3, 3), backend=B), V,
     [r"\b4\b", r"\b3\b", shp(6, 4, 3, 3), shp(2, 4, 10)]),
    ("channel-mismatch", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 3, 3, 3), backend=B), V,
     [r"groups=1", shp(6, 3, 3, 3), shp(2, 4, 9, 9), r"\b3 channels", r"\b4 channels"]),
    ("groups-not-divisible", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 1, 3, 3), groups=4, backend=B),
     V, [r"groups=4", r"divisible by 4", shp(6, 1, 3, 3)]),
    ("groups-gt-weight", lambda B: C.conv2d(t(2, 8, 9, 9), t(6, 1, 3, 3), groups=8, backend=B), V,
     [r"groups=8", r"at least 8", shp(6, 1, 3, 3)]),
    ("groups-0", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 4, 3, 3), groups=0, backend=B), V,
     [r"groups", r"(non-positive|positive)"]),
    ("convt-channel-mismatch",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(5, 6, 3, 3), backend=B), V,
     [r"transpose", shp(5, 6, 3, 3), shp(2, 4, 9, 9), r"\b5 channels", r"\b4 channels"]),
    ("bias-size", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 4, 3, 3), t(5), backend=B), V,
     [r"bias", r"\b6 elements", shp(5), shp(6, 4, 3, 3)]),
    ("convt-bias-size",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(4, 3, 3, 3), t(3), groups=2, backend=B), V,
     [r"bias", r"\b6 elements", shp(3)]),
    ("stride-0", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 4, 3, 3), stride=0, backend=B), V,
     [r"stride", r"(non-positive|positive)"]),
    ("convt-stride-neg",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(4, 6, 3, 3), stride=-1, backend=B), V,
     [r"stride", r"(non-positive|positive)", r"-1"]),
    ("padding-neg", lambda B: C.conv2d(t(2, 4, 9, 9), t(6, 4, 3, 3), padding=-1, backend=B), V,
     [r"negative padding", r"-1"]),
    ("output_padding-neg",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(4, 6, 3, 3), output_padding=-1, backend=B), V,
     [r"negative output_padding", r"-1"]),
    ("dilation-neg", lambda B: C.conv3d(t(1, 1, 4, 4, 4), t(1, 1, 2, 2, 2), dilation=(-1,),
                                        backend=B), V,
     [r"dilation", r"(greater than zero|positive)", r"-1"]),
    ("dilation-0", lambda B: C.conv2d(t(1, 2, 10, 10), t(3, 2, 3, 3), dilation=0, backend=B), V,
     [r"dilation"]),
    ("stride-length", lambda B: C.conv1d(t(2, 4, 10), t(6, 4, 3), stride=(2, 2), backend=B), V,
     [r"stride", r"\b1\b", r"stride=[\[(]2, 2[\])]"]),
    ("output_padding-length",
     lambda B: C.conv_transpose1d(t(2, 4, 10), t(4, 6, 3), stride=2, output_padding=(1, 1),
                                  backend=B), V,
     [r"output_padding", r"\b1\b", r"[\[(]1, 1[\])]"]),
    ("stride-float", lambda B: C.conv1d(t(2, 4, 10), t(6, 4, 3), stride=2.0, backend=B), T,
     [r"stride", r"float|2\.0"]),
    ("output_padding-too-big",
     lambda B: C.conv_transpose2d(t(2, 4, 9, 9), t(4, 6, 3, 3), stride=2, output_padding=2,
                                  backend=B), V,
     [r"output.?padding", r"smaller than", r"stride", r"dilation", r"\b2\b"]),
    ("output_padding-ge-stride-1d",
     lambda B: C.conv_transpose1d(t(2, 4, 10), t(4, 6, 3), output_padding=1, backend=B), V,
     [r"output.?padding", r"smaller than", r"stride", r"dilation"]),
    ("kernel-gt-padded-input",
     lambda B: C.conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), dilation=3, backend=B), V,
     [r"\(5 x 5\)", r"\(7 x 7\)", r"[Kk]ernel"]),
    ("kernel-gt-empty-input", lambda B: C.conv1d(t(2, 4, 0), t(6, 4, 1), backend=B), V,
     [r"\(0\)|\b0\b", r"[Kk]ernel"]),
    ("empty-spatial", lambda B: C.conv1d(t(2, 4, 0), t(6, 4, 1), padding=1, backend=B), V,
     [r"(batch|channel)", r"[\[(]2, 4, (1, )?0[\])]"]),
    ("convt-output-0",
     lambda B: C.conv_transpose2d(t(1, 1, 1, 1), t(1, 1, 2, 2), padding=1, backend=B), V,
     [r"\(1 x 1\)", r"\(0 x 0\)", r"too small"]),
    ("convt-output-neg",
     lambda B: C.conv_transpose3d(t(1, 1, 1, 1, 1), t(1, 1, 1, 1, 1), padding=1, backend=B), V,
     [r"\(-1 x -1 x -1\)", r"too small"]),
    ("same-strided", lambda B: C.conv1d(t(1, 1, 10), t(1, 1, 3), padding="same", stride=2,
                                        backend=B), V,
     [r"padding='same'", r"strided"]),
    ("same-stride-length",
     lambda B: C.conv2d(t(1, 1, 10, 10), t(1, 1, 3, 3), padding="same", stride=(1, 1, 1),
                        backend=B), V,
     [r"stride", r"\b2\b"]),
    ("padding-string-case", lambda B: C.conv1d(t(1, 1, 10), t(1, 1, 3), padding="SAME",
                                               backend=B), V,
     [r"padding", r"'SAME'"]),
    ("convt-padding-string",
     lambda B: C.conv_transpose1d(t(1, 1, 10), t(1, 1, 3), padding="same", backend=B), T,
     [r"padding", r"str|'same'"]),
    ("Conv2d-in_channels-groups", lambda B: C.Conv2d(4, 6, 3, groups=3), V,
     [r"in_channels must be divisible by groups"]),
    ("Conv2d-out_channels-groups", lambda B: C.Conv2d(6, 4, 3, groups=3), V,
     [r"out_channels must be divisible by groups"]),
    ("Conv1d-groups-0", lambda B: C.Conv1d(1, 1, 3, groups=0), V,
     [r"groups must be a positive integer"]),
    ("Conv2d-padding-foo", lambda B: C.Conv2d(4, 6, 3, padding="foo"), V,
     [r"[Ii]nvalid padding string 'foo'", r"same", r"valid"]),
    ("Conv2d-same-strided", lambda B: C.Conv2d(4, 6, 3, padding="same", stride=(1, 2)), V,
     [r"padding='same' is not supported for strided convolutions"]),
    ("Conv2d-padding_mode-xyz", lambda B: C.Conv2d(3, 3, 3, padding_mode="xyz"), V,
     [r"padding_mode must be one of", r"zeros", r"reflect", r"replicate", r"circular",
      r"padding_mode='xyz'"]),
    ("ConvTranspose2d-reflect", lambda B: C.ConvTranspose2d(3, 3, 3, padding_mode="reflect"), V,
     [r"Only .zeros. padding mode is supported for ConvTranspose2d"]),
    ("ConvTranspose2d-padding-same",
     lambda B: run_module(B, C.ConvTranspose2d(4, 6, 3, padding="same"), t(1, 4, 5, 5)), T,
     [r"padding"]),
    ("Conv1d-reflect-pad-ge-L",
     lambda B: run_module(B, C.Conv1d(1, 1, 3, padding=3, padding_mode="reflect"), t(1, 1, 3)), V,
     [r"[Pp]adding", r"[\[(]3, 3[\])]", r"(less|smaller) than"]),
    ("Conv1d-circular-wrap-twice",
     lambda B: run_module(B, C.Conv1d(1, 1, 3, padding=4, padding_mode="circular"), t(1, 1, 3)),
     V, [r"wrap"]),
    ("Conv2d-reflect-rank-2",
     lambda B: run_module(B, C.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"), t(5, 5)), V,
     [shp(5, 5)]),
    ("ConvTranspose2d-output_size-range",
     lambda B: run_module(B, C.ConvTranspose2d(4, 6, 3, stride=2, padding=1), t(2, 4, 5, 5),
                          output_size=[11, 11]), V,
     [r"requested an output size of \[11, 11\]", r"\[9, 9\]", r"\[10, 10\]", r"\b5, 5\b"]),
    ("ConvTranspose2d-output_size-length",
     lambda B: run_module(B, C.ConvTranspose2d(4, 6, 3, stride=2, padding=1), t(2, 4, 5, 5),
                          output_size=[6, 10, 10]), V,
     [r"output_size", r"\b2 or 4\b", r"\b3\b", r"\b4-?D"]),
    ("ConvTranspose1d-output_size-stride1-dilated",
     lambda B: run_module(B, C.ConvTranspose1d(1, 1, 3, stride=1, dilation=3), t(1, 1, 4),
                          output_size=[11]), V,
     [r"valid sizes range from \[10\] to \[10\]"]),
]


@pytest.mark.parametrize("case_id,call,exc,facts", ERRORS, ids=[c[0] for c in ERRORS])
def test_error(case_id, call, exc, facts, front_layer):
    with pytest.raises(exc) as info:
        call(front_layer)
    check_facts(info.value, facts, case_id)


def test_errors_name_the_argument_and_values(front_layer):
    """A wrong call says which argument is wrong and what it got, as PyTorch's message does."""
    with pytest.raises(ValueError) as info:
        pyconv.conv2d(t(2, 4, 9, 9), t(6, 3, 3, 3), groups=1, backend=front_layer)
    check_facts(info.value, [r"conv2d\(\)", r"groups=1", shp(6, 3, 3, 3), shp(2, 4, 9, 9),
                             r"must have 3 channels", r"with 4 channels"], "channels")
    with pytest.raises(TypeError) as info:
        pyconv.conv_transpose1d(t(1, 2, 5), t(2, 2, 3), stride=1.5, backend=front_layer)
    check_facts(info.value, [r"conv_transpose1d\(\)", r"stride", r"float", r"1\.5"], "stride")


# --------------------------------------------------------------------------
# The 6 dtype errors of PyTorch: deliberate differences (NumPy promotion)

def _ref(fn, x, w, b=None, **kw):
    """The same call with everything cast to float64 (complex128 for complex)."""
    dt = np.result_type(x, w, *(() if b is None else (b,)))
    dt = np.complex128 if dt.kind == "c" else np.float64
    cast = [None if a is None else np.asarray(a).astype(dt) for a in (x, w, b)]
    return fn(*cast, backend="reference", **kw)


PROMOTIONS = [
    ("f32-input-f64-weight", "conv2d", lambda: (t(2, 4, 9, 9), t(6, 4, 3, 3, dtype=np.float64),
                                                None), np.float64),
    ("f64-input-f32-weight", "conv2d", lambda: (t(2, 4, 9, 9, dtype=np.float64), t(6, 4, 3, 3),
                                                None), np.float64),
    ("f64-bias", "conv2d", lambda: (t(2, 4, 9, 9), t(6, 4, 3, 3), t(6, dtype=np.float64)),
     np.float64),
    ("complex64-input-f32-weight", "conv1d",
     lambda: ((t(2, 4, 10) + 1j * t(2, 4, 10)).astype(np.complex64), t(6, 4, 3), None),
     np.complex64),
    ("bool", "conv2d", lambda: (np.ones((1, 1, 3, 3), bool), np.ones((1, 1, 2, 2), bool), None),
     np.float64),
    ("int32-transposed", "conv_transpose2d",
     lambda: (np.arange(9, dtype=np.int32).reshape(1, 1, 3, 3),
              np.arange(4, dtype=np.int32).reshape(1, 1, 2, 2), None), np.float64),
]


@pytest.mark.parametrize("case_id,op,make,out_dtype", PROMOTIONS, ids=[c[0] for c in PROMOTIONS])
def test_dtype_promotion_instead_of_error(case_id, op, make, out_dtype, backend):
    x, w, b = make()
    fn = getattr(pyconv, op)
    y = fn(x, w, b, backend=backend)
    assert y.dtype == out_dtype, f"{case_id}: dtype {y.dtype} != {np.dtype(out_dtype)}"
    expected = _ref(fn, x, w, b)
    assert_close(y, expected.astype(out_dtype), out_dtype, case_id)


def test_bool_values(backend):
    y = pyconv.conv2d(np.ones((1, 1, 3, 3), bool), np.ones((1, 1, 2, 2), bool), backend=backend)
    np.testing.assert_array_equal(y, np.full((1, 1, 2, 2), 4.0))


def test_int_transposed_values(backend):
    """Integer operands: exact float64 sums under exact algorithms; a transform
    path (``cython[fft]``) rounds, so by default the check is to rounding."""
    x = np.arange(9, dtype=np.int32).reshape(1, 1, 3, 3)
    w = np.arange(4, dtype=np.int32).reshape(1, 1, 2, 2)
    with pyconv.use_algorithms("exact"):
        y = pyconv.conv_transpose2d(x, w, backend=backend)
    expected = np.zeros((1, 1, 4, 4))
    for i in range(3):
        for j in range(3):
            expected[0, 0, i:i + 2, j:j + 2] += x[0, 0, i, j] * w[0, 0]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
    assert y.dtype == np.float64
    with pyconv.use_algorithms("exact"):       # integer sums: exact on the exact paths
        np.testing.assert_array_equal(pyconv.conv_transpose2d(x, w, backend=backend), expected)


def test_int8_no_wraparound(backend):
    """torch gives 16 (int8 wrap-around); pyconv computes ints in float64."""
    x = np.full((1, 1, 1, 1), 100, np.int8)
    y = pyconv.conv2d(x, x, backend=backend)
    assert y.dtype == np.float64
    assert y.item() == 10000.0


# --------------------------------------------------------------------------
# Additional verified corner behaviours

def test_N0_skips_output_padding_rule(backend):
    y = pyconv.conv_transpose2d(t(0, 1, 2, 2), t(1, 1, 1, 1), output_padding=3, backend=backend)
    assert y.shape == (0, 1, 5, 5)


def test_N0_mixed_dtypes(backend):
    y = pyconv.conv2d(t(0, 4, 9, 9), t(6, 4, 3, 3, dtype=np.float64), backend=backend)
    assert y.shape == (0, 6, 7, 7)
    assert y.dtype == np.float64  # torch: float32 (no dtype check for N=0); pyconv promotes


def test_same_negative_dilation(front_layer):
    with pytest.raises(ValueError) as info:
        pyconv.conv1d(t(1, 2, 10), t(2, 2, 3), padding="same", dilation=-1, backend=front_layer)
    check_facts(info.value, [r"(negative padding|dilation)"], "same-negative-dilation")


def test_shape_checks_before_dtype(front_layer):
    with pytest.raises(ValueError) as info:
        pyconv.conv2d(t(2, 4, 9, 9), t(6, 3, 3, 3, dtype=np.float64), backend=front_layer)
    check_facts(info.value, [r"\b3 channels", r"\b4 channels"], "shape-before-dtype")


def test_module_1tuple_padding_with_mode(backend):
    """A 1-tuple padding on a 2-D module: fine in 'zeros' mode, an error otherwise."""
    y = run_module(backend, pyconv.Conv2d(1, 1, 3, padding=(1,)), t(1, 1, 5, 5))
    assert y.shape == (1, 1, 5, 5)
    with pytest.raises(ValueError) as info:
        run_module(backend, pyconv.Conv2d(1, 1, 3, padding=(1,), padding_mode="reflect"),
                   t(1, 1, 5, 5))
    check_facts(info.value, [r"padding"], "1tuple-padding-reflect")


# --------------------------------------------------------------------------
# Further corners: argument forms, degenerate parameters, empty batches and
# channels, unbatched inputs, output_size

def test_zero_dilation_transposed(front_layer):
    with pytest.raises(ValueError, match="dilation"):
        pyconv.conv_transpose2d(t(1, 2, 4, 4), t(2, 2, 3, 3), dilation=0, backend=front_layer)
    with pytest.raises(ValueError, match="dilation"):
        pyconv.conv_transpose3d(t(2, 2, 3, 3, 3), t(2, 2, 2, 2, 2), dilation=(1, 0, 1),
                                backend=front_layer)
    with pytest.raises(ValueError, match="dilation"):
        pyconv.conv1d(t(2, 2, 10), t(2, 2, 3), dilation=(0,), backend=front_layer)


@pytest.mark.parametrize("value", [(), (1, 2, 3)], ids=["empty", "len3"])
def test_param_length_errors(value, front_layer):
    for name in ("stride", "padding", "dilation"):
        with pytest.raises(ValueError) as info:
            pyconv.conv2d(t(1, 2, 9, 9), t(3, 2, 3, 3), **{name: value}, backend=front_layer)
        check_facts(info.value, [name, r"\b2\b"], f"{name}={value}")
    with pytest.raises(ValueError, match="output_padding"):
        pyconv.conv_transpose2d(t(1, 2, 4, 4), t(2, 3, 3, 3), stride=3, output_padding=value,
                                backend=front_layer)


@pytest.mark.parametrize("value", [2.0, True, None, "2", np.array([2, 2])],
                         ids=["float", "bool", "None", "str", "ndarray1d-ok"])
def test_param_type_errors(value, backend):
    if isinstance(value, np.ndarray):
        # a 1-D integer sequence is a sequence of ints: accepted (like a list)
        y = pyconv.conv2d(t(1, 2, 9, 9), t(3, 2, 3, 3), stride=value, backend=backend)
        assert y.shape == (1, 3, 4, 4)
        return
    with pytest.raises(TypeError, match="stride"):
        pyconv.conv2d(t(1, 2, 9, 9), t(3, 2, 3, 3), stride=value, backend=backend)
    with pytest.raises(TypeError, match="stride"):
        pyconv.conv_transpose2d(t(1, 2, 4, 4), t(2, 3, 3, 3), stride=value, backend=backend)


def test_index_like_params(backend):
    """Anything with __index__ (np.int64) works, also inside sequences."""
    y = pyconv.conv2d(t(1, 2, 9, 9), t(3, 2, 3, 3), stride=np.int64(2),
                      padding=(np.int32(1), 1), dilation=[np.int8(1)], groups=np.int64(1),
                      backend=backend)
    assert y.shape == (1, 3, 5, 5)


@pytest.mark.parametrize("groups", [1.0, True, "1", None])
def test_groups_type(groups, front_layer):
    with pytest.raises(TypeError, match="groups"):
        pyconv.conv2d(t(1, 2, 9, 9), t(3, 2, 3, 3), groups=groups, backend=front_layer)


def test_degenerate_weights(front_layer):
    # kernel size 0
    with pytest.raises(ValueError, match="kernel"):
        pyconv.conv2d(t(1, 4, 5, 5), t(6, 4, 1, 0), backend=front_layer)
    # conv with C_out = 0: "expected weight to be at least 1 at dimension 0"
    with pytest.raises(ValueError) as info:
        pyconv.conv2d(t(1, 4, 5, 5), t(0, 4, 3, 3), backend=front_layer)
    check_facts(info.value, [r"\b1\b", shp(0, 4, 3, 3)], "conv-Cout0")
    # transposed with C_out = 0
    with pytest.raises(ValueError) as info:
        pyconv.conv_transpose2d(t(1, 4, 5, 5), t(4, 0, 3, 3), backend=front_layer)
    check_facts(info.value, [shp(4, 0, 3, 3)], "convt-Cout0")
    # transposed with C_in = 0
    with pytest.raises(ValueError) as info:
        pyconv.conv_transpose2d(t(1, 0, 5, 5), t(0, 3, 3, 3), backend=front_layer)
    check_facts(info.value, [shp(0, 3, 3, 3)], "convt-Cin0")


def test_empty_spatial(backend):
    with pytest.raises(ValueError) as info:
        pyconv.conv_transpose2d(t(2, 4, 0, 5), t(4, 6, 3, 3), backend=backend)
    check_facts(info.value, [shp(2, 4, 0, 5)], "convt-empty-spatial")
    y = pyconv.conv_transpose1d(t(0, 4, 0), t(4, 6, 3), backend=backend)
    assert y.shape == (0, 6, 2)
    # zero channels, unbatched
    y = pyconv.conv1d(t(0, 10), t(6, 0, 3), backend=backend)
    assert y.shape == (0, 8)
    # zero channels: kernel check still applies
    with pytest.raises(ValueError):
        pyconv.conv1d(t(2, 0, 2), t(6, 0, 3), backend=backend)


def test_unbatched_error_shows_batched_shape(front_layer):
    with pytest.raises(ValueError) as info:
        pyconv.conv1d(t(5, 10), t(6, 4, 3), backend=front_layer)
    check_facts(info.value, [r"\b4 channels", r"\b5 channels"], "unbatched-channels")


def test_same_prelude(front_layer):
    # 'same' with a weight rank that does not match the input
    with pytest.raises(ValueError) as info:
        pyconv.conv2d(t(1, 2, 10), t(2, 2, 3), padding="same", backend=front_layer)
    check_facts(info.value, [r"\b3\b"], "same-rank")
    # groups with 'same'
    for g in (-1, 0):
        with pytest.raises(ValueError, match="groups"):
            pyconv.conv1d(t(1, 2, 10), t(2, 2, 3), padding="same", groups=g, backend=front_layer)
    with pytest.raises(ValueError, match="at least 3"):
        pyconv.conv1d(t(1, 3, 10), t(2, 1, 3), padding="same", groups=3, backend=front_layer)
    with pytest.raises(ValueError, match="strided"):
        pyconv.conv3d(t(18, 27, 9, 1, 9)[:1], t(9, 9, 9, 1, 9), stride=2, padding="same",
                      groups=3, backend=front_layer)
    for s in (0, -1):
        with pytest.raises(ValueError, match="strided"):
            pyconv.conv1d(t(1, 1, 10), t(1, 1, 3), padding="same", stride=s, backend=front_layer)
    for bad in ("", "full", "Valid"):
        with pytest.raises(ValueError, match="padding"):
            pyconv.conv1d(t(1, 1, 10), t(1, 1, 3), padding=bad, backend=front_layer)


def test_dilation_message_for_same_stride_broadcast(front_layer):
    with pytest.raises(ValueError, match="dilation"):
        pyconv.conv2d(t(1, 1, 10, 10), t(1, 1, 3, 3), padding="same", dilation=(1, 1, 1),
                      backend=front_layer)


def test_shapecheck_sweep(backend):
    """test_conv_shapecheck: raise vs ok for tiny inputs (batch 3)."""
    ok = [
        (pyconv.conv1d, (3, 1, 2), (1, 1, 2), {}),
        (pyconv.conv1d, (3, 1, 2), (1, 1, 2), dict(stride=2)),
        (pyconv.conv1d, (3, 1, 2), (1, 1, 3), dict(stride=2, padding=1)),
        (pyconv.conv2d, (3, 1, 3, 3), (1, 1, 3, 3), {}),
        (pyconv.conv2d, (3, 1, 2, 2), (1, 1, 3, 3), dict(padding=1)),
        (pyconv.conv3d, (3, 1, 3, 3, 3), (1, 1, 3, 3, 3), {}),
        (pyconv.conv3d, (3, 1, 2, 2, 2), (1, 1, 3, 3, 3), dict(padding=1)),
    ]
    bad = [
        (pyconv.conv1d, (3, 1, 2), (1, 1, 3), {}),
        (pyconv.conv1d, (3, 1, 2), (1, 1, 3), dict(stride=2)),
        (pyconv.conv2d, (3, 1, 2, 2), (1, 1, 3, 3), {}),
        (pyconv.conv3d, (3, 1, 2, 2, 2), (1, 1, 3, 3, 3), {}),
        (pyconv.conv2d, (1, 1, 4, 4), (1, 1, 3, 3), dict(dilation=2, stride=2)),
        (pyconv.conv1d, (1, 3, 4), (33, 3, 10), {}),
        (pyconv.conv2d, (1, 3, 1, 1), (33, 3, 10, 10), {}),
    ]
    for fn, xs, ws, kw in ok:
        fn(t(*xs), t(*ws), backend=backend, **kw)
    for fn, xs, ws, kw in bad:
        with pytest.raises(ValueError, match=r"[Kk]ernel"):
            fn(t(*xs), t(*ws), backend=backend, **kw)


def test_modules_raise_on_wrong_rank(front_layer):
    for nd, bad_ranks in ((1, (1, 4)), (2, (2, 5)), (3, (3, 6))):
        cls = getattr(pyconv, f"Conv{nd}d")
        m = cls(3, 3, 1)
        for rank in bad_ranks:
            with pytest.raises(ValueError):
                run_module(front_layer, m, np.full((3,) * rank, 3.0))


def test_output_size_sweep(backend):
    """test_ConvTranspose2d_output_size: valid iff 18 <= h, w <= 20."""
    m = pyconv.ConvTranspose2d(3, 4, 3, 3, 0, 2)
    x = t(2, 3, 6, 6)
    for h in range(15, 22):
        for w in range(15, 22):
            if 18 <= h <= 20 and 18 <= w <= 20:
                y = run_module(backend, m, x, output_size=(h, w))
                assert y.shape == (2, 4, h, w)
            else:
                with pytest.raises(ValueError, match="output size"):
                    run_module(backend, m, x, output_size=(h, w))


def test_output_size_types(backend):
    m = pyconv.ConvTranspose2d(4, 6, 3, stride=2)
    x = t(1, 4, 4, 4)
    for size in ([9, 10], (9, 10), np.array([9, 10]), [np.int64(9), 10]):
        assert run_module(backend, m, x, output_size=size).shape == (1, 6, 9, 10)
    with pytest.raises(TypeError):
        run_module(backend, m, x, output_size=[9.0, 10.0])
    with pytest.raises(TypeError):
        run_module(backend, m, x, output_size=9)


def test_output_size_unbatched_lengths(backend):
    m = pyconv.ConvTranspose2d(4, 6, 3, stride=2)
    x = t(4, 4, 4)
    assert run_module(backend, m, x, output_size=(10, 9)).shape == (6, 10, 9)
    assert run_module(backend, m, x, output_size=(6, 10, 9)).shape == (6, 10, 9)
    with pytest.raises(ValueError) as info:
        run_module(backend, m, x, output_size=(1, 6, 10, 9))
    check_facts(info.value, [r"\b2 or 3\b", r"\b4\b"], "unbatched-output_size-length")


def test_functional_output_size(backend):
    """pyconv accepts output_size= on the functional transposed ops (deliberate)."""
    x, w = t(2, 4, 5, 5), t(4, 6, 3, 3)
    y = pyconv.conv_transpose2d(x, w, stride=2, padding=1, output_size=(10, 9), backend=backend)
    z = pyconv.conv_transpose2d(x, w, stride=2, padding=1, output_padding=(1, 0),
                                backend=backend)
    np.testing.assert_allclose(y, z, rtol=1e-6)
    with pytest.raises(ValueError, match="output size"):
        pyconv.conv_transpose2d(x, w, stride=2, padding=1, output_size=(11, 9), backend=backend)


def test_transposed_layout_not_rank_from_name(front_layer):
    """nd comes from the weight: a 5-D weight to conv2d reports a length/rank problem."""
    with pytest.raises(ValueError):
        pyconv.conv2d(t(1, 2, 5, 5), t(3, 2, 3, 3, 3), backend=front_layer)
    with pytest.raises(ValueError):
        pyconv.conv2d(t(1, 2, 5, 5), t(3, 2, 3), backend=front_layer)


def test_module_none_input(front_layer):
    with pytest.raises(TypeError):
        run_module(front_layer, pyconv.Conv1d(1, 1, 3), None)


def test_convtranspose_padding_mode_changed_after_construction(front_layer):
    m = pyconv.ConvTranspose1d(2, 2, 3)
    m.padding_mode = "reflect"
    with pytest.raises(ValueError, match="zeros"):
        run_module(front_layer, m, t(1, 2, 5))
