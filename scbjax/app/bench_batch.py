"""``scbjax bench --batch-grid``: step throughput over batch sizes and seed counts.

At each seed count S and batch B of the grid, the bench's vmapped call (``bench.vmapped_call``:
``jit(vmap(advance))``, one log interval of ``steps`` steps) is timed, the batches of one seed
count round-robin (``bench.best_interleaved``); reported are sample-steps per second
(S x steps x B / time) and seed-steps per second (S x steps / time: optimizer steps over all
seeds).
"""

from __future__ import annotations

import dataclasses

from scbjax.app.bench import BenchConfig, best_interleaved, device_info, machine, vmapped_call
from scbjax.engine.meta import versions

BATCHES = (4, 8, 64, 256)
SEEDS = (256, 16384)


def run_batch_grid(b: BenchConfig, batches=BATCHES, seeds=SEEDS) -> dict:
    rows = []
    for S in seeds:
        calls = {B: vmapped_call(dataclasses.replace(b, batch=B), S)[0] for B in batches}
        best = best_interleaved(calls, b.repeats)
        rows += [{"seeds": S, "batch": B, "run_s": best[B],
                  "samples_per_s": S * b.steps * B / best[B],
                  "steps_per_s": S * b.steps / best[B]} for B in batches]
    return {"config": {**dataclasses.asdict(b), "batches": list(batches), "seeds": list(seeds)},
            "rows": rows, "machine": machine(), "device": device_info(),
            "versions": versions()}


def format_batch_grid(r: dict) -> str:
    c = r["config"]
    lines = [f"scbjax bench --batch-grid: N={c['N']} T={c['T']} Q={c['Q']} method=ppd "
             f"bits={c['bits']} steps={c['steps']} ({r['machine']['cpu']}, "
             f"{r['machine']['cores']} cores, {r['device']['platform']} {r['device']['kind']})",
             f"{'seeds':>6} {'B':>5} {'sample-steps/s':>15} {'seed-steps/s':>13}"]
    for x in r["rows"]:
        lines.append(f"{x['seeds']:>6d} {x['batch']:>5d} {x['samples_per_s']:>15.4g} "
                     f"{x['steps_per_s']:>13.4g}")
    return "\n".join(lines)
