"""The ``phases`` path: conv_transpose as stride-1 convs, one per output phase
(kernels: the implicit path's, ``_implicit.pyx``).

Output positions with the same residue modulo the stride form a stride-1
conv of the input with a subset of the taps (no zero insertion); each
phase is planned as the implicit path plans it and writes its strided view
of the output in place.  The items of all phases run in one parallel
region (``_implicit.conv_many``): one fork and one barrier per call, not
one per phase, which on small maps (and on a busy machine, where every
barrier may wait for a descheduled thread) cost more than the phase's
work.  Phases no tap reaches hold only the bias.

Rule: a CPU with AVX2+FMA or AVX-512, kernel taps that overlap, no phase
conv so thin that the direct path would take it, and either at most
:data:`FEW_INPUTS` input channels per group, at least twice as many
output channels and :data:`FEW_INPUTS_POSITIONS` input positions (batch
x image) per input channel, or at least
:data:`~pyconv._cy._planning.PHASE_MIN_POSITIONS` input positions per image,
with a stride above 1 at least :data:`~pyconv._cy._planning.TARGET_ITEMS`
images x groups or, for a smaller batch, an input that ``tgemm``'s rule
does not take (small images: there ``tgemm`` is faster; on larger ones
the phases beat ``gemm``, one thread: 1-d N4 256->128 L800 K16 s8 42 ms
against 52, 3-d N4 32->16 16^3 K3 s2 8.5 against 11.4, 2-d N4 64->32 64^2 K4
s2 11.4 against 14.8, N1 32->32 128^2 K3 s2 4.8 against 5.7).  Taps
overlap when a dilated kernel extent is above the stride in some dim
(otherwise every phase is a 1x1 conv and one GEMM + scatter is faster).
It supports any call whose phase convs all fit the implicit path.
"""

from __future__ import annotations

import itertools
from math import gcd, prod

import numpy as np

from ..._spec import ConvSpec
from .. import _implicit, _planning
from .._planning import Path, finish, fits, geo, target
from .direct import DIRECT
from .implicit import IMPLICIT
from .tgemm import TGEMM

#: Small images also take the phases with at most FEW_INPUTS input channels
#: per group, at least twice as many output channels and at least
#: FEW_INPUTS_POSITIONS input positions (batch x image) per input channel:
#: one thread against ``tgemm``, N16 16->256 7^2 3x3 s1 0.76 ms against
#: 2.07, 7x7 s2 4.0 against 8.0; N16 32->64 14^2 4x4 s2 2.4 against 3.0
#: (with 256 input channels ``tgemm`` was faster everywhere, and so it was
#: with fewer positions or fewer output channels: N16 32->3 32^2 4x4 s2 1.9
#: against 0.8).
FEW_INPUTS = 64
FEW_INPUTS_POSITIONS = 49


def phases_1d(size_in, size_out, k, s, d, lo):
    """Per output residue r (mod s) of one axis: (r, U, taps, lo', d').

    Output t = r + s*u (u < U) of a transposed conv receives x[i] w[k] for
    r + lo = i*s + k*d.  The taps k that reach residue r form a progression
    k0, k0 + step, ... (step = s / gcd(s, d)) and then i = u + c0 - j*d'
    (d' = d / gcd(s, d)): a stride-1 conv of x with those taps reversed,
    dilation d' and leading padding lo' = (J-1)*d' - c0 (maybe negative).
    """
    g = gcd(s, d)
    step, dd = s // g, d // g
    out = []
    for r in range(min(s, size_out)):
        U = (size_out - r + s - 1) // s
        taps = [kk for kk in range(k) if (r + lo - kk * d) % s == 0]
        if taps:
            assert all(b - a == step for a, b in zip(taps, taps[1:]))
            c0 = (r + lo - taps[0] * d) // s
            out.append((r, U, taps[::-1], (len(taps) - 1) * dd - c0, dd))
        else:
            out.append((r, U, [], 0, 1))
    return out


def phase_specs(spec):
    """The stride-1 conv specs whose outputs interleave into conv_transpose's output.

    Yields ``(index, subspec or None, taps)`` with ``index`` the output slice
    of the phase, ``taps`` one list of kernel taps per axis (in the order the
    sub-kernel uses them) and ``subspec`` None when no tap reaches the phase
    (its outputs are only the bias).
    """
    per_axis = [phases_1d(i, o, k, s, d, lo) for i, o, k, s, d, lo in zip(
        spec.in_size, spec.out_size, spec.kernel_size, spec.stride, spec.dilation,
        spec.pad_lo)]
    for combo in itertools.product(*per_axis):
        index = (slice(None), slice(None)) + tuple(
            slice(r, None, s) for (r, *_), s in zip(combo, spec.stride))
        taps = [c[2] for c in combo]
        if any(not t for t in taps):
            yield index, None, taps
            continue
        sub = ConvSpec(False, spec.batch, spec.in_channels, spec.out_channels, spec.groups,
                       tuple(spec.in_size), tuple(c[1] for c in combo),
                       tuple(len(t) for t in taps), (1,) * spec.nd,
                       tuple((c[3], 0) for c in combo), tuple(c[4] for c in combo))
        yield index, sub, taps


def phase_weight(w, spec, taps):
    """conv weight (C_out, C_in/g, *J) of one phase from the transposed weight."""
    g = spec.groups
    cin_g, cout_g = spec.in_channels // g, spec.out_channels // g
    sub = w[(slice(None), slice(None)) + np.ix_(*taps)]
    sub = sub.reshape((g, cin_g, cout_g) + sub.shape[2:]).swapaxes(1, 2)
    return np.ascontiguousarray(sub.reshape((spec.out_channels, cin_g) + sub.shape[3:]))


class Phases(Path):
    name = "phases"
    ops = frozenset({"conv_transpose"})

    def chosen(self, op, spec, tgt):
        overlap = any((k - 1) * d + 1 > s for k, d, s in zip(spec.kernel_size, spec.dilation,
                                                            spec.stride))
        if not (tgt.level >= 1 and overlap):
            return False
        pin, cin = prod(spec.in_size), spec.in_channels // spec.groups
        # few input channels, at least twice as many outputs, many positions:
        # tgemm's GEMM (K = C_in/g) would be thin, the phases' is not (K =
        # C_in/g x taps, M = C_out/g)
        few_inputs = (cin <= FEW_INPUTS and spec.out_channels // spec.groups >= 2 * cin
                      and spec.batch * pin >= FEW_INPUTS_POSITIONS * cin)
        return ((few_inputs
                 or (pin >= _planning.PHASE_MIN_POSITIONS
                     and (prod(spec.stride) == 1
                          or spec.batch * spec.groups >= _planning.TARGET_ITEMS
                          or not TGEMM.chosen(op, spec, tgt))))
                and not any(DIRECT.chosen("conv", sub, tgt)
                            for _, sub, _ in phase_specs(spec) if sub is not None))

    def plan(self, op, spec, tgt, n):
        subs = [sub for _, sub, _ in phase_specs(spec) if sub is not None]
        parts = tuple(IMPLICIT.plan("conv", sub, tgt, n, split=False) for sub in subs)
        if any(p is None for p in parts):
            return None
        # one region runs every phase: each thread holds the largest phase's
        # buffers, the call every phase's packed weight and (while packing)
        # the largest phase's unpacked one
        per, fixed = 0, max([prod(sub.weight_shape) * tgt.itemsize for sub in subs] + [0])
        for sub, part in zip(subs, parts):
            sub_per, sub_fixed = _implicit.conv_workspace(geo(sub), part.tile, tgt.mr, tgt.nr,
                                                          tgt.dbl)
            per = max(per, sub_per)
            fixed += sub_fixed
        if not fits(per, fixed):
            return None
        return finish(self.name, max(1, sum(p.items for p in parts)), per, fixed, n,
                      slabs=len(parts), simd=tgt.level, parts=parts)

    def run(self, op, p, spec, x, w, b, out):
        y = out.reshape(spec.output_shape)
        w = w.reshape(spec.weight_shape)
        esz = y.dtype.itemsize
        parts = iter(p.parts)
        tapss, geos, rows, views = [], [], [], []
        for index, sub, taps in phase_specs(spec):
            if sub is None:
                y[index] = 0 if b.size == 0 else b.reshape((1, -1) + (1,) * spec.nd)
                continue
            view = y[index]        # strided view: the kernel writes the phase in place
            offset = (view.__array_interface__["data"][0]
                      - y.__array_interface__["data"][0]) // esz
            st = (0,) * (5 - spec.nd) + tuple(v // esz for v in view.strides[2:])
            tapss.append(taps)
            geos.append(geo(sub))
            rows.append(next(parts).tile)
            views.append((offset, view.strides[0] // esz, view.strides[1] // esz) + st[-3:])
        if geos:
            tgt = target(x.dtype, p.simd)
            _implicit.conv_many(x, lambda k: phase_weight(w, spec, tapss[k]).reshape(-1), b,
                                out, geos, rows, tgt.level, tgt.mr, tgt.nr, p.omp_threads,
                                views)


PHASES = Phases()
