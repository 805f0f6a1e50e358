"""scbjax: JAX simulator of the Sparse Contextual Bigram task and its linear-transformer learner."""

from scbjax.util.backend import guard_known_bad_jaxlib, use_partitionable_threefry

guard_known_bad_jaxlib()  # before any JAX computation; see scbjax/backend.py
use_partitionable_threefry()  # padded batches need positional random bits (jax < 0.5)

from scbjax.util.errors import ConfigError  # noqa: E402
from scbjax.core.losses import bayes_risk, batch_loss, excess_loss, population_grad, population_loss
from scbjax.core.metrics import corr_A, corr_V, measure
from scbjax.core.model import (LINEAR, SOFTMAX, Attention, Params, attention, embed_params, forward,
                               forward_embedded, uniform_params)
from scbjax.optim.transforms import adam, ppd, scale_by_lr, sgd
from scbjax.optim.registry import load_plugin, register_optimizer
from scbjax.core.sampler import Batch, sample
from scbjax.core.task import Task, TaskConfig, make_task, stationary, task_from_arrays, validate_task
from scbjax.sim.train import (Hparams, Phase, TrainConfig, TrainResult, default_hparams, log_schedule,
                          make_train, seed_keys, train_many)

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Task", "TaskConfig", "make_task", "stationary", "task_from_arrays",
    "validate_task", "Batch", "sample", "Params", "Attention", "LINEAR", "SOFTMAX", "forward",
    "forward_embedded", "embed_params", "attention", "uniform_params", "population_loss",
    "population_grad", "excess_loss", "bayes_risk", "batch_loss", "measure", "corr_V", "corr_A",
    "ppd", "sgd", "adam", "Phase", "TrainConfig", "Hparams", "TrainResult", "default_hparams",
    "log_schedule", "make_train", "train_many", "seed_keys", "register_optimizer", "load_plugin",
    "scale_by_lr",
]
