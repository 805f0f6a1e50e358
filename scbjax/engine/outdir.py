"""Output folders: the one rule for a folder that may hold other results (``claim``), and the
job file ``OUT/job.json`` that says which mode (and kind) of results a reproduction holds, and
the lock that lets one process at a time write into a folder (``hold``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

import jax

from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write, check_dir, check_file, make_dirs, remove_empty

JOB_FILE = "job.json"
MODES = ("tiny", "quick", "full")


def claim(out, held, want, other: str, overwrite: bool | None = False,
          field: str = "--out") -> None:
    """The rule of every command's output folder: ``out`` must not be a file and must be
    writable; what it already holds (``held``: None for nothing, else an identifier read by the
    caller from its own files) must be ``want``, unless ``overwrite`` (None: this kind of output
    has no overwrite). ``other`` says what the folder holds, for the message."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(field, f"{out} is not a directory")
    if held is not None and held != want and not overwrite:
        how = "" if overwrite is None else ", or --overwrite to replace them"
        raise ConfigError(field, f"{other}: choose another --out{how}")
    check_dir(out, field)


def job_mode(out) -> str | None:
    """The mode ``OUT/job.json`` records: None without the file, "unreadable" for a damaged one;
    a ConfigError naming it if it is not a regular file (a directory, a FIFO)."""
    job = Path(out) / JOB_FILE
    if not job.exists():
        return None
    check_file(job)
    try:
        return json.loads(job.read_text()).get("mode")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError):
        return "unreadable"


def stored_mode(out) -> str:
    """The mode of the results in ``out`` (a ConfigError without a readable job file of a known
    mode)."""
    p = Path(out) / JOB_FILE
    if not p.exists():
        raise ConfigError(str(out), f"no {JOB_FILE}: not a `scbjax reproduce` output")
    check_file(p)  # a directory or a FIFO: named as such (a FIFO's read would block)
    try:
        mode = json.loads(p.read_text()).get("mode")
    except (json.JSONDecodeError, UnicodeDecodeError, OSError, AttributeError) as e:
        raise ConfigError(str(p), f"unreadable ({e})") from None
    if mode not in MODES:
        raise ConfigError(str(p), f"unknown mode {mode!r}")
    return mode


def write_job(out, mode: str, kind: str = "reproduce") -> None:
    """Record in ``OUT/job.json`` that ``out`` holds results of ``kind`` in ``mode``."""
    text = json.dumps({"kind": kind, "mode": mode}).encode()
    atomic_write(Path(out) / JOB_FILE, lambda f: f.write(text))


# --- One writer per output folder ----------------------------------------------------------

LOCK_FILE = ".scbjax.lock"
_HELD: dict[Path, int] = {}  # folder -> nesting depth, for this process


@contextlib.contextmanager
def hold(out, field: str = "--out"):
    """Hold ``out`` for this process while the block runs: an ``fcntl.flock`` on
    ``OUT/.scbjax.lock`` (which records the PID), so that a second writer gets a ConfigError
    naming the holder instead of racing it. Re-entrant within a process. On the way out the
    lock file is removed, and so are the folders created to hold it if they are still empty;
    leftover temp files of writes that were killed (``.NAME.*.tmp``) are removed on the way
    in, since no other writer can be running."""
    out = Path(out)
    key = out.resolve()
    if jax.process_count() > 1 and jax.process_index() != 0:
        yield out  # under jax.distributed process 0 holds the folder (and alone writes in it)
        return
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield out
        finally:
            _HELD[key] -= 1
        return
    if out.exists() and not out.is_dir():
        raise ConfigError(field, f"{out} is not a directory")
    created = _make_dirs(out, field)
    try:
        fd = _lock(out / LOCK_FILE, field)
    except BaseException:
        remove_empty(created)
        raise
    _HELD[key] = 1
    try:
        for tmp in out.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        yield out
    finally:
        del _HELD[key]
        (out / LOCK_FILE).unlink(missing_ok=True)
        os.close(fd)
        remove_empty(created)


def _make_dirs(out: Path, field: str) -> list[Path]:
    try:
        return make_dirs(out)
    except OSError as e:
        raise ConfigError(field, f"cannot write to {out}: {e.strerror or e}") from None


def _lock(path: Path, field: str) -> int:
    """An open descriptor of ``path`` holding its exclusive flock (the PID written in it);
    ConfigError naming the holder's PID if another process has it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise ConfigError(field, f"cannot write to {path.parent}: {e.strerror or e}") \
                from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.read(fd, 32).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise ConfigError(field, f"{path.parent} is in use by another scbjax process "
                              f"(PID {pid}, lock {path}): wait for it to finish, or choose "
                              "another output folder") from None
        try:  # the file may have been removed by its last holder since we opened it
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
