"""Sums in a fixed order: the same bits for a run whatever the vmapped batch around it.

XLA's CPU reductions pick their order (vectorized along the reduced or the kept axis) by the
shape of the whole array, so ``jnp.sum`` of one run's entries can differ in the last bit
between a batch of 3 runs and one of 64 (docs/findings.md §5.1). ``total`` adds pairwise, as
explicit elementwise adds of the two halves (padded with zeros to a power of two): an order
fixed by the code, not by the compiler. Used where a run's bits would otherwise depend on its
batch: the task's construction (``scbjax.core.task``).

``gather_add`` is a scatter-add whose updates are added in a fixed order, as one flat 1-D
gather and scatter under vmap (the closed-form gradient's features: ``scbjax.core.losses``).
"""

from __future__ import annotations

import functools

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


# --- Gather then scatter-add with flat indices: one 1-D scatter for a whole vmapped batch ---
_I32_MAX = 2**31 - 1
_PIB = jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS  # lax's: no negative-index wrap, no checks
_GATHER = jax.lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,),
                                         start_index_map=(0,))
_SCATTER = jax.lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                           scatter_dims_to_operand_dims=(0,))


@functools.lru_cache(maxsize=None)
def _gather_add(size: int):
    """``gather_add`` into ``size`` entries, as a ``custom_vmap`` function."""

    def one(src_M: Array, gidx_K: Array, sidx_K: Array) -> Array:
        vals_K = jax.lax.gather(src_M, gidx_K[:, None], _GATHER, (1,), mode=_PIB)
        return jax.lax.scatter_add(jnp.zeros(size, src_M.dtype), sidx_K[:, None], vals_K,
                                   _SCATTER, mode=_PIB)

    f = jax.custom_batching.custom_vmap(one)

    @f.def_vmap
    def rule(S: int, batched, src, gidx, sidx):
        M = src.shape[-1]
        if max(S * M, S * size) > _I32_MAX:  # flat indices would overflow: one run at a time
            axes = tuple(0 if b else None for b in batched)
            return jax.vmap(one, in_axes=axes)(src, gidx, sidx), True
        s = jnp.arange(S, dtype=jnp.int32)[:, None]
        K = gidx.shape[-1]
        src = src.reshape(-1) if batched[0] else src
        gidx = jnp.broadcast_to(gidx, (S, K)) + (s * M if batched[0] else 0)
        sidx = jnp.broadcast_to(sidx, (S, K)) + s * size
        out = _gather_add(S * size)(src, gidx.reshape(-1), sidx.reshape(-1))
        return out.reshape(S, size), True

    return f


def gather_add(src_M: Array, gidx_K: Array, sidx_K: Array, size: int) -> Array:
    """``zeros(size).at[sidx].add(src[gidx])`` (int32 indices, in range: unchecked), the
    updates added in the order of k, as one flat 1-D gather and scatter also under ``vmap``:
    a batch of S calls is one call on the S arrays laid end to end (indices offset by s M and
    s size), cheaper on a CPU than XLA's batched scatter with its multi-dimensional indices
    (docs/findings.md §3.3). Each entry's sum is the same bits alone or in a batch."""
    return _gather_add(int(size))(src_M, gidx_K.astype(jnp.int32), sidx_K.astype(jnp.int32))
