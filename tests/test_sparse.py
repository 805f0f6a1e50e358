"""Sparsity: the support metrics (issue 9)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import scbjax as s
from scbjax.metrics import col_ranks, measure, support_metrics


# --- support metrics -------------------------------------------------------------------------


def task_q(N=4, T=6):
    """Column k of q: 0.6 at position k, 0.4 at position k + 2 (Q = 2)."""
    q = np.zeros((T, N), np.float32)
    for k in range(N):
        q[k, k], q[k + 2, k] = 0.6, 0.4
    return s.Task(P=jnp.full((N, N), 1.0 / N), mu=jnp.full((N,), 1.0 / N), q=jnp.asarray(q))


def test_col_ranks_descending_ties_by_index():
    M = jnp.asarray([[0.5, 0.0], [0.2, 0.0], [0.5, -0.0], [0.9, 1.0]])
    np.testing.assert_array_equal(col_ranks(M), [[1, 1], [3, 2], [2, 3], [0, 0]])


def test_support_metrics_by_hand():
    task = task_q()
    q = np.asarray(task.q)
    m = support_metrics(task.q, task.q)  # perfect attention
    assert float(m["support_rate"]) == 1.0
    assert float(m["off_support_mass"]) == 0.0 and float(m["off_support_dist"]) == 0.0
    np.testing.assert_allclose(m["zeros_A"], 1 - 2 / 6)
    A = q.copy()
    A[5, 1] = 0.7  # column 1: an off-support entry on top -> column 1 not recovered
    A[4, 3] = -0.1  # column 3: small negative off-support entry, top-2 still the support
    A[0, 0] = 0.4  # column 0: tie at 0.4 with position 2, both on the support
    m = support_metrics(jnp.asarray(A), task.q)
    np.testing.assert_allclose(m["support_rate"], 0.75)
    np.testing.assert_allclose(m["off_support_mass"], (0.7 + 0.1) / 4, rtol=1e-6)
    np.testing.assert_allclose(m["off_support_dist"], np.sqrt(0.7**2 + 0.1**2), rtol=1e-6)
    np.testing.assert_allclose(m["zeros_A"], (24 - 10) / 24)
    # dist_A^2 = on^2 + off^2
    on = np.where(q > 0, A - q, 0.0)
    np.testing.assert_allclose(np.sum((A - q) ** 2),
                               np.sum(on**2) + float(m["off_support_dist"]) ** 2, rtol=1e-5)


def test_support_rate_ties_broken_by_index_order():
    """Uniform attention: the top-Q are positions 0..Q-1, so exactly the columns whose support
    is {0, ..., Q-1} count as recovered; Q_k may differ between columns."""
    q = np.zeros((5, 3), np.float32)
    q[[0, 1], 0] = 0.5  # support {0, 1}: recovered by the index tie-break
    q[[0, 3], 1] = 0.5  # support {0, 3}: not
    q[0, 2] = 1.0  # Q = 1, support {0}: recovered
    m = support_metrics(jnp.full((5, 3), 0.2), jnp.asarray(q))
    np.testing.assert_allclose(m["support_rate"], 2 / 3)
    assert float(m["zeros_A"]) == 0.0


def test_measure_logs_support_metrics_under_jit_and_vmap():
    """measure() has the support metrics (also in train.METRICS); jit(vmap(measure)) over a
    stack of states equals the per-state values; softmax attention has no exact zeros."""
    from scbjax.train import METRICS

    task = task_q()
    names = ("support_rate", "off_support_mass", "off_support_dist", "zeros_A")
    assert set(names) <= set(METRICS)
    As = [task.q, jnp.full((6, 4), 1 / 6), task.q.at[5, 1].set(0.7)]
    ps = [s.Params(V=task.P, A=A) for A in As]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *ps)
    tasks = jax.tree.map(lambda *x: jnp.stack(x), *[task] * 3)
    mv = jax.jit(jax.vmap(measure))(stacked, tasks)
    for i, p in enumerate(ps):
        mi = measure(p, task)
        assert set(names) <= set(mi)
        for k in mi:
            np.testing.assert_allclose(mv[k][i], mi[k], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mv["support_rate"], [1.0, 0.0, 0.75])
    assert np.all(mv["dist_A"] ** 2 >= mv["off_support_dist"] ** 2 - 1e-6)
    sm = measure(s.Params(V=task.P, A=jnp.log(task.q + 1e-3)), task, "softmax")
    assert float(sm["support_rate"]) == 1.0 and float(sm["zeros_A"]) == 0.0
