"""Distances, correlations, support recovery and stage lengths (spec "Measurements", [recon]).

Support of column k: the positions t with ``q[t, k] > 0`` (Q_k of them; exact zeros of q are off
the support). Support metrics read the attention matrix (``model.attention(params.A)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.core.losses import excess_loss
from scbjax.core.model import LINEAR, Attention, Params, resolve
from scbjax.core.task import Task

Array = jax.Array


def center_cols(M: Array) -> Array:
    """M (I - 11^T/n): subtract the mean column (removes the input-independent part)."""
    return M - M.mean(axis=1, keepdims=True)


def center_rows(M: Array) -> Array:
    """(I - 11^T/n) M: subtract the mean row (removes the uniform-attention part)."""
    return M - M.mean(axis=0, keepdims=True)


def cosine(a: Array, b: Array) -> Array:
    """cos(a, b) over all entries, with 0/0 defined as 0."""
    num = jnp.sum(a * b)
    den = jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b))
    return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def corr_V(V: Array, P: Array) -> Array:
    """cos(V C_N, P C_N)."""
    return cosine(center_cols(V), center_cols(P))


def corr_A(A: Array, q: Array) -> Array:
    """cos(C_T A, C_T Qstar)."""
    return cosine(center_rows(A), center_rows(q))


def col_ranks(M_TxN: Array) -> Array:
    """Rank of each entry within its column by descending value (0 = largest); ties go to the
    lower index first (stable sort; -0.0 ranks as 0.0)."""
    order_TxN = jnp.argsort(-M_TxN, axis=0, stable=True)
    return jnp.argsort(order_TxN, axis=0, stable=True)


def support_recovered(A_TxN: Array, q_TxN: Array) -> Array:
    """Per column (bool N): the top-Q_k entries of A's column k, Q_k = #{t: q[t, k] > 0}, are
    exactly q's support, i.e. for every t: (rank[t, k] < Q_k) == (q[t, k] > 0), ranks as in
    ``col_ranks`` (ties broken by index order).

    Computed without a sort, O(T N): every support entry must rank above every entry off the
    support, i.e. with m the smallest value on the support, every value off it is below m, or
    equal to m at an index above every support index whose value is m (the two argsorts of
    ``col_ranks`` dominated a log point at large T: benchmarks/BENCHMARKS.md)."""
    T = A_TxN.shape[0]
    supp_TxN = q_TxN > 0
    inf = jnp.asarray(jnp.inf, A_TxN.dtype)
    m_N = jnp.min(jnp.where(supp_TxN, A_TxN, inf), axis=0)
    off_max_N = jnp.max(jnp.where(supp_TxN, -inf, A_TxN), axis=0)
    t_T1 = jnp.arange(T, dtype=jnp.int32)[:, None]
    at_m_TxN = A_TxN == m_N[None, :]
    last_supp_at_m_N = jnp.max(jnp.where(supp_TxN & at_m_TxN, t_T1, -1), axis=0)
    first_off_at_m_N = jnp.min(jnp.where(~supp_TxN & at_m_TxN, t_T1, T), axis=0)
    return (off_max_N < m_N) | ((off_max_N == m_N) & (first_off_at_m_N > last_supp_at_m_N))


def support_metrics(A_TxN: Array, q_TxN: Array) -> dict[str, Array]:
    """``support_rate``: fraction of columns whose top-Q_k entries are q's support;
    ``off_support_mass``: sum of |A| off q's support, divided by N (mean per column);
    ``off_support_dist``: ||A off the support||_F (so ||A - q||_F^2 = on^2 + off^2);
    ``zeros_A``: fraction of entries of A exactly 0.0."""
    off_TxN = jnp.where(q_TxN > 0, jnp.zeros_like(A_TxN), A_TxN)
    N = A_TxN.shape[1]
    return {
        "support_rate": jnp.mean(support_recovered(A_TxN, q_TxN).astype(A_TxN.dtype)),
        "off_support_mass": jnp.sum(jnp.abs(off_TxN)) / N,
        "off_support_dist": jnp.linalg.norm(off_TxN),
        "zeros_A": jnp.mean((A_TxN == 0.0).astype(A_TxN.dtype)),
    }


def measure(params: Params, task: Task, model: Attention | str = LINEAR) -> dict[str, Array]:
    """All per-log-point metrics of a parameter state against the task's ground truth.
    ``model``: an ``Attention`` or its name."""
    model = resolve(model)
    A = model.attention(params.A)
    dV = jnp.linalg.norm(params.V - task.P)
    dA = jnp.linalg.norm(A - task.q)
    return {
        "dist_V": dV,
        "dist_A": dA,
        "rel_dist_V": dV / jnp.linalg.norm(task.P),
        "rel_dist_A": dA / jnp.linalg.norm(task.q),
        "corr_V": corr_V(params.V, task.P),
        "corr_A": corr_A(A, task.q),
        "excess_loss": excess_loss(params, task, model),
        **support_metrics(A, task.q),
    }


def first_crossing(Y, X, thr, below: bool = False, start=None, never: float = float("nan")):
    """Samples ``X`` at the first log point (at or after index ``start``) where ``Y >= thr``
    (``Y <= thr`` with ``below``), compared in float64; ``never`` where no point is. One curve
    (``Y`` and ``X`` [L]: a float) or one row per run (``Y`` [R, L], ``X`` [R, L] or [L]: an
    array [R]; ``thr`` and ``start`` a number or one per row)."""
    Y = np.asarray(Y, float)
    one = Y.ndim == 1
    Y = np.atleast_2d(Y)
    R, L = Y.shape
    X = np.broadcast_to(np.asarray(X, float), (R, L))
    thr = np.broadcast_to(np.asarray(thr, float), (R,))[:, None]
    hit = Y <= thr if below else Y >= thr
    if start is not None:
        hit &= np.arange(L)[None, :] >= np.broadcast_to(np.asarray(start), (R,))[:, None]
    at = X[np.arange(R), np.argmax(hit, axis=1)] if L else np.full(R, never)
    out = np.where(hit.any(axis=1), at, never)
    return float(out[0]) if one else out


def stage1_length(corr_V_L, samples_L, threshold: float = 0.5) -> float:
    """Samples until corr_V first reaches ``threshold``."""
    return first_crossing(corr_V_L, samples_L, threshold)

