"""One-layer linear transformer in reduced form, its embedding-level form, and softmax variant.

The attention model (linear or softmax) is an ``Attention`` object (``LINEAR``, ``SOFTMAX``;
``resolve`` maps a name to it); functions take it, or its name, as ``model``.

Reduced form [recon]: ``f(x) = V X A e_k = V h`` with ``h = sum_t A[t, k] e_{x_t}``.
Written for one example; ``jax.vmap`` outside.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from scbjax.core import gamma, threefry
from scbjax.util.errors import ConfigError

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Params:
    """``V`` N x N value matrix; ``A`` T x N attention (linear) or attention logits (softmax)."""

    V: Array
    A: Array


@dataclasses.dataclass(frozen=True)
class Attention:
    """An attention model: how the parameter A becomes the attention weights, and the A of the
    start values. Static (hashable, no arrays): under jit pass it as a closure or a static
    argument. ``closed_form``: the batch gradient of the model has a closed form
    (``losses.linear_loss_and_grad``)."""

    name: str
    closed_form: ClassVar[bool] = False

    def attention(self, A_TxN: Array) -> Array:
        """The attention weights (T x N) of the parameter A."""
        raise NotImplementedError

    def uniform(self, N: int, T: int) -> Array:
        """A at the uniform start: the attention 11^T/T."""
        raise NotImplementedError

    def random(self, key: Array, N: int, T: int, scale: float) -> Array:
        """A at a random start of scale ``scale``."""
        raise NotImplementedError


class LinearAttention(Attention):
    """Linear attention: A is the attention matrix."""

    closed_form: ClassVar[bool] = True

    def attention(self, A_TxN: Array) -> Array:
        return A_TxN

    def uniform(self, N: int, T: int) -> Array:
        return jnp.full((T, N), 1.0 / T)

    def random(self, key: Array, N: int, T: int, scale: float) -> Array:
        """Columns from Dirichlet(1), mixed with uniform by (1 - scale). [recon]"""
        A = gamma.dirichlet(key, jnp.ones(T), shape=(N,)).T
        return scale * A + (1.0 - scale) / T


class SoftmaxAttention(Attention):
    """Softmax attention over positions: A holds the logits, the weights are their column
    softmax."""

    def attention(self, A_TxN: Array) -> Array:
        return jax.nn.softmax(A_TxN, axis=0)

    def uniform(self, N: int, T: int) -> Array:
        """Zero logits."""
        return jnp.zeros((T, N))

    def random(self, key: Array, N: int, T: int, scale: float) -> Array:
        """Standard normal logits times ``scale``."""
        return scale * jax.random.normal(key, (T, N))


LINEAR = LinearAttention("linear")
SOFTMAX = SoftmaxAttention("softmax")
ATTENTION = {a.name: a for a in (LINEAR, SOFTMAX)}


def resolve(model: Attention | str) -> Attention:
    """The attention model of a name in ``ATTENTION`` (an ``Attention`` is returned as is)."""
    if isinstance(model, Attention):
        return model
    if not (isinstance(model, str) and model in ATTENTION):
        raise ConfigError("model", f"must be one of {', '.join(repr(n) for n in ATTENTION)}; "
                          f"got {model!r}")
    return ATTENTION[model]


def attention(A_TxN: Array, model: Attention | str = LINEAR) -> Array:
    """Effective attention matrix: A itself (linear) or column softmax of the logits.
    ``model``: an ``Attention`` or its name."""
    return resolve(model).attention(A_TxN)


def features(A_TxN: Array, tokens_T: Array, query: Array, N: int) -> Array:
    """h = X a_k = sum_t a_k[t] e_{x_t} (N)."""
    return jnp.zeros(N, A_TxN.dtype).at[tokens_T].add(A_TxN[:, query])


def forward(params: Params, tokens_T: Array, query: Array,
            model: Attention | str = LINEAR) -> Array:
    """Prediction f(x) in R^N for one example (tokens T ints, query int). ``model``: an
    ``Attention`` or its name."""
    N = params.V.shape[0]
    h_N = features(resolve(model).attention(params.A), tokens_T, query, N)
    return params.V @ h_N


def uniform_params(N: int, T: int, model: Attention | str = LINEAR) -> Params:
    """Uniform start V = 11^T/N, A = 11^T/T (softmax: zero logits, the same attention).
    ``model``: an ``Attention`` or its name."""
    return Params(V=jnp.full((N, N), 1.0 / N), A=resolve(model).uniform(N, T))


def random_params(key: Array, N: int, T: int, scale: float = 1.0,
                  model: Attention | str = LINEAR) -> Params:
    """Random start: columns of V from Dirichlet(1), mixed with uniform by (1 - scale); A from
    ``model.random``. [recon] ``model``: an ``Attention`` or its name."""
    kV, kA = threefry.split(key)  # jax.random.split's bits
    V = gamma.dirichlet(kV, jnp.ones(N), shape=(N,)).T
    A = resolve(model).random(kA, N, T, scale)
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
