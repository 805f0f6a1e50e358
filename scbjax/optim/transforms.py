"""The paper's preconditioned projected proximal descent (one optax transformation), its parts.

Each step of ``ppd`` [paper: name; recon: details]:
  1. ``scale_by_inverse_mu``: right-multiply G_V by diag(mu)^-1, divide column k of G_A by mu_k
     (mu true, or a running estimate from the token counts passed as ``token_counts=``);
  2. ``scale_by_lr``: -eta_V on V, -eta_A on A;
  3. ``prox_l1``: soft-threshold A by eta_A * lambda;
  4. ``project``: each column of V and of A onto {1^T v = 1} (or the simplex, or nothing).
Steps 3 and 4 may be swapped (``order="project_prox"``). All transforms act on ``Params``.

The l1 step on A, ``ppd(prox=...)`` [recon], t = eta_A * lambda, z a column after step 2:
  - "soft" (default): soft_threshold(z, t), then the projection: the l1 prox and the projection
    applied one after the other, a splitting of the prox of t||a||_1 + indicator{1^T a = 1}
    (the affine shift afterwards moves the zeros off 0 again).
  - "affine_exact": that joint prox, argmin_a 0.5||a - z||^2 + t||a||_1 s.t. 1^T a = 1. KKT:
    a - z + t s + nu 1 = 0 with s in d||a||_1, so a = soft_threshold(z - nu, t) with nu the root
    of sum_t soft_threshold(z - nu, t) = 1 (piecewise linear, non-increasing in nu, kinks at
    z +- t): bisection locates its linear piece, then nu is solved on it exactly
    (``prox_l1_affine_cols``). Zeros stay exact zeros;
    no separate projection of A (only ``projection_A="affine"`` is allowed).
  - "precond": the proximal step in the preconditioner's metric ||X||_mu^2 = sum_k mu_k ||x_k||^2
    (the metric in which step 1 is a gradient step): column k is soft-thresholded by t / mu_k,
    then projected (the column-wise projection is the same in that metric, mu_k being constant
    on a column). mu is the true mu or the same running estimate as step 1 (``prox_l1_mu``).
  - "none": no l1 step (lambda ignored): projected preconditioned gradient descent.

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

from scbjax.core.model import Params

Array = jax.Array

PROJECTIONS = ("affine", "simplex", "none")
ORDERS = ("prox_project", "project_prox")
PROXES = ("soft", "affine_exact", "precond", "none")


class MuState(NamedTuple):
    counts: Array  # N: pseudo-counts plus the tokens seen so far


def _mu_init(N: int, prior: float) -> MuState:
    return MuState(counts=jnp.full((N,), prior, jnp.float32))


def _hp(extra: dict, name: str, default):
    """The injected value of hyperparameter ``name`` if given, else the factory's."""
    v = extra.get(name)
    if v is None:
        if default is None:
            raise ValueError(f"hyperparameter {name!r}: give it to the factory or as {name}= "
                             "to update")
        return default
    return v


def _threshold(threshold, extra: dict):
    """The l1 threshold: the factory's, or the injected ``lr_A * lam``."""
    if threshold is not None:
        return threshold
    return _hp(extra, "lr_A", None) * _hp(extra, "lam", None)


def _mu_step(mu: Array | None, state: MuState, token_counts, who: str, estimate: bool,
             extra: dict) -> tuple[Array, MuState]:
    """(mu for this step, new state): the given or injected mu, or (``estimate``) (prior +
    all counts so far) / total."""
    if not estimate:
        return _hp(extra, "mu", mu), state
    if token_counts is None:
        raise ValueError(f"{who}(mu=None) needs token_counts= each step")
    counts = state.counts + token_counts
    return counts / counts.sum(), MuState(counts=counts)


def scale_by_inverse_mu(N: int, mu: Array | None = None, prior: float = 1.0,
                        estimate: bool | None = None) -> optax.GradientTransformationExtraArgs:
    """Precondition by diag(mu)^-1 on the token-query columns. ``estimate`` (default: ``mu is
    None``) uses a running estimate from ``token_counts=``; else mu is the factory's or the
    injected ``mu=``."""
    est = mu is None if estimate is None else estimate

    def init_fn(params):
        del params
        return _mu_init(N, prior)

    def update_fn(updates: Params, state: MuState, params=None, *, token_counts=None, **extra):
        del params
        m, state = _mu_step(mu, state, token_counts, "scale_by_inverse_mu", est, extra)
        inv = (1.0 / m)[None, :]
        return Params(V=updates.V * inv, A=updates.A * inv), state

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
        A_new = soft_threshold(params.A + updates.A, _threshold(threshold, extra))
        return Params(V=updates.V, A=A_new - params.A), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def prox_l1_mu(N: int, threshold=None, mu: Array | None = None, prior: float = 1.0,
               estimate: bool | None = None) -> optax.GradientTransformationExtraArgs:
    """Like ``prox_l1`` with column k thresholded by ``threshold / mu_k`` ("precond"). mu: the
    given one, or (``mu=None``) the running estimate of ``scale_by_inverse_mu`` from the same
    ``token_counts=`` and ``prior`` (a copy of its counts is kept in this transform's state)."""

    est = mu is None if estimate is None else estimate

    def init_fn(params):
        del params
        return _mu_init(N, prior)

    def update_fn(updates: Params, state: MuState, params: Params, *, token_counts=None,
                  **extra):
        m, state = _mu_step(mu, state, token_counts, "prox_l1_mu", est, extra)
        A_new = soft_threshold(params.A + updates.A, _threshold(threshold, extra) / m[None, :])
        return Params(V=updates.V, A=A_new - params.A), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


BISECT_ITERS = 24  # bisection steps for nu: the bracket shrinks to ~1e-7 of its width


def prox_l1_affine_cols(Z_TxN: Array, t) -> Array:
    """Exact prox of t||a||_1 + indicator{1^T a = 1} on each column a of Z: the minimiser of
    0.5||a - z||^2 + t||a||_1 s.t. 1^T a = 1, i.e. soft_threshold(z - nu, t) with the shift nu
    solving f(nu) = sum soft_threshold(z - nu, t) = 1 (t >= 0, scalar or a 1 x N row).

    f is continuous, piecewise linear and non-increasing (kinks at z +- t), f >= T at
    nu = min z - t - 1 and f <= 0 at nu = max z + t: ``BISECT_ITERS`` bisection steps locate
    nu's linear piece (O(T) each, no sort), then nu is solved on that piece from its active
    entries (nu = (sum_{z-t>nu} (z - t) + sum_{z+t<nu} (z + t) - 1) / #active), exactly.
    """
    dt = Z_TxN.dtype
    t = jnp.asarray(t, dt)
    u_TxN, l_TxN = Z_TxN - t, Z_TxN + t

    def f(nu_N):
        return (jnp.sum(jnp.maximum(u_TxN - nu_N[None, :], 0.0), axis=0)
                + jnp.sum(jnp.minimum(l_TxN - nu_N[None, :], 0.0), axis=0))

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        above = f(mid) >= 1.0  # root to the right of mid
        return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

    lo_N = jnp.min(u_TxN, axis=0) - 1.0
    hi_N = jnp.max(l_TxN, axis=0)
    lo_N, hi_N = jax.lax.fori_loop(0, BISECT_ITERS, bisect, (lo_N, hi_N))
    nu_N = 0.5 * (lo_N + hi_N)
    # solve on the linear piece of the bracket: the active set at its midpoint
    pos_TxN, neg_TxN = u_TxN > nu_N[None, :], l_TxN < nu_N[None, :]
    n_N = jnp.sum(pos_TxN, axis=0) + jnp.sum(neg_TxN, axis=0)
    tot_N = jnp.sum(jnp.where(pos_TxN, u_TxN, 0.0), axis=0) + jnp.sum(
        jnp.where(neg_TxN, l_TxN, 0.0), axis=0)
    nu_N = jnp.where(n_N > 0, (tot_N - 1.0) / jnp.maximum(n_N, 1).astype(dt), nu_N)
    return soft_threshold(Z_TxN - nu_N[None, :], t)


def prox_l1_affine(threshold=None) -> optax.GradientTransformationExtraArgs:
    """Replace the step on A so that A_new = prox_l1_affine_cols(A + u_A, threshold)
    ("affine_exact": l1 prox and affine projection of A in one exact step)."""

    def update_fn(updates: Params, state, params: Params, **extra):
        A_new = prox_l1_affine_cols(params.A + updates.A, _threshold(threshold, extra))
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


class ParamStep(optax.GradientTransformationExtraArgs):
    """An optax transformation (``init``, ``update``) that also gives the new parameters
    directly: ``step(grads, state, params, **extra) -> (new params, state)``, with ``update``
    its difference from ``params``. ``apply`` calls ``step``: a chain of steps that each map
    parameters to parameters (a prox, a projection) then costs no round trip through updates
    (``p + (new - p)`` per link). ``optax.chain`` of it with others keeps ``update`` only."""

    def __new__(cls, init, step):
        def update(updates, state, params=None, **extra):
            new, state = step(updates, state, params, **extra)
            return jax.tree.map(lambda n, p: n - p, new, params), state

        self = super().__new__(cls, init, update)
        self.step = step
        return self


def apply(opt, grads, state, params, **extra):
    """(new params, new state) of one step of ``opt``: its ``step`` (``ParamStep``), else
    ``optax.apply_updates`` of its ``update``."""
    step = getattr(opt, "step", None)
    if step is not None:
        return step(grads, state, params, **extra)
    upd, state = opt.update(grads, state, params, **extra)
    return optax.apply_updates(params, upd), state


def ppd(N: int, lr_V=None, lr_A=None, lam=None, mu: Array | None = None,
        projection_V: str = "affine", projection_A: str = "affine", order: str = "prox_project",
        mu_prior: float = 1.0, prox: str = "soft", estimate: bool | None = None) -> ParamStep:
    """Preconditioned projected proximal descent (the paper's method) as one ``ParamStep``:
    the steps 1-4 of the module docstring on the parameters themselves (``prox`` picks the l1
    step on A, ``PROXES``); the chain of ``scale_by_inverse_mu``, ``scale_by_lr``, ``prox_l1``
    (or ``prox_l1_mu``, ``prox_l1_affine``) and ``project`` gives the same step to float32
    rounding. ``order`` has no effect with "affine_exact" and "none" (one step on A).
    Hyperparameters left None are injected at each update (``lr_V=``, ``lr_A=``, ``lam=``,
    ``mu=``); ``estimate`` (default ``mu is None``) uses the running mu estimate (state:
    ``MuState``)."""
    if prox not in PROXES:
        raise ValueError(f"prox: must be one of {PROXES}, got {prox!r}")
    if prox == "affine_exact" and projection_A != "affine":
        raise ValueError(f"prox='affine_exact' is the exact prox on {{1^T a = 1}}: it needs "
                         f"projection_A='affine', got {projection_A!r}")
    thr0 = None if lr_A is None or lam is None else lr_A * lam
    est = mu is None if estimate is None else estimate
    pV, pA = _projector(projection_V), _projector(projection_A)

    def step(grads: Params, state: MuState, params: Params, *, token_counts=None, **extra):
        m, state = _mu_step(mu, state, token_counts, "ppd", est, extra)
        inv = (1.0 / m)[None, :]
        eta_V, eta_A = _hp(extra, "lr_V", lr_V), _hp(extra, "lr_A", lr_A)
        V = pV(params.V - eta_V * (grads.V * inv))
        A = params.A - eta_A * (grads.A * inv)
        if prox == "none":
            return Params(V=V, A=pA(A)), state
        thr = _threshold(thr0, extra)
        if prox == "affine_exact":
            return Params(V=V, A=prox_l1_affine_cols(A, thr)), state
        thr = thr / m[None, :] if prox == "precond" else thr
        if order == "project_prox":
            return Params(V=V, A=soft_threshold(pA(A), thr)), state
        return Params(V=V, A=pA(soft_threshold(A, thr))), state

    return ParamStep(lambda params: _mu_init(N, mu_prior), step)


def freeze_zeros(projection_A: str = "affine") -> optax.GradientTransformationExtraArgs:
    """A debiasing step, on when the injected ``freeze=`` is true (else the identity): the
    entries of A that are exactly zero before the step stay zero, the others take the step,
    and (``projection_A="affine"``) each column is projected onto {1^T a = 1} over its nonzero
    entries. Appended to ppd's chain: after an l1 phase that left exact zeros
    (prox="affine_exact"), it refits the found support without the l1 bias."""

    def update_fn(updates: Params, state, params: Params, *, freeze=None, **extra):
        if freeze is None:
            return updates, state
        A_new = params.A + updates.A
        mask_TxN = params.A != 0
        A_m = jnp.where(mask_TxN, A_new, 0.0)
        if projection_A == "affine":
            n_N = jnp.maximum(mask_TxN.sum(0), 1).astype(A_m.dtype)
            A_m = A_m - jnp.where(mask_TxN, (A_m.sum(0) - 1.0) / n_N, 0.0)
        A_fin = jnp.where(freeze, A_m, A_new)
        return Params(V=updates.V, A=A_fin - params.A), state

    return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update_fn)


def sgd(lr_V=None, lr_A=None) -> optax.GradientTransformationExtraArgs:
    """Plain SGD on the unregularized loss: no preconditioning, no prox, no projection."""
    return optax.chain(scale_by_lr(lr_V, lr_A))


def adam(lr_V=None, lr_A=None, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformationExtraArgs:
    """Adam moments, then separate learning rates for V and A."""
    return optax.chain(optax.scale_by_adam(b1=b1, b2=b2, eps=eps), scale_by_lr(lr_V, lr_A))
