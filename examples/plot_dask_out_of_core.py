"""
A volume larger than the workers' memory, on a Dask cluster
===========================================================

pyconv's functions accept Dask arrays and return lazy Dask arrays (see the
Dask page of the docs).  Here a 3-D volume stored on disk in Zarr goes
through three convolutions, chunk by chunk, on a ``dask.distributed``
cluster of two process workers with a memory limit each, and the result
is written to a second Zarr store:

1. a 3-D smoothing (a 3x3x3 binomial kernel, ``padding_mode="reflect"``);
2. a strided 3-D convolution (:class:`pyconv.Conv3d`, ``stride=2``): an
   anti-aliased 2x downsampling;
3. a transposed 3-D convolution (:class:`pyconv.ConvTranspose3d`,
   ``stride=2``): trilinear 2x upsampling back to the full grid.

No stage is ever held in memory whole: each task reads one slab of the
volume plus the few planes its kernel reaches into the neighbouring slabs.
The peak resident memory of every worker is measured at the end.

By default the volume is small (64^3, 1 MiB) so that the example runs in
seconds.  Two environment variables scale it up:
``PYCONV_DASK_EXAMPLE_SIZE`` (edge length of the cube, a multiple of 4) and
``PYCONV_DASK_EXAMPLE_WORKER_MIB`` (memory limit per worker, default 1024).
The docs quote a run with a 1024^3 volume (4 GiB) and two workers of 512 MiB
each: the input is 4x the memory of the whole cluster.

The cluster uses worker *processes*, so the work is done under an
``if __name__ == "__main__":`` guard (the workers start by importing this
script); the cells before it only define functions.
"""

import logging
import os
import shutil
import sys
import tempfile
import time

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster, progress

import pyconv

SIZE = int(os.environ.get("PYCONV_DASK_EXAMPLE_SIZE", "64"))
WORKER_MIB = int(os.environ.get("PYCONV_DASK_EXAMPLE_WORKER_MIB", "1024"))
SLAB = 4  # planes per chunk: the volume is cut into slabs along its first axis
assert SIZE % SLAB == 0, "PYCONV_DASK_EXAMPLE_SIZE must be a multiple of 4"

# %%
# A synthetic volume, written chunk by chunk
# ------------------------------------------
#
# Each chunk is generated from its own coordinates (a smooth pattern plus
# noise seeded by the chunk's position), so the volume never exists in
# memory as a whole, and the same chunk always gets the same values.


def synthetic_chunk(block_info=None):
    (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    z, y, x = np.ogrid[z0:z1, y0:y1, x0:x1]
    pattern = np.sin(z / 9.0) * np.cos(y / 13.0) + np.sin((x + y) / 17.0)
    noise = np.random.default_rng([z0, y0, x0]).standard_normal(pattern.shape)
    return (pattern + 0.5 * noise).astype(np.float32)


def write_volume(path):
    chunks = (SLAB, SIZE, SIZE)
    volume = da.map_blocks(synthetic_chunk, chunks=tuple((c,) * (SIZE // c) for c in chunks),
                           dtype=np.float32)
    da.to_zarr(volume, path)


# %%
# The pipeline
# ------------
#
# The same code runs on NumPy arrays and on Dask arrays.  The volume is one
# channel, ``(N, C, D, H, W) = (1, 1, SIZE, SIZE, SIZE)``.  The
# downsampling kernel is ``[1, 3, 3, 1] / 8`` in each direction (a smooth
# average of 4 samples), the upsampling kernel ``[1, 3, 3, 1] / 4`` (each
# output voxel mixes its two nearest coarse voxels 3:1, trilinear
# interpolation).


def binomial(taps):
    k = np.array(taps, dtype=np.float64)
    return np.einsum("i,j,k->ijk", k, k, k)


SMOOTH = (binomial([1, 2, 1]) / 64).astype(np.float32)[None, None]     # (1, 1, 3, 3, 3)
DOWN = pyconv.Conv3d(1, 1, 4, stride=2, padding=1, bias=False)
DOWN.weight[...] = binomial([1, 3, 3, 1]) / 512
UP = pyconv.ConvTranspose3d(1, 1, 4, stride=2, padding=1, bias=False)
UP.weight[...] = binomial([1, 3, 3, 1]) / 64


def pipeline(x):
    smooth = pyconv.conv3d(x, SMOOTH, padding=1, padding_mode="reflect")
    return UP(DOWN(smooth))


# %%
# Memory of a worker
# ------------------
#
# The peak resident set size of a process since it started (Linux reports
# KiB, macOS bytes).  The workers are restarted after writing the input, so
# their peak covers the pipeline only.


def peak_rss_mib():
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


# %%
# Run it
# ------
#
# The output is computed and stored chunk by chunk (``da.to_zarr`` with
# ``compute=False`` gives the write as one lazy task graph) while
# ``distributed.progress`` draws a progress bar.  Then the first slabs are
# recomputed in memory, with plain NumPy arrays, and compared with what the
# cluster wrote: away from the cut (where the in-memory slab has a border
# the full volume does not have), the values agree to float32 rounding.


def main():
    workdir = tempfile.mkdtemp(prefix="pyconv-dask-example-")
    src, dst = os.path.join(workdir, "volume.zarr"), os.path.join(workdir, "smoothed.zarr")
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=f"{WORKER_MIB}MiB", dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
            write_volume(src)
            client.restart()
            volume = da.from_zarr(src)
            out = pipeline(volume[None, None])[0, 0]          # lazy: nothing computed yet
            print(f"input {volume.shape} {volume.dtype}, {volume.nbytes / 2**30:.3f} GiB on "
                  f"disk in {volume.numblocks[0]} slabs; output {out.shape}, "
                  f"{out.numblocks[0]} slabs")
            t0 = time.perf_counter()
            job = client.compute(da.to_zarr(out, dst, compute=False))
            progress(job, interval="0.5s")
            job.result()
            elapsed = time.perf_counter() - t0
            peaks = client.run(peak_rss_mib)

        limit_gib = 2 * WORKER_MIB / 1024
        print(f"\n{volume.nbytes / 2**30:.3f} GiB volume, {limit_gib:.3f} GiB of worker memory "
              f"in all ({volume.nbytes / 2**30 / limit_gib:.2f}x): {elapsed:.1f} s, "
              f"{volume.size / elapsed / 1e6:.1f} Mvoxel/s")
        for address, peak in sorted(peaks.items()):
            print(f"worker {address}: peak RSS {peak:.0f} MiB (limit {WORKER_MIB} MiB)")
        assert all(peak < WORKER_MIB for peak in peaks.values())

        depth = min(SIZE, 48)
        slab = np.asarray(da.from_zarr(src)[:depth])
        expected = pipeline(slab[None, None])[0, 0]
        keep = depth if depth == SIZE else depth - 16
        written = da.from_zarr(dst)
        got = np.asarray(written[:keep])
        err = np.abs(got - expected[:keep]).max()
        print(f"first {keep} planes vs in memory: max abs difference {err:.2e}")
        assert err <= 1e-5 * max(1.0, np.abs(expected).max())

        mid = SIZE // 2
        planes = [np.asarray(da.from_zarr(src)[mid]), np.asarray(written[mid])]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, plane, title in zip(axes, planes, ("input (plane z = SIZE/2)",
                                               "smoothed, down- and upsampled")):
        ax.imshow(plane, cmap="gray", vmin=-2.5, vmax=2.5)
        ax.set_title(title)
        ax.set_axis_off()
    names = [f"worker {i}" for i in range(len(peaks))]
    axes[2].bar(names, [peaks[a] for a in sorted(peaks)], color="tab:blue")
    axes[2].axhline(WORKER_MIB, color="tab:red", linestyle="--", label="memory limit")
    axes[2].set_ylabel("peak RSS (MiB)")
    axes[2].set_title(f"input: {volume.nbytes / 2**20:.0f} MiB")
    axes[2].legend(loc="lower right")
    fig.tight_layout()


if __name__ == "__main__":
    main()
