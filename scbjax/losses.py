"""Batch MSE, cross-entropy, and the closed-form population loss of the spec."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scbjax.model import Params, attention, forward
from scbjax.sampler import Batch
from scbjax.task import Task

Array = jax.Array


def sample_losses(params: Params, batch: Batch, model: str = "linear", loss: str = "mse") -> Array:
    """Per-sample loss (B): ``0.5 ||e_{x_o} - f(x)||^2`` (mse) or CE with f(x) as logits."""
    N = params.V.shape[0]
    f_BxN = jax.vmap(forward, in_axes=(None, 0, 0, None))(params, batch.tokens, batch.query, model)
    if loss == "mse":
        y_BxN = jax.nn.one_hot(batch.target, N, dtype=f_BxN.dtype)
        return 0.5 * jnp.sum((y_BxN - f_BxN) ** 2, axis=-1)
    if loss == "ce":
        logp_BxN = jax.nn.log_softmax(f_BxN, axis=-1)
        return -jnp.take_along_axis(logp_BxN, batch.target[:, None], axis=1)[:, 0]
    raise ValueError(f"loss: unknown {loss!r}")


def batch_loss(params: Params, batch: Batch, mask: Array | None = None,
               model: str = "linear", loss: str = "mse") -> Array:
    """Mean of the per-sample losses (over the samples where ``mask`` is True)."""
    l_B = sample_losses(params, batch, model, loss)
    if mask is None:
        return l_B.mean()
    w_B = mask.astype(l_B.dtype)
    return jnp.sum(w_B * l_B) / jnp.maximum(w_B.sum(), 1.0)


def population_loss(params: Params, task: Task, model: str = "linear") -> Array:
    """Exact E[0.5 ||e_{x_o} - V X a_k||^2] (spec closed form), O(N^2 + N T).

    With D = diag(mu) - mu mu^T and M(u, w) = (u.w) D + (1^T u)(1^T w) mu mu^T:
    L = 0.5 (1 - 2 sum_k mu_k tr(P M(q_k, a_k) V^T) + sum_k mu_k tr(V M(a_k, a_k) V^T)).
    """
    V, P, mu, q = params.V, task.P, task.mu, task.q
    A = attention(params.A, model)
    Vmu, Pmu = V @ mu, P @ mu
    trVDV = jnp.sum(V * V * mu[None, :]) - Vmu @ Vmu  # tr(V D V^T)
    trPDV = jnp.sum(P * V * mu[None, :]) - Pmu @ Vmu  # tr(P D V^T)
    sa, sq = A.sum(0), q.sum(0)
    cross = (mu @ jnp.sum(q * A, 0)) * trPDV + (mu @ (sq * sa)) * (Pmu @ Vmu)
    quad = (mu @ jnp.sum(A * A, 0)) * trVDV + (mu @ (sa * sa)) * (Vmu @ Vmu)
    return 0.5 * (1.0 - 2.0 * cross + quad)


def bayes_risk(task: Task) -> Array:
    """Population loss of the ground truth V = P, A = q."""
    return population_loss(Params(V=task.P, A=task.q), task)


def excess_loss(params: Params, task: Task, model: str = "linear") -> Array:
    """L(V, A) - L(P, q) >= 0."""
    return population_loss(params, task, model) - bayes_risk(task)


population_grad = jax.grad(population_loss)
