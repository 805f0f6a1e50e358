"""Files: atomic writes, and reads that turn a missing, truncated or corrupt file into one
ConfigError naming the path (no traceback from zipfile, json or the codec). A write the file
system refuses (disk full) is a ConfigError naming the path too; a read refuses what is not a
regular file (a directory, a FIFO that would block the read forever)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import tomllib
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from scbjax.util.errors import ConfigError


def umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(old)
    return old


def atomic_write(path, write_fn: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write_fn(f)`` into a temp file beside it, fsync, rename.

    The file gets mode 0o666 & ~umask, as ``open`` would give it (not mkstemp's 0600). An
    OSError (disk full, permissions) is ConfigError(path, "cannot write: ..."): the temp file
    is removed, a file already at ``path`` is left as it was."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ConfigError(str(path), f"cannot write: {e.strerror or e}") from None
        raise
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data))


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(mode: int) -> str:
    kind = next((k for test, k in _KINDS if test(mode)), "a special file")
    return f"cannot read: {kind}, not a regular file"


def _where(path: Path, field: str | None) -> tuple[str, str]:
    """(field, prefix): the field defaults to the path; else the message starts with it."""
    return (str(path), "") if field is None or field == str(path) else (field, f"{path}: ")


def check_file(path, field: str | None = None) -> Path:
    """``path`` is an existing regular file: ConfigError(``field``, default the path) if it
    is missing, a directory, a FIFO (a read would wait for a writer forever) or the like."""
    path = Path(path)
    field, where = _where(path, field)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(field, f"{where}no such file") from None
    except OSError as e:
        raise ConfigError(field, f"{where}cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(field, where + _not_regular(mode))
    return path


def _open(path: Path, field: str | None) -> IO[bytes]:
    """``path`` opened for reading, refused unless a regular file (``check_file``); the
    check is on the opened file (non-blocking: a FIFO opens at once, without a writer)."""
    field, where = _where(path, field)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ConfigError(field, f"{where}no such file") from None
    except OSError as e:
        raise ConfigError(field, f"{where}cannot read ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigError(field, where + _not_regular(mode))
    return open(fd, "rb")


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (read eagerly); ConfigError(path) if it cannot be read."""
    path = Path(path)
    with _open(path, None) as f:
        try:
            z = np.load(f, allow_pickle=False)
            if isinstance(z, np.lib.npyio.NpzFile):
                with z:
                    return {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, zlib.error) as e:
            raise ConfigError(str(path), f"cannot read: not a valid .npz file, truncated or "
                              f"corrupt ({type(e).__name__}: {e})") from None
    raise ConfigError(str(path), "cannot read: not an .npz archive (a single .npy array?)")


def read_text(path, field: str | None = None) -> str:
    """UTF-8 text of a spec file; ConfigError (``field``, default the path) if it is missing,
    not a regular file, unreadable, not UTF-8 or empty."""
    path = Path(path)
    name, where = _where(path, field)
    with _open(path, field) as f:
        try:
            data = f.read()
        except OSError as e:
            raise ConfigError(name, f"{where}cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(name, f"{where}not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise ConfigError(name, f"{where}empty file")
    return text


class _DuplicateKey(Exception):
    pass


def _unique(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object's dict, refusing a repeated key (json.loads would keep the last)."""
    d = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(k)
        d[k] = v
    return d


def _json(text: str, path: Path, field: str | None) -> Any:
    field, where = _where(path, field)
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except json.JSONDecodeError as e:
        raise ConfigError(field, f"{where}not valid JSON (line {e.lineno}, column {e.colno}: "
                          f"{e.msg})") from None
    except _DuplicateKey as e:
        raise ConfigError(field, f"{where}duplicate key {e.args[0]!r} (JSON would keep only "
                          "the last)") from None


def load_json(path, field: str | None = None) -> Any:
    """Parsed JSON of ``path``; ConfigError if missing, not UTF-8, empty, invalid JSON or an
    object with a repeated key."""
    path = Path(path)
    return _json(read_text(path, field), path, field)


def is_json(path) -> bool:
    """A ``.json`` file name (any case: ``spec.JSON``); anything else is read as TOML."""
    return Path(path).suffix.lower() == ".json"


def read_table(path, field: str) -> Any:
    """Parsed TOML of ``path`` (JSON for a ``.json`` file, any case); ConfigError(``field``)
    if it is missing, unreadable, not UTF-8, empty, not valid TOML / JSON or has a repeated
    key."""
    path = Path(path)
    text = read_text(path, field)
    if is_json(path):
        return _json(text, path, field)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(field, f"{path}: not valid TOML ({e})") from None


def check_dir(path, field: str) -> Path:
    """``path`` can be a directory this process writes into: ConfigError(``field``) for a file
    (or a file above it), an unwritable or impossible path (``/proc/x``). Missing directories
    are created for the probe and removed again: nothing is left behind. Safe against another
    process probing (or creating) the same path at the same time: a folder it made first is
    used as found, and the probe file has a name of its own."""
    path = Path(path)
    for attempt in range(3):
        try:
            return _probe_dir(path, field)
        except FileNotFoundError:  # another process removed a folder it had made for its probe
            if attempt == 2:
                raise ConfigError(field, f"cannot write to {path}: it keeps disappearing") \
                    from None
    return path


def make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents; return the folders this call created (a
    folder another process makes meanwhile is used as found). OSError if one cannot be made
    (the ones made are removed again)."""
    missing, p = [], Path(path)
    while not p.exists() and not p.is_symlink() and p.parent != p:
        missing.append(p)
        p = p.parent
    created: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
                created.append(d)
            except FileExistsError:
                pass
    except BaseException:
        remove_empty(created)
        raise
    return created


def remove_empty(created: list[Path]) -> None:
    """Remove the folders of ``make_dirs`` that are still empty, deepest first."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def _probe_dir(path: Path, field: str) -> Path:
    if path.exists() and not path.is_dir():
        raise ConfigError(field, f"{path} is not a directory")
    created = []
    try:
        created = make_dirs(path)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".scbjax-write-test-")
        os.close(fd)
        os.unlink(probe)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(field, f"cannot write to {path}: {e.strerror or e}") from None
    finally:
        remove_empty(created)
    return path
