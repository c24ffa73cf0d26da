"""ConvSpec: the validated geometry of one convolution call.

The front layer (:mod:`pyconv.functional`, :mod:`pyconv.grad`) parses and
validates the user's arguments once and condenses them into a
:class:`ConvSpec`.  Backends receive nothing else: a batched, contiguous,
float32/float64 problem with explicit per-side zero padding.

Index conventions shared by every backend (``nd`` spatial dims, per dim):

* **conv** (``transposed=False``), gather form::

      y[n, co, o] = b[co] + sum_{c, k} w[co, c, k] * x[n, g*cin_g + c, o*s - lo + k*d]

  where ``g = co // cout_g`` and out-of-range input positions read as zero.
* **conv_transpose** (``transposed=True``), scatter form::

      y[n, g*cout_g + j, i*s - lo + k*d] += x[n, ci, i] * w[ci, j, k]

  with ``g = ci // cin_g``; targets outside ``[0, out_size)`` are dropped.
* **conv_weight** (a conv spec, ``transposed=False``)::

      gw[co, c, k] = sum_{n, o} gy[n, co, o] * x[n, g*cin_g + c, o*s - lo + k*d]

``lo`` is ``padding[i][0]``.  ``padding[i][1]`` (``hi``) is implied by the
sizes and is given for completeness: for conv,
``out = (in + lo + hi - d*(K-1) - 1) // s + 1``; for conv_transpose,
``out = (in - 1)*s - lo - hi + d*(K-1) + 1`` (so ``hi = p - output_padding``,
which may be negative).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Tuple

IntTuple = Tuple[int, ...]


@dataclass(frozen=True)
class ConvSpec:
    """Geometry of one batched N-d convolution, validated by the front layer.

    Attributes
    ----------
    transposed : bool
        False for conv (and conv_weight), True for conv_transpose.
    batch : int
        N, the batch size (may be 0).
    in_channels, out_channels : int
        Channel counts of the op's input and output.
    groups : int
        Number of channel groups.
    in_size, out_size : tuple of int
        Spatial sizes of the op's input and output.
    kernel_size, stride, dilation : tuple of int
        Per spatial dimension.
    padding : tuple of (int, int)
        Per spatial dimension ``(lo, hi)``: zeros before and after the
        input (conv) or positions cropped before and after the full
        output (conv_transpose).
    """

    transposed: bool
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: IntTuple
    out_size: IntTuple
    kernel_size: IntTuple
    stride: IntTuple
    padding: Tuple[Tuple[int, int], ...]
    dilation: IntTuple

    @property
    def nd(self) -> int:
        """Number of spatial dimensions (1, 2 or 3)."""
        return len(self.kernel_size)

    @property
    def pad_lo(self) -> IntTuple:
        """Leading padding per spatial dim (the only one the index maps need)."""
        return tuple(lo for lo, _ in self.padding)

    @property
    def input_shape(self) -> IntTuple:
        return (self.batch, self.in_channels) + tuple(self.in_size)

    @property
    def output_shape(self) -> IntTuple:
        return (self.batch, self.out_channels) + tuple(self.out_size)

    @property
    def weight_shape(self) -> IntTuple:
        g = self.groups
        if self.transposed:
            return (self.in_channels, self.out_channels // g) + tuple(self.kernel_size)
        return (self.out_channels, self.in_channels // g) + tuple(self.kernel_size)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the op (same for all three primitives)."""
        if self.transposed:
            cols = prod(self.in_size)
            per = self.out_channels // self.groups
            return 2 * self.batch * self.in_channels * per * cols * prod(self.kernel_size)
        cols = prod(self.out_size)
        per = self.in_channels // self.groups
        return 2 * self.batch * self.out_channels * per * cols * prod(self.kernel_size)

    def as_conv(self) -> "ConvSpec":
        """The conv spec whose input-gradient this transposed spec computes.

        A transposed spec maps "columns" (its input) to an "image" (its
        output); the returned conv spec maps the same image back to the
        columns, with the same kernel, stride, dilation, groups and padding.
        """
        if not self.transposed:
            return self
        return ConvSpec(False, self.batch, self.out_channels, self.in_channels,
                        self.groups, self.out_size, self.in_size, self.kernel_size,
                        self.stride, self.padding, self.dilation)

    def as_transposed(self) -> "ConvSpec":
        """The transposed spec that is the adjoint of this conv spec."""
        if self.transposed:
            return self
        # The floor in the conv size formula may leave r trailing input
        # positions unread; the transposed op regrows them as output_padding.
        padding = tuple(
            (lo, (c - 1) * s - lo + d * (k - 1) + 1 - i)
            for (lo, _), c, s, d, k, i in zip(self.padding, self.out_size, self.stride,
                                            self.dilation, self.kernel_size, self.in_size))
        return ConvSpec(True, self.batch, self.out_channels, self.in_channels,
                        self.groups, self.out_size, self.in_size, self.kernel_size,
                        self.stride, padding, self.dilation)
