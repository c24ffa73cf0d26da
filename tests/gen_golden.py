"""Generate ``tests/data/golden.npz``: PyTorch outputs for the conformance tests.

Run with a Python that has ``torch==2.13.0`` (the test suite itself never
imports torch)::

    python tests/gen_golden.py            # writes tests/data/golden.npz

The file holds, for every case, the inputs (in the case's dtype; float16
inputs are stored as float16, so they are exactly what torch saw) and
torch's output, plus one JSON document (key ``__meta__``) describing the
cases.  Everything is seeded, and the zip archive is written with fixed
timestamps, so re-running the script reproduces the file byte for byte.

Case kinds (``meta["cases"][i]["kind"]``):

``functional``
    ``op(input, weight, bias, **kwargs)``; ``kwargs`` may contain
    ``output_size`` for the transposed ops (pyconv accepts it on the
    functional API; torch's answer is computed with the implied
    ``output_padding``).
``module``
    ``cls(**ctor)`` with the stored ``weight``/``bias`` assigned, then
    ``forward(input, **forward)``.
``grad``
    ``pyconv.grad.<fn>(*args, **kwargs)``.  The conv gradients come from
    ``torch.nn.grad``; the transposed ones (torch has no helper) and every
    complex case come from autograd.  ``torch.nn.grad`` rejects complex
    tensors on CPU (``"slow_conv2d_cpu_grad_input" not implemented for
    'ComplexDouble'``), so complex gradients are autograd's, which follow
    the conjugate convention: for ``y = conv(x, w)`` and an incoming
    ``grad_output`` ``gy``, ``grad_input = conv_transpose(gy, conj(w))``
    and ``grad_weight[co, c, k] = sum gy * conj(x)`` (the case records
    ``"complex_convention": "conjugate"``).  ``bias_grad`` (when present)
    is autograd's bias gradient.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn.grad as G

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "golden.npz")

TORCH_DTYPES = {
    "float16": torch.float16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
FUNCS = {
    "conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d,
    "conv_transpose1d": F.conv_transpose1d, "conv_transpose2d": F.conv_transpose2d,
    "conv_transpose3d": F.conv_transpose3d,
}
MODULES = {
    "Conv1d": torch.nn.Conv1d, "Conv2d": torch.nn.Conv2d, "Conv3d": torch.nn.Conv3d,
    "ConvTranspose1d": torch.nn.ConvTranspose1d, "ConvTranspose2d": torch.nn.ConvTranspose2d,
    "ConvTranspose3d": torch.nn.ConvTranspose3d,
}


class Store:
    def __init__(self):
        self.arrays = {}
        self.cases = []
        self.ids = set()
        self.seed = 12345

    def gen(self):
        self.seed += 1
        return torch.Generator().manual_seed(self.seed)

    def rand(self, shape, dtype, gen, ints=False):
        """Random tensor of ``dtype`` (float16 values are rounded before use).

        ``ints=True`` draws small integers instead (used for the few large
        cases: their outputs are then exact integers and compress well).
        """
        shape = tuple(int(s) for s in shape)
        t = TORCH_DTYPES[dtype]
        if ints:
            if t.is_complex:
                re = torch.randint(-3, 4, shape, generator=gen).to(torch.float64)
                im = torch.randint(-3, 4, shape, generator=gen).to(torch.float64)
                return torch.complex(re, im).to(t)
            return torch.randint(-3, 4, shape, generator=gen).to(t)
        if t.is_complex:
            re = torch.randn(shape, generator=gen, dtype=torch.float64)
            im = torch.randn(shape, generator=gen, dtype=torch.float64)
            return torch.complex(re, im).to(t)
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(t)

    def put(self, cid, name, tensor):
        if tensor is None:
            return None
        key = f"{cid}/{name}"
        arr = tensor.detach().resolve_conj().contiguous().numpy().copy()
        self.arrays[key] = arr
        return key

    def new_id(self, cid):
        assert cid not in self.ids, cid
        self.ids.add(cid)
        return cid


S = Store()


def _json(v):
    if isinstance(v, tuple):
        return [_json(e) for e in v]
    if isinstance(v, list):
        return [_json(e) for e in v]
    return v


def transposed_op_for_size(x, w, stride, padding, dilation, output_size):
    """The output_padding torch's modules derive from ``output_size``."""
    nd = w.dim() - 2
    st = _expand(stride, nd)
    pd = _expand(padding, nd)
    dl = _expand(dilation, nd)
    size = list(output_size)[-nd:]
    ops = []
    for i in range(nd):
        lo = (x.shape[-nd + i] - 1) * st[i] - 2 * pd[i] + dl[i] * (w.shape[2 + i] - 1) + 1
        ops.append(size[i] - lo)
    return ops


def _expand(v, nd):
    if isinstance(v, int):
        return [v] * nd
    v = list(v)
    return v * nd if len(v) == 1 else v


def functional(cid, op, xs, ws, bias=True, dtype="float64", tags=(), **kwargs):
    """One functional case; ``bias`` is True (random), False/None (no bias) or a shape."""
    cid = S.new_id(f"{op}-{cid}-{dtype}")
    seed = S.seed + 1
    y, x, w, b = _functional_run(op, xs, ws, bias, dtype, kwargs, False)
    if y.numel() > BIG:
        S.seed = seed - 1
        y, x, w, b = _functional_run(op, xs, ws, bias, dtype, kwargs, True)
        tags = tuple(tags) + ("ints",)
    S.cases.append({
        "id": cid, "kind": "functional", "op": op, "dtype": dtype, "tags": list(tags),
        "input": S.put(cid, "input", x), "weight": S.put(cid, "weight", w),
        "bias": S.put(cid, "bias", b), "kwargs": _json(kwargs),
        "output": S.put(cid, "output", y), "shape": list(y.shape),
    })


BIG = 2000


def _functional_run(op, xs, ws, bias, dtype, kwargs, ints):
    gen = S.gen()
    x = S.rand(xs, dtype, gen, ints)
    w = S.rand(ws, dtype, gen, ints)
    transposed = "transpose" in op
    if bias is True:
        cout = ws[1] * kwargs.get("groups", 1) if transposed else ws[0]
        b = S.rand((cout,), dtype, gen, ints)
    elif bias in (False, None):
        b = None
    else:
        b = S.rand(bias, dtype, gen, ints)
    call = dict(kwargs)
    if "output_size" in call:
        out_size = call.pop("output_size")
        call["output_padding"] = transposed_op_for_size(
            x, w, call.get("stride", 1), call.get("padding", 0), call.get("dilation", 1),
            out_size)
    y = FUNCS[op](x, w, b, **call)
    return y, x, w, b


def module(cid, cls, ctor, xs, dtype="float64", forward=None, tags=()):
    cid = S.new_id(f"{cls}-{cid}-{dtype}")
    seed = S.seed
    m, x, y = _module_run(cls, ctor, xs, dtype, forward, False)
    if y.numel() > BIG:
        S.seed = seed
        m, x, y = _module_run(cls, ctor, xs, dtype, forward, True)
        tags = tuple(tags) + ("ints",)
    S.cases.append({
        "id": cid, "kind": "module", "cls": cls, "dtype": dtype, "tags": list(tags),
        "ctor": _json(ctor), "forward": _json(forward or {}),
        "input": S.put(cid, "input", x), "weight": S.put(cid, "weight", m.weight),
        "bias": S.put(cid, "bias", m.bias), "output": S.put(cid, "output", y),
        "shape": list(y.shape),
    })


def _module_run(cls, ctor, xs, dtype, forward, ints):
    gen = S.gen()
    m = MODULES[cls](**ctor, dtype=TORCH_DTYPES[dtype])
    with torch.no_grad():
        m.weight.copy_(S.rand(m.weight.shape, dtype, gen, ints))
        if m.bias is not None:
            m.bias.copy_(S.rand(m.bias.shape, dtype, gen, ints))
    x = S.rand(xs, dtype, gen, ints)
    with torch.no_grad():
        y = m(x, **(forward or {}))
    return m, x, y


def grad_conv(cid, nd, xs, ws, dtype="float64", **kwargs):
    """conv{nd}d_input / _weight from torch.nn.grad (real) or autograd (complex)."""
    cid = S.new_id(f"grad-conv{nd}d-{cid}-{dtype}")
    gen = S.gen()
    x = S.rand(xs, dtype, gen)
    w = S.rand(ws, dtype, gen)
    op = FUNCS[f"conv{nd}d"]
    yshape = op(x, w, None, **kwargs).shape
    gy = S.rand(yshape, dtype, gen)
    complex_ = x.is_complex()
    xr = x.clone().requires_grad_(True)
    wr = w.clone().requires_grad_(True)
    br = torch.zeros(ws[0], dtype=x.dtype, requires_grad=True)
    op(xr, wr, br, **kwargs).backward(gy)
    if complex_:
        gi, gw = xr.grad, wr.grad
    else:
        gi = getattr(G, f"conv{nd}d_input")(x.shape, w, gy, **kwargs)
        gw = getattr(G, f"conv{nd}d_weight")(x, w.shape, gy, **kwargs)
        assert torch.allclose(gi, xr.grad, rtol=1e-3, atol=1e-3)
        assert torch.allclose(gw, wr.grad, rtol=1e-3, atol=1e-3)
    base = {"kind": "grad", "dtype": dtype, "kwargs": _json(kwargs), "tags": [],
            "complex_convention": "conjugate" if complex_ else None,
            "bias_grad": S.put(cid, "bias_grad", br.grad)}
    wkey = S.put(cid, "weight", w)
    xkey = S.put(cid, "input", x)
    gykey = S.put(cid, "grad_output", gy)
    S.cases.append(dict(base, id=cid + "-input", fn=f"conv{nd}d_input",
                        args=[list(x.shape), wkey, gykey], arg_kinds=["size", "array", "array"],
                        output=S.put(cid, "grad_input", gi), shape=list(gi.shape)))
    S.ids.add(cid + "-input")
    S.cases.append(dict(base, id=cid + "-weight", fn=f"conv{nd}d_weight",
                        args=[xkey, list(w.shape), gykey], arg_kinds=["array", "size", "array"],
                        output=S.put(cid, "grad_weight", gw), shape=list(gw.shape)))
    S.ids.add(cid + "-weight")


def grad_conv_transpose(cid, nd, xs, ws, dtype="float64", **kwargs):
    """conv_transpose{nd}d_input / _weight from autograd."""
    cid = S.new_id(f"grad-conv_transpose{nd}d-{cid}-{dtype}")
    gen = S.gen()
    x = S.rand(xs, dtype, gen)
    w = S.rand(ws, dtype, gen)
    op = FUNCS[f"conv_transpose{nd}d"]
    yshape = op(x, w, None, **kwargs).shape
    gy = S.rand(yshape, dtype, gen)
    xr = x.clone().requires_grad_(True)
    wr = w.clone().requires_grad_(True)
    br = torch.zeros(ws[1] * kwargs.get("groups", 1), dtype=x.dtype, requires_grad=True)
    op(xr, wr, br, **kwargs).backward(gy)
    base = {"kind": "grad", "dtype": dtype, "kwargs": _json(kwargs), "tags": [],
            "complex_convention": "conjugate" if x.is_complex() else None,
            "bias_grad": S.put(cid, "bias_grad", br.grad)}
    wkey = S.put(cid, "weight", w)
    xkey = S.put(cid, "input", x)
    gykey = S.put(cid, "grad_output", gy)
    S.cases.append(dict(base, id=cid + "-input", fn=f"conv_transpose{nd}d_input",
                        args=[list(x.shape), wkey, gykey], arg_kinds=["size", "array", "array"],
                        output=S.put(cid, "grad_input", xr.grad), shape=list(x.shape)))
    S.ids.add(cid + "-input")
    S.cases.append(dict(base, id=cid + "-weight", fn=f"conv_transpose{nd}d_weight",
                        args=[xkey, list(w.shape), gykey], arg_kinds=["array", "size", "array"],
                        output=S.put(cid, "grad_weight", wr.grad), shape=list(w.shape)))
    S.ids.add(cid + "-weight")


# ---------------------------------------------------------------------------
# the cases

def opinfo_cases():
    """PyTorch's OpInfo samples for the conv ops, batched and unbatched."""
    rows = [
        ("conv1d", (1, 3, 4), (3, 3, 3), True, dict(stride=(2,), padding=2)),
        ("conv1d", (2, 4, 8), (2, 2, 3), True, dict(stride=3, padding=1, groups=2, dilation=2)),
        ("conv1d", (1, 4, 5), (1, 4, 3), None, dict(stride=(2,), padding="valid")),
        ("conv1d", (2, 2, 4), (2, 1, 4), True, dict(stride=(1,), padding="same", groups=2,
                                                    dilation=(2,))),
        ("conv1d", (1, 4, 5), (3, 4, 3), None, dict()),
        ("conv2d", (1, 3, 4, 4), (3, 3, 3, 3), True, dict(stride=(2, 2), padding=2)),
        ("conv2d", (2, 4, 8, 8), (2, 2, 3, 3), True,
         dict(stride=(3, 2), padding=(2, 1), groups=2, dilation=(4, 4))),
        ("conv2d", (1, 4, 5, 5), (1, 4, 2, 3), True, dict(stride=2, padding=1, dilation=(2, 3))),
        ("conv2d", (1, 2, 4, 3), (4, 2, 3, 4), None, dict(stride=2, padding=1)),
        ("conv2d", (1, 4, 5, 5), (1, 4, 2, 3), True, dict(stride=2, padding="valid")),
        ("conv2d", (1, 4, 5, 5), (1, 4, 2, 3), True, dict(padding="same", dilation=3)),
        ("conv2d", (2, 4, 6, 6), (4, 1, 3, 3), True, dict(groups=4)),
        ("conv2d", (2, 4, 6, 6), (8, 1, 3, 3), True, dict(groups=4)),
        ("conv2d", (2, 4, 6, 6), (8, 1, 3, 3), None, dict(groups=4)),
        ("conv2d", (2, 4, 6, 6), (4, 1, 3, 3), True, dict(groups=4, stride=(3, 2))),
        ("conv2d", (2, 4, 6, 6), (4, 1, 3, 3), True, dict(groups=4, padding=(1, 1))),
        ("conv2d", (2, 4, 5, 5), (4, 1, 2, 2), True, dict(groups=4, dilation=(2, 2))),
        ("conv2d", (2, 4, 6, 5), (6, 2, 3, 2), True, dict(groups=2)),
        ("conv2d", (1, 4, 5, 5), (3, 4, 3, 3), None, dict()),
        ("conv3d", (1, 1, 4, 4, 4), (1, 1, 1, 1, 1), True, dict(padding="same")),
        ("conv3d", (1, 1, 4, 4, 4), (1, 1, 4, 4, 4), True, dict(stride=(2, 2, 2))),
        ("conv3d", (1, 1, 5, 5, 5), (1, 1, 3, 3, 3), True, dict(dilation=2)),
        ("conv3d", (1, 1, 1, 1, 10), (1, 1, 1, 1, 4), None, dict(padding="valid")),
        ("conv3d", (1, 1, 10, 11, 12), (1, 1, 1, 2, 5), None, dict(padding="same")),
        ("conv3d", (1, 1, 10, 11, 12), (1, 1, 1, 2, 5), None, dict(padding="same", dilation=2)),
        ("conv3d", (1, 1, 10, 11, 12), (1, 1, 4, 4, 4), None, dict(padding="same", dilation=3)),
        ("conv3d", (3, 9, 3, 1, 9), (3, 3, 3, 1, 9), True, dict(groups=3)),
        ("conv3d", (3, 9, 3, 1, 9), (3, 3, 3, 1, 9), True, dict(groups=3, stride=(2, 2, 2))),
        ("conv_transpose1d", (1, 3, 4), (3, 3, 3), True,
         dict(stride=(2,), padding=2, output_padding=(1,))),
        ("conv_transpose1d", (2, 2, 4), (2, 2, 4), True,
         dict(stride=(3,), padding=(1,), output_padding=(2,), groups=2, dilation=(4,))),
        ("conv_transpose1d", (1, 1, 4), (1, 1, 4), True,
         dict(stride=2, padding=1, output_padding=1, dilation=(2,))),
        ("conv_transpose1d", (1, 1, 4), (1, 2, 3), None, dict(stride=2, padding=1, output_padding=1)),
        ("conv_transpose1d", (1, 4, 5), (4, 8, 3), None, dict()),
        ("conv_transpose2d", (1, 3, 4, 4), (3, 3, 3, 3), True,
         dict(stride=(2, 2), padding=2, output_padding=(1, 1))),
        ("conv_transpose2d", (2, 2, 4, 4), (2, 2, 4, 5), True,
         dict(stride=(3, 2), padding=(1, 2), output_padding=(2, 3), groups=2, dilation=(4, 4))),
        ("conv_transpose2d", (1, 1, 4, 5), (1, 1, 4, 3), True,
         dict(stride=2, padding=1, output_padding=1, dilation=(2, 3))),
        ("conv_transpose2d", (1, 1, 4, 3), (1, 2, 3, 4), None,
         dict(stride=2, padding=1, output_padding=1)),
        ("conv_transpose2d", (2, 4, 4, 4), (4, 1, 3, 3), None, dict(groups=4)),
        ("conv_transpose2d", (1, 2, 5, 5), (2, 4, 3, 3), None, dict()),
        ("conv_transpose3d", (1, 3, 4, 4, 4), (3, 3, 3, 3, 3), True,
         dict(stride=(2, 2, 2), padding=2, output_padding=(1, 1, 1))),
        ("conv_transpose3d", (2, 2, 4, 4, 4), (2, 2, 4, 5, 6), True,
         dict(stride=(3, 2, 1), padding=(1, 2, 3), output_padding=(2, 3, 1), groups=2,
              dilation=(4, 4, 4))),
        ("conv_transpose3d", (1, 1, 4, 5, 2), (1, 1, 4, 3, 1), True,
         dict(stride=2, padding=1, output_padding=1, dilation=(2, 3, 2))),
        ("conv_transpose3d", (1, 1, 4, 3, 4), (1, 2, 3, 4, 5), None,
         dict(stride=2, padding=1, output_padding=1)),
        ("conv_transpose3d", (1, 4, 5, 5, 5), (4, 8, 3, 3, 3), None, dict()),
    ]
    for i, (op, xs, ws, bias, kw) in enumerate(rows):
        big = math.prod(xs) * math.prod(ws[2:]) * ws[1] > 40000
        dtype = "float32" if big else "float64"
        functional(f"opinfo{i}", op, xs, ws, bias=bias is not None, dtype=dtype,
                   tags=["opinfo"], **kw)
        if math.prod(xs) * math.prod(ws[2:]) * ws[1] > 100000:
            continue  # the largest sample: batched only (size of the fixture)
        functional(f"opinfo{i}-unbatched", op, xs[1:], ws, bias=bias is not None, dtype=dtype,
                   tags=["opinfo", "unbatched"], **kw)


SPATIAL = {1: (7,), 2: (5, 6), 3: (3, 4, 3)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}


def sweep_cases():
    """Every argument of every op, one at a time and combined."""
    for nd in (1, 2, 3):
        conv = f"conv{nd}d"
        tconv = f"conv_transpose{nd}d"
        S_ = SPATIAL[nd]
        K = KERNEL[nd]
        one = (1,) * nd

        def c(cid, xs, ws, **kw):
            functional(cid, conv, xs, ws, tags=["sweep"], **kw)

        def t(cid, xs, ws, **kw):
            functional(cid, tconv, xs, ws, tags=["sweep"], **kw)

        c("default", (2, 3) + S_, (4, 3) + K)
        c("nobias", (2, 3) + S_, (4, 3) + K, bias=None)
        c("stride2", (2, 3) + S_, (4, 3) + K, stride=2)
        c("stride-per-dim", (1, 2) + S_, (3, 2) + K, stride=tuple(range(1, nd + 1)))
        c("stride-1tuple", (1, 2) + S_, (3, 2) + K, stride=(2,))
        c("pad1", (1, 3) + S_, (2, 3) + K, padding=1)
        c("pad-per-dim", (1, 2) + S_, (2, 2) + K, padding=tuple(range(nd)))
        c("pad-big", (1, 2) + S_, (2, 2) + K, padding=3)
        c("dil2", (1, 2) + tuple(s + 2 for s in S_), (3, 2) + K, dilation=2)
        c("dil-per-dim", (1, 2) + tuple(s + 3 for s in S_), (2, 2) + K,
          dilation=tuple(range(1, nd + 1)))
        c("mixed", (2, 2) + tuple(s + 3 for s in S_), (4, 2) + K, stride=2, padding=1,
          dilation=2)
        c("groups2", (2, 4) + S_, (6, 2) + K, groups=2)
        c("groups2-nobias", (1, 4) + S_, (4, 2) + K, groups=2, bias=None)
        c("depthwise", (2, 3) + S_, (3, 1) + K, groups=3)
        c("depthwise-mult2", (1, 3) + S_, (6, 1) + K, groups=3, stride=2, padding=1)
        c("valid", (1, 2) + S_, (3, 2) + K, padding="valid")
        c("valid-stride", (1, 2) + S_, (3, 2) + K, padding="valid", stride=2)
        c("same-odd", (1, 2) + S_, (3, 2) + (3,) * nd, padding="same")
        c("same-even", (1, 2) + S_, (3, 2) + (4,) * nd, padding="same")
        c("same-even-dil2", (1, 2) + S_, (2, 2) + (2,) * nd, padding="same", dilation=2)
        c("same-even-dil3", (1, 2) + S_, (2, 2) + (2,) * nd, padding="same", dilation=3)
        c("same-mixed-kernel", (1, 2) + S_, (2, 2) + K, padding="same",
          dilation=tuple(range(1, nd + 1)))
        c("same-groups", (1, 4) + S_, (4, 2) + (2,) * nd, padding="same", groups=2)
        c("same-kernel-gt-input", (1, 1) + (2,) * nd, (1, 1) + (5,) * nd, padding="same")
        c("kernel-eq-input", (2, 2) + S_, (3, 2) + S_)
        c("1x1", (2, 3) + S_, (2, 3) + one)
        c("unbatched", (3,) + S_, (4, 3) + K)
        c("unbatched-same", (2,) + S_, (2, 2) + (4,) * nd, padding="same")
        c("N0", (0, 3) + S_, (4, 3) + K, stride=2, padding=1)
        c("Cin0", (2, 0) + S_, (4, 0) + K)
        c("Cin0-unbatched", (0,) + S_, (4, 0) + K)

        t("default", (2, 3) + S_, (3, 4) + K)
        t("nobias", (2, 3) + S_, (3, 4) + K, bias=None)
        t("stride2", (2, 3) + S_, (3, 2) + K, stride=2)
        t("stride-per-dim", (1, 2) + S_, (2, 3) + K, stride=tuple(range(1, nd + 1)))
        t("stride-1tuple", (1, 2) + S_, (2, 3) + K, stride=(2,))
        t("pad1", (1, 3) + S_, (3, 2) + K, padding=1)
        t("pad-per-dim", (1, 2) + S_, (2, 2) + K, padding=tuple(i % 2 for i in range(nd)))
        t("stride2-pad1-op1", (2, 2) + S_, (2, 3) + K, stride=2, padding=1, output_padding=1)
        t("op-per-dim", (1, 2) + S_, (2, 2) + K, stride=3, output_padding=tuple(range(nd)))
        t("op-lt-dilation", (1, 2) + S_, (2, 2) + K, dilation=3, output_padding=2)
        t("dil2", (1, 2) + S_, (2, 3) + K, dilation=2)
        t("mixed", (2, 2) + S_, (2, 3) + K, stride=2, padding=2, output_padding=1, dilation=2)
        t("groups2", (2, 4) + S_, (4, 3) + K, groups=2)
        t("groups2-stride", (1, 4) + S_, (4, 1) + K, groups=2, stride=2, padding=1,
          bias=None)
        t("depthwise", (2, 3) + S_, (3, 1) + K, groups=3)
        t("depthwise-mult2", (1, 3) + S_, (3, 2) + K, groups=3, stride=2)
        t("1x1", (2, 3) + S_, (3, 2) + one)
        t("unbatched", (3,) + S_, (3, 2) + K, stride=2)
        t("N0", (0, 3) + S_, (3, 4) + K, stride=2)
        def tmin(s, p, d=1):
            return tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 for n, k in zip(S_, K))

        t("output_size", (2, 2) + S_, (2, 3) + K, stride=2, padding=1,
          output_size=tuple(m + (i % 2) for i, m in enumerate(tmin(2, 1))))
        t("output_size-full", (1, 2) + S_, (2, 3) + K, stride=3,
          output_size=(1, 6) + tuple(m + i for i, m in enumerate(tmin(3, 0))))
        t("output_size-unbatched", (2,) + S_, (2, 2) + K, stride=2,
          output_size=tuple(m + 1 for m in tmin(2, 0)))

    # dtypes: a representative subset in every dtype
    for dtype in ("float32", "float16", "complex64", "complex128"):
        for nd in (1, 2, 3):
            S_ = SPATIAL[nd]
            K = KERNEL[nd]
            functional("dtype", f"conv{nd}d", (2, 4) + S_, (4, 2) + K, dtype=dtype,
                       tags=["dtype"], stride=2, padding=1, groups=2)
            functional("dtype-same", f"conv{nd}d", (1, 2) + S_, (3, 2) + (4,) * nd,
                       dtype=dtype, tags=["dtype"], padding="same", bias=None)
            functional("dtype", f"conv_transpose{nd}d", (2, 4) + S_, (4, 1) + K, dtype=dtype,
                       tags=["dtype"], stride=2, padding=1, output_padding=1, groups=2,
                       dilation=2)
            functional("dtype-unbatched", f"conv_transpose{nd}d", (2,) + S_, (2, 3) + K,
                       dtype=dtype, tags=["dtype"], bias=None)
        functional("dtype-N0", "conv2d", (0, 2, 5, 5), (3, 2, 3, 3), dtype=dtype, tags=["dtype"])
    # float32 versions of the combined sweep entries
    for nd in (1, 2, 3):
        S_ = SPATIAL[nd]
        K = KERNEL[nd]
        functional("mixed", f"conv{nd}d", (2, 2) + tuple(s + 3 for s in S_), (4, 2) + K,
                   dtype="float32", tags=["dtype"], stride=2, padding=1, dilation=2)
        functional("mixed", f"conv_transpose{nd}d", (2, 2) + S_, (2, 3) + K, dtype="float32",
                   tags=["dtype"], stride=2, padding=2, output_padding=1, dilation=2)
    # a wider float32 case: long channel sums (rounding of a real accumulation)
    functional("wide", "conv2d", (2, 32, 6, 6), (8, 32, 3, 3), dtype="float32", tags=["dtype"],
               padding=1)
    functional("wide", "conv_transpose2d", (2, 32, 5, 5), (32, 4, 3, 3), dtype="float32",
               tags=["dtype"], stride=2)


def edge_success_cases():
    """The successful edge cases of tests/test_edge_cases.py (values, not only shapes)."""
    e = dict(tags=["edge"], dtype="float32")
    functional("edge1", "conv1d", (2, 4, 10), (6, 4, 3), bias=None, stride=2, padding=1,
               dilation=2, **e)
    functional("edge2", "conv2d", (2, 4, 9, 9), (6, 2, 3, 3), bias=None, groups=2,
               stride=(2, 1), **e)
    functional("edge3", "conv2d", (1, 4, 5, 5), (1, 4, 2, 3), bias=None, stride=2, padding=1,
               dilation=(2, 3), **e)
    functional("edge5", "conv2d", (2, 4, 9, 9), (6, 4, 3, 3), bias=None, stride=(2,), **e)
    functional("edge6", "conv1d", (1, 1, 3), (1, 1, 3), bias=None, **e)
    functional("edge7", "conv2d", (1, 1, 5, 5), (1, 1, 7, 7), bias=None, padding=1, **e)
    functional("edge12", "conv_transpose2d", (2, 4, 9, 9), (4, 6, 3, 3), bias=None, stride=1,
               dilation=2, output_padding=1, **e)
    functional("edge13", "conv_transpose1d", (1, 1, 1), (1, 1, 3), bias=None, padding=1, **e)
    functional("edge14", "conv2d", (4, 9, 9), (6, 4, 3, 3), bias=None, **e)
    functional("edge16", "conv1d", (2, 4, 10), (5, 4, 4), bias=None, padding="same", **e)
    functional("edge18", "conv1d", (1, 1, 2), (1, 1, 5), bias=None, padding="same", **e)
    functional("edge20", "conv2d", (0, 4, 9, 9), (6, 4, 3, 3), stride=2, padding=1, **e)
    functional("edge22", "conv_transpose2d", (0, 4, 3, 3), (4, 3, 3, 3), bias=None, groups=2,
               stride=2, **e)
    functional("edge-N0-op", "conv_transpose2d", (0, 1, 2, 2), (1, 1, 1, 1), bias=None,
               output_padding=3, **e)
    functional("edge-N0-empty-spatial", "conv_transpose1d", (0, 4, 0), (4, 6, 3), bias=None, **e)
    functional("edge-issue120547", "conv1d", (1, 16, 1), (16, 1, 32), stride=1, padding=16,
               groups=16, **e)
    functional("edge-issue120406", "conv3d", (1, 3, 2, 3, 20), (3, 1, 1, 1, 17), bias=None,
               groups=3, **e)
    functional("thnn-2-0-1", "conv_transpose2d", (1, 2, 4, 4), (2, 2, 1, 1), bias=None, stride=2,
               **e)
    functional("thnn-1-0-2", "conv_transpose3d", (1, 2, 4, 4, 4), (2, 2, 1, 1, 1), bias=None,
               dilation=2, **e)


def module_cases():
    """PyTorch's common_nn module tests, the padding modes and output_size."""
    rows = [
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3), (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3, stride=2), (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3, stride=1, padding=1),
         (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=5, stride=1, padding=2),
         (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=4, kernel_size=3, stride=1, padding=1),
         (1, 4, 1), None),
        ("Conv1d", dict(in_channels=4, out_channels=4, kernel_size=5, stride=1, padding=2),
         (1, 4, 1), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3), (0, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3, dilation=2), (2, 4, 10),
         None),
        ("Conv1d", dict(in_channels=4, out_channels=6, kernel_size=3, groups=2), (2, 4, 6), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3, padding="valid"),
         (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=3, padding="same"),
         (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=4, padding="same"),
         (2, 4, 10), None),
        ("Conv1d", dict(in_channels=4, out_channels=5, kernel_size=4, padding="same",
                        dilation=2), (2, 4, 10), None),
        ("ConvTranspose1d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=(3,),
                                 padding=1, output_padding=(1,)), (1, 3, 7), None),
        ("ConvTranspose1d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=2,
                                 padding=1, output_padding=1, groups=1, bias=False),
         (1, 3, 6), None),
        ("ConvTranspose1d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=2,
                                 padding=1, output_padding=1, groups=1, bias=True, dilation=2),
         (1, 3, 6), None),
        ("ConvTranspose1d", dict(in_channels=4, out_channels=6, kernel_size=3, stride=(3,),
                                 padding=1, output_padding=(1,), groups=2), (2, 4, 7), None),
        ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(3, 2)), (2, 3, 7, 5), None),
        ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(3, 3), stride=(2, 2)),
         (2, 3, 6, 6), None),
        ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(3, 3), stride=(2, 2),
                        padding=(1, 1)), (2, 3, 6, 6), None),
        ("Conv2d", dict(in_channels=3, out_channels=2, kernel_size=(3, 3), stride=(2, 2),
                        padding=(1, 1), dilation=(2, 2)), (2, 3, 8, 8), None),
        ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(3, 2), stride=1, padding=0,
                        dilation=1, groups=1, bias=False), (2, 3, 6, 5), None),
        ("Conv2d", dict(in_channels=3, out_channels=4, kernel_size=(3, 2)), (0, 3, 7, 5), None),
        ("Conv2d", dict(in_channels=4, out_channels=6, kernel_size=(3, 2), groups=2),
         (2, 4, 6, 5), None),
        ("Conv2d", dict(in_channels=2, out_channels=4, kernel_size=(3, 4), padding="valid"),
         (2, 2, 6, 5), None),
        ("Conv2d", dict(in_channels=2, out_channels=4, kernel_size=(3, 4), padding="same"),
         (2, 2, 6, 5), None),
        ("Conv2d", dict(in_channels=2, out_channels=4, kernel_size=(3, 4), padding="same",
                        dilation=2), (2, 2, 6, 5), None),
        ("ConvTranspose2d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=(3, 2),
                                 padding=1, output_padding=(1, 1)), (1, 3, 7, 6), None),
        ("ConvTranspose2d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=(2, 3),
                                 padding=1, output_padding=(1, 1), groups=1, bias=False,
                                 dilation=(2, 2)), (1, 3, 6, 7), None),
        ("ConvTranspose2d", dict(in_channels=3, out_channels=4, kernel_size=3, stride=(2, 3),
                                 padding=1, output_padding=(1, 1), groups=1, bias=False),
         (1, 3, 6, 7), None),
        ("ConvTranspose2d", dict(in_channels=2, out_channels=4, kernel_size=(2, 3), groups=2),
         (1, 2, 4, 5), None),
        ("Conv2d", dict(in_channels=4, out_channels=4, kernel_size=(3, 3), groups=4),
         (2, 4, 6, 6), None),
        ("Conv2d", dict(in_channels=4, out_channels=8, kernel_size=(3, 3), groups=4),
         (2, 4, 6, 6), None),
        ("Conv2d", dict(in_channels=4, out_channels=4, kernel_size=(3, 3), stride=2, groups=4),
         (2, 4, 6, 6), None),
        ("Conv2d", dict(in_channels=4, out_channels=4, kernel_size=(3, 3), padding=1, groups=4),
         (2, 4, 6, 6), None),
        ("Conv2d", dict(in_channels=4, out_channels=4, kernel_size=(2, 2), dilation=2, groups=4),
         (2, 4, 5, 5), None),
        ("Conv3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2)), (1, 2, 4, 5, 4),
         None),
        ("Conv3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 4), bias=False),
         (1, 2, 3, 4, 5), None),
        ("Conv3d", dict(in_channels=2, out_channels=3, kernel_size=(1, 1, 1), bias=False),
         (1, 2, 3, 4, 5), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=2, stride=2), (2, 3, 5, 5, 5),
         None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=2, stride=2, padding=1),
         (2, 3, 5, 5, 5), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=(2, 3, 4)), (0, 3, 3, 4, 5),
         None),
        ("Conv3d", dict(in_channels=2, out_channels=4, kernel_size=3, groups=2), (1, 2, 4, 5, 4),
         None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=2, dilation=2),
         (2, 3, 5, 5, 5), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=2, dilation=2, stride=2),
         (2, 3, 5, 5, 5), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=(2, 3, 4), padding="valid"),
         (2, 3, 6, 5, 4), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=(2, 3, 4), padding="same"),
         (2, 3, 6, 5, 4), None),
        ("Conv3d", dict(in_channels=3, out_channels=4, kernel_size=(2, 3, 4), padding="same",
                        dilation=2), (2, 3, 6, 5, 4), None),
        ("ConvTranspose3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2)),
         (1, 2, 4, 5, 4), None),
        ("ConvTranspose3d", dict(in_channels=2, out_channels=3, kernel_size=(2, 3, 2), stride=1,
                                 padding=0, output_padding=0, groups=1, bias=True,
                                 dilation=(2, 2, 2)), (1, 2, 4, 5, 4), None),
    ]
    for i, (cls, ctor, xs, fwd) in enumerate(rows):
        module(f"nn{i}", cls, ctor, xs, forward=fwd, tags=["common_nn"])

    # padding modes, stride 2 pad 2 (common_nn *_stride2_pad2), plus unbatched / N=0 / same
    pads = {1: (1,), 2: (1, 2), 3: (1, 2, 3)}
    shapes = {1: (2, 2, 4), 2: (2, 2, 4, 4), 3: (2, 2, 4, 4, 4)}
    for nd in (1, 2, 3):
        for mode in ("zeros", "reflect", "replicate", "circular"):
            if nd == 3 and mode == "reflect":
                # common_nn skips 3-d reflect; still cover it with a size it allows
                module(f"{mode}-s2", f"Conv{nd}d",
                       dict(in_channels=2, out_channels=3, kernel_size=3, stride=2,
                            padding=(1, 2, 3), padding_mode=mode), (2, 2, 4, 4, 5),
                       tags=["padding_mode"])
            else:
                module(f"{mode}-s2", f"Conv{nd}d",
                       dict(in_channels=2, out_channels=3, kernel_size=3, stride=2,
                            padding=pads[nd], dilation=1, groups=1, bias=True,
                            padding_mode=mode), shapes[nd], tags=["padding_mode"])
            module(f"{mode}-unbatched", f"Conv{nd}d",
                   dict(in_channels=2, out_channels=3, kernel_size=3, padding=1,
                        padding_mode=mode), shapes[nd][1:], tags=["padding_mode", "unbatched"])
            module(f"{mode}-same", f"Conv{nd}d",
                   dict(in_channels=2, out_channels=2, kernel_size=(2, 3, 4)[:nd],
                        padding="same", padding_mode=mode), (1, 2) + (5, 4, 5)[:nd],
                   tags=["padding_mode", "same"])
            module(f"{mode}-groups-dil", f"Conv{nd}d",
                   dict(in_channels=4, out_channels=2, kernel_size=2, padding=2, dilation=2,
                        groups=2, padding_mode=mode), (1, 4) + (4, 5, 3)[:nd],
                   tags=["padding_mode"])
            module(f"{mode}-N0", f"Conv{nd}d",
                   dict(in_channels=2, out_channels=3, kernel_size=3, padding=1,
                        padding_mode=mode), (0, 2) + (4, 4, 4)[:nd], tags=["padding_mode"])
    module("same-k10-replicate", "Conv1d", dict(in_channels=1, out_channels=1, kernel_size=10,
                                                padding="same", padding_mode="replicate"),
           (1, 1, 12), tags=["padding_mode"])
    module("same-k10-circular", "Conv1d", dict(in_channels=1, out_channels=1, kernel_size=10,
                                               padding="same", padding_mode="circular"),
           (1, 1, 12), tags=["padding_mode"])
    module("circular-pad-eq-L", "Conv1d", dict(in_channels=1, out_channels=1, kernel_size=3,
                                               padding=3, padding_mode="circular"),
           (1, 1, 3), tags=["padding_mode", "edge"])
    module("replicate-pad10", "Conv1d", dict(in_channels=1, out_channels=1, kernel_size=3,
                                             padding=10, padding_mode="replicate"),
           (1, 1, 1), tags=["padding_mode", "edge"])
    module("reflect-pad-L-1", "Conv2d", dict(in_channels=1, out_channels=2, kernel_size=2,
                                             padding=(2, 3), padding_mode="reflect"),
           (1, 1, 3, 4), tags=["padding_mode"])
    module("edge-replicate-same", "Conv1d", dict(in_channels=4, out_channels=5, kernel_size=4,
                                                 padding="same", padding_mode="replicate"),
           (2, 4, 10), tags=["padding_mode", "edge"])
    module("float32-circular", "Conv2d", dict(in_channels=2, out_channels=3, kernel_size=3,
                                              padding=(2, 1), padding_mode="circular"),
           (2, 2, 5, 4), dtype="float32", tags=["padding_mode", "dtype"])
    module("float16-replicate", "Conv1d", dict(in_channels=2, out_channels=3, kernel_size=3,
                                               padding=2, padding_mode="replicate"),
           (2, 2, 6), dtype="float16", tags=["padding_mode", "dtype"])
    module("complex64-output_size", "ConvTranspose2d",
           dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, groups=2),
           (1, 2, 3, 3), forward={"output_size": (8, 7)}, dtype="complex64",
           tags=["output_size", "dtype"])
    module("complex128-reflect", "Conv2d", dict(in_channels=2, out_channels=3, kernel_size=3,
                                                padding=1, padding_mode="reflect"),
           (1, 2, 4, 4), dtype="complex128", tags=["padding_mode", "dtype"])

    # common_modules.py: C_in 4, C_out 5, k 3, input (2, 4, 3..)
    for nd in (1, 2, 3):
        sp = (3, 4, 5)[:nd]
        for cls in (f"Conv{nd}d", f"ConvTranspose{nd}d"):
            module("modinfo", cls, dict(in_channels=4, out_channels=5, kernel_size=3),
                   (2, 4) + sp, tags=["modinfo"])
            module("modinfo-unbatched", cls, dict(in_channels=4, out_channels=5, kernel_size=3),
                   (4,) + sp, tags=["modinfo", "unbatched"])
        module("modinfo-same", f"Conv{nd}d",
               dict(in_channels=4, out_channels=5, kernel_size=3, padding="same"),
               (2, 4) + sp, tags=["modinfo"])

    # ConvTranspose output_size
    ct = "ConvTranspose2d"
    for h, w in ((18, 18), (19, 20), (20, 18)):
        module(f"output_size-{h}-{w}", ct,
               dict(in_channels=3, out_channels=4, kernel_size=3, stride=3, padding=0,
                    output_padding=2), (1, 3, 6, 6), forward={"output_size": (h, w)},
               tags=["output_size"])
    module("output_size-full", ct, dict(in_channels=3, out_channels=2, kernel_size=3, stride=2,
                                        padding=1), (2, 3, 4, 4),
           forward={"output_size": (2, 2, 8, 7)}, tags=["output_size"])
    module("output_size-ignores-op", ct,
           dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, padding=1,
                output_padding=1), (1, 2, 4, 4), forward={"output_size": (7, 7)},
           tags=["output_size"])
    module("output_size-unbatched", ct,
           dict(in_channels=1, out_channels=1, kernel_size=16, stride=16, padding=7, bias=False),
           (1, 15, 13), forward={"output_size": (1, 240, 200)}, dtype="float32",
           tags=["output_size", "unbatched"])
    module("output_size-unbatched-nd", "ConvTranspose1d",
           dict(in_channels=2, out_channels=3, kernel_size=3, stride=3), (2, 4),
           forward={"output_size": [14]}, tags=["output_size", "unbatched"])
    module("output_size-5", "ConvTranspose3d", dict(in_channels=2, out_channels=2, kernel_size=2),
           (1, 2, 1, 1, 1), forward={"output_size": (1, 2, 2, 2, 2)}, tags=["output_size"])
    module("output_size-99", "ConvTranspose1d",
           dict(in_channels=4, out_channels=6, kernel_size=3, stride=2), (2, 4, 5),
           forward={"output_size": [99, 99, 12]}, tags=["output_size"])
    module("output_size-3d", "ConvTranspose3d",
           dict(in_channels=2, out_channels=2, kernel_size=(2, 3, 2), stride=(2, 3, 1),
                dilation=(1, 2, 1)), (1, 2, 2, 3, 3), forward={"output_size": (4, 11, 4)},
           tags=["output_size"])
    module("output_size-N0", ct, dict(in_channels=4, out_channels=6, kernel_size=3, stride=2),
           (0, 4, 4, 4), forward={"output_size": (10, 10)}, tags=["output_size"])
    # downsample / upsample round trip (test_ConvTranspose2d_output_size_downsample_upsample)
    module("output_size-roundtrip", ct,
           dict(in_channels=2, out_channels=3, kernel_size=3, stride=3, padding=1, dilation=2),
           (1, 2, 4, 4), forward={"output_size": (13, 14)}, tags=["output_size"])


def grad_cases():
    # torch's own sweep (test_convolution.py): kernel/input (3,6),(3,7),(4,9); batch 1,2;
    # stride 1,2; padding 0,1,2; C_in 2, C_out 3
    for k, L in ((3, 6), (3, 7), (4, 9)):
        for n in (1, 2):
            for s in (1, 2):
                for p in (0, 1, 2):
                    grad_conv(f"k{k}-L{L}-n{n}-s{s}-p{p}", 1, (n, 2, L), (3, 2, k), stride=s,
                              padding=p)
    for nd in (1, 2, 3):
        S_ = SPATIAL[nd]
        K = KERNEL[nd]
        big = tuple(s + 3 for s in S_)
        grad_conv("basic", nd, (2, 2) + S_, (3, 2) + K)
        grad_conv("mixed", nd, (2, 4) + big, (4, 2) + K, stride=2, padding=1, dilation=2,
                  groups=2)
        grad_conv("floor-remainder", nd, (1, 2) + tuple(s + 1 for s in S_), (2, 2) + K, stride=3)
        grad_conv("depthwise", nd, (1, 3) + S_, (6, 1) + K, groups=3, padding=1)
        grad_conv("f32", nd, (2, 2) + big, (3, 2) + K, stride=2, padding=1, dtype="float32")
        grad_conv("c128", nd, (1, 2) + S_, (2, 2) + K, stride=2, padding=1, dtype="complex128")
        grad_conv_transpose("basic", nd, (2, 2) + S_, (2, 3) + K)
        grad_conv_transpose("mixed", nd, (2, 4) + S_, (4, 1) + K, stride=2, padding=1,
                            output_padding=1, dilation=2, groups=2)
        grad_conv_transpose("op-lt-dil", nd, (1, 2) + S_, (2, 2) + K, dilation=2,
                            output_padding=1)
        grad_conv_transpose("f32", nd, (2, 2) + S_, (2, 3) + K, stride=2, padding=1,
                            dtype="float32")
        grad_conv_transpose("c128", nd, (1, 2) + S_, (2, 2) + K, stride=2, dtype="complex128")
    grad_conv("c64", 2, (1, 2, 5, 4), (2, 2, 3, 2), dtype="complex64")
    grad_conv("f16", 2, (2, 2, 6, 5), (3, 2, 3, 2), stride=2, padding=1, dtype="float16")
    grad_conv_transpose("f16", 1, (2, 2, 5), (2, 3, 3), stride=2, output_padding=1,
                        dtype="float16")
    grad_conv_transpose("c64", 2, (1, 2, 3, 3), (2, 1, 2, 3), groups=2, stride=2,
                        dtype="complex64")
    grad_conv("N0", 2, (0, 2, 5, 4), (3, 2, 3, 2), stride=2)
    grad_conv_transpose("N0", 2, (0, 2, 3, 3), (2, 3, 2, 2), stride=2)
    # torch's conv2d sweep, shrunk: stride {1,2}, k {1,3}, groups {1,2}, dilation {1,2}
    for s in (1, 2):
        for k in (1, 3):
            for g in (1, 2):
                for d in (1, 2):
                    grad_conv(f"sweep-s{s}-k{k}-g{g}-d{d}", 2, (2, 4, 7, 6), (4, 4 // g, k, k),
                              stride=s, padding=k // 2, dilation=d, groups=g)


def write(path):
    """All arrays of one dtype are packed into one flat array ``pool/<dtype>``;
    ``meta["arrays"][key] = [dtype, offset, shape]`` locates each one."""
    pools = {}
    index = {}
    for key, arr in sorted(S.arrays.items()):
        dt = arr.dtype.name
        chunks = pools.setdefault(dt, [])
        offset = sum(c.size for c in chunks)
        chunks.append(np.ascontiguousarray(arr).ravel())
        index[key] = [dt, offset, list(arr.shape)]
    meta = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "generator": "tests/gen_golden.py",
        "arrays": index,
        "cases": S.cases,
    }
    items = [(f"pool/{dt}", np.concatenate(chunks)) for dt, chunks in sorted(pools.items())]
    items.append(("__meta__", np.frombuffer(json.dumps(meta, sort_keys=True).encode(),
                                            dtype=np.uint8)))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in items:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = argv[0] if argv else OUT
    if not torch.__version__.startswith("2.13."):
        print(f"warning: the fixture is defined by torch 2.13, this is {torch.__version__}",
              file=sys.stderr)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    opinfo_cases()
    sweep_cases()
    edge_success_cases()
    module_cases()
    grad_cases()
    write(path)
    size = os.path.getsize(path)
    print(f"wrote {len(S.cases)} cases, {len(S.arrays)} arrays, {size / 1e6:.2f} MB to {path}")
    if size > 2_000_000:
        raise SystemExit("golden file exceeds 2 MB: shrink the cases")


if __name__ == "__main__":
    main()
