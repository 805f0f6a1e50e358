"""``sums.gather_add``: the naive gather + scatter-add, bit for bit, alone and under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scbjax.core import sums


def naive(src, gidx, sidx, size):
    out = np.zeros(size, np.float32)
    for g, s_ in zip(np.asarray(gidx), np.asarray(sidx)):  # in the order of k, float32 adds
        out[s_] = np.float32(out[s_] + np.asarray(src)[g])
    return out


def case(key, M=40, K=300, size=12):
    k1, k2, k3 = jax.random.split(key, 3)
    src = jax.random.normal(k1, (M,))
    return (src, jax.random.randint(k2, (K,), 0, M), jax.random.randint(k3, (K,), 0, size))


def test_gather_add_is_the_sequential_sum():
    src, g, s_ = case(jax.random.PRNGKey(0))
    got = jax.jit(lambda a, b, c: sums.gather_add(a, b, c, 12))(src, g, s_)
    np.testing.assert_array_equal(np.asarray(got), naive(src, g, s_, 12))


@pytest.mark.parametrize("batched", [(1, 1, 1), (1, 0, 0), (0, 1, 1), (1, 1, 0), (0, 0, 1)])
def test_a_vmapped_batch_is_each_call_alone(batched):
    """Any mix of batched and shared arguments, two vmaps deep, equals the calls one by one."""
    cases = [[case(jax.random.PRNGKey(3 * i + j)) for j in range(3)] for i in range(2)]
    args = [jnp.stack([jnp.stack([c[a] for c in row]) for row in cases]) if b
            else cases[0][0][a] for a, b in enumerate(batched)]
    axes = tuple(0 if b else None for b in batched)
    f = lambda a, b, c: sums.gather_add(a, b, c, 12)  # noqa: E731
    got = jax.jit(jax.vmap(jax.vmap(f, in_axes=axes), in_axes=axes))(*args)
    assert got.shape == (2, 3, 12)
    for i in range(2):
        for j in range(3):
            one = [x[i, j] if b else x for x, b in zip(args, batched)]
            np.testing.assert_array_equal(np.asarray(got[i, j]), naive(*one, 12))


def test_flat_indices_that_would_overflow_fall_back_to_one_run_at_a_time(monkeypatch):
    monkeypatch.setattr(sums, "_I32_MAX", 50)
    sums._gather_add.cache_clear()
    try:
        cs = [case(jax.random.PRNGKey(i)) for i in range(3)]
        args = [jnp.stack([c[a] for c in cs]) for a in range(3)]
        got = jax.jit(jax.vmap(lambda a, b, c: sums.gather_add(a, b, c, 12)))(*args)
        for i, c in enumerate(cs):
            np.testing.assert_array_equal(np.asarray(got[i]), naive(*c, 12))
    finally:
        sums._gather_add.cache_clear()
