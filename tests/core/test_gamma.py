"""The bucketed eager gamma draws are jax.random's bit for bit, one compile per bucket."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scbjax.core import gamma


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# alpha < 1 takes the boost (log-space) branch, 1e-3 its underflow guard; 65 draws pad to 128
@pytest.mark.parametrize("shape,alpha", [((16, 16), 1.0), ((13, 5), 0.3), ((5, 13), 1e-3),
                                         ((65,), 2.5), ((1,), 1.0)])
def test_loggamma_and_dirichlet_are_jax_randoms_bit_for_bit(shape, alpha):
    key = jax.random.PRNGKey(sum(shape))
    a_K = jnp.full(shape[-1:], alpha, jnp.float32)
    assert same_bits(gamma.loggamma(key, a_K, shape), jax.random.loggamma(key, a_K, shape))
    if len(shape) == 2:
        assert same_bits(gamma.dirichlet(key, a_K, shape[:1]),
                         jax.random.dirichlet(key, a_K, shape[:1]))


def test_one_compile_per_bucket_and_jax_inside_a_trace():
    """Shapes of 100 and 120 draws share the bucket of 128; a traced call is jax's own."""
    key = jax.random.PRNGKey(7)
    a = jnp.full((10,), 0.7, jnp.float32)
    x = gamma.loggamma(key, a, (10, 10))
    n0 = gamma._bucket._cache_size()
    y = gamma.loggamma(key, a, (12, 10))
    assert gamma._bucket._cache_size() == n0  # the same compiled bucket
    assert same_bits(y[:10], x)  # the first 100 keys of 120 are the keys of 100
    traced = jax.jit(lambda k: gamma.loggamma(k, a, (12, 10)))(key)
    assert traced.shape == (12, 10) and bool(jnp.all(jnp.isfinite(traced)))
    assert gamma._bucket._cache_size() == n0  # the trace did not use the bucket
    assert same_bits(traced, jax.jit(lambda k: jax.random.loggamma(k, a, (12, 10)))(key))


def test_a_typed_key_falls_back_to_jax_random():
    key = jax.random.key(3)
    a = jnp.ones((4,), jnp.float32)
    assert same_bits(gamma.loggamma(key, a, (3, 4)), jax.random.loggamma(key, a, (3, 4)))
