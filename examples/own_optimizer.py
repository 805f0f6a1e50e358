"""Your own optimizer: heavy-ball SGD, registered by name, run by the executor beside plain SGD.

Its code enters the configuration hash: edit `heavy_ball` and the next run recomputes instead of
reusing the stored result. `--tiny` shrinks it to a smoke test.
"""
import argparse

import jax
import numpy as np
import optax

import scbjax as s
from scbjax.engine.executor import Log, execute
from scbjax.engine.spec import RunSpec, grid


def heavy_ball(config, beta=0.9):
    """SGD with momentum beta; the phase's lr_V and lr_A arrive as extra arguments."""
    def update(g, m, params=None, *, lr_V, lr_A, **extra):
        m = jax.tree.map(lambda mi, gi: beta * mi + gi, m, g)
        return s.Params(V=-lr_V * m.V, A=-lr_A * m.A), m

    return optax.GradientTransformationExtraArgs(lambda p: jax.tree.map(jax.numpy.zeros_like, p),
                                                 update)


s.register_optimizer("heavy_ball", heavy_ball)
p = argparse.ArgumentParser()
p.add_argument("--out", default="results/examples/own_optimizer")
p.add_argument("--tiny", action="store_true")
a = p.parse_args()
task, steps, seeds = (s.TaskConfig(N=4, T=8, Q=2), 40, 2) if a.tiny else (
    s.TaskConfig(N=8, T=32, Q=2), 3000, 8)
specs = {opt: RunSpec(s.TrainConfig(task=task, phases=(s.Phase(steps, 16, 0.02, 0.02),),
                                    optimizer=opt, projection_V="none", projection_A="none",
                                    log_every=steps // 4), grid(range(seeds)))
         for opt in ("sgd", "heavy_ball")}
for opt, runs in execute(specs, a.out, log=Log(quiet=True)).items():
    print(f"{opt}: median final excess loss {np.median(runs.final('excess_loss')):.4f}")
