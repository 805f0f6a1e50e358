"""One run as an explicit state advanced a chunk of log intervals at a time (``make_stepper``).

``init`` builds the ``TrainState`` of a run's key (task, init and data streams:
``scbjax.core.keys``), ``step`` is one optimizer step and ``advance`` runs whole log intervals
with ``lax.scan``; the executor checkpoints between calls. Traced per-run settings
(``RunSettings``: every per-run ``Phase`` field, per phase, and the fixed-dataset size) let
runs of different batch sizes, learning rates and lambdas share one compiled call (padding and
a mask for the batch).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scbjax.core import keys
from scbjax.core.losses import GRADS, loss_and_grad, population_loss
from scbjax.core.metrics import measure
from scbjax.core.model import Attention, Params, random_params, resolve, uniform_params
from scbjax.core.sampler import Batch, fold_in, sample, task_cdfs, token_counts
from scbjax.core.task import Task, make_task
from scbjax.optim import registry, transforms
from scbjax.sim.config import HPARAMS, PER_RUN, TrainConfig
from scbjax.sim.data import epoch_batch
from scbjax.sim.fused import device_check, make_fused_interval, resolve_fused
from scbjax.util.errors import is_int, require

Array = jax.Array
METRICS = ("dist_V", "dist_A", "rel_dist_V", "rel_dist_A", "corr_V", "corr_A", "excess_loss",
           "support_rate", "off_support_mass", "off_support_dist", "zeros_A",
           "batch_loss")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Traced per-run settings (vmappable): ``phase[name]`` [n_phases] for every per-run
    ``Phase`` field (``PER_RUN``; ``batch`` int32, at most the padded batch the step is compiled
    for, the others float32), and the fixed-dataset size ``dataset`` (scalar int32; used only by
    a stepper built with ``max_dataset > 0``). ``settings.lr_V`` reads ``phase["lr_V"]``."""

    phase: dict
    dataset: Array

    def __getattr__(self, name: str):
        if name in PER_RUN:
            return self.phase[name]
        raise AttributeError(name)

    @classmethod
    def of(cls, values: dict) -> RunSettings:
        """From a flat dict: one entry per ``PER_RUN`` name, plus ``dataset``."""
        require(set(values) == set(PER_RUN) | {"dataset"}, "settings",
                f"want {', '.join(PER_RUN)} and dataset, got {', '.join(sorted(values))}")
        return cls(phase={n: values[n] for n in PER_RUN}, dataset=values["dataset"])

    def replace(self, **phase) -> RunSettings:
        """These settings with some per-run fields replaced."""
        return RunSettings(phase={**self.phase, **phase}, dataset=self.dataset)


def default_settings(config: TrainConfig, dataset: int = 0) -> RunSettings:
    """The config's value of every per-run field, per phase."""
    phase = {n: jnp.asarray(config.per_phase(n), jnp.int32 if n == "batch" else jnp.float32)
             for n in PER_RUN}
    return RunSettings(phase=phase, dataset=jnp.asarray(dataset, jnp.int32))


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


def log_schedule(config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(steps, samples) at the log points: 0, every ``log_every`` steps (or log-spaced:
    ``log_per_decade``), and each phase end; samples at the config's batches."""
    k, total = config.log_every, config.total_steps
    ends = np.cumsum([p.steps for p in config.phases])
    if config.log_per_decade == 0:
        starts = np.concatenate([[0], ends[:-1]])
        pts = [np.arange(s0 + k, e, k) for s0, e in zip(starts, ends)]
    else:
        K = config.log_per_decade
        j = np.arange(int(np.ceil(K * np.log10(max(total / k, 1)))) + 1)
        pts = [k * np.unique(np.round(10.0 ** (j / K)).astype(np.int64))]
    steps = np.unique(np.concatenate([[0], *pts, ends]).astype(np.int64))
    steps = steps[steps <= total]
    batch = np.asarray(config.per_phase("batch"), np.int64)
    s0 = np.concatenate([[0], ends[:-1]])
    samples = (np.clip(steps[:, None] - s0[None, :], 0, ends - s0) * batch).sum(1)
    return steps, samples.astype(np.int64)


def intervals(config: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, length, phase) of each log interval: the steps between consecutive log points."""
    steps, _ = log_schedule(config)
    ends = np.cumsum([p.steps for p in config.phases])
    start, length = steps[:-1], np.diff(steps)
    phase = np.searchsorted(ends, start, side="right")
    return start, length, phase


def make_optimizer(config: TrainConfig) -> optax.GradientTransformationExtraArgs:
    """The run's optax transformation (``registry.factory(config.optimizer)(config)``), built
    once; each update injects the step's value of every ``HPARAMS`` field, ``freeze`` (its
    phase's flag), the task's ``mu`` and the batch's ``token_counts`` as extra arguments."""
    return registry.factory(config.optimizer)(config)


def init_params(config: TrainConfig, key: Array, model: Attention | None = None) -> Params:
    """The start values of ``config.init`` for the attention model (``config.model`` resolved
    unless given)."""
    N, T = config.task.N, config.task.T
    model = resolve(config.model) if model is None else model
    if config.init == "uniform":
        return uniform_params(N, T, model)
    return random_params(key, N, T, config.init_scale, model)


@dataclasses.dataclass(frozen=True)
class Stepper:
    """``init(key, settings=None, task=None, params0=None) -> TrainState`` and
    ``advance(state, starts_C, lengths_C, max_batch, masked) -> (state, metrics [C])``: run C log
    intervals (interval c: ``lengths_C[c]`` steps from step ``starts_C[c]``; length 0 is a no-op
    whose metrics are to be discarded). ``max_batch`` (static) is the padded batch of the
    phase the intervals lie in; ``masked`` (static) turns the per-run batch mask on.
    ``step(state, t, max_batch, masked) -> (state, loss)`` is one optimizer step.
    ``advance_runs(state_R, starts_C, lengths_C, max_batch, masked, shards=1, per_run=None)``
    is ``vmap(advance)`` with each run's metrics from ``measure_runs`` (the executor's)."""

    config: TrainConfig
    model: Attention  # config.model resolved
    max_dataset: int
    fused: bool  # advance runs each log interval as the fused kernel (sim.fused)
    init: Callable
    advance: Callable
    step: Callable
    advance_runs: Callable  # advance of a batch of R states: (state_R, metrics [R, C])


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
    (the first n of n_max), visited in a fresh random order each epoch (``sim.data``).
    ``on_log(step)`` is called (``jax.debug.callback``) at the end of each log interval.
    ``grad``: ``losses.GRADS``: "closed" (closed-form gradient of the linear model, its sums
    over tokens as scatter-adds), "closed_dense" (as one-hot sums), or "autodiff" (the
    reference). ``config.fused`` (``sim.fused.resolve_fused``) chooses whether ``advance`` runs
    each log interval as one fused kernel (``step`` is always the XLA step).
    """
    config = config.validate()
    require(grad in GRADS, "grad", f"must be one of {GRADS}, got {grad!r}")
    require(is_int(max_dataset) and max_dataset >= 0, "dataset",
            f"must be an integer >= 0, got {max_dataset!r}")
    N, T = config.task.N, config.task.T
    model, lossname = resolve(config.model), config.loss
    phase_starts = np.cumsum([0] + [p.steps for p in config.phases])[1:-1].astype(np.int32)
    freeze_P = np.asarray(config.per_phase("freeze"))
    opt = make_optimizer(config)
    fused = resolve_fused(config, max_dataset, grad)
    if fused and config.fused == "auto":  # checked on this device first (sim.fused)
        fused = device_check(config, lambda c: make_stepper(c, max_dataset, grad=grad)) is None

    def init(key: Array, settings: RunSettings | None = None, task: Task | None = None,
             params0: Params | None = None) -> TrainState:
        st = default_settings(config) if settings is None else settings
        k_task, k_init, k_data = keys.streams(key)
        if task is None:
            task = make_task(k_task, config.task)
        params = init_params(config, k_init, model) if params0 is None else params0
        data = None
        if max_dataset > 0:
            data = sample(fold_in(k_data, keys.DATASET_FOLD), task, max_dataset,
                          bits=config.bits)
        return TrainState(params=params, opt_state=opt.init(params),
                          diverged_step=jnp.asarray(-1, jnp.int32), task=task, k_data=k_data,
                          settings=st, data=data)

    def get_batch(state: TrainState, step: Array, B: int, b: Array, cdfs=None):
        if max_dataset == 0:
            return sample(fold_in(state.k_data, step), state.task, B, cdfs, config.bits)
        return epoch_batch(state.data, state.k_data, step, b, state.settings.dataset, B)

    def step(state: TrainState, t: Array, max_batch: int, masked: bool, cdfs=None):
        """One optimizer step at step index t: (new state, batch loss). ``cdfs``: the task's
        sampling CDFs, if computed outside a loop of steps."""
        task, st = state.task, state.settings
        params, opt_state, div = state.params, state.opt_state, state.diverged_step
        p = jnp.sum(t >= phase_starts).astype(jnp.int32) if len(phase_starts) else 0
        b = st.phase["batch"][p]
        mask = (jnp.arange(max_batch) < b) if masked else None
        if config.population:
            loss, g = jax.value_and_grad(population_loss)(params, task, model)
            counts = task.mu * (b * (T + 1)).astype(jnp.float32)
        else:
            batch = get_batch(state, t, max_batch, b, cdfs)
            loss, g = loss_and_grad(params, batch, mask, model, lossname, grad)
            counts = token_counts(batch, N, mask)
        hp = {n: st.phase[n][p] for n in HPARAMS}
        params, opt_state = transforms.apply(opt, g, opt_state, params, token_counts=counts,
                                             mu=task.mu, freeze=jnp.asarray(freeze_P)[p], **hp)
        ok = all_finite(params)
        div = jnp.where((div < 0) & ~ok, t + 1, div)
        new = dataclasses.replace(state, params=params, opt_state=opt_state, diverged_step=div)
        return new, loss

    def run_interval(state: TrainState, cdfs, start: Array, length: Array, max_batch: int,
                     masked: bool):
        """``length`` steps from step ``start``: (state, sum of their batch losses)."""
        if fused:
            return make_fused_interval(config, max_batch, masked)(state, cdfs, start, length)

        def one_step(t, carry):
            state, loss_sum = carry
            state, loss = step(state, t, max_batch, masked, cdfs)
            return state, loss_sum + loss

        return jax.lax.fori_loop(start, start + length, one_step,
                                 (state, jnp.zeros((), jnp.float32)))

    def advance(state: TrainState, starts_C: Array, lengths_C: Array, max_batch: int,
                masked: bool):
        cdfs = task_cdfs(state.task)  # loop-invariant: once per call, not per step

        def interval(state, x):
            start, length = x
            state, loss_sum = run_interval(state, cdfs, start, length, max_batch, masked)
            if on_log is not None:
                jax.debug.callback(on_log, start + length)
            m = measure(state.params, state.task, model)
            m["batch_loss"] = loss_sum / length.astype(jnp.float32)
            return state, m

        xs = (jnp.asarray(starts_C, jnp.int32), jnp.asarray(lengths_C, jnp.int32))
        return jax.lax.scan(interval, state, xs)

    def advance_runs(state_R: TrainState, starts_C: Array, lengths_C: Array, max_batch: int,
                     masked: bool, shards: int = 1, per_run: bool | None = None):
        cdfs_R = jax.vmap(task_cdfs)(state_R.task)

        def interval(state_R, x):
            start, length = x
            state_R, loss_R = jax.vmap(
                lambda s, c: run_interval(s, c, start, length, max_batch, masked))(state_R, cdfs_R)
            m = measure_runs(state_R, model, shards, per_run)
            m["batch_loss"] = loss_R / length.astype(jnp.float32)
            return state_R, m

        xs = (jnp.asarray(starts_C, jnp.int32), jnp.asarray(lengths_C, jnp.int32))
        state_R, m_CxR = jax.lax.scan(interval, state_R, xs)
        return state_R, {k: v.T for k, v in m_CxR.items()}

    return Stepper(config=config, model=model, max_dataset=max_dataset, fused=fused, init=init,
                   advance=advance, step=step, advance_runs=advance_runs)


def measure_runs(state_R: TrainState, model: Attention, shards: int = 1,
                 per_run: bool | None = None) -> dict:
    """``measure`` of each run of a batch of states (leading axis R). ``per_run`` (default: on
    a CPU backend) measures one run at a time (``lax.map``; the R runs split into ``shards``
    contiguous blocks, one per device, measured side by side), so that a run's metrics are the
    same bits whatever the batch around it: XLA's CPU code for a vmapped batch sums and fuses
    multiply-adds by the batch's shape (docs/findings.md §5.1). Otherwise one vmapped call."""
    f = jax.vmap(lambda p, t: measure(p, t, model))
    if per_run is None:
        per_run = jax.default_backend() == "cpu"
    if not per_run:
        return f(state_R.params, state_R.task)
    R = state_R.params.V.shape[0]
    S = R // shards

    def split(x):  # [R, ...] -> [S, shards, ...]: run d * S + s at [s, d]
        return jnp.swapaxes(x.reshape((shards, S) + x.shape[1:]), 0, 1)

    m = jax.lax.map(lambda pt: f(*pt), jax.tree.map(split, (state_R.params, state_R.task)))
    return {k: jnp.swapaxes(v, 0, 1).reshape(R) for k, v in m.items()}


def initial_metrics_runs(stepper: Stepper, state_R: TrainState, shards: int = 1,
                         per_run: bool | None = None) -> dict:
    """``initial_metrics`` of each run of a batch of states, as ``measure_runs``."""
    m = measure_runs(state_R, stepper.model, shards, per_run)
    m["batch_loss"] = jnp.full(state_R.params.V.shape[:1], jnp.nan, jnp.float32)
    return m


def initial_metrics(stepper: Stepper, state: TrainState) -> dict:
    """Metrics at step 0 (``batch_loss`` nan), as logged first by ``make_train``."""
    m = measure(state.params, state.task, stepper.model)
    m["batch_loss"] = jnp.asarray(jnp.nan, jnp.float32)
    return m
