"""The Sparse Contextual Bigram task: transition matrix P, stationary mu, sparse attention q.

Conventions (spec, [recon]): ``P[i, j] = Pr(next = i | current = j)`` (columns sum to 1),
``P @ mu = mu``, and column k of ``q`` (T x N) is the distribution over the T context positions
read when the query (last) token is k, with at most Q nonzero entries.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.core import gamma, threefry
from scbjax.core.sums import total
from scbjax.util import fields
from scbjax.util.errors import ConfigError, is_int, require
from scbjax.util.fields import field

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Task:
    """One SCB instance. ``P`` N x N column-stochastic, ``mu`` N, ``q`` T x N."""

    P: Array
    mu: Array
    q: Array

    @property
    def N(self) -> int:
        return self.P.shape[-1]

    @property
    def T(self) -> int:
        return self.q.shape[-2]


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Knobs of the random-instance generator (all [recon], defaults documented here).

    - ``alpha``: Dirichlet concentration of each column of P (smaller = sparser transitions).
    - ``mix``: P = (1 - mix) * Dirichlet + mix * uniform; keeps mu bounded away from 0.
    - ``q_weights``: "uniform" gives 1/Q on each support position; "dirichlet" draws the Q
      weights from Dirichlet(``beta``).
    """

    N: int = field(8, "vocabulary size (>= 2)")
    T: int = field(16, "context length (>= 1)")
    Q: int = field(2, "sparsity: positions per query token (1..T)")
    alpha: float = field(1.0, "Dirichlet concentration of the columns of P (smaller = sparser "
                         "transitions)")
    mix: float = field(0.1, "weight of the uniform matrix mixed into P (keeps mu > 0)")
    q_weights: Literal["uniform", "dirichlet"] = field(
        "uniform", "weights of q(k) on its Q support positions: 1/Q each, or Dirichlet(beta)")
    beta: float = field(1.0, "Dirichlet concentration of the q weights (q_weights=dirichlet)")

    def validate(self, where: str = "") -> TaskConfig:
        """Type-check every field, then the ranges; ConfigError names ``where`` + the field."""
        fields.check(self, where)

        def f(name: str) -> str:
            return f"{where}.{name}" if where else name

        require(self.N >= 2, f("N"), f"vocabulary size must be >= 2, got {self.N}")
        require(self.T >= 1, f("T"), f"context length must be >= 1, got {self.T}")
        require(self.Q >= 1, f("Q"), f"sparsity must be >= 1, got {self.Q}")
        require(self.Q <= self.T, f("Q"), f"sparsity must be <= T = {self.T}, got {self.Q}")
        require(self.alpha > 0, f("alpha"), f"must be a finite number > 0, got {self.alpha}")
        require(0.0 <= self.mix <= 1.0, f("mix"), f"must be in [0, 1], got {self.mix}")
        require(self.beta > 0, f("beta"), f"must be a finite number > 0, got {self.beta}")
        return self


@jax.jit  # called eagerly (a tuning task), one compile per N, not one per call of its loop
def solve(M_NxN: Array, b_N: Array) -> Array:
    """x with M x = b, by Gauss-Jordan elimination with partial pivoting written as elementwise
    steps: the same bits for a task whatever the vmapped batch around it (``jnp.linalg.solve``
    picks its kernel by the batch's size; scbjax.core.sums)."""
    N = M_NxN.shape[0]
    i_N = jnp.arange(N)

    def eliminate(k, Mb):
        piv = jnp.argmax(jnp.where(i_N >= k, jnp.abs(Mb[:, k]), -1.0))
        rk, rp = Mb[k], Mb[piv]
        Mb = Mb.at[piv].set(rk).at[k].set(rp)
        row = rp / rp[k]
        Mb = Mb - Mb[:, k][:, None] * row[None, :]
        return Mb.at[k].set(row)

    Mb = jnp.concatenate([M_NxN, b_N[:, None]], axis=1)
    return jax.lax.fori_loop(0, N, eliminate, Mb)[:, N]


def stationary(P_NxN: Array) -> Array:
    """Stationary distribution of a column-stochastic P: solve (P - I) mu = 0, 1^T mu = 1."""
    N = P_NxN.shape[-1]
    M_NxN = (P_NxN - jnp.eye(N, dtype=P_NxN.dtype)).at[-1].set(1.0)
    b_N = jnp.zeros(N, P_NxN.dtype).at[-1].set(1.0)
    mu_N = jnp.clip(solve(M_NxN, b_N), 0.0, None)
    return mu_N / total(mu_N)


def dirichlet(key: Array, alpha_K: Array, shape: tuple) -> Array:
    """``jax.random.dirichlet`` (the same log-gamma draws: ``gamma.loggamma``), normalised in a
    fixed order."""
    lg = gamma.loggamma(key, alpha_K, tuple(shape) + alpha_K.shape[-1:])
    e = jnp.exp(lg - jnp.max(lg, axis=-1, keepdims=True))
    return e / total(e, axis=e.ndim - 1)[..., None]


def make_task(key: Array, cfg: TaskConfig | None = None, **kw) -> Task:
    """Random SCB instance. ``make_task(key, N=8, T=16, Q=2)`` or with a ``TaskConfig``."""
    if cfg is not None and not isinstance(cfg, TaskConfig):
        raise ConfigError("task", f"must be a TaskConfig, got {type(cfg).__name__}")
    cfg = dataclasses.replace(cfg or TaskConfig(), **kw).validate("task")
    N, T, Q = cfg.N, cfg.T, cfg.Q
    kP, kS, kW = threefry.split(key, 3)  # jax.random's bits, cheaper to compile
    D_NxN = dirichlet(kP, jnp.full((N,), cfg.alpha), (N,)).T  # columns
    P_NxN = (1.0 - cfg.mix) * D_NxN + cfg.mix / N
    P_NxN = P_NxN / total(P_NxN, 0)[None, :]
    # Support of q(k): Q distinct positions, uniformly among the T.
    perm_NxT = jax.vmap(lambda k: threefry.permutation(k, T))(threefry.split(kS, N))
    supp_NxQ = perm_NxT[:, :Q]
    if cfg.q_weights == "uniform":
        w_NxQ = jnp.full((N, Q), 1.0 / Q)
    else:
        w_NxQ = dirichlet(kW, jnp.full((Q,), cfg.beta), (N,))
    q_NxT = jax.vmap(lambda s, w: jnp.zeros(T).at[s].set(w))(supp_NxQ, w_NxQ)
    return Task(P=P_NxN, mu=stationary(P_NxN), q=q_NxT.T)


ATOL_MAX = 1e-2  # task_from_arrays: the loosest tolerance on the sums to 1


def task_from_arrays(P, q, mu=None, Q: int | None = None, atol: float = 1e-5) -> Task:
    """Build and validate a Task from user arrays (numpy or jax, of real numbers: no strings,
    bools or complex numbers). mu defaults to the stationary distribution of P
    (``stationary_np``, float64). ``Q``: None or an integer >= 1, the most nonzero entries of
    a column of q; ``atol``: a float in (0, ATOL_MAX], the tolerance of the checks."""
    require(isinstance(atol, (float, np.floating)) and 0 < atol <= ATOL_MAX, "atol",
            f"must be a finite float in (0, {ATOL_MAX:g}], got {type(atol).__name__} {atol!r}")
    require(Q is None or (is_int(Q) and Q >= 1), "Q",
            f"must be None or an integer >= 1, got {type(Q).__name__} {Q!r}")
    P = _as_matrix(P, "P")
    q = _as_matrix(q, "q")
    N = P.shape[0]
    require(P.shape == (N, N), "P", f"must be square N x N, got shape {P.shape}")
    require(N >= 2, "P", f"vocabulary size N must be >= 2, got {N}")
    require(bool(np.all(P >= -atol)), "P", "has negative entries")
    require(bool(np.allclose(P.sum(0), 1.0, atol=atol)), "P",
            "is not column-stochastic (each column must sum to 1)")
    require(q.ndim == 2 and q.shape[1] == N, "q",
            f"must be T x N with N = {N}, got shape {q.shape}")
    require(bool(np.all(q >= -atol)), "q", "has negative entries")
    require(bool(np.allclose(q.sum(0), 1.0, atol=atol)), "q",
            "each column q(k) must be a probability vector over the T positions")
    if Q is not None:
        nnz = int((q > atol).sum(0).max())
        require(nnz <= Q, "q", f"has a column with {nnz} nonzero entries, more than Q = {Q}")
    if mu is None:
        mu = stationary_np(P)
    mu = _as_matrix(mu, "mu", ndim=1)
    require(mu.shape == (N,), "mu", f"must have shape ({N},), got {mu.shape}")
    require(bool(np.all(mu > 0)), "mu", "has zero or negative entries: every token needs mu > 0")
    require(bool(np.allclose(mu.sum(), 1.0, atol=atol)), "mu", "must sum to 1")
    require(bool(np.allclose(P @ mu, mu, atol=10 * atol)), "mu", "is not stationary for P")
    return Task(P=jnp.asarray(P, jnp.float32), mu=jnp.asarray(mu, jnp.float32),
                q=jnp.asarray(q, jnp.float32))


def _as_matrix(x, field: str, ndim: int = 2) -> np.ndarray:
    """``x`` as a float64 array: integers or real floats only (no coercion of other kinds)."""
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise ConfigError(field, f"not a numeric array ({e})") from None
    real = jnp.issubdtype(a.dtype, jnp.integer) or jnp.issubdtype(a.dtype, jnp.floating)
    require(real, field, f"must be an array of real numbers, got dtype "
            f"{a.dtype}" + (" (complex)" if a.dtype.kind == "c" else ""))
    a = a.astype(np.float64)
    require(a.ndim == ndim, field, f"must have {ndim} dimensions, got shape {a.shape}")
    require(bool(np.all(np.isfinite(a))), field, "contains NaN or infinite values")
    return a


def validate_task(task: Task, Q: int | None = None) -> Task:
    """Check a concrete Task; raises ConfigError naming the field."""
    return task_from_arrays(task.P, task.q, task.mu, Q=Q)


def stationary_np(P) -> np.ndarray:
    """Stationary distribution of a column-stochastic P on the host (float64): the least-squares
    solution of (P - I) mu = 0, 1^T mu = 1 (exact when unique; a stationary mixture when the
    chain is reducible, and no NaN for periodic or singular chains)."""
    P = np.asarray(P, np.float64)
    N = P.shape[-1]
    M = np.vstack([P - np.eye(N), np.ones((1, N))])
    b = np.zeros(N + 1)
    b[-1] = 1.0
    mu, *_ = np.linalg.lstsq(M, b, rcond=None)
    mu[np.abs(mu) < 1e-15] = 0.0
    return mu / mu.sum()


MU_FLOOR = 1e-12  # check_tasks: a token with mu below this is never seen in practice
STATIONARY_ATOL = 1e-3  # check_tasks: max |P mu - mu| tolerated (float32 solve)


def check_tasks(task: Task, where: str = "task", mu_floor: float = MU_FLOOR) -> None:
    """Check generated task(s) on the host: P, q, mu finite, mu > ``mu_floor`` and P mu = mu.

    ``task`` may be batched (leading run axis). Raises ConfigError(where, ...) saying what is
    wrong, in which run, and which knobs to change (a Dirichlet draw with small ``alpha`` and
    ``mix = 0`` can underflow to zeros and make the chain reducible)."""
    P = np.asarray(task.P, np.float64)
    mu = np.asarray(task.mu, np.float64)
    q = np.asarray(task.q, np.float64)
    N, T = P.shape[-1], q.shape[-2]
    batched = P.ndim > 2
    P, mu, q = P.reshape(-1, N, N), mu.reshape(-1, N), q.reshape(-1, T, N)
    fix = "raise mix or alpha (TaskConfig)"
    bad: list[tuple[int, str, str]] = []
    for r in range(P.shape[0]):
        if not np.all(np.isfinite(P[r])):
            bad.append((r, "the transition matrix P has NaN or infinite entries", fix))
        elif not np.all(np.isfinite(q[r])):
            bad.append((r, "the attention target q has NaN or infinite entries",
                        "raise beta or use q_weights = 'uniform'"))
        elif not np.all(np.isfinite(mu[r])):
            what = "the stationary distribution mu has NaN or infinite entries"
            bad.append((r, what + " (the chain is reducible)", fix))
        elif mu[r].min() <= mu_floor:
            i = int(np.argmin(mu[r]))
            what = ("the stationary distribution mu has a zero entry "
                    f"(token {i}: mu = {mu[r, i]:.3g})")
            bad.append((r, what, fix))
        else:
            res = float(np.abs(P[r] @ mu[r] - mu[r]).max())
            if res > STATIONARY_ATOL:
                what = (f"mu is not stationary for P (max |P mu - mu| = {res:.3g}; "
                        "the chain is nearly reducible)")
                bad.append((r, what, fix))
    if not bad:
        return
    r, what, how = bad[0]
    if batched:
        runs = [b[0] for b in bad]
        more = f" ({len(runs)} of {P.shape[0]} runs bad: {_list(runs)})" if len(runs) > 1 else ""
        what = f"{what} in run {r}{more}"
    raise ConfigError(where, f"{what}: {how}")


def _list(xs: list[int], k: int = 10) -> str:
    return ", ".join(map(str, xs[:k])) + (", ..." if len(xs) > k else "")
