"""The sampler against the exact distribution of the SCB model.

Statistical bound used throughout: an empirical frequency f of a cell with exact probability p
from n i.i.d. draws satisfies |f - p| <= 5 sqrt(p (1 - p) / n) + 1e-4 (5 standard errors; with
at most ~100 cells per test the chance of a false failure is below 1e-4)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np

import scbjax as s
from scbjax.core import sampler
from scbjax.core.sampler import token_counts


def within_bound(freq, p, n):
    freq, p = np.asarray(freq, np.float64), np.asarray(p, np.float64)
    bound = 5 * np.sqrt(p * (1 - p) / n) + 1e-4
    assert np.all(np.abs(freq - p) <= bound), np.max(np.abs(freq - p) - bound)


def draw(task, n, B=100_000):
    f = jax.jit(lambda k: s.sample(k, task, B))
    out = [f(jax.random.PRNGKey(i)) for i in range(n // B)]
    return (np.concatenate([np.asarray(getattr(b, name)) for b in out])
            for name in ("tokens", "query", "target"))


def skewed_task(N, T, Q, seed=0, alpha=0.3, mix=0.05):
    """A task built in numpy (independent of make_task, and no JAX compile): P columns from
    Dirichlet(alpha) mixed with uniform, mu its stationary law (far from uniform for small
    alpha), q(k) with Q random support positions and Dirichlet(1) weights."""
    rng = np.random.default_rng(seed)
    P = (1 - mix) * rng.dirichlet(np.full(N, alpha), size=N).T + mix / N
    P /= P.sum(0, keepdims=True)
    M = P - np.eye(N)
    M[-1] = 1.0
    mu = np.linalg.solve(M, np.eye(N)[-1])
    q = np.zeros((T, N))
    for k in range(N):
        q[rng.choice(T, Q, replace=False), k] = rng.dirichlet(np.ones(Q))
    return s.task_from_arrays(P, q, mu=mu, Q=Q)


def test_full_joint_distribution_small_task():
    """N = 3, T = 2: all 81 cells of (x_1, x_2, k, x_o) against
    Pr = mu_{x1} mu_{x2} mu_k sum_t q[t, k] P[x_o, x_t]."""
    task = skewed_task(3, 2, 2, seed=4)
    P, mu, q = (np.asarray(x, np.float64) for x in (task.P, task.mu, task.q))
    n = 400_000
    tokens, query, target = draw(task, n)
    idx = ((tokens[:, 0] * 3 + tokens[:, 1]) * 3 + query) * 3 + target
    freq = np.bincount(idx, minlength=81) / n
    exact = np.zeros(81)
    for x1, x2, k, o in itertools.product(range(3), repeat=4):
        exact[((x1 * 3 + x2) * 3 + k) * 3 + o] = (
            mu[x1] * mu[x2] * mu[k] * (q[0, k] * P[o, x1] + q[1, k] * P[o, x2]))
    np.testing.assert_allclose(exact.sum(), 1.0, atol=1e-5)
    within_bound(freq, exact, n)


def test_marginals_and_conditional_mean_larger_task():
    """N = 6, T = 12, Q = 3: token marginals against mu, and the target against its exact
    conditional mean P X q(k), weighted by 1 and by the token at each support position."""
    task = skewed_task(6, 12, 3, seed=1)
    P, mu, q = (np.asarray(x, np.float64) for x in (task.P, task.mu, task.q))
    n = 300_000
    tokens, query, target = draw(task, n)
    within_bound(np.bincount(tokens[:, 7], minlength=6) / n, mu, n)
    within_bound(np.bincount(query, minlength=6) / n, mu, n)
    within_bound(np.bincount(tokens.ravel(), minlength=6) / tokens.size, mu, tokens.size)
    # exact predictive distribution of each sample: p(x) = P X q(k)
    X = np.eye(6)[tokens]  # n x T x N
    h = np.einsum("ntv,nt->nv", X, q[:, query].T)
    p = h @ P.T
    y = np.eye(6)[target]
    # E[y - p(x)] = 0 and E[(y - p(x)) 1{query = k}] = 0: SE of a mean of values in [-1, 1]
    se = 1.0 / np.sqrt(n)
    assert np.all(np.abs((y - p).mean(0)) < 5 * se)
    for k in range(6):
        w = (query == k)[:, None]
        assert np.all(np.abs(((y - p) * w).mean(0)) < 5 * se)
    # the target really depends on the context: the residual against the marginal is large
    assert np.abs((y - mu).T @ h / n).max() > 20 * se


def residual_z_scores(tokens, query, target, P, q):
    """z-scores of the moment conditions E[r] = 0 and E[r 1{x_t = j}] = 0 (all t, j), where
    r = e_{x_o} - p(x) and p(x) = P X q(k) is computed by ``scbjax.forward`` with the ground truth
    Params(V=P, A=q). z = mean / (sample SD / sqrt(n)). Returns (N,) and (T, N, N) arrays."""
    N = P.shape[0]
    f = jax.jit(jax.vmap(s.forward, in_axes=(None, 0, 0)))
    params = s.Params(V=jnp.asarray(P, jnp.float32), A=jnp.asarray(q, jnp.float32))
    p = np.asarray(f(params, jnp.asarray(tokens), jnp.asarray(query)), np.float64)
    r = np.eye(N)[target] - p  # n x N, entries in [-1, 1]
    n = len(r)
    m1, m2 = r.mean(0), (r * r).mean(0)
    z0 = m1 / np.sqrt((m2 - m1**2) / n)
    X = np.eye(N)[tokens]  # n x T x N one-hots (indicator^2 = indicator)
    c1 = np.einsum("ntj,no->tjo", X, r) / n
    c2 = np.einsum("ntj,no->tjo", X, r * r) / n
    z = c1 / np.sqrt(np.maximum(c2 - c1**2, 1e-300) / n)
    return z0, z


def test_conditional_mean_given_context_tokens_small_task():
    """N = 4, T = 5, Q = 2, skewed mu, n = 200_000 samples.

    Stated bounds: every frequency cell (token at each position t, and the query) satisfies
    |freq - mu_j| <= 5 sqrt(mu_j (1 - mu_j) / n) + 1e-4; every moment condition
    E[e_{x_o} - P X q(k)] = 0 and E[(e_{x_o} - P X q(k)) 1{x_t = j}] = 0 (4 + 80 cells) holds
    within 5 standard errors (SE from the sample variance). 104 cells at 5 SE: false-failure
    chance < 1e-4. Power check: the same statistic with q shifted by one position (a wrong
    conditional mean) must be violated by far more (max |z| > 10)."""
    task = skewed_task(4, 5, 2, seed=7)
    P, mu, q = (np.asarray(x, np.float64) for x in (task.P, task.mu, task.q))
    assert mu.max() / mu.min() > 1.5  # mu really non-uniform, so mu-weighting is tested
    n = 200_000
    tokens, query, target = draw(task, n)
    assert tokens.shape == (n, 5)
    for t in range(5):
        within_bound(np.bincount(tokens[:, t], minlength=4) / n, mu, n)
    within_bound(np.bincount(query, minlength=4) / n, mu, n)
    z0, z = residual_z_scores(tokens, query, target, P, q)
    assert np.abs(z0).max() <= 5, z0
    assert np.abs(z).max() <= 5, np.abs(z).max()
    # the test has power: a sampler reading the wrong positions would fail it
    _, z_wrong = residual_z_scores(tokens, query, target, P, np.roll(q, 1, axis=0))
    assert np.abs(z_wrong).max() > 10, np.abs(z_wrong).max()


def test_position_choice_follows_q():
    """With P = I the target copies the token at position s ~ q(k): test Pr(x_o = x_t)."""
    N, T = 50, 6  # many tokens: coincidences x_t = x_t' are rare but accounted for exactly
    task0 = skewed_task(N, T, 3, seed=2)
    task = s.Task(P=jnp.eye(N), mu=jnp.full((N,), 1.0 / N), q=task0.q)
    q = np.asarray(task.q, np.float64)
    n = 200_000
    tokens, query, target = draw(task, n)
    hit = tokens == target[:, None]  # n x T
    for t in range(T):
        # Pr(x_t = x_o) = q[t, k] + (1 - q[t, k]) / N for uniform tokens
        exact = np.mean(q[t, query] + (1 - q[t, query]) / N)
        within_bound(hit[:, t].mean(), exact, n)


def test_batch_shapes_dtypes_and_determinism():
    """Shapes (B, T), (B,), (B,); int32; values in [0, N); same key -> same batch (eager and
    jitted agree), other key -> other batch; token_counts counts all B (T + 1) inputs."""
    task = skewed_task(5, 7, 2, seed=0)
    b = s.sample(jax.random.PRNGKey(1), task, 13)
    assert b.tokens.shape == (13, 7) and b.query.shape == (13,) and b.target.shape == (13,)
    for x in (b.tokens, b.query, b.target):
        assert x.dtype == jnp.int32
        assert int(x.min()) >= 0 and int(x.max()) < 5
    b2 = jax.jit(s.sample, static_argnums=2)(jax.random.PRNGKey(1), task, 13)
    for name in ("tokens", "query", "target"):
        np.testing.assert_array_equal(getattr(b, name), getattr(b2, name))
    b3 = s.sample(jax.random.PRNGKey(2), task, 13)
    assert not np.array_equal(b.tokens, b3.tokens)
    c = np.asarray(token_counts(b, 5))
    assert c.sum() == 13 * 8
    expect = np.bincount(np.concatenate([np.ravel(b.tokens), np.ravel(b.query)]), minlength=5)
    np.testing.assert_array_equal(c, expect)


def test_inverse_cdf_uses_one_uniform_per_token(monkeypatch):
    """The sampler asks for exactly B x (T + 3) uniforms: T + 1 tokens, the position, the target."""
    calls = []
    real = sampler.uniform  # jax.random.uniform, bit for bit (tests/sim/test_speed_step.py)

    def spy(key, shape=(), *a, **kw):
        calls.append(tuple(shape))
        return real(key, shape, *a, **kw)

    monkeypatch.setattr(sampler, "uniform", spy)
    task = skewed_task(5, 7, 2, seed=0)
    s.sample(jax.random.PRNGKey(1), task, 13)
    assert calls == [(13, 10)]


def test_threefry_split_and_permutation_are_jax_randoms_bit_for_bit():
    """A run's key streams, ``make_task``'s supports, the dataset order: jax.random's bits (one
    and two sort rounds), jitted and vmapped as make_task uses them, and eagerly (``blocks``
    and ``permutation`` are jitted per shape); a typed key falls back to jax.random."""
    from scbjax.core import threefry
    for seed in (0, 7, 2**31 + 5):
        key = jax.random.PRNGKey(seed)
        for n in (1, 2, 3, 16):
            np.testing.assert_array_equal(jax.jit(threefry.split, static_argnums=1)(key, n),
                                          jax.random.split(key, n))
            np.testing.assert_array_equal(jax.jit(threefry.bits, static_argnums=1)(key, n),
                                          jax.random.bits(key, (n,), jnp.uint32))
        for n in (1, 2, 6, 64, 1000, 2000, 4096):  # 2000 and 4096: two rounds of jax's sort
            np.testing.assert_array_equal(
                jax.jit(threefry.permutation, static_argnums=1)(key, n),
                jax.random.permutation(key, n), err_msg=f"seed {seed}, n {n}")
        np.testing.assert_array_equal(threefry.permutation(key, 33),  # eagerly
                                      jax.random.permutation(key, 33))
        np.testing.assert_array_equal(threefry.split(key, 4), jax.random.split(key, 4))
        keys = jax.random.split(key, 5)
        np.testing.assert_array_equal(
            jax.jit(jax.vmap(lambda k: threefry.permutation(k, 33)))(keys),
            jax.vmap(lambda k: jax.random.permutation(k, 33))(keys))
    typed = jax.random.key(3)
    np.testing.assert_array_equal(jax.random.key_data(threefry.split(typed, 2)),
                                  jax.random.key_data(jax.random.split(typed, 2)))
    np.testing.assert_array_equal(threefry.permutation(typed, 9),
                                  jax.random.permutation(typed, 9))
