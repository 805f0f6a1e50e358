"""Reduced model against the embedding-level transformer; softmax variant; jit and vmap."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scbjax as s
from scbjax.core.model import (ATTENTION, LINEAR, SOFTMAX, Attention, embed, random_params,
                               resolve)


def random_example(key, N, T):
    kV, kA, kx, kq = jax.random.split(key, 4)
    params = s.Params(V=jax.random.normal(kV, (N, N)), A=jax.random.normal(kA, (T, N)))
    tokens = jax.random.randint(kx, (T,), 0, N)
    query = jax.random.randint(kq, (), 0, N)
    return params, tokens, query


@functools.partial(jax.jit, static_argnums=(1, 2))
def _both_forms(key, N, T, B=16):
    """Random (V, A) entries in [-2, 2], B random (tokens, query); reduced and embedding-level
    outputs
    (everything in one compiled function: one compile per (N, T))."""
    kV, kA, kx, kq = jax.random.split(key, 4)
    # uniform, not normal, entries: the same test, a much cheaper compile
    params = s.Params(V=jax.random.uniform(kV, (N, N), minval=-2.0, maxval=2.0),
                      A=jax.random.uniform(kA, (T, N), minval=-2.0, maxval=2.0))
    tokens = jax.random.randint(kx, (B, T), 0, N)
    query = jax.random.randint(kq, (B,), 0, N)
    W_V, W_KQ = s.embed_params(params)
    red = jax.vmap(s.forward, in_axes=(None, 0, 0))(params, tokens, query)
    emb = jax.vmap(s.forward_embedded, in_axes=(None, None, 0, 0))(W_V, W_KQ, tokens, query)
    return red, emb, W_V, W_KQ


@settings(max_examples=8, deadline=None)
@given(N=st.integers(2, 9), T=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_reduced_equals_embedding_level(N, T, seed):
    """f(x) = V X A e_k equals W_V sum_t z_t (z_t^T W_KQ z_{T+1}) with the embedded weights, on
    random (V, A) and 16 random (tokens, query) per (N, T): rtol = atol = 1e-5."""
    red, emb, W_V, W_KQ = _both_forms(jax.random.PRNGKey(seed), N, T)
    d = N + T + 1
    assert W_V.shape == (N, d) and W_KQ.shape == (d, d)
    # only the token block of W_V and the position-key x token-query block of W_KQ are nonzero
    assert np.count_nonzero(np.asarray(W_V)[:, N:]) == 0
    mask = np.ones((d, d), bool)
    mask[N:N + T, :N] = False
    assert np.count_nonzero(np.asarray(W_KQ)[mask]) == 0
    assert red.shape == (16, N)
    np.testing.assert_allclose(red, emb, rtol=1e-5, atol=1e-5)


def test_embedding_has_token_and_position_one_hots():
    Z = embed(jnp.asarray([2, 0, 2]), jnp.asarray(1), 3)
    assert Z.shape == (4, 3 + 4)
    np.testing.assert_array_equal(Z[:, :3], np.eye(3)[[2, 0, 2, 1]])
    np.testing.assert_array_equal(Z[:, 3:], np.eye(4))


def test_forward_by_hand():
    params, tokens, query = random_example(jax.random.PRNGKey(0), 4, 6)
    V, A = np.asarray(params.V), np.asarray(params.A)
    X = np.eye(4)[np.asarray(tokens)].T  # N x T one-hot columns
    expect = V @ X @ A[:, int(query)]
    np.testing.assert_allclose(s.forward(params, tokens, query), expect, rtol=1e-5, atol=1e-6)


def test_ground_truth_predicts_conditional_mean():
    task = s.make_task(jax.random.PRNGKey(0), N=5, T=4, Q=2)
    tokens, query = jnp.asarray([0, 3, 3, 1]), jnp.asarray(2)
    f = s.forward(s.Params(V=task.P, A=task.q), tokens, query)
    np.testing.assert_allclose(float(f.sum()), 1.0, rtol=1e-5)  # a distribution over x_o
    assert float(f.min()) >= 0


def test_softmax_attention_normalised_and_matches_linear_at_zero_logits():
    key = jax.random.PRNGKey(1)
    W = jax.random.normal(key, (7, 4)) * 3
    att = s.attention(W, "softmax")
    assert att.shape == (7, 4)
    assert float(att.min()) >= 0
    np.testing.assert_allclose(att.sum(0), 1.0, rtol=1e-5)
    params, tokens, query = random_example(key, 4, 7)
    soft = s.Params(V=params.V, A=jnp.zeros((7, 4)))
    lin = s.Params(V=params.V, A=jnp.full((7, 4), 1.0 / 7))
    out = s.forward(soft, tokens, query, "softmax")
    assert out.shape == (4,)
    np.testing.assert_allclose(out, s.forward(lin, tokens, query), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s.forward(s.Params(V=params.V, A=W), tokens, query, "softmax"),
                               s.forward(s.Params(V=params.V, A=att), tokens, query),
                               rtol=1e-5, atol=1e-6)


class TestForwardVariants(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_jit_and_no_jit_agree(self):
        params, tokens, query = random_example(jax.random.PRNGKey(2), 5, 8)
        f = self.variant(s.forward, static_argnums=3)
        np.testing.assert_allclose(f(params, tokens, query, "linear"),
                                   s.forward(params, tokens, query), rtol=1e-6)


def test_vmap_equals_loop():
    params, _, _ = random_example(jax.random.PRNGKey(3), 5, 8)
    tokens = jax.random.randint(jax.random.PRNGKey(4), (6, 8), 0, 5)
    queries = jax.random.randint(jax.random.PRNGKey(5), (6,), 0, 5)
    batched = jax.vmap(s.forward, in_axes=(None, 0, 0))(params, tokens, queries)
    for i in range(6):
        np.testing.assert_allclose(batched[i], s.forward(params, tokens[i], queries[i]),
                                   rtol=1e-5, atol=1e-6)


def test_initialisations():
    u = s.uniform_params(4, 6)
    np.testing.assert_allclose(u.V, 0.25)
    np.testing.assert_allclose(u.A, 1 / 6)
    r = random_params(jax.random.PRNGKey(0), 4, 6, scale=0.5)
    np.testing.assert_allclose(r.V.sum(0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(r.A.sum(0), 1.0, rtol=1e-5)
    assert not np.allclose(r.V, 0.25)


def test_resolve_gives_the_attention_objects():
    assert resolve("linear") is LINEAR and resolve("softmax") is SOFTMAX
    assert resolve(SOFTMAX) is SOFTMAX
    assert ATTENTION == {"linear": LINEAR, "softmax": SOFTMAX}
    assert all(isinstance(a, Attention) and a.name == n for n, a in ATTENTION.items())
    assert LINEAR.closed_form and not SOFTMAX.closed_form
    assert len({LINEAR, SOFTMAX, resolve("linear")}) == 2  # hashable: a static jit argument
    assert s.TrainConfig.__dataclass_fields__["model"].default in ATTENTION


@pytest.mark.parametrize("name", ["", "Linear", "relu", None, 3])
def test_unknown_model_is_a_config_error_naming_model(name):
    with pytest.raises(s.ConfigError) as e:
        resolve(name)
    assert e.value.field == "model" and "'linear', 'softmax'" in str(e.value)
    with pytest.raises(s.ConfigError):
        s.attention(jnp.zeros((3, 2)), name)


@pytest.mark.parametrize("name", ["linear", "softmax"])
def test_string_and_object_give_identical_outputs(name):
    """forward, measure, the losses and the start values: bitwise the same for the name and
    its object, eagerly and under jit (the object as a static argument)."""
    obj = ATTENTION[name]
    task = s.make_task(jax.random.PRNGKey(7), N=5, T=6, Q=2)
    params, tokens, query = random_example(jax.random.PRNGKey(8), 5, 6)
    batch = s.sample(jax.random.PRNGKey(9), task, 16)
    pairs = [
        (s.forward(params, tokens, query, name), s.forward(params, tokens, query, obj)),
        (jax.jit(s.forward, static_argnums=3)(params, tokens, query, name),
         jax.jit(s.forward, static_argnums=3)(params, tokens, query, obj)),
        (s.measure(params, task, name), s.measure(params, task, obj)),
        (jax.jit(s.measure, static_argnums=2)(params, task, name),
         jax.jit(s.measure, static_argnums=2)(params, task, obj)),
        (s.attention(params.A, name), obj.attention(params.A)),
        (s.population_loss(params, task, name), s.population_loss(params, task, obj)),
        (s.batch_loss(params, batch, None, name), s.batch_loss(params, batch, None, obj)),
        (s.uniform_params(5, 6, name), s.uniform_params(5, 6, obj)),
        (random_params(jax.random.PRNGKey(3), 5, 6, 0.5, name),
         random_params(jax.random.PRNGKey(3), 5, 6, 0.5, obj)),
    ]
    for by_name, by_obj in pairs:
        a, b = jax.tree.leaves(by_name), jax.tree.leaves(by_obj)
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
