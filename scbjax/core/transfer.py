"""Transfer construction (spec "Transfer" [recon]): correlated downstream tasks and finetuning.

Correlated task [recon], ``method="columns"`` (default). Draw K fresh random transition matrices
(``make_task``, the same generator as P1) and keep the one whose contextual part is the most
anti-correlated with P1's (so cos <= 0, almost surely for K = 16). Replace the columns of P1 by
those of the fresh matrix one at a time, in a random order, along a continuous path
s in [0, N] (column of rank r has weight clip(s - r, 0, 1) on the fresh column); find s by
bisection so that cos(P1 C_N, P2 C_N) = rho (C_N = I - 11^T/N). Every column of P2 is a convex
combination of two columns drawn like P1's, so P2 is column-stochastic with entries >= the
generator's floor (mu2 > 0) and a contextual part of the same strength as a random task at
every rho. rho = 1 gives P1 itself, rho = 0 an exactly orthogonal contextual part (if the
fresh matrix has cos <= rho; otherwise s = N, the fresh matrix; ``task_corr`` reports the
realised value).

``method="orthogonal"``: keep P1's mean column m and set the contextual part to
||Z1|| (rho Z1/||Z1|| + sqrt(1 - rho^2) R/||R||), R a fresh contextual part with its Z1
component removed, scaled by the largest t <= 1 keeping entries >= min(P1). Exact rho, but the
contextual part shrinks to about half of P1's for rho < 1 (a weaker, slower task), which is
why it is not the default.

The sparse attention q2 is fresh (drawn by ``make_task`` from the same key), or q1 with
``same_q=True``. Everything is pure jnp and vmaps over keys, tasks and (traced) rho.

Finetuning start [recon]: V = V_pretrained and A reset to the uniform start (the attention
model's ``Attention.uniform``), or A copied too (``copy_A=True``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scbjax.core import threefry
from scbjax.core.metrics import center_cols, corr_V
from scbjax.core.model import LINEAR, Attention, Params, resolve
from scbjax.core.task import Task, TaskConfig, make_task, stationary

Array = jax.Array


def _unit(M: Array) -> Array:
    n = jnp.sqrt(jnp.sum(M * M))
    return M / jnp.where(n > 0, n, 1.0)


K_FRESH = 16  # fresh candidates for the "columns" method
BISECT_ITERS = 40


def _orthogonal_P(key: Array, P1_NxN: Array, rho, cfg: TaskConfig) -> Array:
    Pf_NxN = make_task(key, cfg).P
    Z1, Zf = center_cols(P1_NxN), center_cols(Pf_NxN)
    u1 = _unit(Z1)
    r = _unit(Zf - jnp.sum(Zf * u1) * u1)  # fresh direction, orthogonal to Z1
    Z2 = jnp.sqrt(jnp.sum(Z1 * Z1)) * (rho * u1 + jnp.sqrt(1.0 - rho**2) * r)
    m_N1 = P1_NxN.mean(axis=1, keepdims=True)
    floor = P1_NxN.min()
    # largest t <= 1 with m + t Z2 >= floor entrywise (only negative entries of Z2 bind)
    room = (m_N1 - floor) / jnp.where(Z2 < 0, -Z2, 1.0)
    t = jnp.minimum(1.0, jnp.min(jnp.where(Z2 < 0, room, jnp.inf)))
    return m_N1 + t * Z2


def _columns_P(key: Array, P1_NxN: Array, rho, cfg: TaskConfig) -> Array:
    N = P1_NxN.shape[-1]
    kf, ko = threefry.split(key)  # jax.random's bits (threefry: cheaper to compile)
    Pf_KxNxN = jax.vmap(lambda k: make_task(k, cfg).P)(threefry.split(kf, K_FRESH))
    c_K = jax.vmap(lambda P: corr_V(P, P1_NxN))(Pf_KxNxN)
    Pf_NxN = Pf_KxNxN[jnp.argmin(c_K)]
    rank_N = jnp.argsort(threefry.permutation(ko, N)).astype(P1_NxN.dtype)

    def P_at(s):
        w_1xN = jnp.clip(s - rank_N, 0.0, 1.0)[None, :]
        return (1.0 - w_1xN) * P1_NxN + w_1xN * Pf_NxN

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        above = corr_V(P_at(mid), P1_NxN) >= rho  # still too correlated: move right
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lohi0 = (jnp.asarray(0.0, P1_NxN.dtype), jnp.asarray(float(N), P1_NxN.dtype))
    lo, hi = jax.lax.fori_loop(0, BISECT_ITERS, bisect, lohi0)
    s = jnp.where(rho >= 1.0, 0.0, hi)
    return P_at(s)


def correlated_P(key: Array, P1_NxN: Array, rho, cfg: TaskConfig,
                 method: str = "columns") -> Array:
    """P2 with cos(P1 C_N, P2 C_N) = rho (see module docstring); column-stochastic, > 0."""
    rho = jnp.clip(jnp.asarray(rho, P1_NxN.dtype), -1.0, 1.0)
    if method == "columns":
        P2 = _columns_P(key, P1_NxN, rho, cfg)
    elif method == "orthogonal":
        P2 = _orthogonal_P(key, P1_NxN, rho, cfg)
    else:
        raise ValueError(f"method: unknown {method!r}")
    return P2 / P2.sum(0, keepdims=True)  # exact column sums (rounding only)


def correlated_task(key: Array, task1: Task, rho, cfg: TaskConfig, same_q: bool = False,
                    method: str = "columns") -> Task:
    """Downstream task 2: P2 correlated rho with P1 (contextual parts), fresh q2 (or q1)."""
    kP, kq = threefry.split(key)
    P2 = correlated_P(kP, task1.P, rho, cfg, method)
    q2 = task1.q if same_q else make_task(kq, cfg).q
    return Task(P=P2, mu=stationary(P2), q=q2)


def task_corr(task1: Task, task2: Task) -> Array:
    """cos(P1 C_N, P2 C_N): the realised correlation of the two tasks."""
    return corr_V(task2.P, task1.P)


def finetune_params(pretrained: Params, copy_A: bool = False,
                    model: Attention | str = LINEAR) -> Params:
    """Finetuning start: V from the pretrained model, A uniform (or copied with ``copy_A``).
    ``model``: an ``Attention`` or its name."""
    T, N = pretrained.A.shape[-2:]
    A = pretrained.A if copy_A else jnp.broadcast_to(resolve(model).uniform(N, T),
                                                     pretrained.A.shape)
    return Params(V=pretrained.V, A=A)

