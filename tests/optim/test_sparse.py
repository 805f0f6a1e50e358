"""Sparsity: the prox variants of ppd (issue 9) and the support metrics."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax.core.metrics import col_ranks, measure, support_metrics
from scbjax.optim.transforms import (
    PROXES,
    apply,
    project,
    project_affine,
    prox_l1,
    prox_l1_affine_cols,
    scale_by_inverse_mu,
    scale_by_lr,
    soft_threshold,
)

FAST = settings(max_examples=40, deadline=None)
_prox_affine = jax.jit(prox_l1_affine_cols)


def brute_prox_affine(z: np.ndarray, t: float) -> tuple[float, np.ndarray]:
    """min 0.5||a - z||^2 + t||a||_1 s.t. 1^T a = 1 in float64, over all 3^n sign patterns:
    for signs s (a_i = 0 where s_i = 0) the equality-constrained QP has the closed form
    a_F = z_F - t s_F - nu; each candidate is feasible, and the optimum's pattern gives it."""
    best = (np.inf, z)
    for sig in itertools.product((-1.0, 0.0, 1.0), repeat=len(z)):
        sig = np.asarray(sig)
        F = sig != 0
        if not F.any():
            continue
        w = z - t * sig
        a = np.where(F, w - (w[F].sum() - 1.0) / F.sum(), 0.0)
        best = min(best, (objective(a, z, t), a), key=lambda x: x[0])
    return best


def objective(a: np.ndarray, z: np.ndarray, t: float) -> float:
    return float(0.5 * np.sum((a - z) ** 2) + t * np.sum(np.abs(a)))


@FAST
@given(z=st.lists(st.floats(-3.0, 3.0, width=32), min_size=2, max_size=6),
       t=st.one_of(st.just(0.0), st.floats(0.0, 2.0, width=32)), dup=st.booleans())
def test_affine_exact_prox_is_the_minimiser(z, t, dup):
    """Against brute force over the sign patterns (n = 2..6, ties included): objective <=
    brute + 1e-5, 1^T a = 1 (atol 1e-5), a equal to the brute minimiser (atol 1e-4)."""
    z = np.asarray(z, np.float32)
    if dup:
        z[-1] = z[0]
    a = np.asarray(_prox_affine(jnp.asarray(z)[:, None], jnp.float32(t)))[:, 0]
    a64, z64 = a.astype(np.float64), z.astype(np.float64)
    ob, ab = brute_prox_affine(z64, float(t))
    assert objective(a64, z64, float(t)) <= ob + 1e-5
    np.testing.assert_allclose(a64.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(a64, ab, atol=1e-4)


def test_affine_exact_columns_vmap_and_threshold_row():
    """Columns are independent: a T x N call equals N single-column calls; a 1 x N row of
    thresholds acts column by column; large T keeps 1^T a = 1 to float32 summation accuracy."""
    Z = jax.random.normal(jax.random.PRNGKey(0), (7, 5)) * 2
    t_1xN = jnp.asarray([[0.0, 0.1, 0.5, 1.0, 3.0]])
    A = np.asarray(_prox_affine(Z, t_1xN))
    for k in range(5):
        np.testing.assert_allclose(A[:, k], _prox_affine(Z[:, k:k + 1], t_1xN[:, k:k + 1])[:, 0],
                                   atol=1e-6)
    big = _prox_affine(jax.random.normal(jax.random.PRNGKey(1), (1024, 4)), jnp.float32(0.05))
    np.testing.assert_allclose(np.asarray(big).sum(0), 1.0, atol=1e-3)
    assert float(jnp.mean(big == 0.0)) > 0.0


def test_affine_exact_t0_is_the_affine_projection():
    Z = jax.random.normal(jax.random.PRNGKey(2), (9, 6)) * 3
    np.testing.assert_allclose(_prox_affine(Z, jnp.float32(0.0)), project_affine(Z), atol=1e-6)


def setup(N=4, T=5, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = s.Params(V=jax.random.uniform(k[0], (N, N)), A=jax.random.uniform(k[1], (T, N)))
    g = s.Params(V=jax.random.normal(k[2], (N, N)), A=jax.random.normal(k[0], (T, N)))
    return params, g, jnp.asarray([0.1, 0.2, 0.3, 0.4])


def step(opt, params, g, **extra):
    upd, state = opt.update(g, opt.init(params), params, **extra)
    return optax.apply_updates(params, upd), state


@pytest.mark.parametrize("order", ["prox_project", "project_prox"])
@pytest.mark.parametrize("mu_true", [True, False])
def test_soft_is_the_chain_of_its_parts(order, mu_true):
    """prox="soft" (and the default): ppd's one step (``ParamStep.step``, used by ``apply``)
    equals the optax chain of its parts (scale_by_inverse_mu, scale_by_lr, prox_l1, project)
    to float32 rounding (the chain's ``p + (new - p)`` per link rounds), its ``update`` is that
    step minus the parameters, and it is soft_threshold + project_affine by hand."""
    params, g, mu = setup()
    m = mu if mu_true else None
    counts = jnp.asarray([3.0, 1.0, 0.0, 5.0])
    tail = [prox_l1(0.2 * 0.5), project("affine", "affine")]
    chain = optax.chain(scale_by_inverse_mu(4, m, 1.0), scale_by_lr(0.3, 0.2),
                        *(tail[::-1] if order == "project_prox" else tail))
    ref, _ = step(chain, params, g, token_counts=counts)
    for opt in (s.ppd(4, 0.3, 0.2, 0.5, mu=m, order=order),
                s.ppd(4, 0.3, 0.2, 0.5, mu=m, order=order, prox="soft")):
        new, st = apply(opt, g, opt.init(params), params, token_counts=counts)
        via_update, _ = step(opt, params, g, token_counts=counts)
        for x, y in ((new, ref), (via_update, new)):
            np.testing.assert_allclose(x.V, y.V, rtol=0, atol=4e-7)
            np.testing.assert_allclose(x.A, y.A, rtol=0, atol=4e-7)
        if not mu_true:
            np.testing.assert_allclose(st.counts, 1.0 + counts)
    if mu_true and order == "prox_project":
        A = params.A - 0.2 * g.A / mu[None, :]
        np.testing.assert_allclose(new.A, project_affine(soft_threshold(A, 0.1)), atol=1e-6)
    # a chain of the step with another transformation still works, through its update
    both = optax.chain(s.ppd(4, 0.3, 0.2, 0.5, mu=m, order=order), scale_by_lr(1.0, 1.0))
    assert not hasattr(both, "step")
    viachain, _ = apply(both, g, both.init(params), params, token_counts=counts)
    np.testing.assert_allclose(viachain.V, params.V - (new.V - params.V), atol=1e-6)


def test_affine_exact_step_and_errors():
    """A+ = prox_l1_affine_cols(A - eta_A G_A diag(mu)^-1, eta_A lam), V as with "soft", both
    orders; lam = 0 gives the "soft" step; projection_A other than affine and unknown proxes
    raise ValueError naming prox."""
    params, g, mu = setup()
    A = params.A - 0.2 * g.A / mu[None, :]
    for order in ("prox_project", "project_prox"):
        new, _ = step(s.ppd(4, 0.3, 0.2, 0.5, mu=mu, prox="affine_exact", order=order), params, g)
        ref, _ = step(s.ppd(4, 0.3, 0.2, 0.5, mu=mu), params, g)
        np.testing.assert_allclose(new.A, prox_l1_affine_cols(A, jnp.float32(0.1)), atol=1e-6)
        np.testing.assert_array_equal(new.V, ref.V)
        np.testing.assert_allclose(np.asarray(new.A).sum(0), 1.0, atol=1e-5)
        assert int(jnp.sum(new.A == 0.0)) > 0
    new0, _ = step(s.ppd(4, 0.3, 0.2, 0.0, mu=mu, prox="affine_exact"), params, g)
    ref0, _ = step(s.ppd(4, 0.3, 0.2, 0.0, mu=mu), params, g)
    np.testing.assert_allclose(new0.A, ref0.A, atol=1e-6)
    for pA in ("simplex", "none"):
        with pytest.raises(ValueError, match="prox"):
            s.ppd(4, 0.3, 0.2, 0.5, mu=mu, prox="affine_exact", projection_A=pA)
    with pytest.raises(ValueError, match="prox"):
        s.ppd(4, 0.3, 0.2, 0.5, mu=mu, prox="hard")
    assert PROXES == ("soft", "affine_exact", "precond", "none")


def test_precond_threshold_is_lr_lam_over_mu_per_column():
    """Zero gradient, no projection: A+ = soft_threshold(A, lr lam / mu_k) column by column, so
    |A| - |A+| = lr lam / mu_k on the surviving entries; with the projection it is the
    thresholded step, then projected."""
    params, g, mu = setup()
    A0 = jnp.asarray(np.linspace(-1.0, 1.0, 20, dtype=np.float32).reshape(5, 4))
    params = s.Params(V=params.V, A=A0)
    zero = jax.tree.map(jnp.zeros_like, g)
    lr, lam = 0.02, 0.5
    thr = lr * lam / np.asarray(mu)  # 0.1, 0.05, 0.033, 0.025
    opt = s.ppd(4, lr, lr, lam, mu=mu, prox="precond", projection_V="none", projection_A="none")
    new, _ = step(opt, params, zero)
    A, An = np.asarray(A0), np.asarray(new.A)
    live = np.abs(A) > thr[None, :]
    np.testing.assert_allclose((np.abs(A) - np.abs(An))[live], np.broadcast_to(thr, A.shape)[live],
                               atol=1e-6)
    np.testing.assert_array_equal(An[~live], 0.0)
    new, _ = step(s.ppd(4, 0.3, lr, lam, mu=mu, prox="precond"), params, g)
    Ah = project_affine(soft_threshold(A0 - lr * g.A / mu[None, :], jnp.asarray(thr)[None, :]))
    np.testing.assert_allclose(new.A, Ah, atol=1e-6)


def test_precond_with_running_mu_estimate():
    """mu=None: the threshold uses the same running estimate as the preconditioner (prior +
    token counts so far), over two jitted steps; no token_counts is a ValueError."""
    params, g, _ = setup()
    lr, lam, prior = 0.05, 0.4, 2.0
    opt = s.ppd(4, lr, lr, lam, mu=None, mu_prior=prior, prox="precond", projection_A="none")
    upd_fn = jax.jit(opt.update)
    c1, c2 = jnp.asarray([8.0, 0.0, 18.0, 2.0]), jnp.asarray([0.0, 5.0, 1.0, 1.0])
    state = opt.init(params)
    _, state = upd_fn(g, state, params, token_counts=c1)
    upd, state = upd_fn(g, state, params, token_counts=c2)
    counts = prior + np.asarray(c1) + np.asarray(c2)
    est = counts / counts.sum()
    A = np.asarray(params.A) - lr * np.asarray(g.A) / est[None, :]
    A = np.sign(A) * np.maximum(np.abs(A) - lr * lam / est[None, :], 0)
    np.testing.assert_allclose(optax.apply_updates(params, upd).A, A, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.counts, counts)
    with pytest.raises(ValueError, match="token_counts"):
        opt.update(g, opt.init(params), params)


def test_none_ignores_lam():
    params, g, mu = setup()
    for order in ("prox_project", "project_prox"):
        new, _ = step(s.ppd(4, 0.3, 0.2, 0.7, mu=mu, prox="none", order=order), params, g)
        ref, _ = step(s.ppd(4, 0.3, 0.2, 0.0, mu=mu), params, g)
        np.testing.assert_allclose(new.V, ref.V, atol=1e-7)
        np.testing.assert_allclose(new.A, ref.A, atol=1e-7)


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
    from scbjax.sim.train import METRICS

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
    sm = measure(s.Params(V=task.P, A=jnp.log(task.q + 1e-3)), task, s.SOFTMAX)
    assert float(sm["support_rate"]) == 1.0 and float(sm["zeros_A"]) == 0.0


def test_freeze_zeros_keeps_exact_zeros_and_projects_on_the_support():
    """A debiasing step: zeros stay zero, each column sums to 1 over its support, and without
    the flag the step is the identity on the updates."""
    import jax.numpy as jnp

    from scbjax.core.model import Params
    from scbjax.optim.transforms import freeze_zeros

    A = jnp.asarray([[0.5, 0.0], [0.0, 1.0], [0.5, 0.0]], jnp.float32)
    V = jnp.eye(2, dtype=jnp.float32)
    u = Params(V=jnp.zeros_like(V), A=jnp.asarray([[0.1, 0.3], [0.2, 0.1], [0.0, -0.2]]))
    t = freeze_zeros("affine")
    st = t.init(Params(V=V, A=A))
    out, _ = t.update(u, st, Params(V=V, A=A), freeze=jnp.asarray(True))
    A_new = A + out.A
    np.testing.assert_array_equal(np.asarray(A_new) == 0, np.asarray(A) == 0)
    np.testing.assert_allclose(A_new.sum(0), [1.0, 1.0], atol=1e-6)
    # column 0: support {0, 2}, step (0.1, 0.0), excess 0.1 split over the support
    np.testing.assert_allclose(A_new[:, 0], [0.55, 0.0, 0.45], atol=1e-6)
    off, _ = t.update(u, st, Params(V=V, A=A), freeze=jnp.asarray(False))
    np.testing.assert_allclose(off.A, u.A, atol=1e-7)
    same, _ = t.update(u, st, Params(V=V, A=A))
    np.testing.assert_allclose(same.A, u.A)


def test_freeze_phase_in_training_keeps_the_support_of_an_exact_prox_phase():
    import jax

    import scbjax as s
    from scbjax.sim.train import make_train

    cfg = s.TrainConfig(task=s.TaskConfig(N=4, T=8, Q=2), prox="affine_exact", log_every=100,
                        phases=(s.Phase(300, 32, 0.2, 0.2, 0.1),
                                s.Phase(100, 32, 0.2, 0.2, 0.0, freeze=True)))
    r = make_train(cfg)(jax.random.PRNGKey(0))
    z = np.asarray(r.metrics["zeros_A"])
    assert z[3] > 0  # the l1 phase left exact zeros
    assert z[-1] >= z[3]  # the debiasing phase kept them
    np.testing.assert_allclose(np.asarray(r.params.A).sum(0), 1.0, atol=1e-5)
    with pytest.raises(s.ConfigError, match="freeze"):
        s.TrainConfig(optimizer="sgd", phases=(s.Phase(5, freeze=True),)).validate()


@settings(max_examples=60, deadline=None)
@given(data=st.data(), T=st.integers(1, 9), N=st.integers(1, 4))
def test_support_recovered_equals_the_rank_definition(data, T, N):
    """The sort-free check against its definition by ranks (``col_ranks``): values from a
    small set (ties, +-0.0, negatives) and supports of every size, empty and full included."""
    from scbjax.core.metrics import support_recovered

    vals = st.sampled_from([-1.0, -0.0, 0.0, 0.25, 0.5, 1.0])
    A = np.asarray(data.draw(st.lists(vals, min_size=T * N, max_size=T * N)),
                   np.float32).reshape(T, N)
    supp = np.asarray(data.draw(st.lists(st.booleans(), min_size=T * N, max_size=T * N)))
    q = jnp.asarray(supp.reshape(T, N).astype(np.float32))
    ranks = np.asarray(col_ranks(jnp.asarray(A)))
    Q = supp.reshape(T, N).sum(0)
    want = np.all((ranks < Q[None, :]) == supp.reshape(T, N), axis=0)
    np.testing.assert_array_equal(np.asarray(support_recovered(jnp.asarray(A), q)), want)
