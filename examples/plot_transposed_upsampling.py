"""
Transposed convolution as upsampling
====================================

A transposed convolution with ``stride=2`` spreads every input sample over
the output grid with a step of two and adds up the overlapping kernel
copies: it is a learnable (or, here, hand-made) upsampler.  This example

* upsamples a 1-D signal by two with :func:`pyconv.conv_transpose1d` and a
  linear-interpolation kernel,
* draws the linear map a transposed convolution is, to show what
  ``output_padding`` adds: one more output position, which receives real
  contributions from the input (it is *not* zero padding), and
* picks the same output length with ``output_size`` instead.

The output length of a transposed convolution is

.. math::

   L_{out} = (L_{in} - 1)\\,s - 2p + d\\,(k - 1) + \\mathrm{output\\_padding} + 1 .
"""

import matplotlib.pyplot as plt
import numpy as np

import pyconv

# %%
# Upsampling a signal by two
# --------------------------
#
# The kernel ``[0.5, 1, 0.5]`` with ``stride=2, padding=1`` copies each input
# sample to the even output positions and averages two neighbours into each
# odd position: linear interpolation.  Output position ``j`` sits at time
# ``j / 2`` on the input's time axis.

L = 12
t_in = np.arange(L, dtype=float)


def signal(t):
    return np.sin(2 * np.pi * t / 9.0) + 0.6 * np.exp(-0.5 * (t - 8.0) ** 2)


x = signal(t_in).reshape(1, 1, L)                # (N, C_in, L)
w = np.array([[[0.5, 1.0, 0.5]]])                # (C_in, C_out / groups, K)

y0 = pyconv.conv_transpose1d(x, w, stride=2, padding=1)                     # op = 0
y1 = pyconv.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1)   # op = 1
print("input length", L, "-> output_padding=0:", y0.shape[-1],
      "| output_padding=1:", y1.shape[-1])

# even positions copy the input, odd ones are midpoints of two neighbours
assert np.allclose(y1[0, 0, 0::2], x[0, 0])
assert np.allclose(y1[0, 0, 1:-1:2], 0.5 * (x[0, 0, :-1] + x[0, 0, 1:]))

t_fine = np.linspace(-0.5, L, 400)
fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
ax.plot(t_fine, signal(t_fine), color="0.8", lw=3, label="underlying function")
ax.stem(t_in, x[0, 0], linefmt="C0-", markerfmt="C0o", basefmt=" ",
        label=f"input ({L} samples)")
t_out = np.arange(y1.shape[-1]) / 2
ax.plot(t_out[:-1], y1[0, 0, :-1], "C1.-", label=f"output ({y1.shape[-1]} samples)")
ax.plot(t_out[-1], y1[0, 0, -1], "C3s", ms=8,
        label="position added by output_padding=1")
ax.set_xlabel("time (input samples)")
ax.set_ylabel("value")
ax.set_title("conv_transpose1d(x, [0.5, 1, 0.5], stride=2, padding=1, output_padding=1)",
             fontsize=10)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)

# %%
# The extra position holds ``0.5 * x[-1]``: the half of the last sample's
# kernel copy that ``output_padding=0`` cut off.  It is a real contribution
# from the input, the same value the interpolation would give if the signal
# were followed by a zero.

print("last output value:", y1[0, 0, -1], "= 0.5 * x[-1] =", 0.5 * x[0, 0, -1])
assert np.isclose(y1[0, 0, -1], 0.5 * x[0, 0, -1])

# %%
# What ``output_padding`` does, drawn
# -----------------------------------
#
# A transposed convolution is linear in its input, so it is a matrix.  Feeding
# it the unit impulses (the rows of an identity matrix, as a batch) gives that
# matrix column by column.  Row ``j`` of the matrix lists which input samples
# reach output position ``j``, and with which kernel tap.
#
# Why the ambiguity exists: a ``stride=2`` convolution with the same kernel
# and padding maps inputs of length 9 *and* 10 to 5 outputs, so its
# transpose (its gradient with respect to the input) has to be told which
# length to rebuild.  ``output_padding=0`` gives 9, ``output_padding=1`` gives
# 10.  With ``output_padding=1`` the transposed matrix is exactly the
# transpose of the length-10 convolution's matrix, extra row included.

n = 5
eye = np.eye(n).reshape(n, 1, n)                 # a batch of n unit impulses


def transposed_matrix(op):
    out = pyconv.conv_transpose1d(eye, w, stride=2, padding=1, output_padding=op)
    return out[:, 0, :].T                        # (L_out, L_in)


M0, M1 = transposed_matrix(0), transposed_matrix(1)
for length in (9, 10):
    print(f"conv1d on length {length} ->",
          pyconv.conv1d(np.zeros((1, 1, length)), w, stride=2, padding=1).shape[-1], "outputs")

# the convolution's own matrix, for an input of length 10
C = pyconv.conv1d(np.eye(10).reshape(10, 1, 10), w, stride=2, padding=1)[:, 0, :].T  # (5, 10)
assert np.allclose(M1, C.T)
assert np.allclose(M1[:-1], M0)                  # op=1 keeps every row of op=0 ...
assert M1[-1].any()                              # ... and adds a non-zero one

fig, axes = plt.subplots(1, 2, figsize=(8, 5.2), layout="constrained", sharey=True)
for ax, M, op in zip(axes, (M0, M1), (0, 1)):
    shown = np.full((10, n), np.nan)
    shown[:M.shape[0]] = M
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1.3)
    for (j, i), v in np.ndenumerate(M):
        if v:
            ax.text(i, j, f"{v:g}", ha="center", va="center", fontsize=9)
    for j in range(M.shape[0], 10):
        ax.text(n / 2 - 0.5, j, "(no such output position)", ha="center", va="center",
                fontsize=8, color="0.5")
    if op == 1:
        ax.add_patch(plt.Rectangle((-0.5, 8.5), n, 1, fill=False, ec="C3", lw=2.5))
        ax.annotate("extra row: x[4] reaches it\nthrough kernel tap 2",
                    xy=(n - 0.5, 9), xytext=(n + 0.2, 7.6), color="C3", fontsize=8,
                    annotation_clip=False, arrowprops=dict(arrowstyle="->", color="C3"))
    ax.set_title(f"output_padding={op}: output length {M.shape[0]}")
    ax.set_xticks(range(n), [f"x[{i}]" for i in range(n)])
    ax.set_yticks(range(10), [f"y[{j}]" for j in range(10)])
    ax.set_xlabel("input position")
axes[0].set_ylabel("output position")
fig.suptitle("conv_transpose1d as a matrix (kernel [0.5, 1, 0.5], stride 2, padding 1)")

# %%
# ``output_size`` instead of ``output_padding``
# ---------------------------------------------
#
# Porting code often knows the size it wants back (say, the length of the
# signal before a strided convolution) rather than the padding.
# ``ConvTranspose1d.forward(x, output_size=...)`` accepts any length in the
# valid range (here 23 or 24) and works out ``output_padding`` itself; the
# module's own ``output_padding`` is then ignored.  The functional ops
# accept ``output_size=`` too.

up = pyconv.ConvTranspose1d(1, 1, 3, stride=2, padding=1, bias=False, dtype=np.float64)
up.weight[...] = w
for size, expected in ((2 * L - 1, y0), (2 * L, y1)):
    y = up(x, output_size=(size,))
    assert y.shape[-1] == size and np.allclose(y, expected)
    print(f"output_size=({size},) -> shape {y.shape}")
assert np.allclose(pyconv.conv_transpose1d(x, w, stride=2, padding=1, output_size=(2 * L,)), y1)

try:
    up(x, output_size=(2 * L + 1,))             # outside the valid range
except ValueError as err:
    print("ValueError:", err)
