"""
Upsampling a 3-D volume with ConvTranspose3d
============================================

A :class:`pyconv.ConvTranspose3d` with ``stride=2`` doubles every spatial
dimension of a volume.  With hand-set weights it is a classic interpolator:

* ``kernel_size=2`` with a box kernel (all ones) copies each voxel into a
  2x2x2 block: nearest-neighbour upsampling;
* ``kernel_size=4, padding=1`` with the separable kernel
  ``[1/4, 3/4, 3/4, 1/4]`` in each direction is trilinear interpolation on
  the half-voxel-shifted grid of the doubled volume.

``groups=2`` with two channels gives each channel its own filter (a
``(2, 1, k, k, k)`` weight): the two shapes in the volume, a sphere and a
torus, never mix.  Orthogonal slices through the centre show the volume
before and after.
"""

import matplotlib.pyplot as plt
import numpy as np

import pyconv

# %%
# Two indicator volumes, one per channel
# --------------------------------------
#
# On a 12x12x12 grid (voxel centres at 0..11): channel 0 is a sphere, channel
# 1 a torus around the z axis.  The volume is unbatched, ``(C, D, H, W)``.

n = 12
c = (n - 1) / 2
z, y, x = np.mgrid[0:n, 0:n, 0:n].astype(float) - c
sphere = (z ** 2 + y ** 2 + x ** 2 <= 2.4 ** 2)
torus = ((np.hypot(x, y) - 3.9) ** 2 + z ** 2 <= 1.4 ** 2)
vol = np.stack([sphere, torus]).astype(np.float64)            # (2, 12, 12, 12)
print("input volume:", vol.shape, "voxels set per channel:", vol.sum(axis=(1, 2, 3)))

# %%
# Nearest neighbour: kernel 2, stride 2
# -------------------------------------
#
# A transposed convolution's weight is ``(C_in, C_out / groups, kD, kH, kW)``.

nearest = pyconv.ConvTranspose3d(2, 2, kernel_size=2, stride=2, groups=2, bias=False,
                                 dtype=np.float64)
nearest.weight[...] = 1.0
up_nearest = nearest(vol)                                     # (2, 24, 24, 24)
print(nearest, "->", up_nearest.shape)
assert np.array_equal(up_nearest, vol.repeat(2, axis=1).repeat(2, axis=2).repeat(2, axis=3))

# %%
# Trilinear: kernel 4, stride 2, padding 1
# ----------------------------------------
#
# Output size per dimension: ``(12 - 1) * 2 - 2 * 1 + 4 = 24``.  Output voxel
# ``j`` sits at input coordinate ``(j + 0.5) / 2 - 0.5``, between two input
# voxels weighted 3/4 and 1/4.  At the border the missing outside neighbour
# counts as zero, so the first and last output planes are darkened; dividing
# by the upsampled all-ones volume (a *normalised* convolution) turns that
# into the usual clamp-to-edge interpolation.

taps = np.array([0.25, 0.75, 0.75, 0.25])
trilinear = pyconv.ConvTranspose3d(2, 2, kernel_size=4, stride=2, padding=1, groups=2,
                                   bias=False, dtype=np.float64)
trilinear.weight[...] = np.einsum("i,j,k->ijk", taps, taps, taps)
raw = trilinear(vol)
weight_sum = trilinear(np.ones_like(vol))
up_linear = raw / weight_sum
print(trilinear, "->", up_linear.shape)

# the same interpolation written with np.interp, one axis at a time
coords = (np.arange(2 * n) + 0.5) / 2 - 0.5
expected = vol
for axis in (1, 2, 3):
    expected = np.apply_along_axis(lambda v: np.interp(coords, np.arange(n), v), axis, expected)
assert np.allclose(up_linear, expected)
assert np.allclose(raw[:, 2:-2, 2:-2, 2:-2], expected[:, 2:-2, 2:-2, 2:-2])  # interior

# %%
# Orthogonal slices before and after
# ----------------------------------
#
# Sphere in red, torus in green.  The axes are in input-voxel units, so the
# three rows line up: the upsampled volumes have twice the samples over the
# same extent.  The last column is a line through the centre along x.


def rgb(volume, axis, index):
    sl = [slice(None)] * 3
    sl[axis] = index
    r, g = (np.clip(volume[ch][tuple(sl)], 0, 1) for ch in (0, 1))
    return np.stack([r, g, 0.15 * np.ones_like(r)], axis=-1)


rows = [("input 12³", vol), ("nearest 24³ (k=2)", up_nearest),
        ("trilinear 24³ (k=4, p=1)", up_linear)]
views = [(0, "z", ("x", "y")), (1, "y", ("x", "z")), (2, "x", ("y", "z"))]
extent = (-0.5, n - 0.5, -0.5, n - 0.5)
fig, axes = plt.subplots(3, 4, figsize=(11, 8.2), layout="constrained")
for r, (label, v) in enumerate(rows):
    size = v.shape[1]
    grid = np.arange(size) if size == n else coords
    for col, (axis, name, (h, vert)) in enumerate(views):
        index = size // 2
        ax = axes[r, col]
        ax.imshow(rgb(v, axis, index), extent=extent, origin="lower",
                  interpolation="nearest")
        ax.set_title(f"{label}\n{name} = {grid[index]:.2f}", fontsize=9)
        ax.set_xlabel(h, fontsize=8)
        ax.set_ylabel(vert, fontsize=8)
        ax.tick_params(labelsize=7)
    ax = axes[r, 3]
    ax.step(np.arange(n), vol[1, n // 2, n // 2], where="mid", color="0.7", lw=3,
            label="input")
    if r > 0:
        ax.plot(grid, v[1, size // 2, size // 2], "C2.-", label=label.split()[0])
    ax.set_ylim(-0.05, 1.1)
    ax.set_title("torus channel along x\n(z, y at the centre)", fontsize=9)
    ax.legend(fontsize=7, loc="center")
    ax.tick_params(labelsize=7)
fig.suptitle("ConvTranspose3d(2, 2, kernel, stride=2, groups=2): per-channel upsampling")
