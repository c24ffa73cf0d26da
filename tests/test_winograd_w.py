"""The ``winograd_w`` path of the cython backend: the weight gradient by F(3x3, 4x4).

The shared matrix (``cython[winograd_w]``) and ``test_cython_backend.py``
(rules, thread counts, workspace, Ctrl-C) cover the path like every other
one; here are the properties of the algorithm itself: its input transform
is the forward F(4, 3)'s, the float32 error on adversarial inputs stays
within the documented bound, and ``use_algorithms("exact")`` keeps every
call off the path.
"""

from __future__ import annotations

import numpy as np
import pytest

cy_mod = pytest.importorskip("pyconv._cy")
try:
    cy_mod.load()
except ImportError as exc:  # pragma: no cover - unbuilt checkout
    pytest.skip(f"cython backend unavailable: {exc}", allow_module_level=True)

from pyconv._cy.paths import winograd as wino  # noqa: E402
from pyconv._spec import ConvSpec  # noqa: E402

#: the documented bound (docs/backends.rst): worst float32 error relative to
#: the largest weight gradient, against a float64 sum, on the inputs below
F32_BOUND = 5e-6


def test_input_transform_is_the_forward_one():
    """B^T of F(3, 4) equals B^T of F(4, 3) (the kernels use the forward
    path's input transform), and F(3, 4) gives the 3 taps of a 4-wide tile."""
    bt, g, at = wino.matrices(3, 4)
    np.testing.assert_array_equal(bt, wino.matrices(4, 3)[0])
    rng = np.random.default_rng(7)
    x, gy = rng.standard_normal(6), rng.standard_normal(4)
    want = np.array([gy @ x[k:k + 4] for k in range(3)])
    np.testing.assert_allclose(at @ ((g @ gy) * (bt @ x)), want, rtol=1e-13, atol=1e-13)


def _layer(n, c, size, cout=None):
    return ConvSpec(False, n, c, c if cout is None else cout, 1, size, size, (3, 3), (1, 1),
                    ((1, 1),) * 2, (1, 1))


# long reductions over the positions (32 x 14x14, 8 x 56x56) and channels
ADVERSARIAL = [
    pytest.param(_layer(32, 64, (14, 14)), id="n32-14x14-64ch"),
    pytest.param(_layer(8, 32, (56, 56)), id="n8-56x56-32ch"),
    pytest.param(_layer(2, 96, (21, 19), cout=40), id="n2-21x19-96to40"),
]


def _adversarial(spec, rng):
    """Mixed magnitudes: every input and output-gradient channel scaled by
    10**U(-3, 3), and a constant offset on the input (a large common mode the
    transforms must cancel)."""
    x = rng.standard_normal(spec.input_shape)
    x *= 10.0 ** rng.uniform(-3, 3, (1, spec.in_channels, 1, 1))
    x += 100.0
    gy = rng.standard_normal(spec.output_shape)
    gy *= 10.0 ** rng.uniform(-3, 3, (1, spec.out_channels, 1, 1))
    return x, gy


@pytest.mark.parametrize("spec", ADVERSARIAL)
def test_float32_error_within_the_documented_bound(spec, rng):
    """Worst |winograd_w - sum| / max |sum| (float32 inputs, float64 oracle)."""
    cy = cy_mod.load()
    x, gy = _adversarial(spec, rng)
    x32, g32 = x.astype(np.float32), gy.astype(np.float32)
    with cy_mod.force_paths("implicit"):
        want = cy.conv_weight(x32.astype(np.float64), g32.astype(np.float64), spec)
    with cy_mod.force_paths("winograd_w"):
        assert cy_mod.plan("conv_weight", spec, np.float32).path == "winograd_w"
        assert cy_mod.plan("conv_weight", spec, np.float64).path == "winograd_w"
        got = cy.conv_weight(x32, g32, spec)
        got64 = cy.conv_weight(x32.astype(np.float64), g32.astype(np.float64), spec)
    scale = np.abs(want).max()
    assert np.abs(got - want).max() / scale <= F32_BOUND
    assert np.abs(got64 - want).max() / scale <= 1e-12


def test_concurrent_calls_from_python_threads(rng):
    """Calls from several Python threads at once (one holds the buffer kept
    from call to call, the others map their own): each gives the bits of the
    same call made alone, and the kept buffer is released cleanly after."""
    import threading

    from pyconv._cy import _winograd_w

    cy = cy_mod.load()
    spec = _layer(4, 32, (24, 24))
    inputs = [(rng.standard_normal(spec.input_shape).astype(np.float32),
               rng.standard_normal(spec.output_shape).astype(np.float32)) for _ in range(4)]
    with cy_mod.force_paths("winograd_w"):
        assert cy_mod.plan("conv_weight", spec, np.float32).path == "winograd_w"
        alone = [cy.conv_weight(x, gy, spec) for x, gy in inputs]
        got = [[] for _ in inputs]
        start = threading.Barrier(len(inputs))

        def work(i):
            start.wait()
            for _ in range(5):
                got[i].append(cy.conv_weight(*inputs[i], spec))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for want, results in zip(alone, got):
        assert len(results) == 5
        for r in results:
            assert r.tobytes() == want.tobytes()
    _winograd_w.release()
    with cy_mod.force_paths("winograd_w"):
        assert cy.conv_weight(*inputs[0], spec).tobytes() == alone[0].tobytes()
