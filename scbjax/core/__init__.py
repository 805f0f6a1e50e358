"""Layer 1, the science: the SCB task, its sampler, the model, losses (batch and closed form),
metrics and transfer. Pure functions of arrays; nothing here knows about training runs."""
