"""
Edge detection with conv2d
==========================

Classic edge detectors are small fixed convolution kernels.  This example
runs them on the photograph of Grace Hopper that ships with matplotlib,
entirely with :func:`pyconv.conv2d`:

* a 1x1 convolution turns RGB into grayscale (a weighted channel sum),
* a strided 2x2 box convolution halves the resolution,
* the two Sobel kernels, stacked as the two *output channels* of one weight,
  give the horizontal and vertical derivatives in a single call, and their
  magnitude shows the edges,
* a Laplacian-of-Gaussian kernel, built by convolving a Gaussian with the
  Laplacian stencil, marks blobs and edges by its sign changes.

Note that ``conv2d`` computes a cross-correlation (the kernel is not
flipped), like PyTorch: a kernel with ``-1`` on the left and ``+1`` on the
right responds positively where the image brightens to the right.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import cbook

import pyconv

# %%
# From an RGB photograph to a grayscale array
# -------------------------------------------
#
# The image is ``(H, W, 3)`` uint8; as a batch of one it becomes
# ``(1, 3, H, W)``.  A ``(1, 3, 1, 1)`` weight holding the luma coefficients
# mixes the three channels into one.  A 2x2 averaging kernel with
# ``stride=2`` then downsamples by two.

with cbook.get_sample_data("grace_hopper.jpg") as f:
    rgb = plt.imread(f)
x = (rgb.astype(np.float32) / 255).transpose(2, 0, 1)[None]     # (1, 3, 600, 512)

luma = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
gray = pyconv.conv2d(x, luma)                                     # (1, 1, 600, 512)
box = np.full((1, 1, 2, 2), 0.25, dtype=np.float32)
gray = pyconv.conv2d(gray, box, stride=2)                         # (1, 1, 300, 256)
print("grayscale image:", gray.shape, gray.dtype)

# %%
# Sobel: two filters as two output channels
# -----------------------------------------
#
# One weight of shape ``(2, 1, 3, 3)`` holds both Sobel kernels, so a single
# call returns the x- and y-derivatives as channels 0 and 1.
# ``padding=1`` keeps the size and ``padding_mode="replicate"`` keeps the
# image border from showing up as an edge.

sobel_x = np.array([[-1, 0, 1],
                    [-2, 0, 2],
                    [-1, 0, 1]], dtype=np.float32)
sobel = np.stack([sobel_x, sobel_x.T])[:, None]                  # (2, 1, 3, 3)
grads = pyconv.conv2d(gray, sobel, padding=1, padding_mode="replicate")
gx, gy = grads[0]
magnitude = np.hypot(gx, gy)

# the same derivative, spelled out with NumPy
g = np.pad(gray[0, 0], 1, mode="edge")
windows = np.lib.stride_tricks.sliding_window_view(g, (3, 3))
assert np.allclose(gx, np.einsum("ijkl,kl->ij", windows, sobel_x), atol=1e-5)
assert np.allclose(gy, np.einsum("ijkl,kl->ij", windows, sobel_x.T), atol=1e-5)

# %%
# Laplacian of Gaussian
# ---------------------
#
# The Laplacian stencil alone amplifies pixel noise, so it is combined with a
# Gaussian blur.  Convolving the two kernels with each other gives one 9x9
# kernel; a transposed convolution of one kernel by the other is exactly that
# "full" convolution (both kernels are symmetric, so flipping does not
# matter).

r = np.arange(-3, 4)
gauss = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / 1.2 ** 2)
gauss = (gauss / gauss.sum()).astype(np.float32)
laplace = np.array([[0, 1, 0],
                    [1, -4, 1],
                    [0, 1, 0]], dtype=np.float32)
log_kernel = pyconv.conv_transpose2d(gauss[None, None], laplace[None, None])  # (1, 1, 9, 9)
assert log_kernel.shape == (1, 1, 9, 9) and abs(log_kernel.sum()) < 1e-6

log = pyconv.conv2d(gray, log_kernel, padding="same", padding_mode="replicate")[0, 0]
# one LoG pass equals a blur followed by the Laplacian (away from the border)
two_pass = pyconv.conv2d(pyconv.conv2d(gray, gauss[None, None]), laplace[None, None])[0, 0]
assert np.allclose(log[4:-4, 4:-4], two_pass, atol=1e-5)

# %%
# The figure
# ----------

edges = magnitude > np.percentile(magnitude, 90)
panels = [
    ("grayscale (1x1 conv + stride-2 box)", gray[0, 0], "gray", None),
    ("Sobel x (output channel 0)", gx, "RdBu_r", np.abs(gx).max()),
    ("Sobel y (output channel 1)", gy, "RdBu_r", np.abs(gy).max()),
    ("gradient magnitude", magnitude, "magma", None),
    ("Laplacian of Gaussian (9x9)", log, "RdBu_r", np.percentile(np.abs(log), 99.5)),
    ("top 10% magnitude", edges, "gray_r", None),
]
fig, axes = plt.subplots(2, 3, figsize=(10, 8.2), layout="constrained")
for ax, (title, img, cmap, lim) in zip(axes.flat, panels):
    if lim is None:
        ax.imshow(img, cmap=cmap)
    else:
        ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=10)
    ax.set_axis_off()
fig.suptitle("Edge detection with pyconv.conv2d")
