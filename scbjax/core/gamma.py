"""``jax.random.loggamma`` and ``jax.random.dirichlet``, bit for bit, compiled once per size
bucket when called eagerly.

jax compiles its gamma sampler (Marsaglia-Tsang, two nested while loops) for every shape it
draws: about 1.5 s on a 2-core CPU for each task size, start shape and test that calls it
eagerly (docs/findings.md, section 3.1). Called eagerly with a raw threefry key (``threefry.
fused_ok``), ``loggamma`` draws the same numbers from one compiled program per power-of-two
count of draws: the n draws of a shape take the first n keys of the bucket's m, since
``split(key, m)[:n] == split(key, n)`` for partitionable threefry (its counters are
positional), and each draw is jax's ``_gamma_one`` with its log-space boost, op for op, on
jax.random's own split, normal, uniform and exponential (tests/core/test_gamma.py compares
them bit for bit). Inside a trace (jit, vmap) both are
jax.random's own: an inlined program gains nothing from a bucket.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from scbjax.core import threefry

Array = jax.Array
_F32 = jnp.float32
_MIN_BUCKET = 64


def _gamma_one(key: Array, alpha: Array) -> Array:
    """One log-gamma draw: jax's ``random._gamma_one(key, alpha, log_space=True)``, op for op."""
    zero, one = _F32(0), _F32(1)
    boost = lax.ge(alpha, one)
    alpha_orig = alpha
    alpha = lax.select(boost, alpha, lax.add(alpha, one))
    d = lax.sub(alpha, _F32(1.0 / 3.0))
    c = lax.div(_F32(1.0 / 3.0), lax.sqrt(d))

    def reject(s):
        _, X, V, U = s
        return lax.bitwise_and(
            lax.ge(U, lax.sub(one, lax.mul(_F32(0.0331), lax.mul(X, X)))),
            lax.ge(lax.log(U), lax.add(lax.mul(X, _F32(0.5)),
                                       lax.mul(d, lax.add(lax.sub(one, V), lax.log(V))))))

    def propose(s):
        def next_x(kxv):
            k = jax.random.split(kxv[0], 2)
            x = jax.random.normal(k[1], (), _F32)
            return k[0], x, lax.add(one, lax.mul(x, c))

        k = jax.random.split(s[0], 3)
        _, x, v = lax.while_loop(lambda kxv: lax.le(kxv[2], zero), next_x,
                                 (k[1], zero, _F32(-1)))
        return k[0], lax.mul(x, x), lax.mul(lax.mul(v, v), v), jax.random.uniform(k[2], (), _F32)

    k = jax.random.split(key, 2)
    _, _, V, _ = lax.while_loop(reject, propose, (k[0], zero, one, _F32(2)))
    log_u = lax.neg(jax.random.exponential(k[1], (), _F32))
    log_boost = lax.select(boost | (log_u == 0), zero, lax.mul(log_u, lax.div(one, alpha_orig)))
    return lax.add(lax.add(lax.log(d), lax.log(V)), log_boost)


@jax.jit
def _bucket(key: Array, alpha_M: Array) -> Array:
    """The M draws of ``loggamma(key, alpha_M)`` (one compile per M)."""
    return jax.vmap(_gamma_one)(jax.random.split(key, alpha_M.shape[0]), alpha_M)


def _eager(key, a) -> bool:
    """Whether the bucketed draw applies: concrete inputs, a raw threefry key, float32."""
    traced = any(isinstance(x, jax.core.Tracer) for x in (key, a))
    return not traced and threefry.fused_ok(key) and not jax.config.jax_enable_x64


def loggamma(key: Array, a, shape: tuple[int, ...]) -> Array:
    """``jax.random.loggamma(key, a, shape)`` (float32), bit for bit (see the module)."""
    shape = tuple(int(s) for s in shape)
    if not _eager(key, a):
        return jax.random.loggamma(key, a, shape)
    n = math.prod(shape)
    a_n = np.broadcast_to(np.asarray(a, np.float32), shape).reshape(-1)
    m = max(_MIN_BUCKET, 1 << max(n - 1, 0).bit_length())
    a_m = np.concatenate([a_n, np.ones(m - n, np.float32)])
    out = np.asarray(_bucket(jnp.asarray(key), jnp.asarray(a_m)))
    return jnp.asarray(out[:n].reshape(shape))


def dirichlet(key: Array, alpha_K, shape: tuple[int, ...] = ()) -> Array:
    """``jax.random.dirichlet(key, alpha_K, shape)`` (float32), bit for bit: the softmax of
    ``loggamma`` over the last axis."""
    if not _eager(key, alpha_K):
        return jax.random.dirichlet(key, alpha_K, shape)
    alpha_K = np.asarray(alpha_K, np.float32)
    return jax.nn.softmax(loggamma(key, alpha_K, tuple(shape) + alpha_K.shape[-1:]), -1)


__all__ = ["loggamma", "dirichlet"]
