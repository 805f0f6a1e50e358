"""The closed-form population loss against Monte Carlo; its gradient against finite
differences and sampled gradients; Bayes risk; the zero A-gradient at the uniform start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scbjax as s
from scbjax.core.losses import sample_losses
from scbjax.core.model import LINEAR, SOFTMAX, random_params


def x64():
    """float64 for finite differences (``jax.enable_x64`` is the newer spelling)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # pragma: no cover - older jax

    return enable_x64()


@pytest.fixture(scope="module")
def task():
    cfg = s.TaskConfig(N=6, T=10, Q=3, alpha=0.5, q_weights="dirichlet")
    return jax.jit(lambda k: s.make_task(k, cfg))(jax.random.PRNGKey(0))  # jit: faster compile


def candidates(task):
    N, T = task.N, task.T
    k = jax.random.split(jax.random.PRNGKey(9), 2)
    return {"uniform": s.uniform_params(N, T),
            "truth": s.Params(V=task.P, A=task.q),
            "random": s.Params(V=jax.random.normal(k[0], (N, N)) * 0.5,
                               A=jax.random.normal(k[1], (T, N)) * 0.3)}


def monte_carlo(params, task, n=1_000_000, B=100_000, model=LINEAR):
    @jax.jit
    def chunk(key):
        loss_B = sample_losses(params, s.sample(key, task, B), model)
        return loss_B.sum(), (loss_B * loss_B).sum()

    tot = [chunk(jax.random.PRNGKey(100 + i)) for i in range(n // B)]
    s1 = sum(float(a) for a, _ in tot)
    s2 = sum(float(b) for _, b in tot)
    mean = s1 / n
    return mean, np.sqrt(max(s2 / n - mean**2, 0.0) / n)


@pytest.mark.parametrize("which", ["uniform", "truth", "random", "softmax"])
def test_population_loss_matches_monte_carlo(task, which):
    """10^6 samples; tolerance: 5 standard errors of the Monte Carlo mean (SE from the sample
    variance) plus 1e-4 for float32 accumulation. "softmax": random logits, softmax model."""
    if which == "softmax":
        params, model = candidates(task)["random"], SOFTMAX
    else:
        params, model = candidates(task)[which], LINEAR
    mc, se = monte_carlo(params, task, model=model)
    exact = float(s.population_loss(params, task, model))
    assert abs(mc - exact) <= 5 * se + 1e-4, (mc, exact, se)


def test_population_gradient_matches_finite_differences(task):
    """Central differences in float64, step 1e-6, relative error < 1e-6 on every entry."""
    with x64():
        t64 = jax.tree.map(lambda x: jnp.asarray(np.asarray(x), jnp.float64), task)
        p = jax.tree.map(lambda x: jnp.asarray(np.asarray(x), jnp.float64),
                         candidates(task)["random"])
        assert p.V.dtype == jnp.float64 and t64.P.dtype == jnp.float64
        g = s.population_grad(p, t64)
        assert g.V.dtype == jnp.float64 and g.A.dtype == jnp.float64
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
    """Mean of batch-loss gradients over 4 x 10^5 samples against the exact gradient: every
    entry within 6 of its own standard errors (SE from the spread of 40 sub-batch gradients;
    96 entries, t with 39 d.o.f.: false-failure chance < 1e-3) plus 1e-6."""
    params = candidates(task)["random"]
    g_exact = s.population_grad(params, task)
    grad = jax.jit(jax.grad(lambda p, k: s.batch_loss(p, s.sample(k, task, 10_000))))
    gs = [grad(params, jax.random.PRNGKey(500 + i)) for i in range(40)]
    for name in ("V", "A"):
        G = np.stack([np.asarray(getattr(g, name)) for g in gs])
        se = G.std(0, ddof=1) / np.sqrt(len(G))
        err = np.abs(G.mean(0) - np.asarray(getattr(g_exact, name)))
        assert np.all(err <= 6 * se + 1e-6), (name, (err / se).max())
        assert np.abs(np.asarray(getattr(g_exact, name))).max() > 20 * se.max()  # informative


def test_ground_truth_attains_bayes_risk_and_nothing_beats_it(task):
    truth = s.Params(V=task.P, A=task.q)
    assert abs(float(s.excess_loss(truth, task))) < 1e-6
    assert float(s.bayes_risk(task)) > 0  # the target is random given x

    N, T = task.N, task.T
    n = 100  # per family, 300 in all

    @jax.jit
    def families(key):
        kp, kd, kn = jax.random.split(key, 3)
        kV, kA = jax.random.split(kp)
        perturbed = s.Params(V=task.P[None] + 0.01 * jax.random.normal(kV, (n, N, N)),
                             A=task.q[None] + 0.01 * jax.random.normal(kA, (n, T, N)))
        ks = jax.random.split(kd, n)
        scales = jax.random.uniform(kd, (n,))
        dirichlet = jax.vmap(lambda k, c: random_params(k, N, T, scale=c))(ks, scales)
        kV, kA = jax.random.split(kn)
        normal = s.Params(V=jax.random.normal(kV, (n, N, N)), A=jax.random.normal(kA, (n, T, N)))
        ex = jax.vmap(s.excess_loss, in_axes=(0, None))
        return ex(perturbed, task), ex(dirichlet, task), ex(normal, task)

    for e in families(jax.random.PRNGKey(3)):
        e = np.asarray(e)
        assert e.shape == (n,) and np.all(np.isfinite(e))
        assert e.min() >= -1e-6, e.min()
        assert e.max() > 0  # not identically zero


def test_uniform_start_has_zero_attention_gradient(task):
    """Spec: at V = 11^T/N, A = 11^T/T the A-gradient vanishes exactly; the V-gradient does not."""
    g = s.population_grad(s.uniform_params(task.N, task.T), task)
    np.testing.assert_allclose(g.A, 0.0, atol=1e-6)
    assert float(jnp.abs(g.V).max()) > 1e-3


def test_excess_loss_positive_away_from_truth(task):
    assert float(s.excess_loss(s.uniform_params(task.N, task.T), task)) > 1e-3


def test_cross_entropy_and_masked_batch_loss(task):
    """CE (f(x) as logits) is finite and > 0 for both models, equals log N at the uniform start
    and -log softmax(f(x))[x_o] by hand; a masked batch mean equals the mean over the kept rows.
    All rtol 1e-5 (1e-6 for the mask)."""
    params, rnd = candidates(task)["uniform"], candidates(task)["random"]
    b = jax.jit(s.sample, static_argnums=2)(jax.random.PRNGKey(0), task, 64)

    @jax.jit
    def losses(b):
        ce_u = sample_losses(params, b, loss="ce")
        ce_r = {m.name: sample_losses(rnd, b, model=m, loss="ce") for m in (LINEAR, SOFTMAX)}
        f0 = s.forward(rnd, b.tokens[0], b.query[0])
        mask = jnp.arange(64) < 10
        sub = s.Batch(tokens=b.tokens[:10], query=b.query[:10], target=b.target[:10])
        return ce_u, ce_r, f0, s.batch_loss(params, b, mask), s.batch_loss(params, sub)

    ce_u, ce_r, f0, masked, sub = losses(b)
    assert ce_u.shape == (64,)
    # at uniform V the output is constant over tokens: CE = log N exactly
    np.testing.assert_allclose(ce_u, np.log(task.N), rtol=1e-5)
    for model, ce in ce_r.items():
        ce = np.asarray(ce)
        assert ce.shape == (64,) and np.all(np.isfinite(ce)) and ce.min() > 0, model
    f0 = np.asarray(f0, np.float64)
    by_hand = np.log(np.exp(f0).sum()) - f0[int(b.target[0])]
    np.testing.assert_allclose(ce_r["linear"][0], by_hand, rtol=1e-5)
    np.testing.assert_allclose(masked, sub, rtol=1e-6)


def test_softmax_population_loss_uses_attention(task):
    W = jnp.log(task.q + 1e-30)  # softmax(log q) = q
    p = s.Params(V=task.P, A=W)
    assert abs(float(s.excess_loss(p, task, SOFTMAX))) < 1e-5
    zero_logits = s.Params(V=task.P, A=jnp.zeros_like(W))  # uniform attention
    assert float(s.excess_loss(zero_logits, task, SOFTMAX)) > 1e-4
