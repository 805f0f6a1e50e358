"""Train on a task of your own: P, q (and mu) from arrays, validated, the same task for every seed.

`--tiny` shrinks it to a smoke test.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

import scbjax as s

p = argparse.ArgumentParser()
p.add_argument("--tiny", action="store_true")
a = p.parse_args()
N, T, seeds, steps = (4, 6, 2, 40) if a.tiny else (8, 16, 16, 4000)
P = np.full((N, N), 0.1 / (N - 1)) + np.eye(N) * (0.9 - 0.1 / (N - 1))  # a sticky chain
q = np.zeros((T, N))
q[0], q[T - 1] = 0.5, 0.5  # every query looks at the first and the last position
task = s.task_from_arrays(P, q, Q=2)  # ConfigError naming the array if P or q is off
cfg = s.TrainConfig(task=s.TaskConfig(N=N, T=T, Q=2), phases=(s.Phase(steps, 32, 0.05, 0.05),),
                    log_every=steps // 4)
tasks = jax.tree.map(lambda x: jnp.stack([x] * seeds), task)  # one copy per run
res = s.train_many(cfg, s.seed_keys(range(seeds)), task=tasks)
print("excess loss at the log points (median over seeds):",
      np.round(np.median(np.asarray(res.metrics["excess_loss"]), 0), 4))
print("final corr_A:", np.round(np.asarray(res.metrics["corr_A"][:, -1]), 3))
