"""``bits="paired"``: both words of each threefry block. Uniform draws, row layout (a padded
draw starts with the unpadded one), and a run's invariances (seed alone = seed in a batch,
padded = unpadded, jit = no jit); the default keeps jax.random's numbers and the old hashes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import scbjax as s
from scbjax.core import sampler
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim.train import make_stepper, make_train, train_many

SMALL = s.TaskConfig(N=5, T=6, Q=2)


def tiny(**kw):
    base = dict(task=SMALL, phases=(s.Phase(30, 8, 0.05, 0.05, 1e-3),), log_every=10,
                bits="paired")
    base.update(kw)
    return s.TrainConfig(**base)


def test_paired_uniforms_are_uniform_and_not_jax():
    key = jax.random.PRNGKey(7)
    T = 98  # 1000 x 101 numbers: 49.5 blocks' worth per row
    u = np.asarray(jax.jit(lambda k: sampler.paired(k, 1000, T))(key))
    assert u.shape == (1000, T + 3) and u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-4
    counts = np.bincount((u.ravel() * 50).astype(int), minlength=50)
    assert stats.chisquare(counts).pvalue > 1e-4
    H = 50  # the two words of one block: positions j and H + j, uncorrelated
    r = np.corrcoef(u[:, :49].ravel(), u[:, H:H + 49].ravel())[0, 1]
    assert abs(r) < 5 / np.sqrt(49_000)
    r = np.corrcoef(u[:, T + 1], u[:, T + 2])[0, 1]  # the last block's two words
    assert abs(r) < 5 / np.sqrt(1000)
    assert not np.allclose(u, np.asarray(jax.random.uniform(key, (1000, T + 3))))


def test_paired_rows_do_not_depend_on_the_row_count():
    key = jax.random.PRNGKey(3)
    for T in (4, 5):
        big, small = sampler.paired(key, 8, T), sampler.paired(key, 5, T)
        np.testing.assert_array_equal(np.asarray(big[:5]), np.asarray(small))
        assert len(np.unique(np.asarray(big))) == 8 * (T + 3)  # no number repeats


@pytest.mark.parametrize("N", [5, 200])  # packed draws; above COMPARE_ALL_MAX, unpacked
def test_paired_sample_draws_from_the_paired_uniforms(N):
    """The sampler's packed draws are the inverse-CDF draws of ``paired``'s numbers."""
    T, B = 7, 6
    task = s.make_task(jax.random.PRNGKey(0), s.TaskConfig(N=N, T=T, Q=2))
    key = jax.random.PRNGKey(5)
    b = jax.jit(lambda k: sampler.sample(k, task, B, bits="paired"))(key)
    u = sampler.paired(key, B, T)
    cmu, cq, cP = sampler.task_cdfs(task)
    x = np.searchsorted(np.asarray(cmu), np.asarray(u[:, :T + 1]), side="right")
    np.testing.assert_array_equal(np.asarray(b.tokens), x[:, :T])
    np.testing.assert_array_equal(np.asarray(b.query), x[:, T])
    s_B = [np.searchsorted(np.asarray(cq[k]), float(u[i, T + 1]), side="right")
           for i, k in enumerate(x[:, T])]
    xs = x[np.arange(B), s_B]
    o = [np.searchsorted(np.asarray(cP[v]), float(u[i, T + 2]), side="right")
         for i, v in enumerate(xs)]
    np.testing.assert_array_equal(np.asarray(b.target), o)


def test_sample_refuses_unknown_bits():
    task = s.make_task(jax.random.PRNGKey(0), SMALL)
    with pytest.raises(ValueError, match="bits"):
        sampler.sample(jax.random.PRNGKey(1), task, 4, bits="halved")
    with pytest.raises(s.ConfigError, match="bits"):
        s.TrainConfig(bits="halved").validate()


def test_paired_seed_alone_equals_seed_in_batch_and_jit_equals_no_jit():
    cfg = tiny()
    keys = s.seed_keys(range(4))
    many = train_many(cfg, keys)
    alone = train_many(cfg, keys[2:3])
    np.testing.assert_allclose(alone.params.V, many.params.V[2:3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.params.A, many.params.A[2:3], rtol=1e-5, atol=1e-6)
    train = make_train(dataclasses.replace(cfg, phases=(s.Phase(3, 4, 0.05, 0.05, 1e-3),)))
    with jax.disable_jit():
        eager = train(keys[1])
    jitted = jax.jit(train)(keys[1])
    np.testing.assert_allclose(eager.params.V, jitted.params.V, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(eager.params.A, jitted.params.A, rtol=1e-4, atol=1e-6)
    jax_bits = train_many(dataclasses.replace(cfg, bits="jax"), keys[2:3])
    assert not np.allclose(jax_bits.params.V, alone.params.V)  # the option changes the draws


def test_paired_padded_equals_unpadded():
    """Batch 5 drawn padded to 8 (masked) is the run of batch 5."""
    cfg = tiny(phases=(s.Phase(30, 5, 0.05, 0.05, 1e-3),), mu="estimate")

    def run(max_batch, masked):
        stp = make_stepper(cfg)
        state = jax.vmap(stp.init)(s.seed_keys(range(2)))
        adv = jax.jit(jax.vmap(stp.advance, in_axes=(0, None, None, None, None)),
                      static_argnums=(3, 4))
        return adv(state, np.zeros(1, np.int32), np.full(1, 30, np.int32), max_batch,
                   masked)[0].params

    full, padded = run(5, False), run(8, True)
    np.testing.assert_allclose(padded.V, full.V, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(padded.A, full.A, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(full.V - 1.0 / 5).max()) > 1e-3  # the runs moved


def test_default_bits_keep_the_hash_paired_changes_it():
    """The key of main before this option (tests/optim/test_registry.py holds it too)."""
    base = s.TrainConfig(task=s.TaskConfig(N=4, T=6, Q=2), phases=(s.Phase(40, 8, 0.05, 0.05),),
                         optimizer="sgd", log_every=20)
    assert RunSpec(base, grid(range(2))).key() == "cc377948e6e049e7"
    assert RunSpec(dataclasses.replace(base, bits="paired"), grid(range(2))).key() != \
        "cc377948e6e049e7"
