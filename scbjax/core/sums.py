"""Sums in a fixed order: the same bits for a run whatever the vmapped batch around it.

XLA's CPU reductions pick their order (vectorized along the reduced or the kept axis) by the
shape of the whole array, so ``jnp.sum`` of one run's entries can differ in the last bit
between a batch of 3 runs and one of 64 (docs/findings.md §5.1). ``total`` adds pairwise, as
explicit elementwise adds of the two halves (padded with zeros to a power of two): an order
fixed by the code, not by the compiler. Used where a run's bits would otherwise depend on its
batch: the task's construction (``scbjax.core.task``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def total(x: Array, axis: int | None = None) -> Array:
    """Sum of ``x`` over ``axis`` (all entries if None) by pairwise halving."""
    x = jnp.asarray(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    x = jnp.moveaxis(x, axis, 0)
    n = x.shape[0]
    if n == 0:
        return jnp.zeros(x.shape[1:], x.dtype)
    m = 1 << (n - 1).bit_length()
    if m > n:
        x = jnp.concatenate([x, jnp.zeros((m - n,) + x.shape[1:], x.dtype)])
    while x.shape[0] > 1:
        h = x.shape[0] // 2
        x = x[:h] + x[h:]
    return x[0]
