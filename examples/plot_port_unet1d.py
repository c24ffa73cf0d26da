"""
Porting a PyTorch model: its weights from safetensors, no PyTorch
=================================================================

A small 1-D U-Net was built and run in PyTorch by
``examples/data/gen_port_unet1d.py``, which saved the model's
``state_dict()`` to ``port_unet1d.safetensors`` and, for a fixed input, the
output PyTorch computed.  Here the same model runs in NumPy and pyconv, with
no PyTorch installed:

#. read the weights with ``safetensors.numpy`` (``pip install
   "pyconv[safetensors]"``),
#. build the convolution layers as pyconv modules, named like the model's
   layers,
#. load them all at once with :func:`pyconv.load_state_dict`,
#. write the few lines of the forward pass that are not convolutions (a
   ReLU, an evaluation-mode batch norm, a skip connection) in NumPy,
#. check the output against PyTorch's.

The PyTorch model, for reference::

    class TinyUNet1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(
                nn.Conv1d(2, 16, 5, padding=2, padding_mode="reflect"),
                nn.ReLU(),
                nn.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4))
            self.down = nn.Conv1d(16, 32, 4, stride=2, padding=1)
            self.bn = nn.BatchNorm1d(32)
            self.mid = nn.Conv1d(32, 32, 3, padding="same", groups=32, bias=False)
            self.up = nn.ConvTranspose1d(32, 16, 4, stride=2, padding=1)
            self.head = nn.Conv1d(32, 2, 1)

        def forward(self, x):
            e = self.enc(x)
            d = torch.relu(self.bn(self.down(e)))
            m = torch.relu(self.mid(d)) + d
            u = self.up(m, output_size=e.shape[-1:])
            return self.head(torch.cat([e, u], dim=1))
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from safetensors.numpy import load_file

import pyconv

try:
    DATA = Path(__file__).resolve().parent / "data"
except NameError:  # sphinx-gallery runs the script from its folder, without __file__
    DATA = Path("data").resolve()

# %%
# The weights
# -----------
#
# ``load_file`` gives a dict of NumPy arrays with the model's keys: the
# layers of the ``Sequential`` by index (``enc.0``, ``enc.2``), the others
# by attribute name, and the batch norm's statistics.

weights = load_file(DATA / "port_unet1d.safetensors")
for key, value in weights.items():
    print(f"{key:24s} {str(value.shape):12s} {value.dtype}")

# %%
# The layers, loaded by name
# --------------------------
#
# The convolutions are built with the model's arguments.  A list stands for
# the ``Sequential``: its indices are the keys' indices, and the ReLU in the
# middle (a plain function) holds no parameters, so the same list also runs
# the layers in order.  ``load_state_dict`` checks every key, shape and dtype
# before it copies anything; the keys it did not use, the batch norm's, come
# back in ``unexpected_keys``.


def relu(x):
    return np.maximum(x, 0)


layers = {
    "enc": [pyconv.Conv1d(2, 16, 5, padding=2, padding_mode="reflect"),
            relu,
            pyconv.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4)],
    "down": pyconv.Conv1d(16, 32, 4, stride=2, padding=1),
    "mid": pyconv.Conv1d(32, 32, 3, padding="same", groups=32, bias=False),
    "up": pyconv.ConvTranspose1d(32, 16, 4, stride=2, padding=1),
    "head": pyconv.Conv1d(32, 2, 1),
}
report = pyconv.load_state_dict(layers, weights)
print("missing:", report.missing_keys)
print("not convolutions:", report.unexpected_keys)
assert report.missing_keys == []
assert all(key.startswith("bn.") for key in report.unexpected_keys)

# %%
# The rest of the forward pass
# ----------------------------
#
# In evaluation mode a batch norm is an affine map per channel, from its
# running statistics (``eps`` is ``BatchNorm1d``'s default).


def batch_norm(x, eps=1e-5):
    scale = weights["bn.weight"] / np.sqrt(weights["bn.running_var"] + eps)
    shift = weights["bn.bias"] - weights["bn.running_mean"] * scale
    return x * scale[:, None] + shift[:, None]


def forward(x):
    e = x
    for layer in layers["enc"]:
        e = layer(e)
    d = relu(batch_norm(layers["down"](e)))
    m = relu(layers["mid"](d)) + d
    u = layers["up"](m, output_size=e.shape[-1:])
    return layers["head"](np.concatenate([e, u], axis=1))


# %%
# Against PyTorch's output
# ------------------------
#
# The input has an odd length, 101: the strided ``down`` layer maps 100 and
# 101 to the same 50 positions, and ``output_size`` tells ``up`` which one
# to give back, as in the PyTorch model.

io = load_file(DATA / "port_unet1d_io.safetensors")
x, expected = io["input"], io["output"]
y = forward(x)
error = np.abs(y - expected).max()
print(f"output {y.shape} {y.dtype}, largest difference from PyTorch: {error:.2e}")
assert y.shape == expected.shape and y.dtype == np.float32
assert error <= 1e-5 * max(1.0, np.abs(expected).max())

fig, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True, layout="constrained")
for c in range(2):
    axes[0].plot(expected[0, c], lw=3, alpha=0.4, color=f"C{c}",
                 label=f"PyTorch, channel {c}")
    axes[0].plot(y[0, c], "--", lw=1, color=f"C{c}", label=f"pyconv, channel {c}")
    axes[1].plot(y[0, c] - expected[0, c], color=f"C{c}", label=f"channel {c}")
axes[0].set_ylabel("output, item 0")
axes[0].legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", ncols=4)
axes[1].set_ylabel("pyconv - PyTorch")
axes[1].set_xlabel("position")
axes[1].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
plt.show()
