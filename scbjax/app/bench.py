"""``scbjax bench``: throughput of the vmapped run against a per-seed loop and two bounds.

Canonical configuration: N = 16, T = 64, Q = 2, batch B = 8, the paper's method (ppd, true mu,
affine projections, lambda = 1e-3), uniform start. Measured, in one process:

(a) vmapped throughput: the sweep's compiled ``advance`` (``jit(vmap(...))`` over S seeds, one
    log interval of ``steps`` steps), sample-steps per second over all seeds, best of
    ``repeats`` timed calls after compiling, timed round-robin with the floor's calls (c);
(b) a plain per-seed loop: a Python loop over seeds and steps around one jitted step (the same
    step function, one seed at a time);
(c) two bounds, timed round-robin with (a) (``bench_bounds``): the random-number bound (the
    step's uniforms alone, S x steps x B x (T + 3), by the faster of the fused threefry
    ``sampler.uniform`` and ``sampler.paired``) and the memory bound (V and A read and written
    once per seed-step at the measured copy bandwidth); the ratio of (a) to each;
    on a CPU also the older floor: the same uniforms by ``jax.random`` plus the step's
    arithmetic (``flops_per_sample_step`` x S x steps x B) at this machine's matrix-multiply
    rate (a 512 x 512 float32 matmul, timed here), and that floor with the fused draw
    (``fused_floor_samples_per_s``); on accelerators (where the matmul rate moved 1.1-3.5x
    between runs) the floor's fields are None;
(d) compile time of (a) and peak memory (XLA's argument + output + temporary bytes of the
    compiled call, and the process's maximum resident set size).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from scbjax.app.bench_bounds import bounds, bytes_per_seed_step, copy_bandwidth, rng_call
from scbjax.core import sampler
from scbjax.core.sampler import BITS
from scbjax.core.losses import GRADS, loss_and_grad
from scbjax.core.model import uniform_params
from scbjax.core.task import TaskConfig, make_task
from scbjax.engine.meta import devices, versions
from scbjax.sim.train import Phase, TrainConfig, make_stepper, seed_keys
from scbjax.util import fields
from scbjax.util.fields import field


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """What ``scbjax bench`` times (its options derive from these fields)."""

    N: int = field(16, "vocabulary size", bound=(">=", 1))
    T: int = field(64, "context length", bound=(">=", 1))
    Q: int = field(2, "sparsity", bound=(">=", 1))
    batch: int = field(8, "batch size", bound=(">=", 1))
    steps: int = field(500, "steps per timed vmapped call", bound=(">=", 1))
    seeds: tuple[int, ...] = field((1, 8, 64, 256), "seed counts of the vmapped calls")
    loop_seeds: int = field(2, "seeds in the per-seed loop", bound=(">=", 1))
    loop_steps: int = field(200, "steps per seed in the loop", bound=(">=", 1))
    repeats: int = field(3, "timed repeats (best is kept)", bound=(">=", 1))
    grad: Literal[GRADS] = field(
        "closed", "the step's gradient: closed form (its sums over tokens as scatter-adds, or as "
        "dense one-hot sums), or autodiff")
    copy_mb: int = field(256, "MB of the array whose copy measures the memory bandwidth",
                         bound=(">=", 1))
    bits: Literal[BITS] = field(
        "jax", "the sampler's uniforms (TrainConfig.bits): jax.random's, or both words of each "
        "threefry block")

    def validate(self) -> BenchConfig:
        """Type-check every field, then the bounds; ConfigError names the field."""
        fields.check(self)
        for f in dataclasses.fields(self):
            if "bound" in f.metadata:
                fields.check_bound(BenchConfig, f.name, getattr(self, f.name), f.name)
        return self


def train_config(b: BenchConfig) -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=b.N, T=b.T, Q=b.Q),
                       phases=(Phase(steps=b.steps, batch=b.batch, lr_V=0.01, lr_A=0.01,
                                     lam=1e-3),),
                       optimizer="ppd", log_every=b.steps, bits=b.bits).validate()


def flops_per_sample_step(N: int, T: int, B: int) -> float:
    """Arithmetic of one sample in one step (forward V h, backward V^T r and r h^T: 6 N^2; the
    features and their gradient, 2 T; the residual, 4 N) plus the per-step optimizer on V and A
    (about 10 flops per entry) shared by the B samples."""
    return 6 * N * N + 2 * T + 4 * N + 10 * (N * N + T * N) / B


def matmul_flops_per_s(n: int = 512, repeats: int = 5) -> float:
    """This machine's matrix-multiply rate: an n x n float32 product, best of ``repeats``."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    return 2 * n**3 / best_interleaved({"matmul": lambda: f(a)}, repeats)["matmul"]


def best_interleaved(calls: dict, repeats: int) -> dict:
    """Best wall time of each compiled call, timed round-robin (``repeats`` rounds of one call
    each), so that a change in the machine's load hits all of them alike."""
    best = {k: float("inf") for k in calls}
    for _ in range(repeats):
        for k, f in calls.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f())
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def vmapped_call(b: BenchConfig, S: int):
    """(compiled, warmed-up call of the sweep's ``jit(vmap(advance))`` over S seeds and one
    log interval of ``b.steps`` steps, its compile seconds, its XLA bytes)."""
    cfg = train_config(b)
    st = make_stepper(cfg, grad=b.grad)
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
    return (lambda: comp(state, starts, lengths)), compile_s, mem_bytes


BREAKDOWN = ("uniforms", "fused rng", "sampler", "loss", "gradient", "ppd step")


def breakdown(b: BenchConfig, S: int) -> dict[str, float]:
    """Sample-steps per second of ``jit(vmap(loop over steps))`` at S seeds, each level adding
    one piece of the step: the uniforms drawn by ``jax.random`` (the floor's draw), the same
    uniforms from the step's fused threefry (``sampler.uniform``; a replacement, not an
    addition), the whole sampler, the batch loss, its gradient (``losses.loss_and_grad``, the
    closed form) and the full ppd step (the bench's ``advance``). Differences of 1/rate are the
    pieces' cost."""
    cfg = train_config(b)
    B, T = b.batch, b.T
    params = uniform_params(b.N, T)

    keys = seed_keys(range(S))
    k_task_data = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    tasks = jax.jit(jax.vmap(lambda k: make_task(k, cfg.task)))(k_task_data[:, 0])

    def level(kind: str):
        def one(k_data, task):  # the task is drawn outside: only the steps are timed
            cdfs = sampler.task_cdfs(task)

            def body(t, acc):
                if kind == "uniforms":
                    k = jax.random.fold_in(k_data, t)
                    return acc + jax.random.uniform(k, (B, T + 3)).sum()
                k = sampler.fold_in(k_data, t)
                if kind == "fused rng":
                    return acc + sampler.uniform(k, (B, T + 3)).sum()
                batch = sampler.sample(k, task, B, cdfs)
                if kind == "sampler":
                    return acc + (batch.tokens.sum() + batch.query.sum()
                                  + batch.target.sum()).astype(jnp.float32)
                loss, g = loss_and_grad(params, batch, method=b.grad)
                if kind == "loss":
                    return acc + loss
                return acc + g.V.sum() + g.A.sum()

            return jax.lax.fori_loop(0, b.steps, body, jnp.zeros((), jnp.float32))

        f = jax.jit(jax.vmap(one))
        jax.block_until_ready(f(k_task_data[:, 2], tasks))
        return lambda: f(k_task_data[:, 2], tasks)

    calls = {k: level(k) for k in BREAKDOWN[:-1]}
    calls["ppd step"] = vmapped_call(b, S)[0]
    best = best_interleaved(calls, b.repeats)
    return {k: S * b.steps * B / best[k] for k in BREAKDOWN}


def format_breakdown(rates: dict[str, float], S: int) -> str:
    lines = [f"breakdown at {S} seeds (each line adds one piece to the step; 'fused rng' "
             "replaces 'uniforms': the same numbers from the step's fused threefry):",
             f"{'work per step':<12} {'sample-steps/s':>15} {'+ ns per sample-step':>21}"]
    prev = 0.0
    for name, r in rates.items():
        ns = 1e9 / r
        lines.append(f"{name:<12} {r:>15.4g} {ns - prev:>+21.2f}")
        prev = ns
    return "\n".join(lines)


def per_seed_loop(b: BenchConfig) -> float:
    """Python loop over seeds and steps around one jitted (unvmapped) step."""
    cfg = train_config(b)
    st = make_stepper(cfg, grad=b.grad)

    @jax.jit
    def step(state, t):
        return st.step(state, t, b.batch, False)[0]

    keys = seed_keys(range(b.loop_seeds))
    states = [jax.jit(st.init)(k) for k in keys]
    # warm up on an initial and on a stepped state (their pytrees may trace differently)
    jax.block_until_ready(step(step(states[0], jnp.asarray(0, jnp.int32)),
                               jnp.asarray(1, jnp.int32)))
    best = float("inf")
    for _ in range(b.repeats):
        t0 = time.perf_counter()
        for s in states:
            for t in range(b.loop_steps):
                s = step(s, jnp.asarray(t, jnp.int32))
            jax.block_until_ready(s)
        best = min(best, time.perf_counter() - t0)
    return b.loop_seeds * b.loop_steps * b.batch / best


def _form(grad: str) -> str:
    """The form of the sums over tokens that ``grad`` runs."""
    return {"closed": "scatter", "closed_dense": "dense"}.get(grad, grad)


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
    accel = jax.devices()[0].platform != "cpu"  # there the matmul floor is left out
    rate = None if accel else matmul_flops_per_s()
    bw = copy_bandwidth(b.copy_mb, b.repeats)
    fps = flops_per_sample_step(b.N, b.T, b.batch)
    rows = []
    for S in b.seeds:
        work = S * b.steps * b.batch
        keys = seed_keys(range(S))
        step, compile_s, mem_bytes = vmapped_call(b, S)
        calls = {"step": step, **{h: rng_call(keys, b.steps, b.batch, b.T, h)
                                  for h in ("fused", "paired")}}
        if not accel:
            calls["jax.random"] = rng_call(keys, b.steps, b.batch, b.T)
        best = best_interleaved(calls, b.repeats)
        r = {"seeds": S, "samples_per_s": work / best["step"], "run_s": best["step"],
             "compile_s": compile_s, "xla_bytes": mem_bytes, "rng_fused_s": best["fused"],
             "rng_paired_s": best["paired"],
             **bounds(work, best, b.N, b.T, b.batch, bw)}
        r["ratio_to_rng_bound"] = r["samples_per_s"] / r["rng_bound_samples_per_s"]
        r["ratio_to_mem_bound"] = r["samples_per_s"] / r["mem_bound_samples_per_s"]
        r["rng_s"] = best.get("jax.random")
        for name, t in (("floor", r["rng_s"]), ("fused_floor", best["fused"])):
            r[f"{name}_samples_per_s"] = None if accel else work / (t + work * fps / rate)
            r[f"ratio_to_{name}"] = (None if accel else
                                     r["samples_per_s"] / r[f"{name}_samples_per_s"])
        rows.append(r)
    loop = per_seed_loop(b)
    col = {k: [r[k] for r in rows] for k in rows[0]}
    return {
        "config": {**dataclasses.asdict(b), "method": "ppd", "lam": 1e-3, "lr": 0.01},
        "form": _form(b.grad), **col,
        "loop_samples_per_s": loop,
        "speedup_vs_loop": rows[-1]["samples_per_s"] / loop,
        "copy_bytes_per_s": bw, "bytes_per_seed_step": bytes_per_seed_step(b.N, b.T),
        "matmul_flops_per_s": rate, "flops_per_sample_step": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": machine(), "device": device_info(), "versions": versions(),
    }


def device_info() -> dict:
    """The first device's platform and kind, the device count, and its memory statistics
    (``memory_stats()``: bytes in use, peak, limit) where the backend reports them."""
    d = jax.devices()[0]
    info = {"platform": d.platform, "kind": d.device_kind, "count": len(jax.devices())}
    try:
        ms = d.memory_stats()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        ms = None
    if ms:
        info["memory"] = {k: int(ms[k]) for k in ("bytes_in_use", "peak_bytes_in_use",
                                                  "bytes_limit") if k in ms}
    return info


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def machine() -> dict:
    """The CPU model, the cores this process may use and JAX's devices."""
    return {"cpu": cpu_model(), "cores": _cores(), "devices": devices()}


def _g(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def format_bench(r: dict) -> str:
    c = r["config"]
    cpu = r["floor_samples_per_s"][0] is not None
    lines = [f"scbjax bench: N={c['N']} T={c['T']} Q={c['Q']} B={c['batch']} method=ppd "
             f"grad={c.get('grad', 'closed')}({r.get('form', '?')}) bits={c.get('bits', 'jax')} "
             f"steps={c['steps']}  ({r['machine']['cpu']}, {r['machine']['cores']} cores, "
             f"jax {r['versions']['jax']})",
             f"{'seeds':>6} {'step/s':>10} {'rng bound':>10} {'ratio':>6} {'mem bound':>10} "
             f"{'ratio':>6}" + (f" {'floor/s':>10} {'ratio':>6}" if cpu else "")
             + f" {'compile s':>9} {'XLA MB':>7}"]
    for i, S in enumerate(r["seeds"]):
        mb = r["xla_bytes"][i]
        lines.append(
            f"{S:>6d} {r['samples_per_s'][i]:>10.4g} {r['rng_bound_samples_per_s'][i]:>10.4g} "
            f"{r['ratio_to_rng_bound'][i]:>6.2f} {r['mem_bound_samples_per_s'][i]:>10.4g} "
            f"{r['ratio_to_mem_bound'][i]:>6.3f}"
            + (f" {_g(r['floor_samples_per_s'][i], '10.4g')} "
               f"{_g(r['ratio_to_floor'][i], '6.2f')}" if cpu else "")
            + f" {r['compile_s'][i]:>9.2f} "
            f"{(mb / 2**20 if mb is not None else float('nan')):>7.2f}")
    lines.append(f"per-seed loop (Python loop around a jitted step): "
                 f"{r['loop_samples_per_s']:.4g} sample-steps/s; vmapped at {r['seeds'][-1]} "
                 f"seeds = {r['speedup_vs_loop']:.1f}x the loop")
    lines.append(f"rng bound = the step's uniforms alone by the faster of the fused and the "
                 f"paired threefry ({', '.join(r['rng_bound_draw'])}); mem bound = B x copy "
                 f"bandwidth {r['copy_bytes_per_s'] / 1e9:.1f} GB/s / "
                 f"{r['bytes_per_seed_step']} bytes per seed-step (V, A read + written)")
    if cpu:
        lines.append(f"floor = jax.random uniforms' draw time + {r['flops_per_sample_step']:.0f} "
                     f"flops per sample-step at the measured matmul rate "
                     f"{r['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s; with the fused draw "
                     f"{r['fused_floor_samples_per_s'][-1]:.4g}/s at {r['seeds'][-1]} seeds")
    dev = r["device"]
    mem = dev.get("memory", {})
    lines.append(f"device: {dev['platform']} {dev['kind']} x{dev['count']}; peak RSS "
                 f"{r['peak_rss_mb']:.0f} MB"
                 + (f", device peak {mem['peak_bytes_in_use'] / 2**20:.0f} MB of "
                    f"{mem.get('bytes_limit', 0) / 2**30:.1f} GiB"
                    if "peak_bytes_in_use" in mem else ""))
    return "\n".join(lines)
