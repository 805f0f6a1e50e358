"""Fixed datasets: n samples drawn once, visited in a fresh pseudo-random order each epoch.

Epoch e's order is ``permute_index(fold_in(fold_in(data_key, DATASET_FOLD), e), ., n)``, a
permutation computed per index (no sort of the dataset), so a traced ``n`` costs nothing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scbjax.core import threefry
from scbjax.core.keys import DATASET_FOLD
from scbjax.core.sampler import Batch, fold_in

Array = jax.Array


def _mix32(x: Array) -> Array:
    """A 32-bit integer hash (xorshift-multiply, "lowbias32")."""
    x = x ^ (x >> jnp.uint32(16))
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> jnp.uint32(15))
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> jnp.uint32(16))


def permute_index(key: Array, i: Array, n: Array, rounds: int = 4) -> Array:
    """Image of ``i`` in [0, n) under a pseudo-random permutation of [0, n) chosen by ``key``:
    a balanced Feistel network on 2h bits (4^h >= n) with cycle walking. O(1) per index, so an
    epoch's order costs no sort of the dataset (traced ``n`` welcome). Identity for i >= n."""
    n = jnp.asarray(n, jnp.uint32)
    bits = jnp.ceil(jnp.log2(jnp.maximum(n, 2).astype(jnp.float32)))
    h = jnp.ceil(bits / 2).astype(jnp.uint32)
    mask = (jnp.uint32(1) << h) - jnp.uint32(1)
    ks = threefry.bits(key, rounds)  # jax.random.bits' (cheaper to compile)

    def feistel(x):
        left, right = x >> h, x & mask
        for r in range(rounds):
            left, right = right, left ^ (_mix32(right ^ ks[r]) & mask)
        return (left << h) | right

    i = jnp.asarray(i, jnp.uint32)
    inside = i < n
    x = feistel(jnp.where(inside, i, jnp.uint32(0)))
    x = jax.lax.while_loop(lambda x: x >= n, feistel, x)  # ends: x stays in [0, 4^h), n <= 4^h
    return jnp.where(inside, x, i).astype(jnp.int32)


def epoch_batch(data: Batch, k_data: Array, step: Array, b: Array, n: Array, B: int) -> Batch:
    """The ``B`` rows that step ``step`` (batch ``b``, dataset size ``n``) reads: positions
    step b .. step b + B - 1 of the concatenated epochs (a batch may straddle two epochs)."""
    k_perm = fold_in(k_data, DATASET_FOLD)  # jax.random.fold_in's bits
    pos_B = step * b + jnp.arange(B, dtype=jnp.int32)  # position in the epoch sequence
    idx_B = jax.vmap(lambda e, i: permute_index(fold_in(k_perm, e), i, n))(
        pos_B // n, pos_B % n)
    return Batch(tokens=data.tokens[idx_B], query=data.query[idx_B], target=data.target[idx_B])
