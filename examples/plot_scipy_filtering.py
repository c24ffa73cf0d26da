"""
Filtering a batch of long signals: pyconv and SciPy
===================================================

The worked example of the page for SciPy users, timed: 32 signals of 65 536
samples (float32), filtered

* by one 63-tap low-pass FIR filter, with :func:`scipy.ndimage.correlate1d`
  along the last axis, with :func:`scipy.signal.fftconvolve`, and with one
  :func:`pyconv.conv1d` call on the ``(32, 1, 65536)`` batch;
* by a bank of eight band-pass filters, with ``correlate1d`` in a loop over
  the filters, with one broadcast ``fftconvolve``, and with one ``conv1d``
  call whose weight holds the eight filters as output channels.

Every method is checked against pyconv's result before it is timed.  The
times are the fastest of a few calls with :func:`time.perf_counter`, side by
side in one run on the machine that built these docs: a picture of that
machine, not a benchmark.
"""

import os
import time

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage, signal

import pyconv

# %%
# The data and the filters
# ------------------------
#
# Noisy sums of a slow and a fast sinusoid.  The filters are odd (63 taps),
# so pyconv's ``padding="same"`` and ndimage's ``mode="constant"`` (zeros
# outside, ``origin=0``) give the same outputs; ``fftconvolve`` computes a
# convolution, so it gets the flipped filters, and its full output is cut
# down to the same ``L`` samples.

rng = np.random.default_rng(0)
B, L, K = 32, 65536, 63
t = np.arange(L)
freqs = rng.uniform(0.002, 0.02, (B, 1))
signals = (np.sin(2 * np.pi * freqs * t) + 0.5 * np.sin(2 * np.pi * 0.3 * t)
           + 0.3 * rng.standard_normal((B, L))).astype(np.float32)
lowpass = signal.firwin(K, 0.1).astype(np.float32)
bank = np.stack([signal.firwin(K, (0.05 * i, 0.05 * (i + 1)), pass_zero=False)
                 for i in range(1, 9)]).astype(np.float32)
crop = slice(K // 2, K // 2 + L)


def pyconv_lowpass():
    return pyconv.conv1d(signals[:, None], lowpass[None, None], padding="same")[:, 0]


def ndimage_lowpass():
    return ndimage.correlate1d(signals, lowpass, axis=-1, mode="constant")


def fft_lowpass():
    return signal.fftconvolve(signals, lowpass[None, ::-1], axes=-1)[:, crop]


def pyconv_bank():
    return pyconv.conv1d(signals[:, None], bank[:, None], padding="same")


def ndimage_bank():
    return np.stack([ndimage.correlate1d(signals, h, axis=-1, mode="constant")
                     for h in bank], axis=1)


def fft_bank():
    return signal.fftconvolve(signals[:, None], bank[None, :, ::-1], axes=-1)[..., crop]


# %%
# Check, then time
# ----------------
#
# SciPy's filters run on one thread; pyconv is timed on all of this
# machine's threads and on one.  The calls of a task take turns in every
# round, so a machine busy with other work slows them all alike, and each
# keeps its fastest round.

REPEATS = int(os.environ.get("PYCONV_EXAMPLE_REPEATS", "5"))
THREADS = pyconv.get_num_threads()


def one_thread(fn):
    def run():
        pyconv.set_num_threads(1)
        try:
            return fn()
        finally:
            pyconv.set_num_threads(None)
    return run


def best_times(fns):
    """The fastest of ``REPEATS`` rounds for each function, after a warm-up round."""
    best = dict.fromkeys(fns, np.inf)
    for round_ in range(REPEATS + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if round_:
                best[name] = min(best[name], time.perf_counter() - t0)
    return best


tasks = {
    "one low-pass filter": {"ndimage.correlate1d": ndimage_lowpass,
                            "signal.fftconvolve": fft_lowpass,
                            "pyconv": pyconv_lowpass,
                            "pyconv, 1 thread": one_thread(pyconv_lowpass)},
    "8-filter bank": {"ndimage.correlate1d, loop": ndimage_bank,
                      "signal.fftconvolve, broadcast": fft_bank,
                      "pyconv": pyconv_bank,
                      "pyconv, 1 thread": one_thread(pyconv_bank)},
}
times = {}                                           # task -> {method: seconds}
for task, fns in tasks.items():
    expected = fns["pyconv"]()
    for method, fn in fns.items():
        got = fn()
        assert got.shape == expected.shape, (task, method, got.shape)
        assert np.abs(got - expected).max() < 1e-5, (task, method)
    times[task] = best_times(fns)

print(f"{B} x {L} samples, {K} taps, float32; pyconv on {THREADS} thread(s) and on 1")
for task, best in times.items():
    print(f"\n{task}: time, and its ratio to pyconv's on {THREADS} thread(s) and on 1")
    for method, seconds in best.items():
        print(f"  {method:<32}{seconds * 1e3:8.1f} ms {seconds / best['pyconv']:7.2f}"
              f"{seconds / best['pyconv, 1 thread']:7.2f}")

# %%
# The picture
# -----------
#
# Left: the start of one signal and its low-passed version.  Right: the
# times, in milliseconds.

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained",
                               gridspec_kw={"width_ratios": [1, 1.3]})
ax0.plot(signals[0, :400], color="0.6", lw=0.8, label="signal")
ax0.plot(pyconv_lowpass()[0, :400], color="C0", lw=2, label="low-passed")
ax0.set_xlabel("sample")
ax0.legend(loc="upper right")
ax0.set_title("signal 0, first 400 samples")

methods = ["SciPy: ndimage", "SciPy: fftconvolve", f"pyconv ({THREADS} threads)",
           "pyconv (1 thread)"]
width = 0.8 / len(methods)
for i, label in enumerate(methods):
    heights = [list(best.values())[i] * 1e3 for best in times.values()]
    pos = np.arange(len(times)) + (i - (len(methods) - 1) / 2) * width
    bars = ax1.bar(pos, heights, width, label=label, color=f"C{i + 1}")
    ax1.bar_label(bars, [f"{h:.0f}" for h in heights], fontsize=8, padding=2)
ax1.set_xticks(range(len(times)), list(times))
ax1.set_ylabel(f"fastest of {REPEATS} rounds (ms)")
ax1.set_yscale("log")
ax1.margins(y=0.15)
ax1.legend(loc="upper left", fontsize="small")
ax1.set_title("time per call")
plt.show()
