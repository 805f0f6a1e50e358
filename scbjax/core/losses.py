"""Batch MSE, cross-entropy, and the closed-form population loss of the spec."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scbjax.core.model import LINEAR, Attention, Params, forward, resolve
from scbjax.core.sampler import Batch
from scbjax.core.sums import gather_add
from scbjax.core.task import Task

Array = jax.Array


def sample_losses(params: Params, batch: Batch, model: Attention | str = LINEAR,
                  loss: str = "mse") -> Array:
    """Per-sample loss (B): ``0.5 ||e_{x_o} - f(x)||^2`` (mse) or CE with f(x) as logits.
    ``model`` (here and below): an ``Attention`` or its name."""
    N = params.V.shape[0]
    model = resolve(model)
    f_BxN = jax.vmap(forward, in_axes=(None, 0, 0, None))(params, batch.tokens, batch.query, model)
    if loss == "mse":
        y_BxN = jax.nn.one_hot(batch.target, N, dtype=f_BxN.dtype)
        return 0.5 * jnp.sum((y_BxN - f_BxN) ** 2, axis=-1)
    if loss == "ce":
        logp_BxN = jax.nn.log_softmax(f_BxN, axis=-1)
        return -jnp.take_along_axis(logp_BxN, batch.target[:, None], axis=1)[:, 0]
    raise ValueError(f"loss: unknown {loss!r}")


def batch_loss(params: Params, batch: Batch, mask: Array | None = None,
               model: Attention | str = LINEAR, loss: str = "mse") -> Array:
    """Mean of the per-sample losses (over the samples where ``mask`` is True)."""
    l_B = sample_losses(params, batch, resolve(model), loss)
    if mask is None:
        return l_B.mean()
    w_B = mask.astype(l_B.dtype)
    return jnp.sum(w_B * l_B) / jnp.maximum(w_B.sum(), 1.0)


def population_loss(params: Params, task: Task, model: Attention | str = LINEAR) -> Array:
    """Exact E[0.5 ||e_{x_o} - V X a_k||^2] (spec closed form), O(N^2 + N T).

    With D = diag(mu) - mu mu^T and M(u, w) = (u.w) D + (1^T u)(1^T w) mu mu^T:
    L = 0.5 (1 - 2 sum_k mu_k tr(P M(q_k, a_k) V^T) + sum_k mu_k tr(V M(a_k, a_k) V^T)).
    """
    V, P, mu, q = params.V, task.P, task.mu, task.q
    A = resolve(model).attention(params.A)
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


def excess_loss(params: Params, task: Task, model: Attention | str = LINEAR) -> Array:
    """L(V, A) - L(P, q) >= 0."""
    return population_loss(params, task, resolve(model)) - bayes_risk(task)


population_grad = jax.grad(population_loss)


# --- Closed-form batch loss and gradient of the linear model -------------------------------
#
# The features and their gradient as scatter / gather (or dense one-hot sums, ``form``), and
# G_V as a sum of B outer products for small B: the choices and their timings are in
# docs/findings.md (section 3.3).

_OUTER_MAX_B = 16  # up to this batch, G_V = sum_b r_b h_b^T unrolled; above it, a matmul


def _weights(mask: Array | None, B: int, dtype) -> Array:
    """Per-sample weights w_B of the batch mean: 1/B, or mask / max(#unmasked, 1)."""
    if mask is None:
        return jnp.full((B,), 1.0 / B, dtype)
    m_B = mask.astype(dtype)
    return m_B / jnp.maximum(m_B.sum(), 1.0)


FORMS = ("scatter", "dense")


def linear_loss_and_grad(params: Params, batch: Batch, mask: Array | None = None,
                         loss: str = "mse", form: str = "scatter") -> tuple[Array, Params]:
    """``jax.value_and_grad(batch_loss)`` of the linear model, in closed form.

    ``form``: the two sums over tokens, h and G_A, as scatter-adds ("scatter") or as sums over
    the one-hot of the tokens and queries ("dense", B x T x N per example); the same numbers up
    to float rounding (which is faster where: docs/findings.md, section 3.3).

    h_b = sum_t A[t, k_b] e_{x_bt}, f_b = V h_b, residual r_b = f_b - e_{y_b} (mse) or
    softmax(f_b) - e_{y_b} (ce); with w_b the weights of the (masked) batch mean:
    G_V = sum_b w_b r_b h_b^T and G_A[t, k] = sum_b w_b [k == k_b] (V^T r_b)[x_bt]."""
    V, A = params.V, params.A
    N = V.shape[0]
    tokens_BxT, query_B, target_B = batch.tokens, batch.query, batch.target
    B, T = tokens_BxT.shape
    dt = V.dtype
    pib = "promise_in_bounds"  # sampled tokens lie in [0, N): no bounds checks
    w_B = _weights(mask, B, dt)
    if form not in FORMS:
        raise ValueError(f"form: must be one of {FORMS}, got {form!r}")
    if form == "dense":
        a_BxT = jnp.take(A, query_B, axis=1, mode="clip").T  # a_b = A[:, k_b]
        iN = jnp.arange(N, dtype=tokens_BxT.dtype)
        oh_BxTxN = tokens_BxT[:, :, None] == iN[None, None, :]
        h_BxN = jnp.sum(jnp.where(oh_BxTxN, a_BxT[:, :, None], 0.0), axis=1)
    else:  # flat indices: tk into A (entry t, k_b), bx into B x N (entry b, x_bt)
        k_B = jnp.clip(query_B, 0, N - 1).astype(jnp.int32)  # as the dense form's take
        tk_BxT = jnp.arange(T, dtype=jnp.int32)[None, :] * N + k_B[:, None]
        bx_BxT = jnp.arange(B, dtype=jnp.int32)[:, None] * N + tokens_BxT
        h_BxN = gather_add(A.reshape(-1), tk_BxT.reshape(-1), bx_BxT.reshape(-1),
                           B * N).reshape(B, N)
    f_BxN = h_BxN @ V.T
    y_BxN = jax.nn.one_hot(target_B, N, dtype=dt)
    if loss == "mse":
        r_BxN = f_BxN - y_BxN
        l_B = 0.5 * jnp.sum(r_BxN * r_BxN, axis=-1)
    elif loss == "ce":
        logp_BxN = jax.nn.log_softmax(f_BxN, axis=-1)
        l_B = -jnp.sum(logp_BxN * y_BxN, axis=-1)
        r_BxN = jnp.exp(logp_BxN) - y_BxN
    else:
        raise ValueError(f"loss: unknown {loss!r}")
    rw_BxN = r_BxN * w_B[:, None]
    if B <= _OUTER_MAX_B:
        G_V = rw_BxN[0][:, None] * h_BxN[0][None, :]
        for b in range(1, B):
            G_V = G_V + rw_BxN[b][:, None] * h_BxN[b][None, :]
    else:
        G_V = rw_BxN.T @ h_BxN
    g_BxN = rw_BxN @ V  # w_b V^T r_b
    gx_BxT = jnp.take_along_axis(g_BxN, tokens_BxT, axis=1, mode=pib)
    if form == "dense":
        qh_BxN = query_B[:, None] == iN[None, :]
        G_A = jnp.sum(jnp.where(qh_BxN[:, None, :], gx_BxT[:, :, None], 0.0), axis=0)
    else:
        G_A = jnp.zeros((T, N), dt).at[:, query_B].add(gx_BxT.T, mode=pib)
    return jnp.sum(w_B * l_B), Params(V=G_V, A=G_A)


GRADS = ("closed", "closed_dense", "autodiff")


def loss_and_grad(params: Params, batch: Batch, mask: Array | None = None,
                  model: Attention | str = LINEAR, loss: str = "mse",
                  method: str = "closed") -> tuple[Array, Params]:
    """(batch loss, its gradient): the closed form for the linear model ("closed": its sums
    over tokens as scatter-adds; "closed_dense": as one-hot sums), else (and with
    ``method="autodiff"``) ``jax.value_and_grad(batch_loss)``, the reference path."""
    if method not in GRADS:
        raise ValueError(f"method: unknown {method!r}")
    model = resolve(model)
    if model.closed_form and method != "autodiff":
        form = "dense" if method == "closed_dense" else "scatter"
        return linear_loss_and_grad(params, batch, mask, loss, form)
    return jax.value_and_grad(batch_loss)(params, batch, mask, model, loss)
