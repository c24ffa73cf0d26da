"""What a type checker infers from pyconv's public signatures (checked by mypy, not run).

``python -m mypy`` (``.ci/run``) checks this file with the package: every
``assert_type`` states the type a call must have, and every ``type: ignore``
a call that must be rejected (with ``warn_unused_ignores``, a call that
type-checks after all is an error too).  The functions are never called;
pytest only imports the module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

import pyconv
import pyconv.grad

if TYPE_CHECKING:
    import dask.array as da
    import pyopencl.array as cla
    from typing_extensions import assert_type


def functional(x: NDArray[np.float32], w: NDArray[np.float32], dx: da.Array,
               cx: cla.Array) -> None:
    """NumPy (or array-like) operands give an ndarray; a Dask or device operand its kind."""
    assert_type(pyconv.conv1d(x, w), NDArray[Any])
    assert_type(pyconv.conv2d([[[[1.0]]]], np.ones((1, 1, 1, 1)), stride=(1, 1),
                              padding="same", padding_mode="reflect"), NDArray[Any])
    assert_type(pyconv.conv3d(x, w, np.zeros(2), 1, (0, 1, 1), np.int64(2), 1,
                              backend="reference"), NDArray[Any])
    assert_type(pyconv.conv_transpose1d(x, w, None, 2, 1, 1, 1, 1, output_size=[9]),
                NDArray[Any])
    assert_type(pyconv.conv2d(dx, w), da.Array)
    assert_type(pyconv.conv2d(x, dx), da.Array)
    assert_type(pyconv.conv2d(x, w, dx), da.Array)
    assert_type(pyconv.conv_transpose2d(dx, dx, x), da.Array)
    assert_type(pyconv.conv1d(cx, cx), cla.Array)
    assert_type(pyconv.conv_transpose3d(x, cx), cla.Array)


def rejected(x: NDArray[np.float32], w: NDArray[np.float32]) -> None:
    """Argument forms PyTorch refuses are type errors too."""
    pyconv.conv_transpose1d(x, w, padding="same")  # type: ignore[arg-type]
    pyconv.conv1d(x, w, padding="full")  # type: ignore[arg-type]
    pyconv.conv1d(x, w, padding_mode="constant")  # type: ignore[call-overload]
    pyconv.conv1d(x, w, stride=1.5)  # type: ignore[call-overload]
    pyconv.conv1d(x, w, output_size=[3])  # type: ignore[call-overload]


def gradients(x: NDArray[np.float64], w: NDArray[np.float64], gy: NDArray[np.float64],
              dgy: da.Array) -> None:
    assert_type(pyconv.grad.conv2d_input(x.shape, w, gy, padding="same"), NDArray[Any])
    assert_type(pyconv.grad.conv2d_weight(x, w.shape, gy, stride=2), NDArray[Any])
    assert_type(pyconv.grad.conv_transpose1d_input((1, 2, 3), w, gy, 2, 1, 1),
                NDArray[Any])
    assert_type(pyconv.grad.conv_transpose3d_weight(x, [2, 3, 1, 1, 1], gy), NDArray[Any])
    assert_type(pyconv.grad.conv1d_input(x.shape, w, dgy), da.Array)
    assert_type(pyconv.grad.conv1d_weight(x, w.shape, dgy), da.Array)
    assert_type(pyconv.grad.conv_transpose2d_weight(dgy, w.shape, gy), da.Array)


def modules(x: NDArray[np.float32], dx: da.Array) -> None:
    conv = pyconv.Conv2d(3, 8, 3, padding="same", padding_mode="circular", dtype="float64",
                         rng=0)
    up = pyconv.ConvTranspose2d(8, 3, (4, 4), stride=2, padding=1, rng=np.random.default_rng())
    assert_type(conv(x), NDArray[Any])
    assert_type(conv.forward(x), NDArray[Any])
    assert_type(up(x, output_size=(16, 16)), NDArray[Any])
    assert_type(up(dx), da.Array)
    assert_type(conv.astype(np.float32), pyconv.Conv2d)
    assert_type(conv.weight, NDArray[Any])
    assert_type(conv.bias, "NDArray[Any] | None")
    assert_type(conv.state_dict(), dict[str, NDArray[Any]])
    assert_type(conv.load_state_dict({"weight": x}), pyconv.IncompatibleKeys)
    assert_type(pyconv.state_dict({"enc": [conv, None], "up": up}), dict[str, NDArray[Any]])
    conv(x, output_size=(4, 4))  # type: ignore[call-overload]
    pyconv.ConvTranspose1d(2, 2, 3, padding="same")  # type: ignore[arg-type]


def registry() -> None:
    assert_type(pyconv.backends()[0]["available"], bool)
    assert_type(pyconv.backends()[0]["reason"], "str | None")
    assert_type(pyconv.get_backend(), str)
    with pyconv.use_backend("reference") as name:
        assert_type(name, str)
    pyconv.set_num_threads(np.int64(2))
    assert_type(pyconv.get_num_threads(), int)
