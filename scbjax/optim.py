"""The paper's preconditioned projected proximal descent as an optax chain, plus baselines.

Each step of ``ppd`` [paper: name; recon: details]:
  1. ``scale_by_inverse_mu``: right-multiply G_V by diag(mu)^-1, divide column k of G_A by mu_k
     (mu true, or a running estimate from the token counts passed as ``token_counts=``);
  2. ``scale_by_lr``: -eta_V on V, -eta_A on A;
  3. ``prox_l1``: soft-threshold A by eta_A * lambda;
  4. ``project``: each column of V and of A onto {1^T v = 1} (or the simplex, or nothing).
Steps 3 and 4 may be swapped (``order="project_prox"``). All transforms act on ``Params``.

Hyperparameters are injected: a chain is built once per run, and each ``update`` may pass the
values in force at that step as extra arguments (``lr_V=``, ``lr_A=``, ``lam=``, ``mu=``), which
override the factory's values. So a phase schedule with traced per-run values needs no
rebuilt chain.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from scbjax.model import Params

Array = jax.Array

PROJECTIONS = ("affine", "simplex", "none")
ORDERS = ("prox_project", "project_prox")


class MuState(NamedTuple):
    counts: Array  # N: pseudo-counts plus the tokens seen so far


def _hp(extra: dict, name: str, default):
    """The injected value of hyperparameter ``name`` if given, else the factory's."""
    v = extra.get(name)
    if v is None:
        if default is None:
            raise ValueError(f"hyperparameter {name!r}: give it to the factory or as {name}= "
                             "to update")
        return default
    return v


def scale_by_inverse_mu(N: int, mu: Array | None = None, prior: float = 1.0,
                        estimate: bool | None = None) -> optax.GradientTransformationExtraArgs:
    """Precondition by diag(mu)^-1 on the token-query columns. ``estimate`` (default: ``mu is
    None``) uses a running estimate from ``token_counts=``; else mu is the factory's or the
    injected ``mu=``."""
    est = mu is None if estimate is None else estimate

    def init_fn(params):
        del params
        return MuState(counts=jnp.full((N,), prior, jnp.float32))

    def update_fn(updates: Params, state: MuState, params=None, *, token_counts=None, **extra):
        del params
        if est:
            if token_counts is None:
                raise ValueError("scale_by_inverse_mu(mu=None) needs token_counts= each step")
            counts = state.counts + token_counts
            m = counts / counts.sum()
        else:
            counts, m = state.counts, _hp(extra, "mu", mu)
        inv = (1.0 / m)[None, :]
        return Params(V=updates.V * inv, A=updates.A * inv), MuState(counts=counts)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_lr(lr_V=None, lr_A=None) -> optax.GradientTransformationExtraArgs:
    """Descent step with separate learning rates for V and A (factory or injected values)."""

    def update_fn(updates: Params, state, params=None, **extra):
        del params
        eta_V, eta_A = _hp(extra, "lr_V", lr_V), _hp(extra, "lr_A", lr_A)
        return Params(V=-eta_V * updates.V, A=-eta_A * updates.A), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def soft_threshold(x: Array, t) -> Array:
    return jnp.sign(x) * jnp.maximum(jnp.abs(x) - t, 0.0)


def prox_l1(threshold=None) -> optax.GradientTransformationExtraArgs:
    """Replace the step on A so that A_new = soft_threshold(A + u_A, threshold); without a
    factory threshold it is the injected ``lr_A * lam``."""

    def update_fn(updates: Params, state, params: Params, **extra):
        t = threshold if threshold is not None else _hp(extra, "lr_A", None) * _hp(
            extra, "lam", None)
        A_new = soft_threshold(params.A + updates.A, t)
        return Params(V=updates.V, A=A_new - params.A), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def project_affine(M: Array) -> Array:
    """Each column onto {1^T v = 1}: subtract the column-mean excess."""
    n = M.shape[0]
    return M - (M.sum(0, keepdims=True) - 1.0) / n


def project_simplex(M: Array) -> Array:
    """Each column onto the probability simplex (Euclidean; sort-based, Duchi et al. 2008)."""
    n = M.shape[0]
    u = -jnp.sort(-M, axis=0)
    css = jnp.cumsum(u, axis=0) - 1.0
    idx = jnp.arange(1, n + 1, dtype=M.dtype)[:, None]
    cond = u - css / idx > 0
    rho = jnp.sum(cond, axis=0) - 1
    theta = jnp.take_along_axis(css, rho[None, :], axis=0) / (rho + 1).astype(M.dtype)[None, :]
    return jnp.maximum(M - theta, 0.0)


def _projector(kind: str):
    return {"affine": project_affine, "simplex": project_simplex, "none": lambda M: M}[kind]


def project(kind_V: str = "affine",
            kind_A: str = "affine") -> optax.GradientTransformationExtraArgs:
    """Replace the step so that each column of V_new, A_new lies in the chosen set."""
    pV, pA = _projector(kind_V), _projector(kind_A)

    def update_fn(updates: Params, state, params: Params, **extra):
        del extra
        V_new, A_new = pV(params.V + updates.V), pA(params.A + updates.A)
        return Params(V=V_new - params.V, A=A_new - params.A), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def ppd(N: int, lr_V=None, lr_A=None, lam=None, mu: Array | None = None,
        projection_V: str = "affine", projection_A: str = "affine", order: str = "prox_project",
        mu_prior: float = 1.0, estimate: bool | None = None
        ) -> optax.GradientTransformationExtraArgs:
    """Preconditioned projected proximal descent (the paper's method). Hyperparameters left
    None are injected at each update (``lr_V=``, ``lr_A=``, ``lam=``, ``mu=``)."""
    thr = None if lr_A is None or lam is None else lr_A * lam
    tail = [prox_l1(thr), project(projection_V, projection_A)]
    if order == "project_prox":
        tail = tail[::-1]
    return optax.chain(scale_by_inverse_mu(N, mu, mu_prior, estimate), scale_by_lr(lr_V, lr_A),
                       *tail)


def sgd(lr_V=None, lr_A=None) -> optax.GradientTransformationExtraArgs:
    """Plain SGD on the unregularized loss: no preconditioning, no prox, no projection."""
    return optax.chain(scale_by_lr(lr_V, lr_A))


def adam(lr_V=None, lr_A=None, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
    """Adam moments, then separate learning rates for V and A."""
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), scale_by_lr(lr_V, lr_A))
