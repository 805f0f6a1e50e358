"""The JAX backend computes the pattern our batch loss relies on correctly (jax-ml/jax#39103:
jaxlib 0.10.2 on CPU got a vmapped mat-vec followed by a reduction wrong; scbjax guards it)."""

import jax
import jax.numpy as jnp
import numpy as np

import scbjax  # noqa: F401  (importing scbjax installs the guard before the backend starts)


def test_vmapped_matvec_then_reduce_with_constant_operands():
    N, T, B = 6, 10, 1000
    V = jnp.full((N, N), 1.0 / N)
    A = jnp.full((T, N), 1.0 / T)
    tokens = jax.random.randint(jax.random.PRNGKey(0), (B, T), 0, N)
    query = jax.random.randint(jax.random.PRNGKey(1), (B,), 0, N)

    def fwd(tk, q):
        return V @ (jax.nn.one_hot(tk, N, dtype=A.dtype).T @ A[:, q])

    total = jax.jit(lambda tk, q: jax.vmap(fwd)(tk, q).sum(-1))(tokens, query)
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
