"""The command line, ``python -m pyconv``: parse the options, run a command.

With no subcommand it runs the main job (:mod:`.overview`): a line per
backend with its verdict against the reference, and a small timing table.
The subcommands are ``info`` (:mod:`.info`: everything about the backends,
devices and runtimes), ``check`` (:mod:`.check`: every backend against the
reference on random cases) and ``bench`` (:mod:`.bench`: the benchmark
workloads, optionally beside PyTorch).  Tables and the progress bar come
from :mod:`._output`.

Options shared by several commands (``--backend``, ``--cases``, ``--seed``,
``-v``, ``--threads``, ``--no-progress``) may be given before or after the
subcommand: they are declared on the top-level parser and again on each
subparser that uses them, all with ``default=argparse.SUPPRESS`` so that
only the options really given reach the namespace.  argparse parses the
top-level options first and the subcommand's after them, so an option given
in both places takes the later value.  A shared option given before a
subcommand that does not use it is a usage error, never silently ignored.
The defaults (which differ per command: the main job checks 6 cases,
``check`` 12) are filled in afterwards.

Exit status: 0 on success, 1 when a check failed (or a backend asked for by
name is unavailable to the main job or ``check``), 2 on a usage error, and
141 when the reader of the output went away early (``python -m pyconv |
head``), as a Unix tool killed by SIGPIPE would, without a traceback.

Importing this package never imports torch, pyopencl or matplotlib: torch
is imported by ``bench --compare torch`` only, pyopencl by the opencl
backend when it is loaded.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pyconv

from . import bench, check, info, overview
from ._output import EXIT_PIPE

__all__ = ["main", "build_parser"]

SUBCOMMANDS = ("info", "check", "bench")

#: Options of more than one command: flags and argparse keywords.  ``{default}``
#: in a help text is replaced by the command's default.
SHARED: Dict[str, Tuple[Tuple[str, ...], Dict[str, Any]]] = {
    "backend": (("--backend",), dict(
        action="append", metavar="NAME",
        help="backend(s) to use (repeat or comma-separate; default: every available "
             "backend{default})")),
    "cases": (("--cases",), dict(
        type=int, metavar="N", help="random cases of the check (default {default})")),
    "seed": (("--seed",), dict(
        type=int, metavar="N", help="random seed of the cases (default {default})")),
    "verbose": (("-v", "--verbose"), dict(
        action="store_true", help="also list the calls a backend declined")),
    "threads": (("--threads",), dict(
        type=int, metavar="N",
        help="threads for pyconv{default} (default: pyconv.get_num_threads())")),
    "no_progress": (("--no-progress",), dict(
        action="store_true", help="no progress indication on stderr")),
}
#: The shared options each command takes (None: the main job) and their defaults.
USES: Dict[Optional[str], Dict[str, object]] = {
    None: dict(backend=None, cases=6, seed=0, verbose=False, threads=None,
               no_progress=False),
    "info": dict(threads=None),
    "check": dict(backend=None, cases=12, seed=0, verbose=False, threads=None,
                  no_progress=False),
    "bench": dict(backend=None, threads=None, no_progress=False),
}
#: Words put in a shared option's help text, per command.
_HELP_DEFAULTS: Dict[Tuple[Optional[str], str], str] = {
    ("bench", "backend"): " but reference, which only runs with --quick; 'auto' allowed",
    ("bench", "threads"): ", torch and BLAS",
}
COMMANDS = {None: overview.command, "info": info.command, "check": check.command,
            "bench": bench.command}


def _add_shared(parser: argparse.ArgumentParser, command: Optional[str]) -> None:
    for key, default in USES[command].items():
        flags, kw = SHARED[key]
        kw = dict(kw, default=argparse.SUPPRESS)
        words = _HELP_DEFAULTS.get((command, key), "" if default is None else default)
        kw["help"] = kw["help"].format(default=words)
        parser.add_argument(*flags, dest=key, **kw)


def build_parser() -> Tuple[argparse.ArgumentParser, Dict[str, argparse.ArgumentParser]]:
    """The top-level parser and the subcommands' parsers, by name."""
    parser = argparse.ArgumentParser(
        prog="python -m pyconv",
        description="pyconv: list the backends, check them against the reference and "
                    "time them.  With no subcommand: a line per backend with its check "
                    "on a few random cases, and a small timing table.  Options may be "
                    "given before or after the subcommand.",
        epilog="exit status: 0 ok, 1 a check failed, 2 usage error, 141 output closed "
               "early (as a tool killed by SIGPIPE)")
    _add_shared(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="{info,check,bench}")
    subs = {}
    subs["info"] = sub.add_parser(
        "info", help="backends, devices, OpenMP, BLAS, versions",
        description="Versions, threads, every backend (available or not and why, and "
                    "all it reports about itself), the OpenCL platforms and devices (the "
                    "one pyconv uses marked), and the BLAS and OpenMP runtimes.")
    subs["check"] = sub.add_parser(
        "check", help="each backend against the reference on random cases",
        description="Run the six ops and the gradient functions on random small cases on "
                    "each backend; compare with the reference backend and check the "
                    "adjoint identities. Exit status 1 if any check fails.")
    p_bench = subs["bench"] = sub.add_parser(
        "bench", help="the benchmark table (optionally side by side with torch)",
        description="Time the benchmark workloads (float32) on each backend: best-of "
                    "time, GFLOP/s, fraction of NumPy's sgemm throughput measured in the "
                    "same run and, with --compare torch, PyTorch's time and the speedup "
                    "(torch time / pyconv time; above 1 means pyconv is faster).")
    for name, p in subs.items():
        _add_shared(p, name)
    p_bench.add_argument("--compare", choices=["torch"],
                         help="also time PyTorch with the same number of threads")
    p_bench.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p_bench.add_argument("--quick", action="store_true",
                         help="tiny sizes (seconds; the reference backend may run)")
    p_bench.add_argument("--repeat", type=int, default=None, metavar="N",
                         help="best of this many timed calls (default 5, quick 3)")
    p_bench.add_argument("--workloads", action="append", metavar="NAMES",
                         help="only these workloads (comma-separated), among: " +
                              ", ".join(bench.WORKLOAD_NAMES))
    return parser, subs


def _names(items: Optional[Sequence[str]]) -> List[str]:
    """Comma-separated and repeated option values as one list, without repeats."""
    out: List[str] = []
    for item in items or ():
        for name in item.split(","):
            name = name.strip()
            if name and name not in out:
                out.append(name)
    return out


def _resolve_backends(args, parser) -> None:
    """``args.backends`` (available, to run) and ``args.unavailable`` (name, reason)."""
    rows = {r["name"]: r for r in info.backend_rows()}
    bench_cmd = args.command == "bench"
    known = dict.fromkeys(rows)
    if bench_cmd:
        known["auto"] = None
    requested = [n.lower() for n in _names(args.backend)]
    for name in requested:
        if name not in known:
            parser.error(f"unknown backend {name!r}; valid names: {', '.join(known)}")
    if not requested:
        requested = [n for n, r in rows.items() if r["available"]
                     and not (bench_cmd and n == "reference" and not args.quick)]
    args.backends = [n for n in requested if n == "auto" or rows[n]["available"]]
    args.unavailable = [(n, rows[n]["reason"]) for n in requested
                        if n != "auto" and not rows[n]["available"]]
    if bench_cmd:
        if args.unavailable:
            parser.error("; ".join(f"backend {n!r} is unavailable: {r}"
                                   for n, r in args.unavailable))
        if "reference" in args.backends and not args.quick:
            parser.error("the reference backend is pure Python loops and is only "
                         "benchmarked at the --quick sizes")
        if not args.backends:
            parser.error("no fast backend is available (cython and opencl are not); "
                         "use --quick to time the reference backend at tiny sizes")


def _complete(args, parser, command_parser) -> None:
    """Refuse misplaced options, fill in the defaults, validate the values."""
    uses = USES[args.command]
    for key in SHARED:
        if hasattr(args, key) and key not in uses:
            flag = SHARED[key][0][-1]
            parser.error(f"{flag} does not apply to the {args.command!r} subcommand")
    for key, default in uses.items():
        if not hasattr(args, key):
            setattr(args, key, default)
    p = command_parser
    if getattr(args, "cases", 1) < 1:
        p.error("--cases must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    args.progress = not getattr(args, "no_progress", True)
    if args.command == "bench":
        if args.repeat is not None and args.repeat < 1:
            p.error("--repeat must be at least 1")
        if args.json:  # fail now, not after the whole run
            folder = os.path.dirname(os.path.abspath(args.json))
            if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
                p.error(f"--json: cannot write into {folder!r}")
        args.workloads = _names(args.workloads)
        unknown = [w for w in args.workloads if w not in bench.WORKLOAD_NAMES]
        if unknown:
            p.error(f"unknown workload(s) {', '.join(unknown)}; known: "
                    f"{', '.join(bench.WORKLOAD_NAMES)}")
    if "backend" in uses:
        _resolve_backends(args, p)


def _quiet_exit_on_closed_pipe() -> int:
    """The reader of stdout went away (``| head``): stop without a traceback.

    Python would print one now and another when it flushes stdout at exit;
    pointing the standard streams at /dev/null avoids both.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (captured)
            pass
    os.close(devnull)
    return EXIT_PIPE


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); the exit status.

    Usage errors exit through :class:`SystemExit` with status 2 (argparse's
    convention); every other outcome is returned.
    """
    if not faulthandler.is_enabled():
        # a crash inside a native backend (a driver, a kernel) then shows
        # which call it was instead of a bare "Segmentation fault"
        faulthandler.enable()
    parser, subs = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "compare", None) == "torch":
        # before anything loads a backend: see torch_available's docstring
        bench.torch_available()
    _complete(args, parser, subs.get(args.command, parser))
    if args.threads is not None:
        pyconv.set_num_threads(args.threads)
    try:
        status = COMMANDS[args.command](args, sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        return _quiet_exit_on_closed_pipe()
    return status
