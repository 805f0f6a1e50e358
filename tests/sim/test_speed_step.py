"""The lean training step against the reference: closed-form loss and gradients against
autodiff, the fused threefry against jax.random bit for bit, the counting inverse-CDF draw
against searchsorted index for index, and whole runs of the closed-form step against the
autodiff step."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scbjax as s
from scbjax.core import sampler
from scbjax.core.losses import batch_loss, linear_loss_and_grad, loss_and_grad
from scbjax.core.model import LINEAR, SOFTMAX, Params, random_params
from scbjax.sim.train import make_stepper


def random_batch(key, N, T, B):
    kx, kq, ky = jax.random.split(key, 3)
    return s.Batch(tokens=jax.random.randint(kx, (B, T), 0, N, jnp.int32),
                   query=jax.random.randint(kq, (B,), 0, N, jnp.int32),
                   target=jax.random.randint(ky, (B,), 0, N, jnp.int32))


def off_simplex_params(key, N, T):
    """Random params with entries of both signs (not only Dirichlet columns)."""
    kV, kA = jax.random.split(key)
    return Params(V=jax.random.normal(kV, (N, N)), A=0.5 * jax.random.normal(kA, (T, N)))


def assert_tree_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


# --- closed form against autodiff ----------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("N,T,B", [(2, 1, 3), (4, 6, 9), (16, 64, 8), (7, 33, 24)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("form", ["scatter", "dense"])
def test_closed_form_equals_autodiff(loss, N, T, B, masked, form):
    """B = 24 takes the matmul branch of G_V, the others the unrolled outer products; both
    forms of the sums over tokens (scatter-adds, dense one-hot sums)."""
    for i, make in enumerate((lambda k: random_params(k, N, T), lambda k: off_simplex_params(
            k, N, T))):
        key = jax.random.PRNGKey(100 * N + T + i)
        params, batch = make(key), random_batch(jax.random.fold_in(key, 1), N, T, B)
        mask = (jnp.arange(B) < (B + 1) // 2) if masked else None
        ref = jax.value_and_grad(batch_loss)(params, batch, mask, "linear", loss)
        got = jax.jit(linear_loss_and_grad, static_argnums=(3, 4))(params, batch, mask, loss,
                                                                  form)
        assert_tree_close(got, ref)
        assert float(jnp.abs(ref[1].A).max()) > 0  # a nonzero gradient was compared


def test_masked_samples_weigh_nothing():
    """Changing a masked sample changes nothing; an all-masked batch gives zero loss and grads."""
    N, T, B = 5, 7, 6
    params = off_simplex_params(jax.random.PRNGKey(0), N, T)
    batch = random_batch(jax.random.PRNGKey(1), N, T, B)
    mask = jnp.arange(B) < 4
    other = s.Batch(tokens=batch.tokens.at[5].set((batch.tokens[5] + 1) % N),
                    query=batch.query.at[4].set((batch.query[4] + 1) % N),
                    target=batch.target.at[5].set((batch.target[5] + 2) % N))
    assert_tree_close(linear_loss_and_grad(params, batch, mask),
                      linear_loss_and_grad(params, other, mask), rtol=0, atol=0)
    first4 = jax.tree.map(lambda x: x[:4], batch)
    assert_tree_close(linear_loss_and_grad(params, batch, mask),
                      linear_loss_and_grad(params, first4))
    v, g = linear_loss_and_grad(params, batch, jnp.zeros(B, bool))
    assert float(v) == 0.0 and not np.any(np.asarray(g.V)) and not np.any(np.asarray(g.A))


def test_dispatch_and_vmap():
    N, T, B = 6, 10, 8
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    params = jax.vmap(lambda k: off_simplex_params(k, N, T))(keys)
    batch = jax.vmap(lambda k: random_batch(k, N, T, B))(keys)
    closed = jax.jit(jax.vmap(lambda p, b: loss_and_grad(p, b, None, LINEAR, "mse")))
    auto = jax.vmap(lambda p, b: loss_and_grad(p, b, None, LINEAR, "mse", "autodiff"))
    assert_tree_close(closed(params, batch), auto(params, batch))
    # softmax: always the autodiff path, the same function either way
    p0, b0 = jax.tree.map(lambda x: x[0], params), jax.tree.map(lambda x: x[0], batch)
    assert_tree_close(loss_and_grad(p0, b0, None, SOFTMAX, "mse"),
                      jax.value_and_grad(batch_loss)(p0, b0, None, SOFTMAX, "mse"),
                      rtol=0, atol=0)
    with pytest.raises(ValueError, match="method"):
        loss_and_grad(p0, b0, method="finite-differences")


# --- the fused threefry and the counting draw ------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_fused_threefry_is_jax_random_bit_for_bit(seed):
    key = jax.random.PRNGKey(seed)
    for t in (0, 1, 499, 2**31 - 1, 2**32 - 1):
        t_arr = jnp.asarray(t, jnp.uint32)
        k_jax = jax.random.fold_in(key, t_arr)
        k_ours = jax.jit(sampler.fold_in)(key, t_arr)
        np.testing.assert_array_equal(np.asarray(k_ours), np.asarray(k_jax))
        for shape in ((1,), (3,), (8, 67), (2, 1027)):
            u_jax = jax.random.uniform(k_jax, shape)
            u_ours = jax.jit(lambda k, shape=shape: sampler.uniform(k, shape))(k_ours)
            np.testing.assert_array_equal(np.asarray(u_ours).view(np.uint32),
                                          np.asarray(u_jax).view(np.uint32))
    # under vmap, as the step uses it (a traced step index)
    keys = s.seed_keys(range(5))
    got = jax.jit(jax.vmap(lambda k: sampler.uniform(sampler.fold_in(k, jnp.int32(9)),
                                                     (4, 5))))(keys)
    ref = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 9), (4, 5)))(keys)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))


def test_typed_keys_fall_back_to_jax_random():
    key = jax.random.key(3)
    u = sampler.uniform(sampler.fold_in(key, 4), (3, 4))
    ref = jax.random.uniform(jax.random.fold_in(key, 4), (3, 4))
    np.testing.assert_array_equal(np.asarray(u), np.asarray(ref))


def searchsorted_draw(cdf_K, u):
    """The sampler's draw before the speed work: searchsorted (right), clipped."""
    K = cdf_K.shape[-1]
    method = "compare_all" if K <= 128 else "scan"
    i = jnp.searchsorted(cdf_K, u, side="right", method=method)
    return jnp.minimum(i, K - 1).astype(jnp.int32)


@pytest.mark.parametrize("K", [2, 5, 16, 33, 64, 65, 128, 129, 300])
def test_counting_draw_equals_searchsorted(K):
    """Dirichlet(0.3) probabilities (some underflow to exact zeros: flat cdf stretches), u at
    random, at 0, at every cdf value and just below it and just below 1."""
    key = jax.random.PRNGKey(K)
    p = jax.random.dirichlet(key, jnp.full((K,), 0.3))
    p = p.at[K // 2].set(0.0)
    cdf = sampler._cdf(p)
    u = jnp.concatenate([jax.random.uniform(jax.random.fold_in(key, 1), (4000,)),
                         jnp.asarray([0.0, np.nextafter(np.float32(1), np.float32(0))],
                                     jnp.float32),
                         cdf[:-1], jnp.nextafter(cdf[:-1], jnp.float32(0))])
    got = jax.jit(sampler._draw)(cdf, u)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(searchsorted_draw(cdf, u)))
    assert len(np.unique(np.asarray(got))) > 1


@pytest.mark.parametrize("search", [True, False])
def test_row_draw_equals_searchsorted_in_the_row(search):
    """``_draw_row`` (binary search or gathered rows) against numpy's searchsorted on each row,
    K = 1 to 129: rows with exact zeros (ties in the cdf) and a point mass on the last entry,
    u at random, at 0, at one row's cdf values and just below them."""
    rng = np.random.default_rng(0)
    draw = jax.jit(lambda c, r, u: sampler._draw_row(c, r, u, search))
    for K in (1, 2, 3, 5, 16, 33, 64, 65, 129):
        p_RxK = rng.dirichlet(np.full(K, 0.3), size=6).astype(np.float32)
        p_RxK[:, K // 2] = 0.0
        p_RxK[0] = np.eye(K, dtype=np.float32)[K - 1]
        cdf_RxK = np.asarray(sampler._cdf(jnp.asarray(p_RxK)))
        edge = np.concatenate([[0.0], cdf_RxK[2], np.nextafter(cdf_RxK[2], np.float32(0))])
        u = np.concatenate([rng.random(2000, dtype=np.float32), edge.astype(np.float32)])
        r = np.concatenate([rng.integers(0, 6, 2000), np.full(edge.size, 2)]).astype(np.int32)
        got = np.asarray(draw(cdf_RxK, r, u))
        ref = np.minimum([np.searchsorted(cdf_RxK[i], x, side="right") for i, x in zip(r, u)],
                         K - 1)
        np.testing.assert_array_equal(got, ref, err_msg=f"K = {K}")
        assert K == 1 or len(np.unique(got)) > 1


def old_sample(key, task, B):
    """The sampler before the speed work (jax.random.uniform + searchsorted)."""
    T = task.T
    u = jax.random.uniform(key, (B, T + 3), dtype=task.P.dtype)
    cmu_N, cq_NxT, cP_NxN = sampler.task_cdfs(task)
    x_BxT1 = searchsorted_draw(cmu_N, u[:, : T + 1])
    tokens_BxT, query_B = x_BxT1[:, :T], x_BxT1[:, T]
    s_B = jax.vmap(searchsorted_draw)(cq_NxT[query_B], u[:, T + 1])
    xs_B = jnp.take_along_axis(tokens_BxT, s_B[:, None], axis=1)[:, 0]
    target_B = jax.vmap(searchsorted_draw)(cP_NxN[xs_B], u[:, T + 2])
    return s.Batch(tokens=tokens_BxT, query=query_B, target=target_B)


@pytest.mark.parametrize("N,T,Q", [(4, 6, 2), (16, 64, 2), (64, 200, 3), (8, 1024, 2)])
def test_sample_equals_the_previous_sampler(N, T, Q):
    task = s.make_task(jax.random.PRNGKey(N + T), s.TaskConfig(N=N, T=T, Q=Q, alpha=0.3,
                                                                q_weights="dirichlet"))
    for t in range(3):
        key = sampler.fold_in(jax.random.PRNGKey(5), t)
        got = jax.jit(lambda k: sampler.sample(k, task, 64))(key)
        ref = old_sample(jax.random.fold_in(jax.random.PRNGKey(5), t), task, 64)
        for name in ("tokens", "query", "target"):
            np.testing.assert_array_equal(np.asarray(getattr(got, name)),
                                          np.asarray(getattr(ref, name)), err_msg=name)


# --- whole runs: closed-form step against the autodiff step ---------------------------------


def run(config, grad, S=4, masked_batch=None):
    stp = make_stepper(config, grad=grad)
    keys = s.seed_keys(range(S))
    state = jax.vmap(stp.init)(keys)
    steps = config.total_steps
    B = config.phases[0].batch
    masked = masked_batch is not None
    if masked:  # every phase draws B samples, of which the first masked_batch count
        phase = {**state.settings.phase,
                 "batch": jnp.full_like(state.settings.batch, masked_batch)}
        settings = dataclasses.replace(state.settings, phase=phase)
        state = dataclasses.replace(state, settings=settings)
    adv = jax.jit(jax.vmap(stp.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4))
    state, m = adv(state, np.zeros(1, np.int32), np.full(1, steps, np.int32), B, masked)
    return state, m


@pytest.mark.parametrize("kw", [
    {},
    {"loss": "ce"},
    {"mu": "estimate", "projection_A": "simplex"},
    {"optimizer": "sgd"},
])
@pytest.mark.parametrize("grad", ["closed", "closed_dense"])
def test_training_run_closed_equals_autodiff(kw, grad):
    cfg = s.TrainConfig(task=s.TaskConfig(N=6, T=12, Q=2),
                        phases=(s.Phase(150, 8, 0.05, 0.05, 1e-3),), log_every=150, **kw)
    a, ma = run(cfg, grad)
    b, mb = run(cfg, "autodiff")
    np.testing.assert_allclose(a.params.V, b.params.V, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.params.A, b.params.A, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ma["batch_loss"], mb["batch_loss"], rtol=1e-5)
    # the runs moved: the comparison is not of two untouched starts
    assert float(jnp.abs(a.params.V - 1.0 / 6).max()) > 1e-2


def test_padded_training_run_closed_equals_autodiff():
    """A batch of 5 padded to 8 (mask): closed form and autodiff agree, and differ from 8."""
    cfg = s.TrainConfig(task=s.TaskConfig(N=5, T=6, Q=2), mu="estimate",
                        phases=(s.Phase(100, 8, 0.05, 0.05, 1e-3),), log_every=100)
    a, _ = run(cfg, "closed", masked_batch=5)
    b, _ = run(cfg, "autodiff", masked_batch=5)
    full, _ = run(cfg, "closed")
    np.testing.assert_allclose(a.params.A, b.params.A, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.params.V, b.params.V, rtol=1e-4, atol=1e-6)
    assert not np.allclose(a.params.V, full.params.V)


def test_stepper_rejects_unknown_grad():
    with pytest.raises(s.ConfigError, match="grad"):
        make_stepper(s.TrainConfig(), grad="numeric")


def test_unknown_form_is_refused():
    N, T, B = 4, 5, 3
    params = random_params(jax.random.PRNGKey(0), N, T)
    batch = random_batch(jax.random.PRNGKey(1), N, T, B)
    with pytest.raises(ValueError, match="form"):
        linear_loss_and_grad(params, batch, None, "mse", "sparse")
