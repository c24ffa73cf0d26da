"""OpenCL platform/device discovery and the non-interactive device choice.

Order (first that is set wins), read when the backend is first loaded:

1. ``PYCONV_OPENCL_DEVICE``:

   * ``"2"``: the device with that index in the flat list of every device of
     every platform (the order ``python -m pyconv`` prints);
   * ``"1:0"``: platform index, device index within it;
   * anything else: a case-insensitive substring of
     ``"<platform name> <device name> <device type>"``, e.g. ``"pthread"``,
     ``"cpu"``, ``"nvidia"``, ``"portable"``; the first match is used.

   A value that matches nothing makes the backend unavailable (it never
   silently picks another device).
2. ``PYOPENCL_CTX``: PyOpenCL's own syntax, parsed by PyOpenCL
   (:func:`pyopencl.choose_devices` with ``interactive=False``).
3. The first GPU of the first platform that has one.
4. The first device of any type.

Nothing here ever prompts.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Tuple

import pyopencl as cl

from .._registry import BackendUnavailableError

__all__ = ["enumerate_devices", "select_device", "describe_device", "device_has_fp64"]


def _type_name(device) -> str:
    try:
        # (pyopencl's stubs declare to_string as a member of the enum)
        return cl.device_type.to_string(device.type)  # type: ignore[operator]
    except (cl.Error, ValueError):  # pragma: no cover - exotic drivers
        return str(device.type)


def enumerate_devices() -> List[Tuple[int, int, cl.Platform, cl.Device]]:
    """Every ``(platform index, device index, platform, device)``.

    Raises
    ------
    BackendUnavailableError
        When no platform or no device is found (with the driver's message).
    """
    try:
        platforms = cl.get_platforms()
    except (cl.LogicError, cl.RuntimeError, cl.Error) as exc:
        raise BackendUnavailableError(
            f"no OpenCL platform found ({type(exc).__name__}: {exc}); install a driver, "
            "e.g. `pip install pocl-binary-distribution` for a CPU device") from exc
    found = []
    for pi, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except (cl.LogicError, cl.RuntimeError, cl.Error):
            devices = []
        for di, device in enumerate(devices):
            found.append((pi, di, platform, device))
    if not found:
        names = ", ".join(repr(p.name) for p in platforms) or "none"
        raise BackendUnavailableError(f"no OpenCL device found (platforms: {names})")
    return found


def device_has_fp64(device) -> bool:
    """Whether the device supports double precision (``cl_khr_fp64``)."""
    try:
        return "cl_khr_fp64" in device.extensions.split() or bool(device.double_fp_config)
    except (cl.Error, AttributeError):  # pragma: no cover
        return False


def describe_device(device) -> Dict[str, object]:
    """Facts about one device, as plain Python values."""
    return {
        "name": device.name.strip(),
        "platform": device.platform.name.strip(),
        "type": _type_name(device),
        "version": device.version.strip(),
        "compute_units": int(device.max_compute_units),
        "max_work_group_size": int(device.max_work_group_size),
        "local_mem_size": int(device.local_mem_size),
        "global_mem_size": int(device.global_mem_size),
        "fp64": device_has_fp64(device),
    }


def _label(platform, device) -> str:
    return f"{platform.name} {device.name} {_type_name(device)}".lower()


def _from_pyconv_env(raw: str, found):
    value = raw.strip()
    listing = "; ".join(f"{i} ({pi}:{di}) {d.name.strip()!r} on {p.name.strip()!r}"
                        for i, (pi, di, p, d) in enumerate(found))
    if re.fullmatch(r"\d+", value):
        index = int(value)
        if index < len(found):
            return found[index][3]
        raise BackendUnavailableError(
            f"PYCONV_OPENCL_DEVICE={raw!r}: no device with index {index}; devices: {listing}")
    match = re.fullmatch(r"(\d+):(\d+)", value)
    if match:
        pi, di = int(match.group(1)), int(match.group(2))
        for fpi, fdi, _, device in found:
            if (fpi, fdi) == (pi, di):
                return device
        raise BackendUnavailableError(
            f"PYCONV_OPENCL_DEVICE={raw!r}: no device {pi}:{di}; devices: {listing}")
    needle = value.lower()
    for _, _, platform, device in found:
        if needle in _label(platform, device):
            return device
    raise BackendUnavailableError(
        f"PYCONV_OPENCL_DEVICE={raw!r} matches no device; devices: {listing}")


def select_device():
    """The device to use and a short note saying how it was chosen."""
    found = enumerate_devices()
    raw = os.environ.get("PYCONV_OPENCL_DEVICE", "")
    if raw.strip():
        return _from_pyconv_env(raw, found), f"PYCONV_OPENCL_DEVICE={raw.strip()!r}"
    ctx_env = os.environ.get("PYOPENCL_CTX", "")
    if ctx_env.strip():
        try:
            devices = cl.choose_devices(interactive=False)
        except (cl.Error, ValueError, RuntimeError, IndexError, KeyError) as exc:
            raise BackendUnavailableError(
                f"PYOPENCL_CTX={ctx_env!r} selects no device ({type(exc).__name__}: {exc})"
            ) from exc
        if not devices:
            raise BackendUnavailableError(f"PYOPENCL_CTX={ctx_env!r} selects no device")
        return devices[0], f"PYOPENCL_CTX={ctx_env.strip()!r}"
    for _, _, _, device in found:
        if device.type & cl.device_type.GPU:
            return device, "first GPU"
    return found[0][3], "first device (no GPU found)"
