"""The process around a command: SIGTERM and SIGHUP stop it as Ctrl-C does (an exception
that ``cli.main`` turns into one line and exit status 128 + the signal), and a failed write to
stdout (a full disk, ``> /dev/full``) is told apart from the command's own files."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP while a command runs: stopped as Ctrl-C stops it (exit 128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts():
    """While a command runs in the main thread, SIGTERM and SIGHUP raise ``Interrupted``
    (a signal set to be ignored, as under nohup, stays ignored); the old handlers come back
    afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {}
    try:
        for s in STOP_SIGNALS:
            if signal.getsignal(s) is signal.SIG_DFL:
                old[s] = signal.signal(s, _raise_interrupted)
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)


class StdoutError(OSError):
    """The command's output could not be written to stdout (a full disk, /dev/full)."""


class _Stdout:
    """``sys.stdout`` while a command runs: an OSError writing it becomes a StdoutError (a
    closed pipe stays a BrokenPipeError), so that the message can name stdout."""

    def __init__(self, f):
        self._f = f

    def _call(self, name: str, *args):
        try:
            return getattr(self._f, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StdoutError(e.errno, e.strerror or str(e)) from None

    def write(self, text):
        return self._call("write", text)

    def writelines(self, lines):
        return self._call("writelines", lines)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._f, name)


@contextlib.contextmanager
def named_stdout():
    real = sys.stdout
    sys.stdout = _Stdout(real)
    try:
        yield
    finally:
        if isinstance(sys.stdout, _Stdout):  # (not replaced meanwhile)
            sys.stdout = real


def drop_stdout() -> None:
    """Point stdout's descriptor at /dev/null: nothing left in its buffer fails at exit."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
