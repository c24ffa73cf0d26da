"""Parameters by key: PyTorch's ``state_dict`` conventions on NumPy arrays.

A pyconv module names its parameters as PyTorch does, ``weight`` and then
``bias`` (absent when the module was built with ``bias=False``), with
PyTorch's shapes.  So the ``state_dict`` of a ``torch.nn.Conv2d`` fits a
:class:`pyconv.Conv2d` of the same configuration, and the flat state dict of
a whole model (``encoder.0.weight``, ``encoder.0.bias``, ``head.weight``
...) fits a *structure* of pyconv modules named like the model's layers:
nested dicts (their keys are joined with dots) and lists or tuples (their
indices, as in ``torch.nn.Sequential``), with the modules as leaves.

Three rules shape the code below:

* **Check everything, then copy.**  A load first matches every key and
  checks every value's dtype and shape, and reports all the problems of a
  call in one error; only when there are none does it copy a single value.
  A failed load therefore changes nothing.
* **Copy into the module's arrays.**  As in PyTorch, loaded values are
  written into the arrays the module already holds (converted to the
  module's dtype), so references to them, such as the list returned by
  ``parameters()`` that an optimiser updates, stay valid.  The mapping's
  own arrays are never kept or written to.
* **Strictness is about the modules.**  Missing keys and, with
  ``strict=True``, keys under a module's prefix that the module has no
  parameter for (``enc.0.running_mean`` loaded into a convolution) are
  errors.  Keys of other layers (a batch norm, a linear layer) are not: a
  structure of convolutions takes its layers out of a whole model's state
  dict, and the keys it did not take come back in ``unexpected_keys``.
  For a single module every key is under its (empty) prefix, which is
  exactly PyTorch's ``strict``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["IncompatibleKeys", "load_state_dict", "state_dict"]


class IncompatibleKeys(NamedTuple):
    """The keys a load did not match, as PyTorch's ``load_state_dict`` returns them.

    Attributes
    ----------
    missing_keys : list of str
        Parameters of the module(s) that the state dict has no value for;
        they kept their values.
    unexpected_keys : list of str
        Keys of the state dict that no parameter took, in the state dict's
        order.
    """

    missing_keys: list[str]
    unexpected_keys: list[str]


class _Parameters:
    """The by-key methods of the module classes.

    A subclass provides ``dtype`` (its parameters' NumPy dtype) and
    ``_parameter_shapes()``, the name and shape of each parameter it holds,
    in PyTorch's order.
    """

    dtype: np.dtype[Any]

    def _parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of each parameter, in PyTorch's order (every
        module class defines it)."""
        raise NotImplementedError

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, NDArray[Any]]]:
        """Yield ``(name, array)`` for ``weight`` and then ``bias`` (if any).

        Parameters
        ----------
        prefix : str, default ''
            Prepended to each name (``"enc.0."`` gives ``"enc.0.weight"``).

        Yields
        ------
        name : str
        array : ndarray
            The module's own array (not a copy).
        """
        for name in self._parameter_shapes():
            yield prefix + name, getattr(self, name)

    def state_dict(self, *, prefix: str = "") -> dict[str, NDArray[Any]]:
        """The parameters by PyTorch's key names: ``{"weight": ..., "bias": ...}``.

        Parameters
        ----------
        prefix : str, default ''
            Prepended to each key, as in PyTorch (``prefix="enc.0."``).

        Returns
        -------
        dict of str to ndarray
            The module's own arrays, not copies (as in PyTorch): writing
            into them changes the module.  Take ``{k: v.copy() for k, v in
            m.state_dict().items()}`` for a snapshot.  No ``bias`` key when
            the module has no bias.
        """
        return dict(self.named_parameters(prefix))

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> IncompatibleKeys:
        """Copy parameters from a mapping with PyTorch's keys (``weight``, ``bias``).

        Parameters
        ----------
        state_dict : mapping of str to array_like
            For instance ``torch_conv.state_dict()``, or the dict that
            ``safetensors.numpy.load_file`` returns.
        strict : bool, default True
            Whether a missing or an unexpected key is an error.  A shape
            mismatch is always one.

        Returns
        -------
        IncompatibleKeys
            ``missing_keys`` (parameters left as they were) and
            ``unexpected_keys`` (keys not used), both empty after a strict
            load.

        Raises
        ------
        ValueError
            With ``strict=True``, missing or unexpected keys; a value whose
            shape is not the parameter's.  All problems are listed, and
            nothing is loaded.
        TypeError
            ``state_dict`` is not a mapping with str keys; a value that is
            not numeric, or is complex for a real module.

        Notes
        -----
        Values are converted to the module's ``dtype`` (NumPy ``same_kind``
        casting: float64 into float32 is fine, complex into float is not) and
        copied into the module's existing arrays, so earlier references to
        ``weight`` and ``bias`` see the new values.
        """
        return _load(self, state_dict, strict, f"{type(self).__name__}.load_state_dict()")


# --------------------------------------------------------------------------
# structures of modules

def _modules_in(modules: Any, caller: str) -> list[tuple[str, _Parameters]]:
    """``(prefix, module)`` for every module of a structure, prefixes ending in '.'."""
    found: list[tuple[str, _Parameters]] = []
    active: set[int] = set()

    def visit(node: Any, prefix: str) -> None:
        if isinstance(node, _Parameters):
            found.append((prefix, node))
            return
        if isinstance(node, Mapping):
            items = list(node.items())
        elif isinstance(node, (list, tuple)):
            items = list(enumerate(node))
        else:
            return  # an activation function, None ...: no parameters
        if id(node) in active:
            raise ValueError(f"{caller}: the structure of modules contains itself "
                             f"(at {prefix[:-1]!r})")
        active.add(id(node))
        for key, child in items:
            if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
                raise TypeError(f"{caller}: the keys of a dict of modules must be non-empty "
                                f"strings (or ints), got {key!r}")
            visit(child, f"{prefix}{key}.")
        active.discard(id(node))

    visit(modules, "")
    if not found:
        raise ValueError(f"{caller}: modules must be a pyconv module or a dict, list or "
                         f"tuple holding some, got a {type(modules).__name__} holding none")
    prefixes = sorted(prefix for prefix, _ in found)
    for first, second in zip(prefixes, prefixes[1:]):
        if second.startswith(first):
            raise ValueError(f"{caller}: two modules are named {first[:-1]!r} and "
                             f"{second[:-1]!r}: their keys would overlap")
    return found


def state_dict(modules: Any) -> dict[str, NDArray[Any]]:
    """The flat state dict of a structure of modules, with PyTorch's dotted keys.

    Parameters
    ----------
    modules : pyconv module, or dict, list or tuple of them (nested)
        Dict keys and list indices become the dotted prefixes
        (``{"enc": [conv0, relu, conv2]}`` gives ``enc.0.weight``,
        ``enc.2.weight`` ...); anything else in the structure (an
        activation function, None) holds no parameters and is skipped.

    Returns
    -------
    dict of str to ndarray
        The modules' own arrays, not copies, ready for
        ``safetensors.numpy.save_file``.

    Raises
    ------
    ValueError
        The structure holds no module, or two of its names overlap.
    TypeError
        A dict key that is neither a non-empty string nor an int.

    See Also
    --------
    load_state_dict : the inverse.

    Examples
    --------
    >>> import pyconv
    >>> layers = {"enc": [pyconv.Conv1d(1, 4, 3), None, pyconv.Conv1d(4, 4, 3, bias=False)],
    ...           "up": pyconv.ConvTranspose1d(4, 1, 2, stride=2)}
    >>> {key: value.shape for key, value in pyconv.state_dict(layers).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'enc.0.weight': (4, 1, 3), 'enc.0.bias': (4,), 'enc.2.weight': (4, 4, 3),
     'up.weight': (4, 1, 2), 'up.bias': (1,)}
    """
    out: dict[str, NDArray[Any]] = {}
    for prefix, module in _modules_in(modules, "pyconv.state_dict()"):
        out.update(module.named_parameters(prefix))
    return out


def load_state_dict(modules: Any, state_dict: Mapping[str, Any],
                    strict: bool = True) -> IncompatibleKeys:
    """Load the convolution layers of a model's flat state dict into pyconv modules.

    Each module takes the keys under its name (``enc.0.weight`` and
    ``enc.0.bias`` for the module at ``modules["enc"][0]``), as
    ``model.load_state_dict`` does in PyTorch.

    Parameters
    ----------
    modules : pyconv module, or dict, list or tuple of them (nested)
        Named like the model's layers: dict keys and list indices become
        the dotted prefixes; dict keys may also hold dots themselves
        (``{"enc.0": conv}``).  Anything else in the structure (an
        activation function, None) holds no parameters and is skipped, so a
        list can mirror a ``torch.nn.Sequential`` index for index.
    state_dict : mapping of str to array_like
        The whole model's state dict: ``safetensors.numpy.load_file(path)``,
        or ``model.state_dict()`` where PyTorch is installed.
    strict : bool, default True
        Whether a module's missing key, or a key under a module's name that
        the module has no parameter for (``enc.0.running_mean``), is an
        error.  Keys of other layers (batch norms, linear layers ...) never
        are: they are returned in ``unexpected_keys``.

    Returns
    -------
    IncompatibleKeys
        ``missing_keys``: the modules' parameters that the state dict has
        no value for (they kept their values); ``unexpected_keys``: every
        key of the state dict that no module took (other layers included).

    Raises
    ------
    ValueError
        Missing keys or stray keys under a module's name (with
        ``strict=True``), a value whose shape is not the parameter's, a
        structure holding no module or with overlapping names.  All
        problems are listed, and nothing is loaded.
    TypeError
        ``state_dict`` is not a mapping with str keys; a value that is not
        numeric, or is complex for a real module.

    See Also
    --------
    state_dict : the inverse, for saving.
    pyconv.Conv1d.load_state_dict : the same for one module.

    Notes
    -----
    Values are converted to each module's ``dtype`` (NumPy ``same_kind``
    casting) and copied into the module's existing arrays; the state dict's
    arrays are never kept or modified.

    Examples
    --------
    A model's ``Sequential`` of ``Conv1d, ReLU, Conv1d`` named ``enc``, a
    ``ConvTranspose1d`` named ``up`` and a batch norm named ``bn``:

    >>> import numpy as np
    >>> import pyconv
    >>> rng = np.random.default_rng(0)
    >>> weights = {"enc.0.weight": rng.standard_normal((4, 1, 3)), "enc.0.bias": np.zeros(4),
    ...            "enc.2.weight": rng.standard_normal((4, 4, 3)), "enc.2.bias": np.zeros(4),
    ...            "up.weight": rng.standard_normal((4, 1, 2)), "up.bias": np.zeros(1),
    ...            "bn.weight": np.ones(4), "bn.bias": np.zeros(4)}
    >>> relu = lambda x: np.maximum(x, 0)
    >>> layers = {"enc": [pyconv.Conv1d(1, 4, 3), relu, pyconv.Conv1d(4, 4, 3)],
    ...           "up": pyconv.ConvTranspose1d(4, 1, 2, stride=2)}
    >>> pyconv.load_state_dict(layers, weights)
    IncompatibleKeys(missing_keys=[], unexpected_keys=['bn.weight', 'bn.bias'])
    >>> bool(np.all(layers["up"].weight == weights["up.weight"].astype(np.float32)))
    True
    """
    return _load(modules, state_dict, strict, "pyconv.load_state_dict()")


# --------------------------------------------------------------------------
# the two passes

def _as_array(value: Any, key: str, dtype: np.dtype[Any], caller: str) -> NDArray[Any]:
    """``value`` as an array that converts to ``dtype``, or a TypeError naming ``key``."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:  # a bfloat16 torch tensor ...
        raise TypeError(f"{caller}: state_dict[{key!r}] is not an array NumPy can read: "
                        f"{exc}") from exc
    if array.dtype.kind not in "biufc":
        raise TypeError(f"{caller}: state_dict[{key!r}] must hold numbers, got an array of "
                        f"dtype {array.dtype}")
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise TypeError(f"{caller}: state_dict[{key!r}] is {array.dtype}, which the module's "
                        f"{dtype} parameters cannot hold without dropping the imaginary part "
                        "(build the module with a complex dtype)")
    return array


def _load(modules: Any, state_dict: Mapping[str, Any], strict: bool,
          caller: str) -> IncompatibleKeys:
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{caller}: state_dict must be a mapping of str keys to arrays (a "
                        f"dict), got {type(state_dict).__name__}")
    for key in state_dict:
        if not isinstance(key, str):
            raise TypeError(f"{caller}: the keys of state_dict must be strings, got {key!r}")
    found = _modules_in(modules, caller)

    copies: list[tuple[_Parameters, str, NDArray[Any]]] = []
    missing: list[str] = []
    mismatched: list[str] = []
    used: set[str] = set()
    for prefix, module in found:
        for name, shape in module._parameter_shapes().items():
            key = prefix + name
            if key not in state_dict:
                missing.append(key)
                continue
            used.add(key)
            value = _as_array(state_dict[key], key, module.dtype, caller)
            if value.shape != shape:
                mismatched.append(f"size mismatch for {key!r}: the state dict has shape "
                                  f"{value.shape}, the {type(module).__name__}'s parameter "
                                  f"has shape {shape}")
                continue
            copies.append((module, name, value))
    unexpected = [key for key in state_dict if key not in used]
    stray = [key for key in unexpected if any(key.startswith(p) for p, _ in found)]

    problems = []
    if strict and missing:
        problems.append("missing key(s): " + ", ".join(map(repr, missing)))
    if strict and stray:
        problems.append("unexpected key(s): " + ", ".join(map(repr, stray)))
    problems += mismatched
    if problems:
        raise ValueError(f"{caller}: the state dict does not fit, nothing was loaded:\n  "
                         + "\n  ".join(problems))

    for module, name, value in copies:
        current = getattr(module, name)
        if (isinstance(current, np.ndarray) and current.flags.writeable
                and current.dtype == module.dtype and current.shape == value.shape):
            np.copyto(current, value, casting="same_kind")
        else:  # an array assigned by hand that cannot take the values: replace it
            setattr(module, name, np.array(value, dtype=module.dtype, order="C"))
    return IncompatibleKeys(missing, unexpected)
