"""Files: atomic writes, and reads that turn a missing, truncated or corrupt file into one
ConfigError naming the path (no traceback from zipfile, json or the codec)."""

from __future__ import annotations

import json
import os
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

    The file gets mode 0o666 & ~umask, as ``open`` would give it (not mkstemp's 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding)
    return atomic_write(path, lambda f: f.write(data))


def _missing(path: Path) -> ConfigError:
    return ConfigError(str(path), "no such file")


def load_npz(path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (read eagerly); ConfigError(path) if it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path)
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.lib.npyio.NpzFile):
            with z:
                return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError, zlib.error) as e:
        raise ConfigError(str(path), f"cannot read: not a valid .npz file, truncated or "
                          f"corrupt ({type(e).__name__}: {e})") from None
    raise ConfigError(str(path), "cannot read: not an .npz archive (a single .npy array?)")


def read_text(path, field: str | None = None) -> str:
    """UTF-8 text of a spec file; ConfigError (``field``, default the path) if it is missing,
    unreadable, not UTF-8 or empty."""
    path = Path(path)
    field = str(path) if field is None else field
    where = "" if field == str(path) else f"{path}: "
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(field, f"{where}no such file") from None
    except OSError as e:
        raise ConfigError(field, f"{where}cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(field, f"{where}not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise ConfigError(field, f"{where}empty file")
    return text


def load_json(path, field: str | None = None) -> Any:
    """Parsed JSON of ``path``; ConfigError if missing, not UTF-8, empty or invalid JSON."""
    path = Path(path)
    text = read_text(path, field)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        f = str(path) if field is None else field
        where = "" if f == str(path) else f"{path}: "
        raise ConfigError(f, f"{where}not valid JSON (line {e.lineno}, column {e.colno}: "
                          f"{e.msg})") from None


def read_table(path, field: str) -> Any:
    """Parsed TOML of ``path`` (JSON for a ``.json`` file); ConfigError(``field``) if it is
    missing, unreadable, not UTF-8, empty or not valid TOML / JSON."""
    path = Path(path)
    text = read_text(path, field)
    try:
        return json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(field, f"{path}: not valid {kind} ({e})") from None


def check_dir(path, field: str) -> Path:
    """``path`` can be a directory this process writes into: ConfigError(``field``) for a file
    (or a file above it), an unwritable or impossible path (``/proc/x``). Missing directories
    are created for the probe and removed again: nothing is left behind."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(field, f"{path} is not a directory")
    missing, p = [], path
    while not p.exists() and not p.is_symlink() and p.parent != p:
        missing.append(p)
        p = p.parent
    created = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        probe = path / f".scbjax-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(field, f"cannot write to {path}: {e.strerror or e}") from None
    finally:
        for d in reversed(created):
            try:
                d.rmdir()
            except OSError:
                pass
    return path
