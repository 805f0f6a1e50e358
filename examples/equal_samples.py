"""Does a smaller batch reach the truth sooner at an equal sample budget? (batch sizes x seeds)

One spec per batch size (steps = budget / batch), run by the one executor; the median final
relative distance of A over seeds, per batch. `--tiny` shrinks it to a smoke test.
"""
import argparse

import numpy as np

import scbjax as s
from scbjax.engine.executor import Log, execute
from scbjax.engine.spec import RunSpec, grid

p = argparse.ArgumentParser()
p.add_argument("--out", default="results/examples/equal_samples")
p.add_argument("--tiny", action="store_true")
a = p.parse_args()
budget, seeds, task = (800, 2, s.TaskConfig(N=4, T=8, Q=2)) if a.tiny else (
    200_000, 8, s.TaskConfig(N=10, T=64, Q=2))
specs = {f"B{B}": RunSpec(s.TrainConfig(task=task, phases=(s.Phase(budget // B, B, 0.02, 0.02),),
                                        log_every=budget // B // 4), grid(range(seeds)))
         for B in (4, 16, 64)}
rs = execute(specs, a.out, log=Log(quiet=True))
for name, runs in rs.items():
    print(f"{name}: median final rel dist_A {np.median(runs.final('rel_dist_A')):.3f}")
