"""
Timing the backends
===================

Every pyconv call can name its backend with ``backend=...`` (or
:func:`pyconv.use_backend` for a block, or ``PYCONV_BACKEND`` for a whole
run).  This example times each backend that is available on the machine
building these docs on a few small problems, and checks that they all give
the same answer.

* ``reference`` is the oracle: plain Python loops, so it only gets the
  smallest problem.
* ``cython`` runs compiled OpenMP kernels on the CPU.
* ``opencl`` runs on an OpenCL device.  Here it is timed with NumPy arrays in
  and out, so the copies to and from the device are included; its first call
  compiles the kernels, which the warm-up call absorbs.

The timings are the fastest of a few repeats with :func:`time.perf_counter`:
a rough picture of this machine at the time the docs were built, not a
benchmark.  The performance page of the documentation has the real one.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np

import pyconv

# %%
# Which backends are there?
# -------------------------

available = []
for b in pyconv.backends():
    state = "available" if b["available"] else f"unavailable ({b['reason']})"
    print(f"{b['name']:>10}: {state}")
    if b["available"]:
        available.append(b["name"])
print("threads:", pyconv.get_num_threads())

# %%
# The problems
# ------------
#
# Each problem is a call of one functional op on float32 data.  ``small`` is
# the only one the reference backend runs.

rng = np.random.default_rng(0)


def data(*shape):
    return rng.standard_normal(shape, dtype=np.float32)


problems = {
    "small conv2d\n(1,4,12,12) * (8,4,3,3)":
        (pyconv.conv2d, data(1, 4, 12, 12), data(8, 4, 3, 3), dict(padding=1)),
    "conv1d\n(16,32,256) * (64,32,5)":
        (pyconv.conv1d, data(16, 32, 256), data(64, 32, 5), dict(padding=2)),
    "conv2d\n(8,16,32,32) * (32,16,3,3)":
        (pyconv.conv2d, data(8, 16, 32, 32), data(32, 16, 3, 3), dict(padding=1)),
    "conv_transpose2d, stride 2\n(8,32,16,16) * (32,16,4,4)":
        (pyconv.conv_transpose2d, data(8, 32, 16, 16), data(32, 16, 4, 4),
         dict(stride=2, padding=1)),
}
REPEATS = int(os.environ.get("PYCONV_EXAMPLE_REPEATS", "5"))


def best_time(fn, repeats, budget=0.25):
    """The fastest of at least ``repeats`` calls (more if they fit in ``budget`` s)."""
    best, spent, calls = np.inf, 0.0, 0
    while calls < repeats or (spent < budget and calls < 50):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, calls = min(best, dt), spent + dt, calls + 1
    return best


# %%
# Time every (problem, backend) pair
# ----------------------------------
#
# The first call of each pair is a warm-up (kernel compilation, memory
# allocation) and also gives the result that is compared with the first
# backend's.

times = {}                                           # (problem, backend) -> seconds
for pname, (op, x, w, kwargs) in problems.items():
    first = None
    for name in available:
        if name == "reference" and not pname.startswith("small"):
            continue
        try:
            y = op(x, w, backend=name, **kwargs)    # warm-up, and the result
        except pyconv.BackendUnavailableError as err:
            print(f"{name} skips {pname.splitlines()[0]}: {err}")
            continue
        if first is None:
            first = y
        else:
            assert np.allclose(y, first, rtol=1e-4, atol=1e-4), (pname, name)
        times[pname, name] = best_time(lambda: op(x, w, backend=name, **kwargs), REPEATS)

print(f"{'problem':<28}" + "".join(f"{n:>12}" for n in available))
for pname in problems:
    cells = [f"{times[pname, n] * 1e3:10.3f}ms" if (pname, n) in times else f"{'-':>12}"
             for n in available]
    print(f"{pname.splitlines()[0]:<28}" + "".join(cells))

# %%
# The bar chart
# -------------
#
# A logarithmic axis, since the reference backend is orders of magnitude
# slower than the compiled ones.  On problems this small, fixed per-call costs
# weigh heavily: for ``opencl`` the copies and kernel launches, for
# ``cython`` waking its OpenMP threads (which can take milliseconds on a
# machine whose cores are busy with other work).

fig, ax = plt.subplots(figsize=(10, 4.8), layout="constrained")
width = 0.8 / max(1, len(available))
for i, name in enumerate(available):
    xs, hs = [], []
    for j, pname in enumerate(problems):
        if (pname, name) in times:
            xs.append(j + (i - (len(available) - 1) / 2) * width)
            hs.append(times[pname, name] * 1e3)
    bars = ax.bar(xs, hs, width, label=name, color=f"C{i}")
    ax.bar_label(bars, [f"{h:.3g}" for h in hs], fontsize=7, padding=2)
ax.set_yscale("log")
ax.set_xticks(range(len(problems)), list(problems), fontsize=8)
ax.set_ylabel(f"fastest of >= {REPEATS} calls (ms)")
ax.margins(y=0.15)
ax.legend(title="backend")
ax.set_title(f"time per call, float32, {pyconv.get_num_threads()} thread(s)")
