"""Strict numerics for the whole test session (equinox style), one compilation cache, and
Python's Ctrl-C handler where the shell that started the suite ignored SIGINT.

Most of the suite's time is XLA compilation of the same few programs (the tiny reproduction,
then the same studies again in the kill / SIGINT subprocesses, the same small configs across
test files, rebuilt from new closures that jit's in-memory cache does not recognise). A
persistent compilation cache, fresh for each test process (each pytest-xdist worker has its
own: no two processes write one entry), compiles each program once per worker. It changes no
result: a cached executable is the one XLA built for the same program, backend and versions.
It is passed to a CLI subprocess only where a test asks for it (``cached_env``, which also
silences XLA's C++ log): XLA's CPU loader logs an error-level line for each executable it
loads from a cache ("+prefer-no-gather is not supported"), which would break the tests of
one-line messages on stderr. A cache dir set by the user
(JAX_COMPILATION_CACHE_DIR) is left alone.
"""

import os
import shutil
import tempfile

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

_OWN_CACHE: list[str] = []


def pytest_configure(config):
    import signal
    # a shell that starts the suite in the background (`pytest &`, no job control) ignores
    # SIGINT in it and its subprocesses; the Ctrl-C tests need Python's default handler
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # the user's cache: left alone
    d = tempfile.mkdtemp(prefix="scbjax-test-jit-cache-")
    _OWN_CACHE.append(d)
    jax.config.update("jax_compilation_cache_dir", d)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_unconfigure(config):
    for d in _OWN_CACHE:
        shutil.rmtree(d, ignore_errors=True)


def cached_env() -> dict:
    """Environment for a test's CLI subprocess that shares this worker's compilation cache
    (programs the worker compiled are loaded, not compiled again), with XLA's C++ log silenced
    (it says "Loading XLA:CPU AOT result ..." on stderr for each cached program). Empty when
    the cache is the user's (left alone)."""
    if not _OWN_CACHE:
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": _OWN_CACHE[0],
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}


def wait_for_file(p, out, pattern: str, timeout: float = 300) -> None:
    """Until the running process ``p`` has written a file matching ``pattern`` under ``out``
    (it must not finish first, nor take longer than ``timeout`` seconds)."""
    import time

    t0 = time.time()
    while not list(out.glob(pattern)):
        assert p.poll() is None, f"finished before {pattern} appeared"
        assert time.time() - t0 < timeout
        time.sleep(0.01)


def interrupt_after_saves(monkeypatch, job, after: int = 1) -> None:
    """Run ``job()`` with a KeyboardInterrupt raised right after its ``after``-th checkpoint
    write (a kill between chunks), then restore ``checkpoint.save``."""
    import pytest

    from scbjax.engine import checkpoint
    calls = {"n": 0}
    real = checkpoint.save

    def save_then_stop(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == after:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        job()
    monkeypatch.setattr(checkpoint, "save", real)
