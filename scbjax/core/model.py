"""One-layer linear transformer in reduced form, its embedding-level form, and softmax variant.

Reduced form [recon]: ``f(x) = V X A e_k = V h`` with ``h = sum_t A[t, k] e_{x_t}``.
Written for one example; ``jax.vmap`` outside.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Params:
    """``V`` N x N value matrix; ``A`` T x N attention (linear) or attention logits (softmax)."""

    V: Array
    A: Array


def attention(A_TxN: Array, model: str = "linear") -> Array:
    """Effective attention matrix: A itself (linear) or column softmax of the logits."""
    if model == "linear":
        return A_TxN
    if model == "softmax":
        return jax.nn.softmax(A_TxN, axis=0)
    raise ValueError(f"model: unknown {model!r}")


def features(A_TxN: Array, tokens_T: Array, query: Array, N: int) -> Array:
    """h = X a_k = sum_t a_k[t] e_{x_t} (N)."""
    return jnp.zeros(N, A_TxN.dtype).at[tokens_T].add(A_TxN[:, query])


def forward(params: Params, tokens_T: Array, query: Array, model: str = "linear") -> Array:
    """Prediction f(x) in R^N for one example (tokens T ints, query int)."""
    N = params.V.shape[0]
    h_N = features(attention(params.A, model), tokens_T, query, N)
    return params.V @ h_N


def uniform_params(N: int, T: int, model: str = "linear") -> Params:
    """Uniform start V = 11^T/N, A = 11^T/T (softmax: zero logits, the same attention)."""
    A = jnp.full((T, N), 1.0 / T) if model == "linear" else jnp.zeros((T, N))
    return Params(V=jnp.full((N, N), 1.0 / N), A=A)


def random_params(key: Array, N: int, T: int, scale: float = 1.0, model: str = "linear") -> Params:
    """Random start: columns from Dirichlet(1), mixed with uniform by (1 - scale). [recon]"""
    kV, kA = jax.random.split(key)
    V = jax.random.dirichlet(kV, jnp.ones(N), shape=(N,)).T
    if model == "linear":
        A = jax.random.dirichlet(kA, jnp.ones(T), shape=(N,)).T
        A = scale * A + (1.0 - scale) / T
    else:
        A = scale * jax.random.normal(kA, (T, N))
    return Params(V=scale * V + (1.0 - scale) / N, A=A)


# --- Embedding-level form: z_t = [e_{x_t}; e_t] in R^{N + T + 1} -----------------------------


def embed(tokens_T: Array, query: Array, N: int) -> Array:
    """Z: (T + 1) x (N + T + 1) rows z_t = [one-hot token; one-hot position]; last row the query."""
    T = tokens_T.shape[0]
    x_T1 = jnp.concatenate([tokens_T, query[None]])
    return jnp.concatenate([jax.nn.one_hot(x_T1, N), jnp.eye(T + 1)], axis=1)


def embed_params(params: Params) -> tuple[Array, Array]:
    """(W_V: N x d, W_KQ: d x d) whose only nonzero blocks are V and A (d = N + T + 1)."""
    T, N = params.A.shape
    d = N + T + 1
    W_V = jnp.zeros((N, d)).at[:, :N].set(params.V)
    W_KQ = jnp.zeros((d, d)).at[N : N + T, :N].set(params.A)  # position-key x token-query
    return W_V, W_KQ


def forward_embedded(W_V: Array, W_KQ: Array, tokens_T: Array, query: Array) -> Array:
    """Linear attention: W_V sum_{t<=T} z_t (z_t^T W_KQ z_{T+1})."""
    N = W_V.shape[0]
    Z = embed(tokens_T, query, N)
    ctx, zq = Z[:-1], Z[-1]
    scores_T = ctx @ (W_KQ @ zq)
    return W_V @ (ctx.T @ scores_T)
