"""What the command line writes: one table formatter, one progress bar, number formats.

Every table ``python -m pyconv`` prints (the backends, the check's verdict,
the timings, the benchmark table) goes through :func:`table`, and every
long-running step reports through :class:`Progress`, so all subcommands look
alike and a change of layout is made once.  Tables go to stdout; the
progress bar goes to stderr, so ``python -m pyconv bench > table.txt`` keeps
only the results.  The exit statuses are defined here too, next to what
the user reads.
"""

from __future__ import annotations

import shutil
import sys
from typing import Optional, Sequence, TextIO

#: Exit statuses of ``python -m pyconv``.
EXIT_OK = 0
EXIT_FAILED = 1     # a check failed, or a backend asked for by name is unavailable
EXIT_USAGE = 2      # a usage error (what argparse's parser.error() exits with)
EXIT_PIPE = 128 + 13  # stdout closed early (``| head``): as a tool killed by SIGPIPE


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, left: int = 1,
          rule: bool = True) -> str:
    """Rows of text cells as a plain-text table with aligned columns.

    Parameters
    ----------
    headers : sequence of str
        The column titles (the first line).
    rows : sequence of sequences of str
        The cells, one sequence per row, as many cells as ``headers``.
    left : int
        How many leading columns are left-aligned (names); the others are
        right-aligned (numbers).
    rule : bool
        Whether a line of dashes separates the titles from the rows.

    Returns
    -------
    str
        The table, without a trailing newline; trailing blanks are stripped.
    """
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        text = "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
        return text.rstrip()

    lines = [line(headers)]
    if rule:
        lines.append("  ".join("-" * w for w in widths))
    lines += [line(r) for r in rows]
    return "\n".join(lines)


def fmt_time(seconds: Optional[float]) -> str:
    """A duration with a unit that keeps 2-3 significant digits (``-`` for None)."""
    if seconds is None:
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_rate(value: float) -> str:
    """1 decimal from 1 up, 2 significant digits below (tiny sizes have tiny rates)."""
    return f"{value:.1f}" if value >= 1 else f"{value:.2g}"


class Progress:
    """A progress indication on a stream (stderr by default).

    On a terminal it is one bar redrawn in place and erased by :meth:`close`;
    on anything else (a log file, a pipe) it is one plain line per step, so
    a CI log shows how far a run got.

    Parameters
    ----------
    total : int
        Number of steps.
    enabled : bool
        False: no output at all (``--no-progress``).
    stream : file, optional
        Where to write (default ``sys.stderr``, looked up at each write).
    width : int
        Characters of the bar itself.
    """

    def __init__(self, total: int, enabled: bool = True, stream: Optional[TextIO] = None,
                 width: int = 24):
        self.total = max(1, total)
        self.done = 0
        self.enabled = enabled
        self._stream = stream
        self.width = width
        self._last = 0

    @property
    def stream(self) -> TextIO:
        return sys.stderr if self._stream is None else self._stream

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, text: str) -> None:
        """Announce the step about to run (the one after the ``done`` ones)."""
        if not self.enabled:
            return
        if not self._tty():
            self.stream.write(f"[{self.done + 1}/{self.total}] {text}\n")
            self.stream.flush()
            return
        filled = self.width * min(self.done, self.total) // self.total
        cols = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
        # cut to the terminal width: a line that wraps cannot be redrawn in place
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total} {text}")[:cols]
        self.stream.write("\r" + line + " " * max(0, self._last - len(line)))
        self.stream.flush()
        self._last = len(line)

    def advance(self) -> None:
        """Count one step as done."""
        self.done += 1

    def close(self) -> None:
        """Erase the bar (terminal only), so the results start on a clean line."""
        if self.enabled and self._tty() and self._last:
            self.stream.write("\r" + " " * self._last + "\r")
            self.stream.flush()
            self._last = 0
