"""The built-in optimizers, registered by name: "ppd" (the paper's method), "sgd", "adam".

Each factory takes the run's ``TrainConfig`` and returns the optax transformation that ``make_stepper``
builds once per run; a user's own optimizer is registered the same way
(``scbjax.register_optimizer``).
"""

from __future__ import annotations

import optax

from scbjax.optim import registry, transforms


def ppd(config) -> optax.GradientTransformationExtraArgs:
    """``transforms.ppd`` with the config's reconstruction options; a ``freeze_zeros`` step
    after it when a phase is a debiasing phase."""
    estimate = config.mu == "estimate" and not config.population
    opt = transforms.ppd(config.task.N, projection_V=config.projection_V,
                         projection_A=config.projection_A, order=config.order,
                         mu_prior=config.mu_prior, estimate=estimate, prox=config.prox)
    if any(p.freeze for p in config.phases):
        opt = optax.chain(opt, transforms.freeze_zeros(config.projection_A))
    return opt


def sgd(config) -> optax.GradientTransformationExtraArgs:
    """Plain SGD at the injected ``lr_V``, ``lr_A``."""
    return transforms.sgd()


def adam(config) -> optax.GradientTransformationExtraArgs:
    """Adam at the injected ``lr_V``, ``lr_A``."""
    return transforms.adam()


for _name, _factory in (("ppd", ppd), ("sgd", sgd), ("adam", adam)):
    registry.register_optimizer(_name, _factory, builtin=True)
