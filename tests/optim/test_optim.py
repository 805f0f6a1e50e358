"""The optax chain of the paper's method: each step against a hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax.optim.transforms import (
    project_affine,
    project_simplex,
    prox_l1,
    scale_by_inverse_mu,
    soft_threshold,
)

FAST = settings(max_examples=15, deadline=None)
_project_both = jax.jit(lambda M: (project_affine(M), project_simplex(M)))


def simplex_reference(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the simplex by bisection on theta: sum max(v - theta, 0) = 1."""
    lo, hi = v.min() - 1.0, v.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(v - mid, 0).sum() > 1 else (lo, mid)
    return np.maximum(v - (lo + hi) / 2, 0)


@FAST
@given(n=st.integers(1, 8), m=st.integers(1, 5), seed=st.integers(0, 2**16),
       scale=st.floats(0.01, 10.0))
def test_projections(n, m, seed, scale):
    """Affine: columns sum to 1, each column shifted by a constant. Simplex: columns
    nonnegative, summing to 1 (atol 1e-5), equal to a float64 bisection reference (atol 1e-4),
    idempotent (atol 1e-6)."""
    M = np.asarray(jax.random.normal(jax.random.PRNGKey(seed), (n, m))) * scale
    aff, simp = (np.asarray(x) for x in _project_both(jnp.asarray(M, jnp.float32)))
    np.testing.assert_allclose(aff.sum(0), 1.0, atol=1e-5)
    # affine projection moves every entry of a column by the same amount
    np.testing.assert_allclose(np.ptp(aff - M, axis=0), 0.0, atol=1e-5)
    assert simp.min() >= 0
    np.testing.assert_allclose(simp.sum(0), 1.0, atol=1e-5)
    for j in range(m):
        np.testing.assert_allclose(simp[:, j], simplex_reference(M[:, j]), atol=1e-4)
    np.testing.assert_allclose(_project_both(jnp.asarray(simp))[1], simp, atol=1e-6)


def test_affine_projection_is_the_euclidean_projection():
    """project_affine(M) minimises ||X - M||_F over {1^T X = 1^T}: X - M is orthogonal to the
    affine set (a constant per column), and any other feasible point is farther."""
    M = jax.random.normal(jax.random.PRNGKey(0), (6, 3))
    X = project_affine(M)
    np.testing.assert_allclose(np.asarray(X).sum(0), 1.0, atol=1e-6)
    D = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    other = X + D - D.mean(0, keepdims=True)  # another point of the affine set
    assert float(jnp.sum((other - M) ** 2)) > float(jnp.sum((X - M) ** 2))


def test_simplex_projection_known_values():
    M = jnp.asarray([[0.5, 2.0, -1.0], [0.5, 0.0, -1.0], [0.5, -3.0, 0.0]])
    np.testing.assert_allclose(project_simplex(M),
                               [[1 / 3, 1.0, 0.0], [1 / 3, 0.0, 0.0], [1 / 3, 0.0, 1.0]],
                               atol=1e-6)


def test_soft_threshold():
    x = jnp.asarray([-2.0, -0.5, 0.0, 0.3, 1.5])
    np.testing.assert_allclose(soft_threshold(x, 0.5), [-1.5, 0.0, 0.0, 0.0, 1.0])


def setup(N=4, T=5, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = s.Params(V=jax.random.uniform(k[0], (N, N)), A=jax.random.uniform(k[1], (T, N)))
    g = s.Params(V=jax.random.normal(k[2], (N, N)), A=jax.random.normal(k[0], (T, N)))
    mu = jnp.asarray([0.1, 0.2, 0.3, 0.4][:N])
    return params, g, mu


def test_ppd_step_by_hand():
    params, g, mu = setup()
    lr_V, lr_A, lam = 0.3, 0.2, 0.5
    opt = s.ppd(4, lr_V, lr_A, lam, mu=mu)
    upd, _ = opt.update(g, opt.init(params), params)
    new = optax.apply_updates(params, upd)
    P, G = jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, g)
    m = np.asarray(mu)
    V = P.V - lr_V * G.V / m[None, :]
    A = P.A - lr_A * G.A / m[None, :]
    A = np.sign(A) * np.maximum(np.abs(A) - lr_A * lam, 0)
    V = V - (V.sum(0) - 1) / 4
    A = A - (A.sum(0) - 1) / 5
    np.testing.assert_allclose(new.V, V, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.A, A, rtol=1e-5, atol=1e-6)


def test_ppd_lam0_is_preconditioned_step_then_affine_projection():
    """lam = 0, true mu, lr = eta: V+ = Pi(V - eta_V G_V diag(mu)^-1), A+ = Pi(A - eta_A G_A
    diag(mu)^-1) with Pi the column-wise affine projection; both orders agree; rtol 1e-5."""
    params, g, mu = setup()
    eta_V, eta_A = 0.05, 0.07
    P, G = jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, g)
    m = np.asarray(mu, np.float64)
    V = P.V - eta_V * G.V / m[None, :]
    A = P.A - eta_A * G.A / m[None, :]
    V = V - (V.sum(0) - 1) / 4
    A = A - (A.sum(0) - 1) / 5
    for order in ("prox_project", "project_prox"):
        opt = s.ppd(4, eta_V, eta_A, 0.0, mu=mu, order=order)
        upd, _ = opt.update(g, opt.init(params), params)
        new = optax.apply_updates(params, upd)
        np.testing.assert_allclose(new.V, V, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new.A, A, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(new.V).sum(0), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.asarray(new.A).sum(0), 1.0, atol=1e-5)


def test_ppd_without_mu_uses_prior_plus_token_counts():
    """mu=None: the preconditioner is (prior + counts so far) / total, accumulated over steps;
    the whole chain (under jit) equals the hand step with that estimate; rtol 1e-5."""
    params, g, _ = setup()
    eta, prior = 0.1, 2.0
    opt = s.ppd(4, eta, eta, 0.0, mu=None, mu_prior=prior)
    step = jax.jit(opt.update)
    c1, c2 = jnp.asarray([8.0, 0.0, 18.0, 2.0]), jnp.asarray([0.0, 5.0, 1.0, 1.0])
    state = opt.init(params)
    _, state = step(g, state, params, token_counts=c1)
    upd, state = step(g, state, params, token_counts=c2)
    counts = prior + np.asarray(c1) + np.asarray(c2)
    est = counts / counts.sum()
    P, G = jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, g)
    V = P.V - eta * G.V / est[None, :]
    V = V - (V.sum(0) - 1) / 4
    A = P.A - eta * G.A / est[None, :]
    A = A - (A.sum(0) - 1) / 5
    new = optax.apply_updates(params, upd)
    np.testing.assert_allclose(new.V, V, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.A, A, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.counts, counts)
    with pytest.raises(ValueError, match="token_counts"):
        opt.update(g, opt.init(params), params)


def test_order_option_changes_result_when_lam_positive():
    params, g, mu = setup()
    a = s.ppd(4, 0.3, 0.2, 0.5, mu=mu)
    b = s.ppd(4, 0.3, 0.2, 0.5, mu=mu, order="project_prox")
    ua, _ = a.update(g, a.init(params), params)
    ub, _ = b.update(g, b.init(params), params)
    np.testing.assert_allclose(ua.V, ub.V, rtol=1e-6)  # the prox touches A only
    assert not np.allclose(ua.A, ub.A)
    newb = optax.apply_updates(params, ub)
    # prox last: the columns of A no longer sum to 1 exactly, but sparsity is kept
    assert np.abs(np.asarray(newb.A).sum(0) - 1).max() > 1e-3


def test_running_mu_estimate_from_counts():
    params, g, _ = setup()
    t = scale_by_inverse_mu(4, mu=None, prior=1.0)
    state = t.init(params)
    counts = jnp.asarray([9.0, 0.0, 19.0, 3.0])
    upd, state = t.update(g, state, params, token_counts=counts)
    est = np.asarray([10.0, 1.0, 20.0, 4.0]) / 35.0
    np.testing.assert_allclose(state.counts, [10.0, 1.0, 20.0, 4.0])
    np.testing.assert_allclose(upd.V, np.asarray(g.V) / est[None, :], rtol=1e-5)
    np.testing.assert_allclose(upd.A, np.asarray(g.A) / est[None, :], rtol=1e-5)
    _, state2 = t.update(g, state, params, token_counts=counts)
    np.testing.assert_allclose(state2.counts, [19.0, 1.0, 39.0, 7.0])


def test_sgd_is_minus_lr_times_grad():
    params, g, _ = setup()
    opt = s.sgd(0.3, 0.1)
    upd, _ = opt.update(g, opt.init(params), params)
    np.testing.assert_allclose(upd.V, -0.3 * np.asarray(g.V), rtol=1e-6)
    np.testing.assert_allclose(upd.A, -0.1 * np.asarray(g.A), rtol=1e-6)


def test_prox_with_zero_lambda_is_identity():
    params, g, _ = setup()
    t = prox_l1(0.0)
    upd, _ = t.update(g, t.init(params), params)
    np.testing.assert_allclose(upd.A, g.A, atol=1e-6)


def test_simplex_option_keeps_iterates_on_simplex():
    params, g, mu = setup()
    opt = s.ppd(4, 0.5, 0.5, 0.1, mu=mu, projection_V="simplex", projection_A="simplex")
    state = opt.init(params)
    for _ in range(3):
        upd, state = opt.update(g, state, params)
        params = optax.apply_updates(params, upd)
    for M in (params.V, params.A):
        assert float(M.min()) >= 0
        np.testing.assert_allclose(M.sum(0), 1.0, atol=1e-5)
