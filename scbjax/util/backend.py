"""Backend settings: the random-bit layout we rely on, and a guard against a known silent
miscompilation of jaxlib 0.10.2 on CPU.

Padded batches (``scbjax.app.sweep``) rely on threefry counters being positional: the first b rows
of a draw of shape (B, ...) equal a draw of shape (b, ...). That is JAX's
``jax_threefry_partitionable`` mode, the default since jax 0.5.0; ``use_partitionable_threefry``
turns it on for older versions too (it changes their random streams to the new default's).

jaxlib 0.10.2's XLA:CPU "YNN" fusion returns wrong results for a vmapped matrix-vector
product followed by a reduction (jax-ml/jax#39103), exactly the shape of our batch loss:
``sum((e_o - V h)**2)`` over a vmapped ``V h``. pyproject.toml excludes 0.10.2; if it is
installed anyway, importing scbjax turns that fusion off through XLA_FLAGS (read when JAX first
initialises its CPU backend) and warns if it is too late for that.

``check_platforms`` starts JAX's backend before a command runs, so that a JAX_PLATFORMS naming
a platform this machine lacks is one ConfigError, not a traceback from the first jax.devices().
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from importlib import metadata

from scbjax.util.errors import ConfigError

BAD_JAXLIB = ("0.10.2",)
FLAG = "--xla_cpu_experimental_ynn_fusion_type="


def jaxlib_version() -> str:
    try:
        return metadata.version("jaxlib")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _backend_initialised() -> bool:
    try:
        from jax._src import xla_bridge  # private API: here, so that a move only skips the check

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # pragma: no cover - private API moved
        return False


def guard_known_bad_jaxlib() -> bool:
    """Disable the faulty fusion on a bad jaxlib; True if the flag was set by this call."""
    if jaxlib_version() not in BAD_JAXLIB:
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
    if _backend_initialised():
        warnings.warn(f"jaxlib {jaxlib_version()} miscompiles vmapped mat-vec + reduce on CPU "
                      "(jax-ml/jax#39103) and JAX was initialised before scbjax could turn the "
                      f"faulty fusion off: set XLA_FLAGS={FLAG} or install another jaxlib.",
                      RuntimeWarning, stacklevel=3)
    return True


def use_partitionable_threefry() -> None:
    """Positional (shape-prefix-stable) threefry bits, the default since jax 0.5.0."""
    import jax  # here, not at the top: XLA_FLAGS is set (guard above) before JAX is imported

    if not jax.config.jax_threefry_partitionable:
        jax.config.update("jax_threefry_partitionable", True)


def _platform_reason(err: BaseException) -> str:
    """jax's reason, less its "Unable to initialize backend 'x': " and its advice."""
    if isinstance(err, AssertionError):  # jax skips "cuda" without a visible GPU, then asserts
        return "no device of that platform is visible"
    text = re.sub(r"^Unable to initialize backend '[^']*': ", "", str(err))
    return re.sub(r"\s*\(set JAX_PLATFORMS=.*\)\s*$", "", text, flags=re.S).strip() or \
        type(err).__name__


def check_platforms(devices: Callable[[], list]) -> None:
    """Start JAX's backend by calling ``devices`` (``jax.devices``, passed in: this module must
    not import jax first); ConfigError("JAX_PLATFORMS") if the platforms it names cannot start.
    Without JAX_PLATFORMS, jax's own error is left as it is."""
    try:
        devices()
    except (RuntimeError, AssertionError) as e:
        want = os.environ.get("JAX_PLATFORMS", "")
        if not want.strip():
            raise
        raise ConfigError("JAX_PLATFORMS", f"{want!r} is not available here "
                          f"({_platform_reason(e)}): unset it or set it to cpu") from None
