"""Layer 2, the optimizers: optax transformations (preconditioning, l1 prox, projections, the
paper's ``ppd``, the SGD and Adam baselines), the registry (``register_optimizer``) and the l1
weight rule (``l1``)."""
