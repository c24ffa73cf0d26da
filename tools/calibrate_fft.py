"""Measure the constants of the ``fft`` path's cost model on this machine.

Usage (from the repository root, on a quiet machine)::

    python tools/calibrate_fft.py             # fit and print the constants
    python tools/calibrate_fft.py --check     # then the model against measured times

The model (``pyconv/_cy/paths/fft.py``, :func:`fft_seconds`) writes the
one-thread time of the fft path as a sum of terms, each a count of one
kind of work (``FEATURES``: FFT ``N log2 N`` units, complex multiply-adds,
bytes of the kernel's spectrum streamed, values moved, per-group calls,
work items, the call) times a constant.  Like
``scipy.signal.choose_conv_method``'s constants, these are fitted to
measured times: the fft path is forced on a set of calls chosen so that
each term dominates some of them (single-channel FIR filters, depthwise
and dense long-kernel layers, 2-d kernels, tiny calls), each is timed on
one thread (best of a few), and the constants are the non-negative least
squares fit of the relative error (each row divided by its time).  Since
the model also picks the frame lengths, the fit is repeated with its own
constants a few times.

``MAC_SECONDS`` (the other paths) is the median time per multiply-add of
the ``direct`` path on single-channel long filters and of the
micro-kernel ``implicit`` path on dense layers.

Everything runs on one thread: the rule compares one-thread times, so the
path a call takes does not depend on the thread count.  The printed
constants go into ``pyconv/_cy/paths/fft.py`` (``COST``, ``MAC_SECONDS``).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy.optimize import nnls

import pyconv
from pyconv import _cy
from pyconv._cy.paths import fft as F
from pyconv._spec import conv_call


def best(fn, repeat=3, min_time=0.02):
    """Smallest time of one call of ``fn`` (each timing repeats it for ``min_time``)."""
    fn()
    out = math.inf
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        out = min(out, dt / n)
    return out


def conv1d(n, cin, cout, length, k, padding=0, groups=1, stride=1):
    return conv_call("conv1d", 1, (n, cin, length), (cout, cin // groups, k), None, stride,
                     padding, 1, groups).spec


def conv2d(n, cin, cout, size, k, padding=0, groups=1):
    return conv_call("conv2d", 2, (n, cin, size, size), (cout, cin // groups, k, k), None, 1,
                     padding, 1, groups).spec


#: the calls the fft path's constants are fitted on (conv; the other ops
#: share the steps)
TRAINING = [
    conv1d(8, 1, 1, 131072, 1023), conv1d(1, 1, 1, 65536, 255), conv1d(16, 1, 1, 8192, 63),
    conv1d(1, 1, 1, 4096, 127), conv1d(64, 1, 1, 2048, 33), conv1d(1, 1, 1, 300, 40),
    conv1d(4, 1, 1, 200, 33),
    conv1d(2, 64, 64, 4096, 127, 63, 64), conv1d(1, 256, 256, 8192, 63, 31, 256),
    conv1d(8, 16, 16, 2048, 255, 127, 16),
    conv1d(4, 32, 32, 16384, 511, 255), conv1d(2, 64, 64, 8192, 255, 127),
    conv1d(2, 64, 64, 4096, 31, 15), conv1d(4, 128, 128, 2048, 63, 31),
    conv1d(8, 8, 8, 8192, 127, 63), conv1d(1, 128, 64, 1024, 255, 127),
    conv1d(4, 16, 32, 4096, 64, stride=4),
    conv2d(1, 8, 8, 256, 31, 15), conv2d(2, 1, 1, 512, 63, 31), conv2d(1, 32, 32, 64, 15, 7),
    conv2d(1, 3, 16, 128, 11, 5),
]


def fft_time(spec, dtype, rng):
    x = rng.standard_normal(spec.input_shape).astype(dtype)
    w = rng.standard_normal(spec.weight_shape).astype(dtype)
    cy = _cy.load()
    with _cy.force_paths("fft"):
        if _cy.plan("conv", spec, dtype).path != "fft":
            return None
        return best(lambda: cy.conv(x, w, None, spec))


def fit_cost(dtype, rounds=3):
    """Fit ``COST[itemsize]``; returns the constants and the last round's rows."""
    size = np.dtype(dtype).itemsize
    rng = np.random.default_rng(0)
    for _ in range(rounds):
        F.geometry.cache_clear()
        _cy._plan_cached.cache_clear()
        rows, times = [], []
        for spec in TRAINING:
            geo = F.geometry("conv", spec, np.dtype(dtype).str)
            t = fft_time(spec, dtype, rng) if geo is not None else None
            if t is None:
                continue
            rows.append(np.array(geo.features) / t)
            times.append(t)
        cost, _ = nnls(np.array(rows), np.ones(len(rows)))
        # a term the fit left at zero keeps a small floor (1% of the old constant)
        cost = np.maximum(cost, 0.01 * np.array(F.COST[size]))
        F.COST[size] = tuple(float(v) for v in cost)
    return F.COST[size]


def mac_seconds(path, specs, dtype):
    rng = np.random.default_rng(0)
    cy = _cy.load()
    out = []
    for spec in specs:
        x = rng.standard_normal(spec.input_shape).astype(dtype)
        w = rng.standard_normal(spec.weight_shape).astype(dtype)
        with _cy.force_paths(path):
            assert _cy.plan("conv", spec, dtype).path == path, (path, spec)
            out.append(best(lambda: cy.conv(x, w, None, spec)) / (spec.flops / 2))
    return float(np.median(out))


DIRECT = [conv1d(2, 1, 1, 32768, 255), conv1d(8, 1, 1, 8192, 63),
          conv1d(2, 64, 64, 4096, 127, 63, 64)]
DENSE = [conv1d(4, 64, 64, 4096, 15, 7), conv1d(2, 64, 64, 4096, 63, 31),
         conv1d(8, 128, 128, 1024, 9, 4), conv2d(1, 32, 32, 64, 7, 3)]


def check(dtype=np.float32):
    """The model against measured one-thread times, fft path and the other one."""
    rng = np.random.default_rng(1)
    cy = _cy.load()
    tgt = _cy._planning.target(dtype)
    print(f"\n{'call (conv)':44} {'fft':>8} {'model':>8} {'other':>8} {'model':>8}  path  taken")
    for spec in TRAINING + DENSE:
        x = rng.standard_normal(spec.input_shape).astype(dtype)
        w = rng.standard_normal(spec.weight_shape).astype(dtype)
        geo = F.geometry("conv", spec, np.dtype(dtype).str)
        other = F.other_path("conv", spec, tgt)
        times = {}
        for path in ("fft", other):
            with _cy.force_paths(path):
                ok = _cy.plan("conv", spec, dtype).path == path
                times[path] = best(lambda: cy.conv(x, w, None, spec)) if ok else math.nan
        name = (f"N{spec.batch} C{spec.in_channels}->{spec.out_channels} g{spec.groups} "
                f"{'x'.join(map(str, spec.in_size))} K{'x'.join(map(str, spec.kernel_size))}")
        print(f"{name:44} {times['fft']:8.4f} {geo.seconds if geo else math.nan:8.4f} "
              f"{times[other]:8.4f} {F.other_seconds('conv', spec, tgt):8.4f}  "
              f"{other:9} {_cy.plan('conv', spec, dtype).path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    pyconv.set_num_threads(1)
    for dtype in (np.float32, np.float64):
        cost = fit_cost(dtype)
        print(f"COST[{np.dtype(dtype).itemsize}] = ({', '.join(f'{v:.3g}' for v in cost)})")
    mac = {"direct": {}, None: {}}
    for dtype in (np.float32, np.float64):
        size = np.dtype(dtype).itemsize
        mac["direct"][size] = mac_seconds("direct", DIRECT, dtype)
        mac[None][size] = mac_seconds("implicit", DENSE, dtype)
    print("MAC_SECONDS = {" + ", ".join(
        f"{k!r}: {{4: {v[4]:.3g}, 8: {v[8]:.3g}}}" for k, v in mac.items()) + "}")
    if args.check:
        F.MAC_SECONDS.update(mac)
        F.geometry.cache_clear()
        _cy._plan_cached.cache_clear()
        check()


if __name__ == "__main__":
    main()
