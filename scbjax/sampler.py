"""Sampling SCB sequences by inverse-CDF draws: one uniform number per drawn token."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from scbjax.task import Task

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Batch:
    """``tokens`` B x T (x_1..x_T), ``query`` B (k = x_{T+1}), ``target`` B (x_o)."""

    tokens: Array
    query: Array
    target: Array


def _cdf(p: Array, axis: int = -1) -> Array:
    """Cumulative sums with the last entry pinned to 1, so a draw never falls off the end."""
    c = jnp.cumsum(p, axis=axis)
    last = jnp.take(c, jnp.array([-1]), axis=axis)
    return c / last


# Up to this many categories, searchsorted compares u with every cdf entry ("compare_all"):
# branch-free and vectorisable, 1.4x to 2x the throughput of the binary "scan" on a CPU for the
# canonical N = 16, T = 64 under vmap (the same indices: only the search method differs).
COMPARE_ALL_MAX = 128


def _draw(cdf_K: Array, u: Array) -> Array:
    """Index i with cdf[i-1] <= u < cdf[i] (inverse CDF), clipped into range."""
    method = "compare_all" if cdf_K.shape[-1] <= COMPARE_ALL_MAX else "scan"
    i = jnp.searchsorted(cdf_K, u, side="right", method=method)
    return jnp.minimum(i, cdf_K.shape[-1] - 1).astype(jnp.int32)


def task_cdfs(task: Task) -> tuple[Array, Array, Array]:
    """(cdf of mu [N], cdfs of q(k) [N, T] by row, cdfs of P[:, j] [N, N] by row)."""
    return _cdf(task.mu), _cdf(task.q.T), _cdf(task.P.T)


def sample(key: Array, task: Task, B: int, cdfs: tuple | None = None) -> Batch:
    """Draw B i.i.d. samples: x_1..x_{T+1} ~ mu, k = x_{T+1}, s ~ q(k), x_o ~ P[:, x_s].
    ``cdfs = task_cdfs(task)`` may be passed in (computed once for many steps)."""
    T = task.T
    u = jax.random.uniform(key, (B, T + 3), dtype=task.P.dtype)
    cmu_N, cq_NxT, cP_NxN = task_cdfs(task) if cdfs is None else cdfs
    x_BxT1 = _draw(cmu_N, u[:, : T + 1])
    tokens_BxT, query_B = x_BxT1[:, :T], x_BxT1[:, T]
    s_B = jax.vmap(_draw)(cq_NxT[query_B], u[:, T + 1])
    xs_B = jnp.take_along_axis(tokens_BxT, s_B[:, None], axis=1)[:, 0]
    target_B = jax.vmap(_draw)(cP_NxN[xs_B], u[:, T + 2])
    return Batch(tokens=tokens_BxT, query=query_B, target=target_B)


def token_counts(batch: Batch, N: int, mask: Array | None = None) -> Array:
    """Counts of each token among all T + 1 input tokens of the batch (for the mu estimate);
    with ``mask`` (B, bool) only the samples where it is True count (padded batches)."""
    x = jnp.concatenate([batch.tokens.reshape(-1), batch.query.reshape(-1)])
    if mask is None:
        return jnp.zeros(N, jnp.float32).at[x].add(1.0)
    w_B = mask.astype(jnp.float32)
    T = batch.tokens.shape[-1]
    w = jnp.concatenate([jnp.repeat(w_B, T), w_B])
    return jnp.zeros(N, jnp.float32).at[x].add(w)
