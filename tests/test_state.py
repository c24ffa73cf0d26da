"""Parameters by key: ``state_dict``, ``load_state_dict``, ``named_parameters``,
``astype``, the structure helpers ``pyconv.state_dict``/``pyconv.load_state_dict``,
and weights in safetensors files.

PyTorch's key names and shapes are checked against files PyTorch wrote: the
golden fixture's module cases (weights and outputs from torch 2.13) and
``examples/data/port_unet1d.safetensors`` (a whole model's ``state_dict()``,
saved by ``examples/data/gen_port_unet1d.py``).  Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pyconv

from helpers import assert_close, golden, tuplify

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DATA = ROOT / "examples" / "data"

CLASSES = [pyconv.Conv1d, pyconv.Conv2d, pyconv.Conv3d,
           pyconv.ConvTranspose1d, pyconv.ConvTranspose2d, pyconv.ConvTranspose3d]
IDS = [cls.__name__ for cls in CLASSES]


def _nd(cls):
    return int(cls.__name__[-2])


def _make(cls, bias=True, dtype=np.float32, rng=0):
    """A module with in=4, out=6, groups=2 and a kernel of distinct sizes."""
    return cls(4, 6, (3, 2, 4)[:_nd(cls)], groups=2, bias=bias, dtype=dtype, rng=rng)


def _input(cls, rng, dtype=np.float32):
    return rng.standard_normal((2, 4) + (7, 6, 5)[:_nd(cls)]).astype(dtype)


def _snapshot(module):
    return {key: value.copy() for key, value in module.state_dict().items()}


def _assert_unchanged(module, snapshot):
    assert module.state_dict().keys() == snapshot.keys()
    for key, value in snapshot.items():
        np.testing.assert_array_equal(module.state_dict()[key], value, err_msg=key)


# --------------------------------------------------------------------------
# one module: keys, shapes, aliasing

@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_keys_and_shapes(cls, bias):
    m = _make(cls, bias)
    k = (3, 2, 4)[:_nd(cls)]
    wshape = (4, 3) + k if "Transpose" in cls.__name__ else (6, 2) + k
    sd = m.state_dict()
    assert list(sd) == (["weight", "bias"] if bias else ["weight"])
    assert sd["weight"].shape == wshape
    assert sd["weight"] is m.weight  # the module's own arrays, as in PyTorch
    if bias:
        assert sd["bias"].shape == (6,) and sd["bias"] is m.bias
    names = [name for name, _ in m.named_parameters()]
    assert names == list(sd)
    assert all(a is b for (_, a), b in zip(m.named_parameters(), m.parameters()))
    assert list(m.state_dict(prefix="enc.0.")) == ["enc.0." + key for key in sd]
    assert [n for n, _ in m.named_parameters("up.")] == ["up." + key for key in sd]


def test_state_dict_prefix_is_keyword_only():
    with pytest.raises(TypeError):
        pyconv.Conv1d(1, 1, 1).state_dict("enc.")


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_round_trip_between_modules(cls, backend, rng):
    source, target = _make(cls, rng=1), _make(cls, rng=2)
    x = _input(cls, rng)
    assert not np.array_equal(source.weight, target.weight)
    assert target.load_state_dict(source.state_dict()) == ([], [])
    for name, value in source.named_parameters():
        got = getattr(target, name)
        np.testing.assert_array_equal(got, value)
        assert not np.shares_memory(got, value), name
    with pyconv.use_backend(backend):
        assert_close(target(x), source(x), np.float32, "loaded module", rtol=0)
    source.weight[...] = 0  # the copy is independent
    assert np.any(target.weight != 0)


def test_load_copies_into_the_modules_arrays():
    """References taken before the load (an optimiser's list) see the new values."""
    m = pyconv.Conv2d(2, 3, 3, rng=0)
    params = m.parameters()
    new = {"weight": np.full((3, 2, 3, 3), 0.5), "bias": np.arange(3.0)}
    before = {key: value.copy() for key, value in new.items()}
    m.load_state_dict(new)
    assert params[0] is m.weight and params[1] is m.bias
    np.testing.assert_array_equal(params[0], 0.5)
    np.testing.assert_array_equal(params[1], [0, 1, 2])
    assert m.weight.dtype == np.float32 and m.bias.dtype == np.float32
    for key, value in new.items():  # the caller's arrays: untouched and not kept
        np.testing.assert_array_equal(value, before[key])
        assert not np.shares_memory(value, getattr(m, key))


def test_load_replaces_arrays_that_cannot_take_the_values():
    m = pyconv.Conv1d(1, 2, 3, rng=0)
    frozen = np.zeros((2, 1, 3), np.float32)
    frozen.flags.writeable = False
    m.weight = frozen
    m.bias = np.zeros(2, np.float64)  # assigned by hand in another dtype
    m.load_state_dict({"weight": np.ones((2, 1, 3)), "bias": np.ones(2)})
    assert not frozen.any()
    assert m.weight.dtype == np.float32 and m.weight.flags.writeable
    np.testing.assert_array_equal(m.weight, 1)
    assert m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.bias, 1)


def test_load_own_state_dict():
    m = pyconv.ConvTranspose1d(2, 2, 3, rng=0)
    snap = _snapshot(m)
    m.load_state_dict(m.state_dict())
    _assert_unchanged(m, snap)


@pytest.mark.parametrize("module_dtype,value_dtype", [
    (np.float32, np.float64), (np.float32, np.int64), (np.float32, np.float16),
    (np.float16, np.float64), (np.float64, np.float32), (np.complex64, np.float64),
    (np.complex128, np.complex64), (np.float32, ">f8"),
])
def test_load_converts_to_the_module_dtype(module_dtype, value_dtype):
    m = pyconv.Conv1d(2, 3, 2, dtype=module_dtype, rng=0)
    values = {"weight": np.arange(12).reshape(3, 2, 2).astype(value_dtype),
              "bias": np.array([-1, 0, 2]).astype(value_dtype)}
    m.load_state_dict(values)
    for key, value in values.items():
        got = getattr(m, key)
        assert got.dtype == np.dtype(module_dtype)
        np.testing.assert_array_equal(got, value.astype(module_dtype))


def test_load_accepts_lists():
    m = pyconv.Conv1d(1, 1, 2, dtype=np.float64)
    m.load_state_dict({"weight": [[[1, -1]]], "bias": [0.5]})
    np.testing.assert_allclose(m(np.array([[[1.0, 3.0, 6.0]]])), [[[-1.5, -2.5]]])


# --------------------------------------------------------------------------
# one module: what does not fit

def test_strict_reports_everything_and_loads_nothing():
    m = pyconv.Conv1d(2, 3, 3, rng=0)
    snap = _snapshot(m)
    with pytest.raises(ValueError) as info:
        m.load_state_dict({"weight": np.ones((3, 2, 4)), "foo": np.ones(1),
                           "enc.0.bias": np.ones(3)})
    text = str(info.value)
    assert text.startswith("Conv1d.load_state_dict()") and "nothing was loaded" in text
    assert "missing key(s): 'bias'" in text
    assert "unexpected key(s): 'foo', 'enc.0.bias'" in text
    assert "'weight'" in text and "(3, 2, 4)" in text and "(3, 2, 3)" in text
    _assert_unchanged(m, snap)
    # a valid weight is not loaded either when the bias is missing
    with pytest.raises(ValueError, match="missing key"):
        m.load_state_dict({"weight": np.zeros((3, 2, 3))})
    _assert_unchanged(m, snap)


def test_not_strict_returns_the_keys():
    m = pyconv.Conv2d(2, 3, 3, rng=0)
    bias = m.bias.copy()
    result = m.load_state_dict({"weight": np.zeros((3, 2, 3, 3)), "extra": 1}, strict=False)
    assert isinstance(result, pyconv.IncompatibleKeys) and isinstance(result, tuple)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["extra"]
    missing, unexpected = result
    assert (missing, unexpected) == (["bias"], ["extra"])
    np.testing.assert_array_equal(m.weight, 0)  # what matched was loaded
    np.testing.assert_array_equal(m.bias, bias)  # what was missing kept its values
    assert m.load_state_dict({}, strict=False) == (["weight", "bias"], [])


def test_shape_mismatch_raises_even_when_not_strict():
    m = pyconv.ConvTranspose2d(4, 6, 3, groups=2, rng=0)
    snap = _snapshot(m)
    # the conv layout (out, in/groups, ...) instead of the transposed one (in, out/groups, ...)
    with pytest.raises(ValueError, match=r"'weight'.*\(6, 2, 3, 3\).*\(4, 3, 3, 3\)"):
        m.load_state_dict({"weight": np.ones((6, 2, 3, 3))}, strict=False)
    _assert_unchanged(m, snap)


def test_module_without_bias():
    m = pyconv.Conv1d(2, 3, 3, bias=False, rng=0)
    with pytest.raises(ValueError, match="unexpected key.*'bias'"):
        m.load_state_dict({"weight": np.ones((3, 2, 3)), "bias": np.ones(3)})
    assert m.bias is None
    assert m.load_state_dict({"weight": np.ones((3, 2, 3))}) == ([], [])


@pytest.mark.parametrize("mapping,pattern", [
    ([("weight", np.ones((3, 2, 3)))], "state_dict must be a mapping"),
    ({0: np.ones(3)}, "keys of state_dict must be strings"),
    ({"weight": np.array(["a"] * 18).reshape(3, 2, 3), "bias": np.ones(3)},
     r"state_dict\['weight'\] must hold numbers.*<U1"),
    ({"weight": np.ones((3, 2, 3)), "bias": None}, r"state_dict\['bias'\] must hold numbers"),
    ({"weight": np.ones((3, 2, 3)) * 1j, "bias": np.ones(3)},
     r"state_dict\['weight'\] is complex128.*imaginary"),
])
def test_bad_mapping_types(mapping, pattern):
    m = pyconv.Conv1d(2, 3, 3, rng=0)
    snap = _snapshot(m)
    with pytest.raises(TypeError, match=pattern):
        m.load_state_dict(mapping)
    _assert_unchanged(m, snap)


# --------------------------------------------------------------------------
# astype

@pytest.mark.parametrize("dtype", [np.float16, "float64", np.dtype(np.complex64), "c16", ">f8"])
def test_astype_returns_a_converted_copy(dtype, backend, rng):
    m = pyconv.Conv2d(2, 4, 3, padding=1, groups=2, padding_mode="reflect", rng=0)
    snap = _snapshot(m)
    new = m.astype(dtype)
    want = np.dtype(dtype).newbyteorder("=")
    assert type(new) is pyconv.Conv2d and new is not m
    assert new.dtype == want and repr(new).startswith(repr(m)[:-1])
    for key, value in new.state_dict().items():
        assert value.dtype == want and value.dtype.isnative
        assert not np.shares_memory(value, getattr(m, key))
        np.testing.assert_array_equal(value, snap[key].astype(want))
    _assert_unchanged(m, snap)  # the original keeps its dtype and values
    assert m.dtype == np.float32
    x = rng.standard_normal((1, 2, 5, 5)).astype(want)
    with pyconv.use_backend(backend):
        y = new(x)
        expected = pyconv.conv2d(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect"),
                                 new.weight, new.bias, groups=2)
    assert y.dtype == want
    assert_close(y, expected, want, "astype module")


def test_astype_keeps_bias_none_and_config():
    m = pyconv.ConvTranspose3d(2, 4, 2, stride=2, output_padding=1, bias=False, rng=0)
    new = m.astype(np.float64)
    assert new.bias is None and list(new.state_dict()) == ["weight"]
    assert (new.stride, new.output_padding, new.kernel_size) == (m.stride, m.output_padding,
                                                                 m.kernel_size)


def test_astype_refuses():
    m = pyconv.Conv1d(2, 2, 3, dtype=np.complex64, rng=0)
    with pytest.raises(TypeError, match=r"Conv1d.astype\(\).*imaginary"):
        m.astype(np.float32)
    with pytest.raises(TypeError, match=r"astype\(\): dtype must be a float or complex"):
        pyconv.Conv1d(2, 2, 3).astype(np.int32)
    with pytest.raises(TypeError, match=r"astype\(\): dtype must be a NumPy dtype or its name"):
        pyconv.Conv1d(2, 2, 3).astype("floot32")


# --------------------------------------------------------------------------
# structures of modules

def _relu(x):
    return np.maximum(x, 0)


def _layers(rng=0):
    return {
        "enc": [pyconv.Conv1d(2, 4, 3, padding=1, rng=rng), _relu,
                pyconv.Conv1d(4, 4, 3, padding=1, bias=False, rng=rng)],
        "blocks": ({"up": pyconv.ConvTranspose1d(4, 2, 2, stride=2, rng=rng)},),
        "head.conv": pyconv.Conv1d(2, 1, 1, rng=rng),
        7: pyconv.Conv2d(1, 1, 1, rng=rng),
        "act": None,
    }


KEYS = ["enc.0.weight", "enc.0.bias", "enc.2.weight", "blocks.0.up.weight", "blocks.0.up.bias",
        "head.conv.weight", "head.conv.bias", "7.weight", "7.bias"]


def test_structure_state_dict_keys():
    layers = _layers()
    sd = pyconv.state_dict(layers)
    assert list(sd) == KEYS
    assert sd["enc.0.weight"] is layers["enc"][0].weight
    assert sd["blocks.0.up.weight"].shape == (4, 2, 2)
    assert list(pyconv.state_dict(layers["enc"][0])) == ["weight", "bias"]


def test_structure_round_trip(backend, rng):
    source, target = _layers(rng=1), _layers(rng=2)
    result = pyconv.load_state_dict(target, pyconv.state_dict(source))
    assert result == ([], [])
    x = rng.standard_normal((2, 2, 9)).astype(np.float32)

    def run(layers):
        h = x
        for layer in layers["enc"]:
            h = layer(h)
        return layers["head.conv"](layers["blocks"][0]["up"](h))

    with pyconv.use_backend(backend):
        assert_close(run(target), run(source), np.float32, "structure", rtol=0)


def test_structure_leaves_other_layers_to_the_caller():
    layers = _layers()
    sd = {key: value + 1 for key, value in pyconv.state_dict(_layers(rng=3)).items()}
    sd.update({"bn.weight": np.ones(4), "bn.running_mean": np.zeros(4), "enc.1.foo": 1.0,
               "head.weight": np.ones(2)})
    result = pyconv.load_state_dict(layers, sd)  # strict, and no error
    assert result.missing_keys == []
    assert result.unexpected_keys == ["bn.weight", "bn.running_mean", "enc.1.foo", "head.weight"]
    for key, value in pyconv.state_dict(layers).items():
        np.testing.assert_array_equal(value, sd[key].astype(np.float32), err_msg=key)


def test_structure_strict_errors_name_full_keys_and_load_nothing():
    layers = _layers()
    snap = {key: value.copy() for key, value in pyconv.state_dict(layers).items()}
    sd = dict(snap)
    del sd["blocks.0.up.bias"]
    sd["enc.2.bias"] = np.ones(4)  # enc.2 has no bias
    sd["head.conv.running_mean"] = np.ones(1)  # a stray key under a module's name
    sd["7.weight"] = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError) as info:
        pyconv.load_state_dict(layers, sd)
    text = str(info.value)
    assert text.startswith("pyconv.load_state_dict()")
    assert "missing key(s): 'blocks.0.up.bias'" in text
    assert "unexpected key(s): 'enc.2.bias', 'head.conv.running_mean'" in text
    assert "'7.weight'" in text and "(1, 1, 2, 2)" in text and "Conv2d" in text
    for key, value in pyconv.state_dict(layers).items():
        np.testing.assert_array_equal(value, snap[key], err_msg=key)
    # not strict: the shape is still an error
    with pytest.raises(ValueError, match="7.weight"):
        pyconv.load_state_dict(layers, sd, strict=False)
    del sd["7.weight"]
    result = pyconv.load_state_dict(layers, sd, strict=False)
    assert result.missing_keys == ["blocks.0.up.bias", "7.weight"]
    assert result.unexpected_keys == ["enc.2.bias", "head.conv.running_mean"]


def test_structure_errors():
    conv = pyconv.Conv1d(1, 1, 1)
    with pytest.raises(ValueError, match="'a' and 'a.b'"):
        pyconv.state_dict({"a": conv, "a.b": conv})
    with pytest.raises(ValueError, match="'x.0' and 'x.0'"):
        pyconv.state_dict({"x": [conv], "x.0": conv})
    with pytest.raises(ValueError, match="holding none"):
        pyconv.load_state_dict({"enc.0.weight": np.ones((1, 1, 1))}, {"enc": conv})
    with pytest.raises(ValueError, match="holding none"):
        pyconv.state_dict([None, _relu])
    loop = {"conv": conv}
    loop["self"] = loop
    with pytest.raises(ValueError, match="contains itself"):
        pyconv.state_dict(loop)
    for key in ("", 1.5, True, None):
        with pytest.raises(TypeError, match="keys of a dict of modules"):
            pyconv.state_dict({key: conv})
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        pyconv.load_state_dict({"a": conv}, [1, 2])


def test_shared_module_is_loaded_under_each_name():
    conv = pyconv.Conv1d(1, 1, 1, bias=False)
    layers = {"a": conv, "b": conv}
    assert list(pyconv.state_dict(layers)) == ["a.weight", "b.weight"]
    pyconv.load_state_dict(layers, {"a.weight": np.ones((1, 1, 1)), "b.weight": np.ones((1, 1, 1))})
    assert conv.weight.item() == 1


# --------------------------------------------------------------------------
# PyTorch's keys and shapes, from files PyTorch wrote

CASES, ARRAYS = golden()
MODULE_CASES = [c for c in CASES if c["kind"] == "module"]


def test_golden_module_cases_load_by_key():
    """Every golden module case: torch's weight and bias load strictly, outputs match."""
    classes = set()
    for case in MODULE_CASES:
        cls = getattr(pyconv, case["cls"])
        m = cls(**tuplify(case["ctor"]), dtype=case["dtype"], rng=0)
        sd = {"weight": ARRAYS[case["weight"]]}
        if case["bias"] is not None:
            sd["bias"] = ARRAYS[case["bias"]]
        assert m.load_state_dict(sd) == ([], []), case["id"]
        x = ARRAYS[case["input"]]
        if math.prod(x.shape) * m.weight[0].size > 2_000_000:
            continue  # large cases are run by test_golden.py
        y = m.forward(x, **tuplify(case["forward"]))
        assert_close(y, ARRAYS[case["output"]], case["dtype"], case["id"])
        classes.add(case["cls"])
    assert classes == {cls.__name__ for cls in CLASSES}


UNET_KEYS = ["enc.0.weight", "enc.0.bias", "enc.2.weight", "enc.2.bias", "down.weight",
             "down.bias", "mid.weight", "up.weight", "up.bias", "head.weight", "head.bias"]
BN_KEYS = ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
           "bn.num_batches_tracked"]


def _unet_layers():
    return {
        "enc": [pyconv.Conv1d(2, 16, 5, padding=2, padding_mode="reflect"), _relu,
                pyconv.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4)],
        "down": pyconv.Conv1d(16, 32, 4, stride=2, padding=1),
        "mid": pyconv.Conv1d(32, 32, 3, padding="same", groups=32, bias=False),
        "up": pyconv.ConvTranspose1d(32, 16, 4, stride=2, padding=1),
        "head": pyconv.Conv1d(32, 2, 1),
    }


def test_safetensors_from_pytorch():
    """The committed PyTorch state_dict (safetensors) loads strictly, with torch's keys."""
    st = pytest.importorskip("safetensors.numpy")
    weights = st.load_file(EXAMPLE_DATA / "port_unet1d.safetensors")
    assert sorted(weights) == sorted(UNET_KEYS + BN_KEYS)
    layers = _unet_layers()
    result = pyconv.load_state_dict(layers, weights)
    assert result.missing_keys == [] and sorted(result.unexpected_keys) == sorted(BN_KEYS)
    assert sorted(pyconv.state_dict(layers)) == sorted(UNET_KEYS)
    for key, value in pyconv.state_dict(layers).items():
        np.testing.assert_array_equal(value, weights[key], err_msg=key)


def test_safetensors_round_trip(tmp_path, backend):
    st = pytest.importorskip("safetensors.numpy")
    source, target = _layers(rng=1), _layers(rng=2)
    path = tmp_path / "layers.safetensors"
    st.save_file(pyconv.state_dict(source), str(path))
    assert pyconv.load_state_dict(target, st.load_file(str(path))) == ([], [])
    for key, value in pyconv.state_dict(target).items():
        np.testing.assert_array_equal(value, pyconv.state_dict(source)[key], err_msg=key)
    # float64 modules from the float32 file: converted on load
    wide = pyconv.load_state_dict([m.astype(np.float64) if isinstance(m, pyconv.Conv1d) else m
                                   for m in _layers()["enc"]],
                                  {key[len("enc."):]: value
                                   for key, value in st.load_file(str(path)).items()
                                   if key.startswith("enc.")})
    assert wide == ([], [])


# the example's check, in a Python where "import torch" fails
NO_TORCH = """
import runpy, sys
sys.modules["torch"] = None
import matplotlib
matplotlib.use("Agg")
runpy.run_path(sys.argv[1], run_name="__main__")
assert "torch" not in sys.modules or sys.modules["torch"] is None
print("ran without torch")
"""


def test_port_example_needs_no_torch(tmp_path):
    pytest.importorskip("safetensors.numpy")
    pytest.importorskip("matplotlib")
    script = ROOT / "examples" / "plot_port_unet1d.py"
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop("PYCONV_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "ran without torch" in proc.stdout
    assert "largest difference from PyTorch" in proc.stdout
