"""A run's static configuration: ``TrainConfig``, its ``Phase`` schedule and ``Hparams``.

``Phase`` is the one declaration of every per-phase setting. A field marked ``per_run`` may
differ between the runs of one compiled group: it is traced (``PER_RUN``), set per run by
``scbjax.engine.spec.run`` and swept by ``scbjax.app.sweep``; its ``bound`` is checked wherever a
value enters. Float per-run fields (``HPARAMS``) reach the optimizer at every step as extra
arguments named after the field, so a new per-phase hyperparameter is one field here and one
keyword in the optimizer that reads it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from scbjax.core.model import ATTENTION
from scbjax.core.sampler import BITS
from scbjax.core.task import TaskConfig
from scbjax.optim import builtins  # noqa: F401  (registers ppd, sgd, adam)
from scbjax.optim import registry
from scbjax.optim.transforms import ORDERS, PROJECTIONS, PROXES
from scbjax.util import fields
from scbjax.util.errors import require
from scbjax.util.fields import field

Array = jax.Array
MAX_STEPS = 2**31 - 1  # step indices are int32 on the device
MODELS = tuple(ATTENTION)  # "linear", "softmax": the names of the attention models
LOSSES = ("mse", "ce")
FUSED = ("auto", "on", "off")
# TrainConfig fields that choose how a run is computed, not what (the same numbers up to float
# rounding): left out of a run's configuration hash (``RunSpec.key``), as the device is.
HOW_FIELDS = ("fused",)


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training with its own batch size, learning rates and l1 weight."""

    steps: int = field(help="training steps of the phase", bound=(">=", 1))
    batch: int = field(8, "samples per step", per_run=True, bound=(">=", 1))
    lr_V: float = field(0.01, "learning rate for V", per_run=True, bound=(">", 0))
    lr_A: float = field(0.01, "learning rate for A", per_run=True, bound=(">", 0))
    lam: float = field(0.0, "l1 weight on A (ppd only)", per_run=True, bound=(">=", 0))
    freeze: bool = field(False, "a debiasing phase: A's exact zeros stay zero and each column "
                         "of A is projected onto {1^T a = 1} over its support (ppd only) [recon]")


PER_RUN = fields.per_run_fields(Phase)  # traced per-phase settings: batch, lr_V, lr_A, lam
HPARAMS = tuple(n for n in PER_RUN if fields.hints(Phase)[n] is float)  # passed to the optimizer


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static configuration of a run. Options marked [recon] are reconstructions (docs/design.md, docs/spec.md).

    - ``optimizer``: "ppd" (the paper's method), "sgd", "adam" or a registered name.
    - ``mu``: preconditioner uses the "true" mu or an "estimate" from token counts [recon].
    - ``projection_V`` / ``projection_A``: "affine" ({1^T v = 1}), "simplex" or "none" [recon].
    - ``order``: "prox_project" (soft-threshold, then project) or "project_prox" [recon].
    - ``prox``: the l1 step on A: "soft", "affine_exact", "precond" or "none" [recon] (see
      ``scbjax.optim.transforms``).
    - ``init``: "uniform" (V = 11^T/N, A = 11^T/T) or "random" (scale ``init_scale``).
    - ``model``: "linear" or "softmax" (A holds attention logits); ``loss``: "mse" or "ce".
    - ``population``: step with the exact population gradient instead of a sampled batch.
    - ``fused``: "auto", "on" or "off": the fused Pallas step (``scbjax.sim.fused``).
    - ``bits``: "jax" (jax.random's uniforms) or "paired" (both words of a threefry block).
    """

    task: TaskConfig = field(TaskConfig(), "the random SCB instance of each seed")  # noqa: RUF009
    phases: tuple[Phase, ...] = field((Phase(steps=1000),), "training phases, run in order")
    optimizer: str = field(
        "ppd", "ppd: the paper's preconditioned projected proximal descent; sgd; adam; or a name "
        "registered with scbjax.register_optimizer (--plugin FILE)", choices=registry.names)
    model: Literal[MODELS] = field(
        "linear", "linear attention, or softmax attention over positions")
    loss: Literal[LOSSES] = field("mse", "training loss: squared error or cross-entropy")
    mu: Literal["true", "estimate"] = field(
        "true", "preconditioner: true mu or running estimate from token counts [recon]")
    mu_prior: float = field(1.0, "pseudo-count of each token in the mu estimate [recon]",
                            bound=(">", 0))
    projection_V: Literal[PROJECTIONS] = field(
        "affine", "projection of the columns of V [recon]")
    projection_A: Literal[PROJECTIONS] = field(
        "affine", "projection of the columns of A [recon]")
    order: Literal[ORDERS] = field(
        "prox_project", "order of the l1 prox and the projection [recon]")
    prox: Literal[PROXES] = field(
        "soft", "the l1 step on A: soft-threshold then project, the exact prox on {1^T a = 1}, "
        "a threshold in the preconditioned metric, or none [recon]")
    init: Literal["uniform", "random"] = field(
        "uniform", "initialisation: uniform (V = 11^T/N, A = 11^T/T) or random")
    init_scale: float = field(0.5, "weight of the random part of a random init (in [0, 1])",
                              bound=(">=", 0))
    log_every: int = field(50, "log metrics every k steps", bound=(">=", 1))
    log_per_decade: int = field(
        0, "0: log every log_every steps; K >= 1: log-spaced, K log points per decade of steps "
        "(at log_every x round(10^(j/K)), and each phase end): every log_every steps while "
        "that is finer than a step ratio of 10^(1/K), then at that ratio", bound=(">=", 0))
    population: bool = field(False, "step with the exact population gradient (no sampling)")
    fused: Literal[FUSED] = field(
        "auto", "the fused training step (one Pallas kernel per log interval, sim.fused): auto "
        "(on a GPU backend, for the configurations it covers), on (ConfigError where not "
        "covered; off a GPU it runs interpreted, slowly), off (the XLA step)")
    bits: Literal[BITS] = field(
        "jax", "the sampler's uniforms: jax.random's numbers (one threefry block per number), or "
        "both 32-bit words of each block (other numbers, half the blocks; sampler.paired)")

    def validate(self) -> TrainConfig:
        """Type-check every field (``fields.check``), then the ranges (``fields.check_bound``)
        and the combinations; ConfigError names the field: ``task.N``, ``phases[0].lr_V``..."""
        fields.check(self)
        self.task.validate("task")
        require(len(self.phases) >= 1, "phases", "need at least one phase")
        for i, ph in enumerate(self.phases):
            for f in dataclasses.fields(Phase):
                fields.check_bound(Phase, f.name, getattr(ph, f.name), f"phases[{i}].{f.name}")
        for name in ("mu_prior", "init_scale", "log_every", "log_per_decade"):
            fields.check_bound(TrainConfig, name, getattr(self, name), name)
        require(self.total_steps <= MAX_STEPS, "phases",
                f"{self.total_steps} steps in all, more than {MAX_STEPS} (int32 step index)")
        registry.factory(self.optimizer)  # ConfigError("optimizer") naming the known ones
        require(self.init_scale <= 1, "init_scale", f"must be in [0, 1], got {self.init_scale!r}")
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

    def per_phase(self, name: str) -> tuple:
        """The value of Phase field ``name`` in each phase."""
        return tuple(getattr(p, name) for p in self.phases)


class Hparams(dict):
    """Traced hyperparameters: Phase field name -> [n_phases] array (a subset of ``HPARAMS``;
    a missing name keeps the config's values). A pytree: vmap it for one value per run."""

    def __init__(self, **values):
        for k in values:
            require(k in HPARAMS, k, f"not a per-run hyperparameter (known: {', '.join(HPARAMS)})")
        super().__init__(values)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


jax.tree_util.register_pytree_node(
    Hparams, lambda h: (tuple(h[k] for k in sorted(h)), tuple(sorted(h))),
    lambda names, xs: Hparams(**dict(zip(names, xs))))


def default_hparams(config: TrainConfig) -> Hparams:
    """The config's value of every float per-run field, per phase (float32 [n_phases])."""
    return Hparams(**{n: jnp.asarray(config.per_phase(n), jnp.float32) for n in HPARAMS})

