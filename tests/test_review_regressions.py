"""Regressions for bugs found in review: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import pyconv


def test_padding_as_numpy_array(backend):
    x = np.random.default_rng(0).standard_normal((1, 2, 5, 6))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    got = pyconv.conv2d(x, w, padding=np.array([1, 2]), backend=backend)
    want = pyconv.conv2d(x, w, padding=[1, 2], backend=backend)
    assert got.shape == (1, 3, 5, 8)
    np.testing.assert_array_equal(got, want)
    gx = pyconv.grad.conv2d_input(x.shape, w, np.ones_like(got), padding=np.array([1, 2]),
                                  backend=backend)
    assert gx.shape == x.shape


@pytest.mark.parametrize("bad", [1.5, None, True])
def test_non_int_padding_with_padding_mode_names_padding(bad):
    with pytest.raises(TypeError, match="padding"):
        pyconv.conv1d(np.ones((1, 2, 10)), np.ones((3, 2, 3)), padding=bad,
                      padding_mode="reflect")


@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
def test_huge_parameters_are_rejected_before_any_backend(backend, name):
    with pytest.raises(ValueError, match=name):
        pyconv.conv1d(np.ones((1, 2, 10)), np.ones((3, 2, 3)), backend=backend,
                      **{name: 2**63})
    with pytest.raises(ValueError, match="output_padding"):
        pyconv.conv_transpose1d(np.ones((0, 2, 3)), np.ones((2, 2, 3)),
                                output_padding=10**20, backend=backend)


def test_set_num_threads_accepts_numpy_ints_and_rejects_floats():
    pyconv.set_num_threads(np.int64(2))
    try:
        assert pyconv.get_num_threads() == 2
    finally:
        pyconv.set_num_threads(None)
    with pytest.raises(TypeError):
        pyconv.set_num_threads(2.0)
    with pytest.raises(ValueError):
        pyconv.set_num_threads(0)


@pytest.mark.parametrize("kwargs", [dict(in_channels=2.0), dict(out_channels="4"),
                                    dict(kernel_size=(3.0,))])
def test_module_non_int_sizes_are_type_errors(kwargs):
    args = dict(in_channels=2, out_channels=4, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(TypeError):
        pyconv.Conv1d(**args)


def _opencl_or_skip():
    entry = {b["name"]: b for b in pyconv.backends()}["opencl"]
    if not entry["available"]:
        pytest.skip(f"opencl unavailable: {entry['reason']}")
    from pyconv._registry import load_backend
    return load_backend("opencl")


def test_empty_grads_of_device_arrays_stay_on_the_device():
    impl = _opencl_or_skip()
    f32 = np.float32
    D = impl.to_device
    cases = [
        pyconv.grad.conv1d_weight(D(np.ones((0, 4, 10), f32)), (6, 4, 3),
                                  D(np.ones((0, 6, 8), f32))),
        pyconv.grad.conv1d_input((2, 0, 10), D(np.ones((6, 0, 3), f32)),
                                 D(np.ones((2, 0, 8), f32))),
        pyconv.grad.conv_transpose1d_weight(D(np.ones((0, 4, 10), f32)), (4, 4, 3),
                                            D(np.ones((0, 4, 12), f32))),
    ]
    for got, shape in zip(cases, [(6, 4, 3), (2, 0, 10), (4, 4, 3)]):
        assert not isinstance(got, np.ndarray)
        assert tuple(got.shape) == shape
        assert not got.get().any()


def test_device_arrays_use_the_registry_name_rules():
    impl = _opencl_or_skip()
    x = impl.to_device(np.ones((1, 2, 10), np.float32))
    w = impl.to_device(np.ones((3, 2, 3), np.float32))
    assert tuple(pyconv.conv1d(x, w, backend="OpenCL").shape) == (1, 3, 8)
    with pytest.raises(ValueError, match="valid names"):
        pyconv.conv1d(x, w, backend="bogus")


def test_opencl_transposed_huge_stride_launches_only_reached_phases():
    impl = _opencl_or_skip()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 4, 2, 2, 2)).astype(np.float32)
    w = rng.standard_normal((4, 4, 2, 2, 2)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = pyconv.conv_transpose3d(x, w, b, stride=50, backend="opencl")
    want = pyconv.conv_transpose3d(x, w, b, stride=50, backend="cython")
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    from pyconv._spec import conv_transpose_call
    spec = conv_transpose_call("conv_transpose3d", 3, x.shape, w.shape, b.shape, 50, 0, 0, 1,
                               1).spec
    _, launches = impl._conv_transpose_plan(spec, True)
    assert len(launches) <= 8  # prod(kernel_size), not 50**3 residues


def test_opencl_refuses_geometry_beyond_its_int32_plans():
    impl = _opencl_or_skip()
    from pyconv._spec import conv_call
    spec = conv_call("conv1d", 1, (1, 2, 10), (3, 2, 3), None, 2**31, 0, 1, 1).spec
    assert "32-bit" in impl.supports("conv", spec, np.float32)
    assert not impl.prefers("conv", spec, np.float32)


def test_grad_input_size_of_wrong_rank_names_input_size():
    with pytest.raises(ValueError, match="input_size"):
        pyconv.grad.conv1d_input((9,), np.ones((6, 2, 3)), np.ones((1, 6, 7)))
    with pytest.raises(ValueError, match="input_size"):
        pyconv.grad.conv_transpose2d_input((2, 3), np.ones((2, 6, 3, 3)), np.ones((1, 6, 7, 7)))


def test_complex_bias_on_real_operands(backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 8))
    w = rng.standard_normal((4, 3, 3))
    b = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    got = pyconv.conv1d(x, w, b, backend=backend)
    want = pyconv.conv1d(x, w, backend=backend) + b[None, :, None]
    assert got.dtype == np.complex128
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
