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
"""

from __future__ import annotations

import os
import warnings
from importlib import metadata

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
