"""The closed-form population loss against Monte Carlo; its gradient against finite
differences and sampled gradients; Bayes risk; the zero A-gradient at the uniform start."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scbjax as s
from scbjax.losses import sample_losses
from scbjax.model import random_params


def x64():
    """float64 for finite differences (``jax.enable_x64`` is the newer spelling)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover - older jax

    return enable_x64()


@pytest.fixture(scope="module")
def task():
    return s.make_task(jax.random.PRNGKey(0), N=6, T=10, Q=3, alpha=0.5, q_weights="dirichlet")


def candidates(task):
    N, T = task.N, task.T
    k = jax.random.split(jax.random.PRNGKey(9), 2)
    return {"uniform": s.uniform_params(N, T),
            "truth": s.Params(V=task.P, A=task.q),
            "random": s.Params(V=jax.random.normal(k[0], (N, N)) * 0.5,
                               A=jax.random.normal(k[1], (T, N)) * 0.3)}


def monte_carlo(params, task, n=1_000_000, B=100_000):
    @jax.jit
    def chunk(key):
        loss_B = sample_losses(params, s.sample(key, task, B))
        return loss_B.sum(), (loss_B * loss_B).sum()

    tot = [chunk(jax.random.PRNGKey(100 + i)) for i in range(n // B)]
    s1 = sum(float(a) for a, _ in tot)
    s2 = sum(float(b) for _, b in tot)
    mean = s1 / n
    return mean, np.sqrt(max(s2 / n - mean**2, 0.0) / n)


@pytest.mark.parametrize("which", ["uniform", "truth", "random"])
def test_population_loss_matches_monte_carlo(task, which):
    """10^6 samples; tolerance: 5 standard errors of the Monte Carlo mean (SE from the sample
    variance) plus 1e-4 for float32 accumulation."""
    params = candidates(task)[which]
    mc, se = monte_carlo(params, task)
    exact = float(s.population_loss(params, task))
    assert abs(mc - exact) <= 5 * se + 1e-4, (mc, exact, se)


def test_population_gradient_matches_finite_differences(task):
    """Central differences in float64, step 1e-6, relative error < 1e-6 on every entry."""
    with x64():
        t64 = jax.tree.map(lambda x: jnp.asarray(np.asarray(x), jnp.float64), task)
        p = jax.tree.map(lambda x: jnp.asarray(np.asarray(x), jnp.float64),
                         candidates(task)["random"])
        g = s.population_grad(p, t64)
        f = jax.jit(s.population_loss)
        h = 1e-6
        for name in ("V", "A"):
            M = np.asarray(getattr(p, name))
            fd = np.zeros_like(M)
            for idx in np.ndindex(M.shape):
                E = np.zeros_like(M)
                E[idx] = h
                plus = s.Params(**{**vars(p), name: jnp.asarray(M + E)})
                minus = s.Params(**{**vars(p), name: jnp.asarray(M - E)})
                fd[idx] = (float(f(plus, t64)) - float(f(minus, t64))) / (2 * h)
            np.testing.assert_allclose(np.asarray(getattr(g, name)), fd, rtol=1e-6, atol=1e-8)


def test_population_gradient_matches_sampled_gradient(task):
    """Mean of batch-loss gradients over 4 x 10^5 samples against the exact gradient: max entry
    error below 5 x the largest per-entry standard error, estimated from 40 sub-batches."""
    params = candidates(task)["random"]
    g_exact = s.population_grad(params, task)
    grad = jax.jit(jax.grad(lambda p, k: s.batch_loss(p, s.sample(k, task, 10_000))))
    gs = [grad(params, jax.random.PRNGKey(500 + i)) for i in range(40)]
    for name in ("V", "A"):
        G = np.stack([np.asarray(getattr(g, name)) for g in gs])
        se = G.std(0, ddof=1) / np.sqrt(len(G))
        err = np.abs(G.mean(0) - np.asarray(getattr(g_exact, name)))
        assert np.all(err <= 5 * se.max() + 1e-6), (name, err.max(), se.max())


def test_ground_truth_attains_bayes_risk_and_nothing_beats_it(task):
    truth = s.Params(V=task.P, A=task.q)
    assert abs(float(s.excess_loss(truth, task))) < 1e-6
    assert float(s.bayes_risk(task)) > 0  # the target is random given x

    N, T = task.N, task.T
    ex = jax.jit(s.excess_loss)
    keys = jax.random.split(jax.random.PRNGKey(3), 300)
    for i, k in enumerate(keys):
        k1, k2 = jax.random.split(k)
        if i % 3 == 0:  # small perturbations of the truth
            p = s.Params(V=task.P + 0.01 * jax.random.normal(k1, (N, N)),
                         A=task.q + 0.01 * jax.random.normal(k2, (T, N)))
        elif i % 3 == 1:
            p = random_params(k1, N, T, scale=float(jax.random.uniform(k2)))
        else:
            p = s.Params(V=jax.random.normal(k1, (N, N)), A=jax.random.normal(k2, (T, N)))
        assert float(ex(p, task)) >= -1e-6


def test_uniform_start_has_zero_attention_gradient(task):
    """Spec: at V = 11^T/N, A = 11^T/T the A-gradient vanishes exactly; the V-gradient does not."""
    g = s.population_grad(s.uniform_params(task.N, task.T), task)
    np.testing.assert_allclose(g.A, 0.0, atol=1e-6)
    assert float(jnp.abs(g.V).max()) > 1e-3


def test_excess_loss_positive_away_from_truth(task):
    assert float(s.excess_loss(s.uniform_params(task.N, task.T), task)) > 1e-3


def test_cross_entropy_and_masked_batch_loss(task):
    params = candidates(task)["uniform"]
    b = s.sample(jax.random.PRNGKey(0), task, 64)
    ce = sample_losses(params, b, loss="ce")
    assert ce.shape == (64,) and bool(jnp.all(jnp.isfinite(ce))) and float(ce.min()) > 0
    mask = jnp.arange(64) < 10
    sub = s.Batch(tokens=b.tokens[:10], query=b.query[:10], target=b.target[:10])
    np.testing.assert_allclose(s.batch_loss(params, b, mask), s.batch_loss(params, sub),
                               rtol=1e-6)


def test_softmax_population_loss_uses_attention(task):
    W = jnp.log(task.q + 1e-30)  # softmax(log q) = q
    p = s.Params(V=task.P, A=W)
    with contextlib.nullcontext():
        assert abs(float(s.excess_loss(p, task, "softmax"))) < 1e-5
