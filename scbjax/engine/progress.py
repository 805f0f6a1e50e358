"""What a job tells a person while it runs: notices and progress lines (``Log``), and the
whole job's time left (``Job``).

On a terminal a group's progress is one line rewritten in place (``\\r`` and clear to end of
line), ended before any notice and when the group finishes; in a pipe or a file each progress
line is a line of its own.
"""

from __future__ import annotations

import sys
import threading
import time

CLEAR = "\r\x1b[K"


class Log:
    """Notices (``log(text)``) and progress (``log.progress(text)``) on stderr (or
    ``stream``); silent when ``quiet``. Safe to call from the threads of concurrent groups
    (each line is written whole)."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet, self.stream = quiet, stream
        self._open = None  # the stream holding an unfinished progress line
        self._lock = threading.RLock()

    def _out(self):
        return self.stream or sys.stderr

    def __call__(self, text: str) -> None:
        """A notice: a full line of its own."""
        if not self.quiet:
            with self._lock:
                self.end()
                s = self._out()
                s.write(text + "\n")
                s.flush()

    def progress(self, text: str) -> None:
        """A progress line: rewritten in place on a terminal, a new line otherwise."""
        if self.quiet:
            return
        with self._lock:
            s = self._out()
            if _isatty(s):
                if self._open is not None and self._open is not s:
                    self.end()
                s.write(CLEAR + text)
                self._open = s
            else:
                self.end()
                s.write(text + "\n")
            s.flush()

    def end(self) -> None:
        """End an unfinished progress line (nothing when there is none)."""
        with self._lock:
            if self._open is not None:
                s, self._open = self._open, None
                s.write("\n")
                s.flush()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Job:
    """Samples planned and done over a whole job, for its ETA: the time left is the samples
    left at the rate of training so far (``ran``: chunk seconds after compilation), so
    compilation and reused or resumed samples do not skew it. ``cancelled``: set when the
    job stops (an error or an interrupt in one of its concurrent groups); the others stop at
    their next checkpoint (``Cancelled``)."""

    def __init__(self, total_samples: int = 0):
        self.total, self.done = total_samples, 0
        self.trained, self.run_s = 0, 0.0
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._last_end = float("-inf")

    def add(self, samples: int) -> None:
        """Count ``samples`` done without training them (reused or resumed)."""
        with self._lock:
            self.done += samples

    def ran(self, samples: int, seconds: float, end: float | None = None) -> None:
        """Count ``samples`` trained in the ``seconds`` that ended at ``end`` (default: now;
        ``time.perf_counter``) (done, and in the rate); chunks of concurrent groups that
        overlap in time count their union."""
        end = time.perf_counter() if end is None else end
        with self._lock:
            self.done += samples
            self.trained += samples
            self.run_s += max(0.0, end - max(end - seconds, self._last_end))
            self._last_end = max(self._last_end, end)

    def eta(self) -> float:
        """Seconds left for the job (nan before any sample was trained)."""
        if not self.trained or self.run_s <= 0:
            return float("nan")
        return self.run_s / self.trained * max(self.total - self.done, 0)


class Cancelled(Exception):
    """A concurrent group stopped at a checkpoint because its job was cancelled."""


__all__ = ["Log", "Job", "Cancelled", "CLEAR"]
