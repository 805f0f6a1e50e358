"""The whole run as one pure function: ``make_train(config) -> train(key, hparams, ...)``.

``jax.jit(jax.vmap(train))`` trains many seeds (and traced learning rates / lambda) in one
compiled call. Per-step data come from ``fold_in(data_key, step)``, so a seed's result does not
depend on which other seeds share its vmap. Metrics are logged every ``log_every`` steps. The
steps are those of ``scbjax.sim.step.make_stepper``; this module also gathers the names of the
simulation layer (config, step) for import in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp

from scbjax.core.keys import seed_keys
from scbjax.core.model import Params
from scbjax.core.task import Task
from scbjax.sim.config import (HPARAMS, MAX_STEPS, PER_RUN, Hparams, Phase, TrainConfig,
                               default_hparams)
from scbjax.sim.data import permute_index
from scbjax.sim.step import (METRICS, RunSettings, Stepper, TrainState, all_finite,
                             default_settings, initial_metrics, init_params, intervals,
                             log_schedule, make_optimizer, make_stepper)

Array = jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainResult:
    """``metrics[name]``: [L] at the log points; ``diverged_step``: first non-finite step or -1."""

    params: Params
    task: Task
    metrics: dict
    diverged_step: Array


def make_train(config: TrainConfig, on_log: Callable[[Array], None] | None = None):
    """Return ``train(key, hparams=None, task=None, params0=None) -> TrainResult``.

    ``key`` splits into task, init and data streams. ``hparams`` (``Hparams``) overrides the
    config's per-phase values; ``task``/``params0`` override the random instance / the
    initialisation (transfer). ``on_log(step)`` is called at each log point. The steps are
    those of ``make_stepper`` (one ``advance`` over each phase's log intervals).
    """
    config = config.validate()
    stepper = make_stepper(config, on_log=on_log)
    start_L, length_L, phase_L = intervals(config)

    def train(key: Array, hparams: Hparams | None = None, task: Task | None = None,
              params0: Params | None = None) -> TrainResult:
        settings = default_settings(config)
        if hparams is not None:
            settings = settings.replace(**hparams)
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


__all__ = ["HPARAMS", "MAX_STEPS", "METRICS", "PER_RUN", "Hparams", "Phase", "RunSettings",
           "Stepper", "TrainConfig", "TrainResult", "TrainState", "all_finite", "default_hparams",
           "default_settings", "init_params", "initial_metrics", "intervals", "log_schedule",
           "make_optimizer", "make_stepper", "make_train", "permute_index", "seed_keys",
           "train_many"]
