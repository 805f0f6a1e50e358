"""Task instances: stochasticity, stationarity, sparsity, determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s


def _make_tasks(seed, cfg, n_keys=4):
    """n_keys tasks of one configuration from one compiled function (one compile per shape)."""
    make = jax.jit(lambda k: s.make_task(k, cfg))
    return [make(k) for k in jax.random.split(jax.random.PRNGKey(seed), n_keys)]


@settings(max_examples=5, deadline=None)
@given(N=st.integers(2, 10), T=st.integers(1, 12), data=st.data(), seed=st.integers(0, 2**16))
def test_random_task_is_valid(N, T, data, seed):
    """P column-stochastic and positive (mixed with uniform); mu > 0, sums to 1, P mu = mu;
    every column of q a probability vector with exactly Q nonzero entries (weights 1/Q for
    "uniform"; Dirichlet(1) weights, generically all nonzero, for "dirichlet")."""
    Q = data.draw(st.integers(1, T))
    weights = data.draw(st.sampled_from(["uniform", "dirichlet"]))
    cfg = s.TaskConfig(N=N, T=T, Q=Q, q_weights=weights)
    for task in _make_tasks(seed, cfg):
        P, mu, q = (np.asarray(x, np.float64) for x in (task.P, task.mu, task.q))
        assert P.shape == (N, N) and mu.shape == (N,) and q.shape == (T, N)
        np.testing.assert_allclose(P.sum(0), 1.0, atol=1e-5)
        assert np.all(P > 0)  # mixed with uniform
        np.testing.assert_allclose(P @ mu, mu, atol=1e-5)
        np.testing.assert_allclose(mu.sum(), 1.0, atol=1e-5)
        assert np.all(mu > 0)
        assert np.all(q >= 0)
        np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
        nnz = (q > 0).sum(0)
        np.testing.assert_array_equal(nnz, Q)
        if weights == "uniform":
            np.testing.assert_allclose(q[q > 0], 1.0 / Q, rtol=1e-6)
        s.validate_task(task, Q=Q)  # passes the user-array validation too


def test_dirichlet_weights_are_not_uniform():
    """q_weights="dirichlet" really draws the Q weights (they are not all 1/Q)."""
    task = s.make_task(jax.random.PRNGKey(5), N=6, T=8, Q=3, q_weights="dirichlet")
    q = np.asarray(task.q)
    np.testing.assert_array_equal((q > 0).sum(0), 3)
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-5)
    assert np.abs(q[q > 0] - 1.0 / 3).max() > 0.05
    # same support generator as "uniform": only the weights differ
    u = s.make_task(jax.random.PRNGKey(5), N=6, T=8, Q=3, q_weights="uniform")
    np.testing.assert_array_equal(np.asarray(u.q) > 0, q > 0)


def test_stationary_two_state_chain():
    a, b = 0.3, 0.1  # Pr(1 | 0) = a, Pr(0 | 1) = b: mu = (b, a) / (a + b)
    P = jnp.asarray([[1 - a, b], [a, 1 - b]], jnp.float32)
    mu = s.stationary(P)
    np.testing.assert_allclose(mu, [b / (a + b), a / (a + b)], rtol=1e-5)
    np.testing.assert_allclose(P @ mu, mu, rtol=1e-5)


def test_stationary_doubly_stochastic_is_uniform():
    """A doubly stochastic (here: cyclic shift mixed with identity) chain has uniform mu."""
    P = 0.6 * jnp.eye(5) + 0.4 * jnp.roll(jnp.eye(5), 1, axis=0)
    np.testing.assert_allclose(s.stationary(P), np.full(5, 0.2), rtol=1e-5)


# The eager make_task tests below share N = 6, T = 8 so that JAX compiles each shape once.


def test_mix_bounds_mu_away_from_zero():
    t = s.make_task(jax.random.PRNGKey(0), N=6, T=8, Q=2, alpha=0.05, mix=0.2)
    assert float(t.mu.min()) >= 0.2 / 6 - 1e-6  # mu = P mu >= mix / N
    assert float(t.P.min()) >= 0.2 / 6 - 1e-6


def test_same_key_same_task_other_key_other_task():
    a = s.make_task(jax.random.PRNGKey(1), N=6, T=8, Q=2)
    b = s.make_task(jax.random.PRNGKey(1), N=6, T=8, Q=2)
    c = s.make_task(jax.random.PRNGKey(2), N=6, T=8, Q=2)
    np.testing.assert_array_equal(a.P, b.P)
    np.testing.assert_array_equal(a.mu, b.mu)
    np.testing.assert_array_equal(a.q, b.q)
    assert not np.allclose(a.P, c.P)
    assert not np.array_equal(a.q, c.q)


def test_make_task_under_jit_and_vmap_and_support_is_uniform():
    """200 tasks in one jit(vmap) call; task 3 equals the eager make_task of its key. Over the
    200 x 6 columns (Q = 2 distinct positions each) every one of the T = 8 positions is in the
    support 2 / 8 of the time: expected count 300 per position, SD 15; bound +-75 (5 SD)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    cfg = s.TaskConfig(N=6, T=8, Q=2)
    tasks = jax.jit(jax.vmap(lambda k: s.make_task(k, cfg)))(keys)
    assert tasks.P.shape == (200, 6, 6) and tasks.q.shape == (200, 8, 6)
    one = s.make_task(keys[3], cfg)
    np.testing.assert_allclose(tasks.P[3], one.P, rtol=1e-6)
    np.testing.assert_array_equal(tasks.q[3], one.q)
    counts = (np.asarray(tasks.q) > 0).sum((0, 2))
    assert counts.sum() == 200 * 6 * 2
    assert np.all(np.abs(counts - 300) <= 75), counts


def test_make_task_rejects_bad_size():
    with pytest.raises(s.ConfigError):
        s.make_task(jax.random.PRNGKey(0), N=3, T=2, Q=3)
