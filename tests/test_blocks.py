"""Calls whose input needs converting run in blocks of bounded memory (pyconv._blocks).

Every test shrinks ``BLOCK_BYTES`` so that the blocks are single samples and
single output rows (or a few), and compares with the reference backend
computing the same call uncut; the peak-memory test measures a real call.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyconv
from pyconv import _blocks

from helpers import assert_close, tolerance

MODES = ["zeros", "reflect", "replicate", "circular"]


class _Calls(list):
    """The primitives that ran in blocks; ``uncut()`` turns blocks off for the oracle."""

    def uncut(self):
        outer = self

        class _Uncut:
            def __enter__(self):
                self.saved = _blocks.BLOCK_BYTES
                _blocks.BLOCK_BYTES = 1 << 62
                self.seen = len(outer)

            def __exit__(self, *exc):
                _blocks.BLOCK_BYTES = self.saved
                assert len(outer) == self.seen, "the oracle ran in blocks"
        return _Uncut()


@pytest.fixture
def tiny_blocks(monkeypatch):
    """Blocks of (about) one output row of one sample; the list of blocked primitives."""
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1)
    calls = _Calls()
    real = _blocks.run_blocked

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pyconv.functional, "run_blocked", counting)
    return calls


def _inputs(rng, shape, kind):
    x = rng.standard_normal(shape)
    if kind == "float16":
        return x.astype(np.float16)
    if kind == "noncontig":
        big = np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)
        big[..., ::2] = x
        return big[..., ::2]
    if kind == "complex":
        return (x + 1j * rng.standard_normal(shape)).astype(np.complex64)
    if kind == "int":
        return np.round(3 * x).astype(np.int32)
    return x.astype(np.float32)


CONV_CASES = [  # (nd, N, Cin, Cout, groups, size, k, stride, padding, dilation)
    (1, 2, 3, 4, 1, (11,), 3, 1, 2, 1),
    (1, 3, 4, 6, 2, (13,), 4, 2, 3, 2),
    (2, 2, 2, 3, 1, (7, 6), (3, 2), (2, 1), (1, 1), (1, 2)),
    (2, 1, 4, 4, 4, (6, 9), 3, 1, (2, 1), 1),
    (3, 2, 2, 2, 1, (4, 5, 3), 2, (1, 2, 1), 1, 1),
]


@pytest.mark.parametrize("kind", ["float32-reflect", "float16", "noncontig", "complex", "int"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}d-s{c[7]}-p{c[8]}")
def test_blocked_conv_matches_the_uncut_call(backend, tiny_blocks, case, kind, rng):
    nd, n, cin, cout, g, size, k, s, p, d = case
    ks = (k,) * nd if isinstance(k, int) else k
    x = _inputs(rng, (n, cin) + size, kind.split("-")[0])
    w = rng.standard_normal((cout, cin // g) + ks).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    conv = getattr(pyconv, f"conv{nd}d")
    modes = MODES if kind == "float32-reflect" else ["zeros", "circular"]
    for mode in modes:
        kw = dict(stride=s, padding=p, dilation=d, groups=g, padding_mode=mode)
        try:
            with tiny_blocks.uncut():
                want = conv(x, w, b, backend="reference", **kw)
        except ValueError:  # a pad too large for the mode: the same error blocked
            with pytest.raises(ValueError):
                conv(x, w, b, backend=backend, **kw)
            continue
        del tiny_blocks[:]
        got = conv(x, w, b, backend=backend, **kw)
        converted = mode != "zeros" or kind != "float32-reflect"
        assert tiny_blocks == (["conv"] if converted else [])
        assert got.dtype == want.dtype and got.shape == want.shape
        assert_close(got, want, label=f"{kind} {mode}")
        # the unbatched form and the weight gradient run in blocks too
        assert_close(conv(x[0], w, b, backend=backend, **kw), want[0], label="unbatched")
        gy = rng.standard_normal(want.shape).astype(np.float32)
        wgrad = getattr(pyconv.grad, f"conv{nd}d_weight")
        if mode == "zeros":
            kw.pop("padding_mode")
            gw = wgrad(x, w.shape, gy, backend=backend, **kw)
            with tiny_blocks.uncut():
                want_gw = wgrad(x, w.shape, gy, backend="reference", **kw)
            assert_close(gw, want_gw, label="grad", rtol=max(tolerance(gw.dtype), 1e-5) * 10)


@pytest.mark.parametrize("kind", ["float16", "noncontig", "complex"])
@pytest.mark.parametrize("case", [
    (1, 2, 4, 3, 1, (7,), 4, 2, 1, 0, 1),
    (1, 2, 4, 6, 2, (5,), 3, 3, 2, 2, 2),
    (2, 1, 3, 2, 1, (4, 5), (3, 2), (2, 3), (1, 0), (1, 2), (1, 2)),
    (3, 2, 2, 2, 1, (2, 3, 2), 2, 2, 0, 1, 1),
], ids=lambda c: f"{c[0]}d-s{c[7]}")
def test_blocked_conv_transpose_matches_the_uncut_call(backend, tiny_blocks, case, kind, rng):
    nd, n, cin, cout, g, size, k, s, p, op, d = case
    ks = (k,) * nd if isinstance(k, int) else k
    x = _inputs(rng, (n, cin) + size, kind)
    w = rng.standard_normal((cin, cout // g) + ks).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    tconv = getattr(pyconv, f"conv_transpose{nd}d")
    kw = dict(stride=s, padding=p, output_padding=op, groups=g, dilation=d)
    with tiny_blocks.uncut():
        want = tconv(x, w, b, backend="reference", **kw)
    del tiny_blocks[:]
    got = tconv(x, w, b, backend=backend, **kw)
    assert tiny_blocks == ["conv_transpose"]
    assert got.dtype == want.dtype
    assert_close(got, want, label=kind)


def test_a_transposed_slab_no_input_reaches_is_the_bias(backend, tiny_blocks, rng):
    x = rng.standard_normal((1, 2, 3)).astype(np.float16)
    w = rng.standard_normal((2, 3, 2)).astype(np.float16)
    b = np.array([1.0, -2.0, 3.0], np.float16)
    kw = dict(stride=5)  # outputs 2, 3, 4 of every 5 receive no tap: bias only
    with tiny_blocks.uncut():
        want = pyconv.conv_transpose1d(x, w, b, backend="reference", **kw)
    del tiny_blocks[:]
    got = pyconv.conv_transpose1d(x, w, b, backend=backend, **kw)
    assert tiny_blocks == ["conv_transpose"]
    assert_close(got, want)
    np.testing.assert_array_equal(got[0, :, 2:5], np.repeat(b[:, None], 3, axis=1))


def test_calls_needing_no_conversion_are_not_cut(tiny_blocks, rng):
    x = rng.standard_normal((4, 3, 20)).astype(np.float32)
    pyconv.conv1d(x, np.ones((2, 3, 3), np.float32), padding=1)
    assert tiny_blocks == []
    pyconv.conv1d(x, np.ones((2, 3, 3), np.float32), padding=1, padding_mode="reflect")
    assert tiny_blocks == ["conv"]


_PEAK = r"""
import resource, sys
import numpy as np
import pyconv

case = sys.argv[1]
shape = (1, 32, 1024, 1024)  # 128 MiB as float32
if case == "complex":
    x = np.empty(shape, np.complex64); x.real = 1; x.imag = 0.5
elif case == "float16":
    x = np.ones(shape, np.float16)
elif case == "noncontig":
    x = np.ones(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]
else:
    x = np.ones(shape, np.float32)
w = np.full((32, 32, 3, 3), 1 / 288, np.float32)
mode = "reflect" if case == "reflect" else "zeros"
pyconv.conv2d(x[..., :16, :16], w, padding=1, padding_mode=mode, backend="cython")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
y = pyconv.conv2d(x, w, padding=1, padding_mode=mode, backend="cython")
extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before - y.nbytes
print(extra / 2**20)
"""


@pytest.mark.parametrize("case", ["reflect", "float16", "noncontig", "complex"])
def test_converted_inputs_stay_within_the_workspace_bound(case):
    """Peak memory above the inputs and the output: under 64 MiB (it was the input's size)."""
    if not {b["name"]: b for b in pyconv.backends()}["cython"]["available"]:
        pytest.skip("the cython backend is not available")
    res = subprocess.run([sys.executable, "-c", _PEAK, case], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, PYCONV_NUM_THREADS="2"))
    assert res.returncode == 0, res.stderr
    assert float(res.stdout) < 64, f"{case}: {float(res.stdout):.0f} MiB above input + output"
