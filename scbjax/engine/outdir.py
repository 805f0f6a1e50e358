"""Output folders: the one rule for a folder that may hold other results (``claim``), and the
job file ``OUT/job.json`` that says which mode (and kind) of results a reproduction holds."""

from __future__ import annotations

import json
from pathlib import Path

from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write, check_dir, check_file

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
