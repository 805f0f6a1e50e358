"""The whole run as one pure function: ``make_train(config) -> train(key, hparams, ...)``.

``jax.jit(jax.vmap(train))`` trains many seeds (and traced learning rates / lambda) in one
compiled call. Per-step data come from ``fold_in(data_key, step)``, so a seed's result does not
depend on which other seeds share its vmap. Metrics are logged every ``log_every`` steps.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scbjax.util import fields
from scbjax.optim import transforms as optim
from scbjax.optim import registry
from scbjax.util.errors import is_int, require
from scbjax.util.fields import field
from scbjax.core.losses import GRADS, loss_and_grad, population_loss
from scbjax.core.metrics import measure
from scbjax.core.model import Params, random_params, uniform_params
from scbjax.core.sampler import Batch, fold_in, sample, task_cdfs, token_counts
from scbjax.core import keys
from scbjax.core.keys import seed_keys
from scbjax.core.task import Task, TaskConfig, make_task

Array = jax.Array
METRICS = ("dist_V", "dist_A", "rel_dist_V", "rel_dist_A", "corr_V", "corr_A", "excess_loss",
           "support_rate", "off_support_mass", "off_support_dist", "zeros_A",
           "batch_loss")


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training with its own batch size, learning rates and l1 weight."""

    steps: int = field(help="training steps of the phase (>= 1)")
    batch: int = field(8, "samples per step (>= 1)")
    lr_V: float = field(0.01, "learning rate for V (> 0)")
    lr_A: float = field(0.01, "learning rate for A (> 0)")
    lam: float = field(0.0, "l1 weight on A (ppd only; >= 0)")
    freeze: bool = field(False, "a debiasing phase: A's exact zeros stay zero and each column "
                         "of A is projected onto {1^T a = 1} over its support (ppd only) [recon]")


MAX_STEPS = 2**31 - 1  # step indices are int32 on the device


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static configuration of a run. Options marked [recon] are reconstructions (see README).

    - ``optimizer``: "ppd" (the paper's method), "sgd" or "adam".
    - ``mu``: preconditioner uses the "true" mu or an "estimate" from token counts [recon].
    - ``projection_V`` / ``projection_A``: "affine" ({1^T v = 1}), "simplex" or "none" [recon].
    - ``order``: "prox_project" (soft-threshold, then project) or "project_prox" [recon].
    - ``prox``: the l1 step on A: "soft", "affine_exact", "precond" or "none" [recon] (see
      ``scbjax.optim``).
    - ``init``: "uniform" (V = 11^T/N, A = 11^T/T) or "random" (scale ``init_scale``).
    - ``model``: "linear" or "softmax" (A holds attention logits); ``loss``: "mse" or "ce".
    - ``population``: step with the exact population gradient instead of a sampled batch.
    """

    task: TaskConfig = field(TaskConfig(), "the random SCB instance of each seed")  # noqa: RUF009
    phases: tuple[Phase, ...] = field((Phase(steps=1000),), "training phases, run in order")
    optimizer: str = field(
        "ppd", "ppd: the paper's preconditioned projected proximal descent; sgd; adam; or a name "
        "registered with scbjax.register_optimizer (--plugin FILE)", choices=registry.names)
    model: Literal["linear", "softmax"] = field(
        "linear", "linear attention, or softmax attention over positions")
    loss: Literal["mse", "ce"] = field("mse", "training loss: squared error or cross-entropy")
    mu: Literal["true", "estimate"] = field(
        "true", "preconditioner: true mu or running estimate from token counts [recon]")
    mu_prior: float = field(1.0, "pseudo-count of each token in the mu estimate (> 0) [recon]")
    projection_V: Literal["affine", "simplex", "none"] = field(
        "affine", "projection of the columns of V [recon]")
    projection_A: Literal["affine", "simplex", "none"] = field(
        "affine", "projection of the columns of A [recon]")
    order: Literal["prox_project", "project_prox"] = field(
        "prox_project", "order of the l1 prox and the projection [recon]")
    prox: Literal["soft", "affine_exact", "precond", "none"] = field(
        "soft", "the l1 step on A: soft-threshold then project, the exact prox on {1^T a = 1}, "
        "a threshold in the preconditioned metric, or none [recon]")
    init: Literal["uniform", "random"] = field(
        "uniform", "initialisation: uniform (V = 11^T/N, A = 11^T/T) or random")
    init_scale: float = field(0.5, "weight of the random part of a random init (in [0, 1])")
    log_every: int = field(50, "log metrics every k steps (>= 1)")
    population: bool = field(False, "step with the exact population gradient (no sampling)")

    def validate(self) -> TrainConfig:
        """Type-check every field (``fields.check``), then the ranges; ConfigError names the
        field: ``task.N``, ``phases[0].lr_V``, ``optimizer``, ..."""
        fields.check(self)
        self.task.validate("task")
        require(len(self.phases) >= 1, "phases", "need at least one phase")
        for i, ph in enumerate(self.phases):
            f = f"phases[{i}]."
            require(ph.steps >= 1, f + "steps", f"must be an integer >= 1, got {ph.steps!r}")
            require(ph.batch >= 1, f + "batch",
                    f"batch size must be an integer >= 1, got {ph.batch!r}")
            for name in ("lr_V", "lr_A"):
                v = getattr(ph, name)
                require(v > 0, f + name, f"learning rate must be a finite number > 0, got {v!r}")
            require(ph.lam >= 0, f + "lam",
                    f"l1 weight must be a finite number >= 0, got {ph.lam!r}")
        require(self.total_steps <= MAX_STEPS, "phases",
                f"{self.total_steps} steps in all, more than {MAX_STEPS} (int32 step index)")
        registry.factory(self.optimizer)  # ConfigError("optimizer") naming the known ones
        choices = {"projection_V": optim.PROJECTIONS,
                   "projection_A": optim.PROJECTIONS, "order": optim.ORDERS,
                   "prox": optim.PROXES}
        for name, allowed in choices.items():  # the Literal types above, kept in step with optim
            v = getattr(self, name)
            require(v in allowed, name, f"must be one of {allowed}, got {v!r}")
        require(self.log_every >= 1, "log_every", f"must be an integer >= 1, got "
                f"{self.log_every!r}")
        require(self.mu_prior > 0, "mu_prior", f"must be a finite number > 0, got "
                f"{self.mu_prior!r}")
        require(0 <= self.init_scale <= 1, "init_scale",
                f"must be in [0, 1], got {self.init_scale!r}")
        require(not (self.prox == "affine_exact" and self.projection_A != "affine"), "prox",
                "affine_exact is the exact prox on {1^T a = 1}: it needs projection_A affine")
        require(self.optimizer == "ppd" or not any(p.freeze for p in self.phases), "phases",
                "freeze (a debiasing phase) is a step of ppd only")
        require(not (self.population and self.loss != "mse"), "loss",
                "population mode has the closed form of the MSE loss only")
        return self

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Hparams:
    """Traced hyperparameters, one entry per phase (shape [n_phases]); vmappable."""

    lr_V: Array
    lr_A: Array
    lam: Array


def default_hparams(config: TrainConfig) -> Hparams:
    def f(name):
        return jnp.asarray([getattr(p, name) for p in config.phases], jnp.float32)

    return Hparams(lr_V=f("lr_V"), lr_A=f("lr_A"), lam=f("lam"))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``metrics[name]``: [L] at the log points; ``diverged_step``: first non-finite step or -1."""

    params: Params
    task: Task
    metrics: dict
    diverged_step: Array


def log_schedule(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(steps, samples) at the log points: 0, every ``log_every`` steps, and each phase end."""
    steps, samples = [0], [0]
    s, n = 0, 0
    for ph in config.phases:
        for c in _chunks(ph.steps, config.log_every):
            s += c
            n += c * ph.batch
            steps.append(s)
            samples.append(n)
    return np.asarray(steps, np.int64), np.asarray(samples, np.int64)


def _chunks(steps: int, k: int) -> list[int]:
    return [k] * (steps // k) + ([steps % k] if steps % k else [])


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """The run's optax chain (``registry.factory(config.optimizer)(config)``), built once; each
    update injects the step's ``lr_V``, ``lr_A``, ``lam`` (its phase's traced values),
    ``freeze`` (its phase's flag) and the task's ``mu`` as extra arguments."""
    return registry.factory(config.optimizer)(config)


def _ppd(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    estimate = config.mu == "estimate" and not config.population
    opt = optim.ppd(config.task.N, projection_V=config.projection_V,
                    projection_A=config.projection_A, order=config.order,
                    mu_prior=config.mu_prior, estimate=estimate, prox=config.prox)
    if any(p.freeze for p in config.phases):
        opt = optax.chain(opt, optim.freeze_zeros(config.projection_A))
    return opt


registry.register_optimizer("ppd", _ppd, builtin=True)
registry.register_optimizer("sgd", lambda config: optim.sgd(), builtin=True)
registry.register_optimizer("adam", lambda config: optim.adam(), builtin=True)


def init_params(config: TrainConfig, key: Array) -> Params:
    N, T = config.task.N, config.task.T
    if config.init == "uniform":
        return uniform_params(N, T, config.model)
    return random_params(key, N, T, config.init_scale, config.model)


def make_train(config: TrainConfig, on_log: Callable[[Array], None] | None = None):
    """Return ``train(key, hparams=None, task=None, params0=None) -> TrainResult``.

    ``key`` splits into task, init and data streams. ``task``/``params0`` override the random
    instance / the initialisation (transfer). ``on_log(step)`` is called at each log point.
    The steps are those of ``make_stepper`` (one ``advance`` over each phase's log intervals).
    """
    config = config.validate()
    stepper = make_stepper(config, on_log=on_log)
    start_L, length_L, phase_L = intervals(config)

    def train(key: Array, hparams: Hparams | None = None, task: Task | None = None,
              params0: Params | None = None) -> TrainResult:
        settings = default_settings(config)
        if hparams is not None:
            settings = dataclasses.replace(settings, lr_V=hparams.lr_V, lr_A=hparams.lr_A,
                                           lam=hparams.lam)
        state = stepper.init(key, settings, task, params0)
        logs = [jax.tree.map(lambda x: x[None], initial_metrics(stepper, state))]
        for i, ph in enumerate(config.phases):
            sel = phase_L == i
            state, m = stepper.advance(state, start_L[sel], length_L[sel], ph.batch, False)
            logs.append(m)
        metrics = {name: jnp.concatenate([m[name] for m in logs]) for name in METRICS}
        return TrainResult(params=state.params, task=state.task, metrics=metrics,
                           diverged_step=state.diverged_step)

    return train


def train_many(config: TrainConfig, keys: Array, hparams: Hparams | None = None,
               on_log: Callable | None = None, task: Task | None = None,
               params0: Params | None = None) -> TrainResult:
    """``jit(vmap(train))`` over the leading axis of ``keys`` and of each of ``hparams``,
    ``task`` and ``params0`` that is given (one per run: stack them, e.g. with
    ``jax.tree.map(lambda *x: jnp.stack(x), ...)``)."""
    train = make_train(config, on_log)
    args = (keys, hparams, task, params0)
    in_axes = tuple(None if x is None else 0 for x in args)
    return jax.jit(jax.vmap(train, in_axes=in_axes))(*args)


# --- Resumable, padded execution: an explicit state advanced a chunk of log intervals at a time


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Traced per-run settings (vmappable): ``Hparams`` plus the batch size of each phase
    (``batch`` [n_phases] int32, at most the padded batch the step is compiled for) and the
    fixed-dataset size ``dataset`` (scalar int32; used only by a stepper built with
    ``max_dataset > 0``)."""

    lr_V: Array
    lr_A: Array
    lam: Array
    batch: Array
    dataset: Array

    @property
    def hparams(self) -> Hparams:
        return Hparams(lr_V=self.lr_V, lr_A=self.lr_A, lam=self.lam)


def default_settings(config: TrainConfig, dataset: int = 0) -> RunSettings:
    hp = default_hparams(config)
    return RunSettings(lr_V=hp.lr_V, lr_A=hp.lr_A, lam=hp.lam,
                       batch=jnp.asarray([p.batch for p in config.phases], jnp.int32),
                       dataset=jnp.asarray(dataset, jnp.int32))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a run needs to continue: ``advance`` is a pure function of it."""

    params: Params
    opt_state: object
    diverged_step: Array
    task: Task
    k_data: Array
    settings: RunSettings
    data: Batch | None  # the fixed dataset (max_dataset rows), None when online


DATASET_FOLD = keys.DATASET_FOLD


def _mix32(x: Array) -> Array:
    """A 32-bit integer hash (xorshift-multiply, "lowbias32")."""
    x = x ^ (x >> jnp.uint32(16))
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> jnp.uint32(15))
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> jnp.uint32(16))


def permute_index(key: Array, i: Array, n: Array, rounds: int = 4) -> Array:
    """Image of ``i`` in [0, n) under a pseudo-random permutation of [0, n) chosen by ``key``:
    a balanced Feistel network on 2h bits (4^h >= n) with cycle walking. O(1) per index, so an
    epoch's order costs no sort of the dataset (traced ``n`` welcome). Identity for i >= n."""
    n = jnp.asarray(n, jnp.uint32)
    bits = jnp.ceil(jnp.log2(jnp.maximum(n, 2).astype(jnp.float32)))
    h = jnp.ceil(bits / 2).astype(jnp.uint32)
    mask = (jnp.uint32(1) << h) - jnp.uint32(1)
    ks = jax.random.bits(key, (rounds,), jnp.uint32)

    def feistel(x):
        left, right = x >> h, x & mask
        for r in range(rounds):
            left, right = right, left ^ (_mix32(right ^ ks[r]) & mask)
        return (left << h) | right

    i = jnp.asarray(i, jnp.uint32)
    inside = i < n
    x = feistel(jnp.where(inside, i, jnp.uint32(0)))
    x = jax.lax.while_loop(lambda x: x >= n, feistel, x)  # ends: x stays in [0, 4^h), n <= 4^h
    return jnp.where(inside, x, i).astype(jnp.int32)


def intervals(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length, phase) of each log interval: the steps between consecutive log points."""
    steps, _ = log_schedule(config)
    ends = np.cumsum([p.steps for p in config.phases])
    start, length = steps[:-1], np.diff(steps)
    phase = np.searchsorted(ends, start, side="right")
    return start, length, phase


@dataclasses.dataclass(frozen=True)
class Stepper:
    """``init(key, settings=None, task=None, params0=None) -> TrainState`` and
    ``advance(state, starts_C, lengths_C, max_batch, masked) -> (state, metrics [C])``: run C log
    intervals (interval c: ``lengths_C[c]`` steps from step ``starts_C[c]``; length 0 is a no-op
    whose metrics are to be discarded). ``max_batch`` (static) is the padded batch of the
    phase the intervals lie in; ``masked`` (static) turns the per-run batch mask on.
    ``step(state, t, max_batch, masked) -> (state, loss)`` is one optimizer step."""

    config: TrainConfig
    max_dataset: int
    init: Callable
    advance: Callable
    step: Callable


def all_finite(params: Params) -> Array:
    """Whether every entry of V and A is finite, from one sum of all entries: a NaN or an
    infinite entry makes the sum NaN or infinite. A sum that overflows float32 (entries near
    3e38 / (N^2 + T N)) counts as non-finite too: a run there has diverged. One reduction, fused
    into the step (cheaper than an elementwise check: benchmarks/BENCHMARKS.md)."""
    return jnp.isfinite(jnp.sum(params.V) + jnp.sum(params.A))


def make_stepper(config: TrainConfig, max_dataset: int = 0,
                 on_log: Callable[[Array], None] | None = None, grad: str = "closed") -> Stepper:
    """The run of ``make_train`` as ``init`` + ``advance`` (see ``Stepper``), for chunked,
    checkpointed execution with traced batch sizes (padding + mask) and a fixed-dataset mode.

    With the batch of every phase equal to its padded size and ``max_dataset = 0``, the steps
    are those of ``make_train`` (same keys: the batch of step t comes from
    ``fold_in(data_key, t)``). A padded batch draws ``max_batch`` samples whose first ``b``
    are exactly the ``b`` an unpadded run draws (threefry counters are positional), and masks
    the rest out of the loss and the token counts. Fixed-dataset mode (``max_dataset = n_max``):
    ``settings.dataset = n`` samples drawn once from ``fold_in(data_key, DATASET_FOLD)``
    (the first n of n_max), visited in a fresh random order each epoch (epoch e's permutation
    ``permute_index(fold_in(fold_in(data_key, DATASET_FOLD), e), ., n)``); step t reads positions
    t b .. t b + b - 1 of the concatenated epochs, so a batch may straddle two epochs.
    ``on_log(step)`` is called (``jax.debug.callback``) at the end of each log interval.
    ``grad``: ``losses.GRADS``: "closed" (closed-form gradient of the linear model, its sums
    over tokens as scatter-adds), "closed_dense" (as one-hot sums), or "autodiff" (the
    reference).
    """
    config = config.validate()
    require(grad in GRADS, "grad", f"must be one of {GRADS}, got {grad!r}")
    require(is_int(max_dataset) and max_dataset >= 0, "dataset",
            f"must be an integer >= 0, got {max_dataset!r}")
    N, T = config.task.N, config.task.T
    model, lossname = config.model, config.loss
    phase_starts = np.cumsum([0] + [p.steps for p in config.phases])[1:-1].astype(np.int32)
    freeze_P = np.asarray([p.freeze for p in config.phases])
    opt = make_optimizer(config)

    def init(key: Array, settings: RunSettings | None = None, task: Task | None = None,
             params0: Params | None = None) -> TrainState:
        st = default_settings(config) if settings is None else settings
        k_task, k_init, k_data = keys.streams(key)
        if task is None:
            task = make_task(k_task, config.task)
        params = init_params(config, k_init) if params0 is None else params0
        data = None
        if max_dataset > 0:
            data = sample(jax.random.fold_in(k_data, DATASET_FOLD), task, max_dataset)
        return TrainState(params=params, opt_state=opt.init(params),
                          diverged_step=jnp.asarray(-1, jnp.int32), task=task, k_data=k_data,
                          settings=st, data=data)

    def get_batch(state: TrainState, step: Array, B: int, b: Array, cdfs=None):
        key = fold_in(state.k_data, step)
        if max_dataset == 0:
            return sample(key, state.task, B, cdfs)
        n = state.settings.dataset
        k_perm = jax.random.fold_in(state.k_data, DATASET_FOLD)
        pos_B = step * b + jnp.arange(B, dtype=jnp.int32)  # position in the epoch sequence
        idx_B = jax.vmap(lambda e, i: permute_index(jax.random.fold_in(k_perm, e), i, n))(
            pos_B // n, pos_B % n)
        d = state.data
        return Batch(tokens=d.tokens[idx_B], query=d.query[idx_B], target=d.target[idx_B])

    def step(state: TrainState, t: Array, max_batch: int, masked: bool, cdfs=None):
        """One optimizer step at step index t: (new state, batch loss). ``cdfs``: the task's
        sampling CDFs, if computed outside a loop of steps."""
        task, st = state.task, state.settings
        params, opt_state, div = state.params, state.opt_state, state.diverged_step
        p = jnp.sum(t >= phase_starts).astype(jnp.int32) if len(phase_starts) else 0
        b = st.batch[p]
        mask = (jnp.arange(max_batch) < b) if masked else None
        if config.population:
            loss, g = jax.value_and_grad(population_loss)(params, task, model)
            counts = task.mu * (b * (T + 1)).astype(jnp.float32)
        else:
            batch = get_batch(state, t, max_batch, b, cdfs)
            loss, g = loss_and_grad(params, batch, mask, model, lossname, grad)
            counts = token_counts(batch, N, mask)
        upd, opt_state = opt.update(g, opt_state, params, token_counts=counts, mu=task.mu,
                                    lr_V=st.lr_V[p], lr_A=st.lr_A[p], lam=st.lam[p],
                                    freeze=jnp.asarray(freeze_P)[p])
        params = optax.apply_updates(params, upd)
        ok = all_finite(params)
        div = jnp.where((div < 0) & ~ok, t + 1, div)
        new = dataclasses.replace(state, params=params, opt_state=opt_state, diverged_step=div)
        return new, loss

    def advance(state: TrainState, starts_C: Array, lengths_C: Array, max_batch: int,
                masked: bool):
        cdfs = task_cdfs(state.task)  # loop-invariant: once per call, not per step

        def one_step(t, carry):
            state, loss_sum = carry
            state, loss = step(state, t, max_batch, masked, cdfs)
            return state, loss_sum + loss

        def interval(state, x):
            start, length = x
            zero = jnp.zeros((), jnp.float32)
            state, loss_sum = jax.lax.fori_loop(start, start + length, one_step, (state, zero))
            if on_log is not None:
                jax.debug.callback(on_log, start + length)
            m = measure(state.params, state.task, model)
            m["batch_loss"] = loss_sum / length.astype(jnp.float32)
            return state, m

        xs = (jnp.asarray(starts_C, jnp.int32), jnp.asarray(lengths_C, jnp.int32))
        return jax.lax.scan(interval, state, xs)

    return Stepper(config=config, max_dataset=max_dataset, init=init, advance=advance, step=step)


def initial_metrics(stepper: Stepper, state: TrainState) -> dict:
    """Metrics at step 0 (``batch_loss`` nan), as logged first by ``make_train``."""
    m = measure(state.params, state.task, stepper.config.model)
    m["batch_loss"] = jnp.asarray(jnp.nan, jnp.float32)
    return m
