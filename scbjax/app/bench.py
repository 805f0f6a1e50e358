"""``scbjax bench``: throughput of the vmapped run against a per-seed loop and a floor.

Canonical configuration: N = 16, T = 64, Q = 2, batch B = 8, the paper's method (ppd, true mu,
affine projections, lambda = 1e-3), uniform start. Measured, in one process:

(a) vmapped throughput: the sweep's compiled ``advance`` (``jit(vmap(...))`` over S seeds, one
    log interval of ``steps`` steps), sample-steps per second over all seeds, best of
    ``repeats`` timed calls after compiling, timed round-robin with the floor's calls (c);
(b) a plain per-seed loop: a Python loop over seeds and steps around one jitted step (the same
    step function, one seed at a time);
(c) the floor for the work of (a) at S seeds: the time of a jitted function that only draws the
    same uniform numbers (S x steps x B x (T + 3), by ``fold_in(key, step)`` as the sampler does)
    plus the step's arithmetic (``flops_per_sample_step`` x S x steps x B) at this machine's
    matrix-multiply rate (a 512 x 512 float32 matmul, timed here); the ratio (a) / floor;
    also the same floor with the uniforms drawn as the step draws them, by the fused threefry
    of ``sampler.uniform`` (the same numbers, bit for bit; ``fused_floor_samples_per_s``);
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

from scbjax.core.task import TaskConfig
from scbjax.sim.train import Phase, TrainConfig, make_stepper, seed_keys


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
    grad: str = "closed"  # losses.GRADS: the gradient of the step


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


def rng_call(keys, steps: int, B: int, T: int, fused: bool = False):
    """Compiled, warmed-up call that draws only the sampler's uniforms for all seeds and
    steps, by ``jax.random`` (the floor) or, ``fused``, by the step's own ``sampler.uniform``
    (the same numbers)."""
    from scbjax.core import sampler

    fold, unif = ((sampler.fold_in, sampler.uniform) if fused
                  else (jax.random.fold_in, jax.random.uniform))

    def one(key):
        def body(acc, t):
            u = unif(fold(key, t), (B, T + 3))
            return acc + u.sum(), None  # every draw is used (else XLA skips them)

        return jax.lax.scan(body, jnp.zeros((), jnp.float32),
                            jnp.arange(steps, dtype=jnp.int32))[0]

    f = jax.jit(jax.vmap(one))
    jax.block_until_ready(f(keys))
    return lambda: f(keys)


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
    from scbjax.core.losses import loss_and_grad
    from scbjax.core.model import uniform_params
    from scbjax.core.sampler import fold_in, sample, task_cdfs, uniform
    from scbjax.core.task import make_task

    cfg = train_config(b)
    B, T = b.batch, b.T
    params = uniform_params(b.N, T)

    keys = seed_keys(range(S))
    k_task_data = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
    tasks = jax.jit(jax.vmap(lambda k: make_task(k, cfg.task)))(k_task_data[:, 0])

    def level(kind: str):
        def one(k_data, task):  # the task is drawn outside: only the steps are timed
            cdfs = task_cdfs(task)

            def body(t, acc):
                if kind == "uniforms":
                    k = jax.random.fold_in(k_data, t)
                    return acc + jax.random.uniform(k, (B, T + 3)).sum()
                k = fold_in(k_data, t)
                if kind == "fused rng":
                    return acc + uniform(k, (B, T + 3)).sum()
                batch = sample(k, task, B, cdfs)
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
    rate = matmul_flops_per_s()
    fps = flops_per_sample_step(b.N, b.T, b.batch)
    rows = []
    for S in b.seeds:
        work = S * b.steps * b.batch
        keys = seed_keys(range(S))
        step, compile_s, mem_bytes = vmapped_call(b, S)
        best = best_interleaved({"step": step,
                                 "rng": rng_call(keys, b.steps, b.batch, b.T),
                                 "fused": rng_call(keys, b.steps, b.batch, b.T, fused=True)},
                                b.repeats)
        t_rng, t_fused = best["rng"], best["fused"]
        r = {"seeds": S, "samples_per_s": work / best["step"], "run_s": best["step"],
             "compile_s": compile_s, "xla_bytes": mem_bytes}
        r["rng_s"] = t_rng
        r["floor_samples_per_s"] = work / (t_rng + work * fps / rate)
        r["ratio_to_floor"] = r["samples_per_s"] / r["floor_samples_per_s"]
        r["rng_fused_s"] = t_fused
        r["fused_floor_samples_per_s"] = work / (t_fused + work * fps / rate)
        rows.append(r)
    loop = per_seed_loop(b)
    last = rows[-1]
    from scbjax.engine.meta import versions

    return {
        "config": {**dataclasses.asdict(b), "method": "ppd", "lam": 1e-3, "lr": 0.01},
        "form": _form(b.grad),
        "seeds": [r["seeds"] for r in rows],
        "samples_per_s": [r["samples_per_s"] for r in rows],
        "floor_samples_per_s": [r["floor_samples_per_s"] for r in rows],
        "ratio_to_floor": [r["ratio_to_floor"] for r in rows],
        "compile_s": [r["compile_s"] for r in rows],
        "xla_bytes": [r["xla_bytes"] for r in rows],
        "rng_s": [r["rng_s"] for r in rows],
        "rng_fused_s": [r["rng_fused_s"] for r in rows],
        "fused_floor_samples_per_s": [r["fused_floor_samples_per_s"] for r in rows],
        "ratio_to_fused_floor": [r["samples_per_s"] / r["fused_floor_samples_per_s"]
                                 for r in rows],
        "loop_samples_per_s": loop,
        "speedup_vs_loop": last["samples_per_s"] / loop,
        "matmul_flops_per_s": rate,
        "flops_per_sample_step": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "machine": {"cpu": cpu_model(), "cores": _cores(), "devices": [str(d) for d in
                                                                      jax.devices()]},
        "device": device_info(),
        "versions": versions(),
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
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def format_bench(r: dict) -> str:
    c = r["config"]
    lines = [f"scbjax bench: N={c['N']} T={c['T']} Q={c['Q']} B={c['batch']} method=ppd "
             f"grad={c.get('grad', 'closed')}({r.get('form', '?')}) "
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
    fused = ", ".join(f"{q:.2f}" for q in r["ratio_to_fused_floor"])
    lines.append(f"the step draws the same uniforms by a fused threefry: its own floor "
                 f"{r['fused_floor_samples_per_s'][-1]:.4g}/s at {r['seeds'][-1]} seeds; "
                 f"ratio to it {fused}")
    dev = r["device"]
    mem = dev.get("memory", {})
    lines.append(f"device: {dev['platform']} {dev['kind']} x{dev['count']}"
                 + (f", peak {mem['peak_bytes_in_use'] / 2**20:.0f} MB of "
                    f"{mem.get('bytes_limit', 0) / 2**30:.1f} GiB"
                    if "peak_bytes_in_use" in mem else ""))
    return "\n".join(lines)


# --- How cost grows: the grid over N, T and seeds ---------------------------------------------

GRID_N = (8, 16, 32, 64)
GRID_T = (16, 64, 256, 1024)
GRID_SEEDS = (1, 8, 64, 256, 1024)
GRID_SEEDS_ACCEL = (1, 8, 64, 256, 1024, 4096, 16384)  # default on a GPU / TPU
COST_TERMS = ("1", "T", "T N", "N^2")


@dataclasses.dataclass(frozen=True)
class GridConfig:
    Ns: tuple[int, ...] = GRID_N
    Ts: tuple[int, ...] = GRID_T
    seeds: tuple[int, ...] = GRID_SEEDS
    Q: int = 2
    batch: int = 8
    steps: int = 50
    repeats: int = 3
    grad: str = "closed"


def default_grid_seeds() -> tuple[int, ...]:
    return GRID_SEEDS if jax.devices()[0].platform == "cpu" else GRID_SEEDS_ACCEL


def run_grid(g: GridConfig, progress=None) -> dict:
    """Throughput, floor and ratio at every (N, T, seeds) of the grid (the bench's ``vmapped``
    and floor, ``g.steps`` steps per timed call), and the fitted cost per sample-step."""
    from scbjax.engine.meta import versions

    rate = matmul_flops_per_s()
    rows = []
    for N in g.Ns:
        for T in g.Ts:
            for S in g.seeds:
                b = BenchConfig(N=N, T=T, Q=min(g.Q, T), batch=g.batch, steps=g.steps,
                                seeds=(S,), repeats=g.repeats, grad=g.grad)
                work = S * g.steps * g.batch
                step, compile_s, mem_bytes = vmapped_call(b, S)
                best = best_interleaved(
                    {"step": step, "rng": rng_call(seed_keys(range(S)), g.steps, g.batch, T)},
                    g.repeats)
                floor = work / (best["rng"] + work * flops_per_sample_step(N, T, g.batch)
                                / rate)
                rows.append({"N": N, "T": T, "seeds": S, "samples_per_s": work / best["step"],
                             "floor_samples_per_s": floor,
                             "ratio_to_floor": work / best["step"] / floor,
                             "compile_s": compile_s, "xla_bytes": mem_bytes})
                if progress is not None:
                    progress(rows[-1])
    return {"config": dataclasses.asdict(g), "rows": rows, "fit": fit_cost(rows),
            "matmul_flops_per_s": rate,
            "machine": {"cpu": cpu_model(), "cores": _cores(),
                        "devices": [str(d) for d in jax.devices()]},
            "device": device_info(), "versions": versions()}


def fit_cost(rows: list[dict]) -> dict:
    """Least squares, per seed count, of the seconds per sample-step against
    c_1 + c_T T + c_TN T N + c_N2 N^2 (the RNG and the gather / scatter grow with T, the
    inverse-CDF draw of the tokens with T N, the dense products with N^2). Coefficients in ns;
    ``r2`` the fraction of variance explained; needs 4 distinct (N, T) at that seed count."""
    out = {}
    for S in sorted({r["seeds"] for r in rows}):
        sel = [r for r in rows if r["seeds"] == S]
        if len({(r["N"], r["T"]) for r in sel}) < len(COST_TERMS):
            continue
        X = np.array([[1.0, r["T"], r["T"] * r["N"], r["N"] ** 2] for r in sel])
        y = np.array([1e9 / r["samples_per_s"] for r in sel])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        resid = y - X @ coef
        r2 = 1.0 - float(resid @ resid) / max(float(((y - y.mean()) ** 2).sum()), 1e-30)
        out[str(S)] = {"ns": dict(zip(COST_TERMS, map(float, coef))), "r2": r2}
    return out


def format_grid(r: dict) -> str:
    """Markdown: one row per (N, T, seeds), then the fitted cost per sample-step."""
    lines = ["| N | T | seeds | sample-steps/s | floor/s | ratio | ns per sample-step | "
             "compile s |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in r["rows"]:
        lines.append(f"| {x['N']} | {x['T']} | {x['seeds']} | {x['samples_per_s']:.4g} | "
                     f"{x['floor_samples_per_s']:.4g} | {x['ratio_to_floor']:.2f} | "
                     f"{1e9 / x['samples_per_s']:.0f} | {x['compile_s']:.2f} |")
    if r["fit"]:
        lines += ["", "Fitted seconds per sample-step = c_1 + c_T T + c_TN T N + c_N2 N^2 "
                  "(least squares over the (N, T) of each seed count; ns):", "",
                  "| seeds | c_1 | c_T | c_TN | c_N2 | R^2 |", "|---:|---:|---:|---:|---:|---:|"]
        for S, f in r["fit"].items():
            c = f["ns"]
            lines.append(f"| {S} | {c['1']:.1f} | {c['T']:.2f} | {c['T N']:.3f} | "
                         f"{c['N^2']:.3f} | {f['r2']:.3f} |")
    return "\n".join(lines)


def plot_grid(r: dict, path) -> None:
    """Sample-steps/s and the ratio to the floor against seeds, one line per (N, T)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    Ns = sorted({x["N"] for x in r["rows"]})
    Ts = sorted({x["T"] for x in r["rows"]})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(Ts)))
    styles = ["-", "--", ":", "-."]
    for i, N in enumerate(Ns):
        for c, T in zip(colors, Ts):
            pts = sorted((x["seeds"], x["samples_per_s"], x["ratio_to_floor"])
                         for x in r["rows"] if x["N"] == N and x["T"] == T)
            if not pts:
                continue
            S, rate, ratio = map(np.asarray, zip(*pts))
            kw = dict(color=c, ls=styles[i % len(styles)], marker="o", ms=3)
            ax1.plot(S, rate, label=f"N={N}, T={T}", **kw)
            ax2.plot(S, ratio, **kw)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("seeds (vmapped)")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax1.set_ylabel("sample-steps / s")
    ax2.set_ylabel("ratio to the floor (jax.random uniforms)")
    ax1.legend(fontsize=6, ncol=2)
    dev = r["device"]
    kind = dev["platform"] if dev["kind"] == dev["platform"] else f"{dev['platform']} {dev['kind']}"
    fig.suptitle(f"scbjax bench --grid: B={r['config']['batch']}, {r['config']['steps']} steps "
                 f"per call; {kind} ({r['machine']['cpu']}, {r['machine']['cores']} cores), "
                 f"jax {r['versions']['jax']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def grid_markdown_section(r: dict, command: str, note: str = "") -> str:
    """A section for benchmarks/BENCHMARKS.md: command, machine, versions, table, fit."""
    import datetime

    from scbjax.engine.meta import git_commit

    v, dev = r["versions"], r["device"]
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    commit = (git_commit() or "unknown")[:7]
    head = [f"## Grid: `{command}` ({when})", "",
            f"- Device: {dev['platform']} `{dev['kind']}` x{dev['count']}; CPU "
            f"`{r['machine']['cpu']}`, {r['machine']['cores']} cores.",
            f"- Python {v['python']}, jax {v['jax']}, jaxlib {v['jaxlib']}, optax {v['optax']}, "
            f"numpy {v['numpy']}; scbjax at commit {commit}.",
            f"- Canonical method (ppd, lambda 1e-3), Q = {r['config']['Q']}, "
            f"B = {r['config']['batch']}, {r['config']['steps']} steps per timed call, best of "
            f"{r['config']['repeats']}; floor as in the bench (jax.random uniforms + arithmetic "
            f"at {r['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s)."]
    if note:
        head.append(f"- {note}")
    return "\n".join(head + ["", format_grid(r), ""])


def grid_command(Ns, Ts, seeds, Q: int = 2, batch: int = 8, steps: int = 50, repeats: int = 3,
                 figure: str = "", markdown: str = "", note: str = "",
                 as_json: bool = False, grad: str = "closed") -> int:
    """``scbjax bench --grid``: run the grid (progress on stderr), draw ``figure``, append the
    section to ``markdown`` (empty: skip either), print the table (or the JSON)."""
    import json
    import sys
    from pathlib import Path

    from scbjax.core.task import TaskConfig

    for N in Ns:
        for T in Ts:
            TaskConfig(N=N, T=T, Q=min(Q, T)).validate()
    g = GridConfig(Ns=tuple(Ns), Ts=tuple(Ts), seeds=tuple(seeds), Q=Q, batch=batch,
                   steps=steps, repeats=repeats, grad=grad)

    def progress(x):
        print(f"N={x['N']} T={x['T']} seeds={x['seeds']}: {x['samples_per_s']:.4g} "
              f"sample-steps/s, ratio to floor {x['ratio_to_floor']:.2f}", file=sys.stderr,
              flush=True)

    r = run_grid(g, progress)
    if figure:
        Path(figure).parent.mkdir(parents=True, exist_ok=True)
        plot_grid(r, figure)
        r["figure"] = str(figure)
    if markdown:
        command = (f"scbjax bench --grid --grid-N {','.join(map(str, Ns))} --grid-T "
                   f"{','.join(map(str, Ts))} --grid-seeds {','.join(map(str, seeds))} "
                   f"--grid-steps {steps}")
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        with open(markdown, "a") as f:
            f.write("\n" + grid_markdown_section(r, command, note))
    print(json.dumps(r) if as_json else format_grid(r))
    return 0
