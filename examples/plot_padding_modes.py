"""
Padding modes side by side
==========================

``padding_mode`` decides what a convolution reads beyond the border of its
input.  pyconv has PyTorch's four modes:

``zeros``
    zeros (the default, and the only mode of the transposed convolutions);
``reflect``
    a mirror image that does not repeat the edge sample;
``replicate``
    the edge sample, repeated;
``circular``
    the other end of the signal (periodic wrap-around).

First the padded 1-D signal for each mode, as an index map: which input
sample fills each padded position.  Then a 2-D image blurred with a large
kernel under each mode, where the choice shows up as edge effects.
"""

import matplotlib.pyplot as plt
import numpy as np

import pyconv

MODES = ("zeros", "reflect", "replicate", "circular")

# %%
# The padded signal as an index map
# ---------------------------------
#
# A convolution with the one-tap kernel ``[1]`` and ``padding=p`` returns
# its padded input unchanged, so it shows the padding itself.  The input
# holds ``1, 2, ..., L``, so each padded value names the sample it came from
# (value ``v`` is ``x[v - 1]``), and a 0 is a zero.  ``reflect`` needs
# ``p < L`` and ``circular`` needs ``p <= L``.

L, p = 6, 4
x = np.arange(1.0, L + 1).reshape(1, 1, L)
one = np.ones((1, 1, 1))
padded = {m: pyconv.conv1d(x, one, padding=p, padding_mode=m)[0, 0] for m in MODES}
for m in MODES:
    print(f"{m:>9}:", " ".join(f"{v:.0f}" for v in padded[m]))

assert np.array_equal(padded["zeros"], np.pad(x[0, 0], p))
assert np.array_equal(padded["reflect"], np.pad(x[0, 0], p, mode="reflect"))
assert np.array_equal(padded["replicate"], np.pad(x[0, 0], p, mode="edge"))
assert np.array_equal(padded["circular"], np.pad(x[0, 0], p, mode="wrap"))

colors = plt.get_cmap("tab10").colors
fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
for row, m in enumerate(MODES):
    for col, v in enumerate(padded[m]):
        src = int(v) - 1
        face = "white" if src < 0 else colors[src]
        inside = p <= col < p + L
        ax.add_patch(plt.Rectangle((col, -row - 0.9), 0.95, 0.8, fc=face,
                                   alpha=1.0 if inside else 0.45,
                                   ec="k" if inside else "0.6", lw=1.2 if inside else 0.6))
        ax.text(col + 0.475, -row - 0.5, "0" if src < 0 else f"x[{src}]",
                ha="center", va="center", fontsize=8)
    ax.text(-0.3, -row - 0.5, m, ha="right", va="center", fontsize=10)
ax.axvline(p - 0.025, color="k", ls=":", lw=1)
ax.axvline(p + L - 0.025, color="k", ls=":", lw=1)
ax.set_xlim(-2.2, L + 2 * p)
ax.set_ylim(-len(MODES) - 0.1, 0.3)
ax.set_xticks(np.arange(L + 2 * p) + 0.475, [str(i - p) for i in range(L + 2 * p)])
ax.set_xlabel("position in the padded signal (0 = first input sample)")
ax.set_yticks([])
for side in ("left", "right", "top"):
    ax.spines[side].set_visible(False)
ax.set_title(f"conv1d(x, [1], padding={p}, padding_mode=...) for x = x[0..{L - 1}]")

# %%
# A large blur near the border
# ----------------------------
#
# A test image: a left-to-right brightness ramp, a disk touching the top
# border and a bar along the bottom.  A 15x15 Gaussian kernel with
# ``padding="same"`` keeps the image size; each mode feeds the kernel a
# different idea of what lies outside the image.

H = W = 64
yy, xx = np.mgrid[0:H, 0:W].astype(float)
image = 0.15 + 0.6 * xx / (W - 1)
image[(yy - 6) ** 2 + (xx - 40) ** 2 < 10 ** 2] = 1.0
image[H - 8:H - 3, 8:W - 8] = 0.0

k = 15
g = np.exp(-0.5 * ((np.arange(k) - k // 2) / 3.5) ** 2)
kernel = np.outer(g, g) / np.outer(g, g).sum()

blurred = {}
for m in MODES:
    conv = pyconv.Conv2d(1, 1, k, padding="same", padding_mode=m, bias=False,
                         dtype=np.float64)
    conv.weight[0, 0] = kernel
    blurred[m] = conv(image[None, None])[0, 0]     # (N, C, H, W) in and out

# Each result equals NumPy's own padding followed by the kernel's weighted sum
# over every 15x15 window (np.pad calls the modes constant/reflect/edge/wrap).
NP_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
for m in MODES:
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(image, k // 2, mode=NP_MODE[m]), (k, k))
    assert np.allclose(blurred[m], np.einsum("ijkl,kl->ij", windows, kernel))

# Away from the border all modes agree; at the border they differ.
core = (slice(k, H - k), slice(k, W - k))
for m in MODES:
    assert np.allclose(blurred[m][core], blurred["zeros"][core])
# the same blur through the functional op
assert np.allclose(pyconv.conv2d(image[None, None], kernel[None, None], padding="same",
                                 padding_mode="reflect")[0, 0], blurred["reflect"])

fig = plt.figure(figsize=(10, 5.6), layout="constrained")
grid = fig.add_gridspec(2, 5, height_ratios=[1, 0.85])
axes = [fig.add_subplot(grid[0, i]) for i in range(5)]
for ax, (title, img) in zip(axes, [("input", image)] + [(m, blurred[m]) for m in MODES]):
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
row = 6                                           # through the disk, near the top border
axes[0].axhline(row, color="C3", lw=1)
prof = fig.add_subplot(grid[1, :])
prof.plot(image[row], color="0.6", lw=3, label="input")
for i, m in enumerate(MODES):
    prof.plot(blurred[m][row], color=f"C{i}", label=m)
prof.axvspan(-0.5, k // 2, color="0.92")
prof.axvspan(W - 1 - k // 2, W - 0.5, color="0.92")
prof.set_xlim(-0.5, W - 0.5)
prof.set_xlabel("column (shaded: within half a kernel of the border)")
prof.set_ylabel(f"row {row}")
prof.legend(ncols=5, loc="lower center", fontsize=8)
fig.suptitle("15x15 Gaussian blur, padding='same', under each padding_mode")

# %%
# ``zeros`` darkens every border (the kernel averages in black);
# ``reflect`` and ``replicate`` keep the ramp's level and differ only in
# detail; ``circular`` wraps the bright right edge around to the left (and
# the bar at the bottom into the top rows), which suits periodic data only.
