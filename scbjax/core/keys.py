"""The one public random-key layout: a run's key and its task, init and data streams.

A run of integer ``seed`` folded with the integers ``fold`` (in order) has the key
``run_key(seed, fold)``; ``streams(key)`` splits it into (task, init, data) keys. Step t's batch
comes from ``fold_in(data, t)`` and a fixed dataset from ``fold_in(data, DATASET_FOLD)``. Every
study that needs a run's task outside the engine (a pretrained model of the downstream task, the
l1 rule's tuning task) builds it with ``task_of`` from these functions, never by hand.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.core import threefry
from scbjax.core.task import Task, TaskConfig, make_task
from scbjax.util.errors import require

Array = jax.Array
DATASET_FOLD = 0x7FFFFFFF  # fold_in(data key, this): the fixed dataset's stream (steps are below)


def seed_keys(seeds) -> Array:
    """One PRNG key per integer seed in [0, 2^32): ``vmap(PRNGKey)``."""
    s = np.asarray(seeds)
    require(s.ndim == 1 and (s.size == 0 or (np.issubdtype(s.dtype, np.integer)
                                             and s.min() >= 0 and s.max() < 2**32)),
            "seeds", f"want a sequence of integers in [0, 2^32), got {seeds!r}")
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(s, jnp.uint32))


_fold = jax.jit(jax.random.fold_in)


def run_keys(seeds, folds=None) -> np.ndarray:
    """The key of each run: ``PRNGKey(seed)`` folded with each integer of its ``fold`` (a
    sequence per run; None: no folds) in order. [R, 2] uint32."""
    keys = np.array(seed_keys(np.asarray(seeds, np.uint32)))
    for i, fold in enumerate(folds or ()):
        k = keys[i]
        for f in fold:
            k = _fold(k, np.uint32(f))
        keys[i] = np.asarray(k)
    return keys


def run_key(seed: int, fold=()) -> Array:
    """The key of one run (``run_keys`` of it)."""
    return jnp.asarray(run_keys([seed], [fold])[0])


def streams(key: Array) -> tuple[Array, Array, Array]:
    """A run's key -> its (task, init, data) keys."""
    k_task, k_init, k_data = threefry.split(key, 3)  # jax.random.split's bits
    return k_task, k_init, k_data


def task_key(seed: int, fold=()) -> Array:
    """The key the task of run (``seed``, ``fold``) is drawn from."""
    return streams(run_key(seed, fold))[0]


def task_of(seed: int, cfg: TaskConfig, fold=()) -> Task:
    """The random task that run (``seed``, ``fold``) trains on."""
    return make_task(task_key(seed, fold), cfg)
