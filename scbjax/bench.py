"""``scbjax bench``: throughput of the vmapped run against a per-seed loop and a floor.

Canonical configuration: N = 16, T = 64, Q = 2, batch B = 8, the paper's method (ppd, true mu,
affine projections, lambda = 1e-3), uniform start. Measured, in one process:

(a) vmapped throughput: the sweep's compiled ``advance`` (``jit(vmap(...))`` over S seeds, one
    log interval of ``steps`` steps), sample-steps per second over all seeds, best of
    ``repeats`` timed calls after compiling;
(b) a plain per-seed loop: a Python loop over seeds and steps around one jitted step (the same
    step function, one seed at a time);
(c) the floor for the work of (a) at S seeds: the time of a jitted function that only draws the
    same uniform numbers (S x steps x B x (T + 3), by ``fold_in(key, step)`` as the sampler does)
    plus the step's arithmetic (``flops_per_sample_step`` x S x steps x B) at this machine's
    matrix-multiply rate (a 512 x 512 float32 matmul, timed here); the ratio (a) / floor;
(d) compile time of (a) and peak memory (XLA's argument + output + temporary bytes of the
    compiled call, and the process's maximum resident set size).
"""

from __future__ import annotations

import dataclasses
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.task import TaskConfig
from scbjax.train import Phase, TrainConfig, make_stepper, seed_keys


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    N: int = 16
    T: int = 64
    Q: int = 2
    batch: int = 8
    steps: int = 500
    seeds: tuple[int, ...] = (1, 8, 64, 256)
    loop_seeds: int = 2
    loop_steps: int = 200
    repeats: int = 3


def train_config(b: BenchConfig) -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=b.N, T=b.T, Q=b.Q),
                       phases=(Phase(steps=b.steps, batch=b.batch, lr_V=0.01, lr_A=0.01,
                                     lam=1e-3),),
                       optimizer="ppd", log_every=b.steps).validate()


def flops_per_sample_step(N: int, T: int, B: int) -> float:
    """Arithmetic of one sample in one step (forward V h, backward V^T r and r h^T: 6 N^2; the
    features and their gradient, 2 T; the residual, 4 N) plus the per-step optimizer on V and A
    (about 10 flops per entry) shared by the B samples."""
    return 6 * N * N + 2 * T + 4 * N + 10 * (N * N + T * N) / B


def matmul_flops_per_s(n: int = 512, repeats: int = 5) -> float:
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def _best(f, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f())
        best = min(best, time.perf_counter() - t0)
    return best


def rng_seconds(keys, steps: int, B: int, T: int, repeats: int) -> float:
    """Time to draw only the sampler's uniforms for all seeds and steps (best of repeats)."""

    def one(key):
        def body(acc, t):
            u = jax.random.uniform(jax.random.fold_in(key, t), (B, T + 3))
            return acc + u.sum(), None  # every draw is used (else XLA skips them)

        return jax.lax.scan(body, jnp.zeros((), jnp.float32),
                            jnp.arange(steps, dtype=jnp.int32))[0]

    f = jax.jit(jax.vmap(one))
    jax.block_until_ready(f(keys))
    return _best(lambda: f(keys), repeats)


def vmapped(b: BenchConfig, S: int) -> dict:
    cfg = train_config(b)
    st = make_stepper(cfg)
    keys = seed_keys(range(S))
    state = jax.jit(jax.vmap(st.init))(keys)
    adv = jax.jit(jax.vmap(st.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4))
    starts, lengths = np.zeros(1, np.int32), np.full(1, b.steps, np.int32)
    t0 = time.perf_counter()
    comp = adv.lower(state, starts, lengths, b.batch, False).compile()
    compile_s = time.perf_counter() - t0
    mem = comp.memory_analysis()
    mem_bytes = None
    if mem is not None:
        mem_bytes = int(mem.argument_size_in_bytes + mem.output_size_in_bytes
                        + mem.temp_size_in_bytes)
    jax.block_until_ready(comp(state, starts, lengths))  # warm-up
    dt = _best(lambda: comp(state, starts, lengths), b.repeats)
    return {"seeds": S, "samples_per_s": S * b.steps * b.batch / dt, "run_s": dt,
            "compile_s": compile_s, "xla_bytes": mem_bytes}


BREAKDOWN = ("uniforms", "sampler", "loss", "gradient", "ppd step")


def breakdown(b: BenchConfig, S: int) -> dict[str, float]:
    """Sample-steps per second of ``jit(vmap(loop over steps))`` at S seeds, each level adding
    one piece of the step: the uniforms alone, the whole sampler, the batch loss, its gradient,
    and the full ppd step (the bench's ``advance``). Differences of 1/rate are the pieces' cost."""
    from scbjax.losses import batch_loss
    from scbjax.model import uniform_params
    from scbjax.sampler import sample, task_cdfs
    from scbjax.task import make_task

    cfg = train_config(b)
    B, T = b.batch, b.T
    params = uniform_params(b.N, T)

    def level(kind: str):
        def one(key):
            k_task, _, k_data = jax.random.split(key, 3)
            task = make_task(k_task, cfg.task)
            cdfs = task_cdfs(task)

            def body(t, acc):
                k = jax.random.fold_in(k_data, t)
                if kind == "uniforms":
                    return acc + jax.random.uniform(k, (B, T + 3)).sum()
                batch = sample(k, task, B, cdfs)
                if kind == "sampler":
                    return acc + (batch.tokens.sum() + batch.query.sum()
                                  + batch.target.sum()).astype(jnp.float32)
                if kind == "loss":
                    return acc + batch_loss(params, batch)
                g = jax.grad(batch_loss)(params, batch)
                return acc + g.V.sum() + g.A.sum()

            return jax.lax.fori_loop(0, b.steps, body, jnp.zeros((), jnp.float32))

        keys = seed_keys(range(S))
        f = jax.jit(jax.vmap(one))
        jax.block_until_ready(f(keys))
        return S * b.steps * B / _best(lambda: f(keys), b.repeats)

    out = {k: level(k) for k in BREAKDOWN[:-1]}
    out["ppd step"] = vmapped(b, S)["samples_per_s"]
    return out


def format_breakdown(rates: dict[str, float], S: int) -> str:
    lines = [f"breakdown at {S} seeds (each line adds one piece to the step):",
             f"{'work per step':<12} {'sample-steps/s':>15} {'+ us per sample-step':>21}"]
    prev = 0.0
    for name, r in rates.items():
        us = 1e6 / r
        lines.append(f"{name:<12} {r:>15.4g} {us - prev:>+21.3f}")
        prev = us
    return "\n".join(lines)


def per_seed_loop(b: BenchConfig) -> float:
    """Python loop over seeds and steps around one jitted (unvmapped) step."""
    cfg = train_config(b)
    st = make_stepper(cfg)

    @jax.jit
    def step(state, t):
        return st.step(state, t, b.batch, False)[0]

    keys = seed_keys(range(b.loop_seeds))
    states = [jax.jit(st.init)(k) for k in keys]
    jax.block_until_ready(step(states[0], jnp.asarray(0, jnp.int32)))
    best = float("inf")
    for _ in range(b.repeats):
        t0 = time.perf_counter()
        for s in states:
            for t in range(b.loop_steps):
                s = step(s, jnp.asarray(t, jnp.int32))
            jax.block_until_ready(s)
        best = min(best, time.perf_counter() - t0)
    return b.loop_seeds * b.loop_steps * b.batch / best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_bench(b: BenchConfig) -> dict:
    rate = matmul_flops_per_s()
    fps = flops_per_sample_step(b.N, b.T, b.batch)
    rows = []
    for S in b.seeds:
        r = vmapped(b, S)
        work = S * b.steps * b.batch
        t_rng = rng_seconds(seed_keys(range(S)), b.steps, b.batch, b.T, b.repeats)
        t_floor = t_rng + work * fps / rate
        r["rng_s"] = t_rng
        r["floor_samples_per_s"] = work / t_floor
        r["ratio_to_floor"] = r["samples_per_s"] / r["floor_samples_per_s"]
        rows.append(r)
    loop = per_seed_loop(b)
    last = rows[-1]
    from scbjax.results import versions

    return {
        "config": {**dataclasses.asdict(b), "method": "ppd", "lam": 1e-3, "lr": 0.01},
        "seeds": [r["seeds"] for r in rows],
        "samples_per_s": [r["samples_per_s"] for r in rows],
        "floor_samples_per_s": [r["floor_samples_per_s"] for r in rows],
        "ratio_to_floor": [r["ratio_to_floor"] for r in rows],
        "compile_s": [r["compile_s"] for r in rows],
        "xla_bytes": [r["xla_bytes"] for r in rows],
        "rng_s": [r["rng_s"] for r in rows],
        "loop_samples_per_s": loop,
        "speedup_vs_loop": last["samples_per_s"] / loop,
        "matmul_flops_per_s": rate,
        "flops_per_sample_step": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"cpu": cpu_model(), "cores": _cores(), "devices": [str(d) for d in
                                                                      jax.devices()]},
        "versions": versions(),
    }


def _cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def format_bench(r: dict) -> str:
    c = r["config"]
    lines = [f"scbjax bench: N={c['N']} T={c['T']} Q={c['Q']} B={c['batch']} method=ppd "
             f"steps={c['steps']}  ({r['machine']['cpu']}, {r['machine']['cores']} cores, "
             f"jax {r['versions']['jax']})",
             f"{'seeds':>6} {'vmapped/s':>12} {'floor/s':>12} {'ratio':>7} {'compile s':>10} "
             f"{'XLA MB':>8}"]
    for i, S in enumerate(r["seeds"]):
        mb = r["xla_bytes"][i]
        lines.append(f"{S:>6d} {r['samples_per_s'][i]:>12.4g} {r['floor_samples_per_s'][i]:>12.4g}"
                     f" {r['ratio_to_floor'][i]:>7.2f} {r['compile_s'][i]:>10.2f} "
                     f"{(mb / 2**20 if mb is not None else float('nan')):>8.2f}")
    lines.append(f"per-seed loop (Python loop around a jitted step): "
                 f"{r['loop_samples_per_s']:.4g} sample-steps/s; vmapped at {r['seeds'][-1]} "
                 f"seeds = {r['speedup_vs_loop']:.1f}x the loop")
    lines.append(f"floor = uniforms' draw time + {r['flops_per_sample_step']:.0f} flops per "
                 f"sample-step at the measured matmul rate {r['matmul_flops_per_s'] / 1e9:.1f} "
                 f"GFLOP/s; peak RSS {r['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)
