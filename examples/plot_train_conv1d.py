"""
Training a tiny 1-D conv model with pyconv.grad
===============================================

pyconv has no autograd, but :mod:`pyconv.grad` gives the two gradients a
convolution layer needs, so backpropagation through a small network is a
few lines of NumPy:

* ``grad.conv1d_input(x.shape, weight, g)``: the gradient with respect to
  the layer's input, passed on to the layer below,
* ``grad.conv1d_weight(x, weight.shape, g)``: the gradient with respect to
  the weight,
* the bias gradient is ``g.sum(axis=(0, 2))``.

The model, ``Conv1d(1, 8, 9) -> ReLU -> Conv1d(8, 1, 9)`` (``padding=4`` keeps
the length), learns to remove noise from piecewise-smooth signals, trained by
plain stochastic gradient descent with momentum on the mean squared error.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import pyconv
from pyconv import grad

rng = np.random.default_rng(0)

# %%
# Data: noisy piecewise-smooth signals
# ------------------------------------
#
# Each clean signal is a slow sinusoid plus a step; the noise is white with
# standard deviation 0.3.  A fresh batch is drawn for every step, so the
# model cannot memorise the noise.

L, SIGMA = 96, 0.3


def batch(n):
    t = np.arange(L)
    freq = rng.uniform(0.5, 2.0, (n, 1)) / L
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    step = rng.uniform(-1, 1, (n, 1)) * (t >= rng.integers(L // 4, 3 * L // 4, (n, 1)))
    clean = np.sin(2 * np.pi * freq * t + phase) + step
    noisy = clean + SIGMA * rng.standard_normal(clean.shape)
    return noisy[:, None], clean[:, None]                   # (N, 1, L) each


# %%
# The model and its backward pass
# -------------------------------
#
# The two layers are pyconv modules; only their ``weight`` and ``bias``
# arrays are used, and updated in place.

K, P, HIDDEN = 9, 4, 8
conv1 = pyconv.Conv1d(1, HIDDEN, K, padding=P, dtype=np.float64, rng=1)
conv2 = pyconv.Conv1d(HIDDEN, 1, K, padding=P, dtype=np.float64, rng=2)
params = [conv1.weight, conv1.bias, conv2.weight, conv2.bias]


def forward(x):
    z = pyconv.conv1d(x, conv1.weight, conv1.bias, padding=P)
    h = np.maximum(z, 0)
    y = pyconv.conv1d(h, conv2.weight, conv2.bias, padding=P)
    return z, h, y


def loss_and_grads(x, target):
    z, h, y = forward(x)
    loss = np.mean((y - target) ** 2)
    gy = 2 * (y - target) / y.size                          # d loss / d y
    gw2 = grad.conv1d_weight(h, conv2.weight.shape, gy, padding=P)
    gb2 = gy.sum(axis=(0, 2))
    gh = grad.conv1d_input(h.shape, conv2.weight, gy, padding=P)
    gz = gh * (z > 0)                                       # through the ReLU
    gw1 = grad.conv1d_weight(x, conv1.weight.shape, gz, padding=P)
    gb1 = gz.sum(axis=(0, 2))
    return loss, [gw1, gb1, gw2, gb2]


# %%
# Before training, check the gradients against finite differences on a few
# entries of every parameter.

x_chk, t_chk = batch(4)
_, analytic = loss_and_grads(x_chk, t_chk)
eps = 1e-6
for p, g in zip(params, analytic):
    for idx in list(np.ndindex(p.shape))[:: max(1, p.size // 5)]:
        old = p[idx]
        p[idx] = old + eps
        up = loss_and_grads(x_chk, t_chk)[0]
        p[idx] = old - eps
        down = loss_and_grads(x_chk, t_chk)[0]
        p[idx] = old
        assert np.isclose((up - down) / (2 * eps), g[idx], rtol=1e-4, atol=1e-9), idx
print("gradients agree with finite differences")

# %%
# Training: SGD with momentum
# ---------------------------

STEPS = int(os.environ.get("PYCONV_EXAMPLE_STEPS", "250"))
LR, MOMENTUM, BATCH = 0.05, 0.9, 16
velocity = [np.zeros_like(p) for p in params]
losses = []
for step in range(STEPS):
    x, target = batch(BATCH)
    loss, grads = loss_and_grads(x, target)
    losses.append(loss)
    for p, v, g in zip(params, velocity, grads):
        v *= MOMENTUM
        v -= LR * g
        p += v                                              # in place: the modules see it

x_test, clean_test = batch(64)
test_loss = np.mean((forward(x_test)[2] - clean_test) ** 2)
noisy_loss = np.mean((x_test - clean_test) ** 2)
print(f"loss: first step {losses[0]:.4f}, last step {losses[-1]:.4f}, "
      f"held-out {test_loss:.4f} (the noisy input itself: {noisy_loss:.4f})")
assert np.mean(losses[-10:]) < 0.1 * losses[0]
assert test_loss < noisy_loss

# %%
# The loss curve and a held-out signal
# ------------------------------------
#
# The dashed line is the error of doing nothing (returning the noisy input,
# ``SIGMA**2``): the trained model ends well below it.  The spectra show what
# it learned: a low-pass filter that keeps the signal's low frequencies and
# suppresses the white noise's flat floor at high frequencies.

fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained",
                                    gridspec_kw={"width_ratios": [1, 1.5, 1]})
ax0.semilogy(losses, color="C0", lw=1, label="training batch")
ax0.axhline(SIGMA ** 2, color="k", ls="--", lw=1, label="noisy input")
ax0.axhline(test_loss, color="C3", ls=":", lw=1.5, label="held-out, after")
ax0.set_xlabel("SGD step")
ax0.set_ylabel("mean squared error")
ax0.set_title("loss")
ax0.legend(fontsize=8)

i = 0
ax1.plot(x_test[i, 0], color="0.7", lw=1, label="noisy input")
ax1.plot(clean_test[i, 0], color="k", lw=1.5, label="clean")
ax1.plot(forward(x_test[i:i + 1])[2][0, 0], color="C3", lw=1.5, label="model output")
ax1.set_xlabel("sample")
ax1.set_title("a held-out signal")
ax1.legend(fontsize=8, ncols=3, loc="lower center")

def spectrum(s):
    return np.sqrt(np.mean(np.abs(np.fft.rfft(s[:, 0], axis=-1)) ** 2, axis=0))


freqs = np.fft.rfftfreq(L)
ax2.semilogy(freqs, spectrum(x_test), color="0.7", label="noisy input")
ax2.semilogy(freqs, spectrum(clean_test), color="k", label="clean")
ax2.semilogy(freqs, spectrum(forward(x_test)[2]), color="C3", label="model output")
ax2.set_xlabel("frequency (cycles / sample)")
ax2.set_title("mean amplitude spectrum")
ax2.legend(fontsize=8)
fig.suptitle("Conv1d -> ReLU -> Conv1d denoiser trained with pyconv.grad and NumPy SGD")
