"""Threefry-2x32 as plain integer arithmetic, bit for bit jax.random's where it is exactly
jax's: a raw uint32[2] key, the default threefry2x32 implementation, and
jax_threefry_partitionable (the default since jax 0.5); otherwise jax.random is called.

Written out as plain integer arithmetic, XLA fuses it into its consumers and compiles it
faster than jax's lowering (docs/findings.md, section 3.1). Used by the sampler's uniforms,
a run's key streams, ``make_task``, the transfer tasks and the fixed dataset's order;
tests/core/test_sampler.py and tests/sim/test_speed_step.py check them bit for bit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
_U32 = jnp.uint32
_ROT = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1: Array, k2: Array, x1: Array, x2: Array) -> tuple[Array, Array]:
    """The Threefry-2x32 block function (20 rounds), as in ``jax._src.prng``."""
    ks = (k1, k2, k1 ^ k2 ^ _U32(0x1BD11BDA))
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROT[i % 2]:
            x1 = x1 + x2
            x2 = ((x2 << _U32(r)) | (x2 >> _U32(32 - r))) ^ x1
        x1, x2 = x1 + ks[(i + 1) % 3], x2 + ks[(i + 2) % 3] + _U32(i + 1)
    return x1, x2


def fused_ok(key: Array) -> bool:
    """Whether ``key`` is a raw threefry key drawn as jax draws it (see the module docstring)."""
    return (isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32
            and key.shape == (2,) and jax.config.jax_default_prng_impl == "threefry2x32"
            and jax.config.jax_threefry_partitionable)


@functools.partial(jax.jit, static_argnums=1)
def blocks(key: Array, n: int) -> tuple[Array, Array]:
    """The n threefry blocks of ``key`` at counters (0, 0..n-1): jax's partitionable draws.
    Jitted (per n), as ``permutation``: called eagerly (a tuning task, a transfer task), one
    compile per shape instead of one per integer op; traced, it is inlined."""
    return threefry2x32(key[0], key[1], jnp.zeros(n, _U32), jax.lax.iota(_U32, n))


def split(key: Array, n: int = 2) -> Array:
    """``jax.random.split(key, n)`` (raw uint32 keys), bit for bit."""
    if not fused_ok(key):
        return jax.random.split(key, n)
    return jnp.stack(blocks(key, n), axis=-1)


def bits(key: Array, n: int) -> Array:
    """``jax.random.bits(key, (n,), jnp.uint32)``, bit for bit."""
    if not fused_ok(key):
        return jax.random.bits(key, (n,), jnp.uint32)
    b1, b2 = blocks(key, n)
    return b1 ^ b2


def permutation(key: Array, n: int) -> Array:
    """``jax.random.permutation(key, n)`` (an int n) bit for bit: jax's rounds of a stable sort
    on fresh 32-bit words (``random._shuffle``), drawn with ``blocks``."""
    if not fused_ok(key):
        return jax.random.permutation(key, n)
    return _permutation(key, n)


@functools.partial(jax.jit, static_argnums=1)
def _permutation(key: Array, n: int) -> Array:
    rounds = int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
    x = jnp.arange(n)
    for _ in range(rounds):
        key, sub = split(key)
        _, x = jax.lax.sort_key_val(bits(sub, n), x)
    return x


__all__ = ["threefry2x32", "fused_ok", "blocks", "split", "bits", "permutation"]
