"""The one executor: runs every ``RunSpec`` of every job (train, sweep, study).

Per spec: one compiled group (the runs vmapped, sharded over all devices along a 1-D mesh
"runs", padded to a multiple of the device count), advanced a chunk of log intervals at a
time with an atomic checkpoint (state leaves stored by pytree path, with the spec's hash and
the format version) between chunks. A spec whose results with the same hash are on disk and
load is reused; a checkpoint with the same hash resumes; anything else (another hash, another
format, a damaged file) restarts that spec from scratch, saying so. A run whose parameters
turn non-finite is flagged with its step; the others go on. Progress: one line per chunk
(spec, step of total, sample-steps/s, time left for the spec and for the whole job).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

import jax
import numpy as np

from scbjax.core import keys
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import atomic_write as _atomic_write
from scbjax.engine.resources import check_fits
from scbjax.engine.meta import config_to_dict, devices, git_commit, versions
from scbjax.engine.spec import FORMAT, RunSpec, digest_arrays
from scbjax.engine.store import ARRAYS, CHECKPOINT, SIDECAR, Runs, RunSet, load_npz, load_runs
from scbjax.sim.train import (METRICS, RunSettings, initial_metrics, intervals, log_schedule,
                          make_stepper)


class Log:
    """Progress and notices on stderr, one line each; silent when ``quiet``."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet, self.stream = quiet, stream

    def __call__(self, text: str) -> None:
        if not self.quiet:
            s = self.stream or sys.stderr
            s.write(text + "\n")
            s.flush()


class Job:
    """Samples planned and done over a whole job, for its ETA."""

    def __init__(self, total_samples: int = 0):
        self.total, self.done, self.t0 = total_samples, 0, time.perf_counter()

    def eta(self) -> float:
        el = time.perf_counter() - self.t0
        return el / self.done * max(self.total - self.done, 0) if self.done else float("nan")


# --- Sharding (one process or several with jax.distributed) -------------------------------


def run_mesh() -> jax.sharding.Mesh:
    """1-D mesh "runs" over all devices (all processes' under ``jax.distributed``)."""
    return jax.sharding.Mesh(np.asarray(jax.devices()), ("runs",))


def _to_global(x, sharding) -> jax.Array:
    x = np.asarray(x)
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])


def _to_host(x: jax.Array) -> np.ndarray:
    if jax.process_count() == 1 or x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _pad(x: np.ndarray, R_pad: int) -> np.ndarray:
    x = np.asarray(x)
    return np.concatenate([x, np.repeat(x[-1:], R_pad - x.shape[0], axis=0)]) \
        if R_pad > x.shape[0] else x


# --- One spec -----------------------------------------------------------------------------


def run_keys(spec: RunSpec) -> np.ndarray:
    """Each run's key (``scbjax.core.keys.run_keys`` of its seed and fold)."""
    return keys.run_keys([r.seed for r in spec.runs], [r.fold for r in spec.runs])


def _resolve(x, context: RunSet):
    if callable(x):
        x = x(context)
    return None if x is None else jax.tree.map(np.asarray, x)


def check_tasks(mu_RxN: np.ndarray, P: np.ndarray, q: np.ndarray, where: str) -> None:
    """Refuse tasks that the sampler cannot draw from (``scbjax.task.check_tasks``: P, q, mu
    finite, mu > 0, P mu = mu), naming the first bad run and the knobs to change."""
    from scbjax.core.task import Task
    from scbjax.core.task import check_tasks as check

    check(Task(P=np.asarray(P), mu=np.asarray(mu_RxN), q=np.asarray(q)), where)


def check_spec(spec: RunSpec, name: str = "", fits_field: str | None = None) -> RunSpec:
    """What can be checked before anything is compiled or written: the spec's fields and its
    memory estimate (``check_fits``). The generated tasks are checked by ``run_spec`` right
    after init, before any training step and before any file is written."""
    spec = spec.validate(name)
    check_fits(spec.config, len(spec.runs), spec.max_dataset,
               where=fits_field or name or "task.N")
    return spec


# What the job is doing, for the message of an interrupt (``interrupted_message``).
PROGRESS: dict = {}


def interrupted_message() -> str:
    """One sentence: where an interrupted job stands and what rerunning does."""
    p = PROGRESS
    if not p:
        return "no run had started: nothing to resume"
    if p.get("done"):
        return (f"the runs finished so far are saved (last: {p['dir']}): run the same command "
                "again to go on from there")
    if p.get("step", 0) > 0:
        return (f"{p['dir']} stopped at step {p['step']} of {p['total']} with its checkpoint "
                "intact: run the same command again to resume from there")
    return (f"{p['dir']} was stopped before its first checkpoint (finished runs are saved): "
            "run the same command again to start it over")


def run_spec(name: str, spec: RunSpec, sdir, *, log: Log = Log(), job: Job | None = None,
             context: RunSet | None = None, tag: str = "",
             on_start: Callable[[], None] | None = None) -> Runs:
    """Run (or reuse, or resume) ``spec`` in ``sdir``; return its loaded ``Runs``.
    ``on_start()`` is called once the spec is known good (reused, or initialised with its
    tasks checked), before anything of it is written."""
    spec = spec.validate(name)
    sdir = Path(sdir)
    job = job or Job(spec.samples())
    context = context if context is not None else RunSet()
    tasks, params0 = _resolve(spec.tasks, context), _resolve(spec.params0, context)
    key = spec.key(digest_arrays(tasks), digest_arrays(params0))
    tag = tag or f"[{name}] "
    if (sdir / SIDECAR).exists() or (sdir / ARRAYS).exists():
        try:
            done = load_runs(sdir, key, name)
        except ConfigError as e:  # another configuration, or a damaged / missing file
            log(f"{tag}{e}: recomputing")
        else:
            log(f"{tag}finished earlier, reused ({sdir})")
            if on_start is not None:
                on_start()
            job.done += spec.samples()
            PROGRESS.update(dir=sdir, step=spec.config.total_steps, done=True)
            return done
    cfg = spec.config
    R = len(spec.runs)
    check_fits(cfg, R, spec.max_dataset, where=name)
    PROGRESS.update(dir=sdir, step=0, total=cfg.total_steps, done=False)
    ndev = jax.device_count()
    R_pad = -(-R // ndev) * ndev
    shard = jax.sharding.NamedSharding(run_mesh(), jax.sharding.PartitionSpec("runs"))
    stepper = make_stepper(cfg, spec.max_dataset)
    sa = {k: _pad(v, R_pad) for k, v in spec.settings().items()}
    keys = _to_global(_pad(run_keys(spec), R_pad), shard)
    settings = RunSettings(**{k: _to_global(v, shard) for k, v in sa.items()})
    args = [keys, settings]
    in_axes = [0, 0]
    for x in (tasks, params0):
        if x is None:
            args.append(None)
            in_axes.append(None)
        else:
            args.append(jax.tree.map(lambda a: _to_global(_pad(a, R_pad), shard), x))
            in_axes.append(0)

    def init1(*a):
        s = stepper.init(*a)
        return s, initial_metrics(stepper, s)

    state, m0 = jax.jit(jax.vmap(init1, in_axes=tuple(in_axes)), out_shardings=shard)(*args)
    t = state.task
    check_tasks(_to_host(t.mu)[:R], _to_host(t.P)[:R], _to_host(t.q)[:R], f"{name}: task")
    if on_start is not None:
        on_start()
    start, length, phase = intervals(cfg)
    n_int = len(start)
    chunk = spec.chunk_steps or max(cfg.log_every, -(-cfg.total_steps // 10))
    C = max(1, chunk // cfg.log_every)
    ckpt = sdir / CHECKPOINT
    metrics = {k: [_to_host(v)[:, None]] for k, v in m0.items()}
    done_int = 0
    if ckpt.exists():
        got = _load_checkpoint(ckpt, key, state, shard, log, tag)
        if got is not None:
            state, metrics, done_int = got
            at = int(start[done_int]) if done_int < n_int else cfg.total_steps
            log(f"{tag}resumed from {ckpt} at step {at}")
            PROGRESS.update(step=at)
    adv = jax.jit(jax.vmap(stepper.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4), donate_argnums=(0,))
    compiled: dict = {}
    compile_s = 0.0
    max_b, masked = spec.max_batch(), spec.masked()
    batch_R = sa["batch"][:R].astype(np.int64)
    steps_before = np.concatenate([[0], np.cumsum(length)])
    job.done += int(_samples_through(steps_before[done_int], cfg, batch_R))
    t_run0 = time.perf_counter()
    samples_done = 0
    while done_int < n_int:
        p = int(phase[done_int])
        sel = [i for i in range(done_int, min(done_int + C, n_int)) if phase[i] == p]
        st = np.zeros(C, np.int32)
        ln = np.zeros(C, np.int32)
        st[:len(sel)], ln[:len(sel)] = start[sel], length[sel]
        st[len(sel):] = start[sel[-1]] + length[sel[-1]]
        ck = (max_b[p], masked[p])
        if ck not in compiled:
            t0 = time.perf_counter()
            compiled[ck] = adv.lower(state, st, ln, *ck).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        state, m = compiled[ck](state, st, ln)
        m = {k: _to_host(v)[:, :len(sel)] for k, v in m.items()}
        dt = time.perf_counter() - t0
        for k in METRICS:
            metrics[k].append(m[k])
        done_int = sel[-1] + 1
        n_samp = int(ln.sum()) * int(batch_R[:, p].sum())
        samples_done += n_samp
        job.done += n_samp
        _save_checkpoint(ckpt, key, state, metrics, done_int)
        step = int(start[done_int]) if done_int < n_int else cfg.total_steps
        PROGRESS.update(step=step)
        el = time.perf_counter() - t_run0 - compile_s
        left = el / max(samples_done, 1) * max(spec.samples() - _samples_through(
            step, cfg, batch_R), 0)
        total_left = job.eta()
        log(f"{tag}step {step:>7d}/{cfg.total_steps}  {n_samp / max(dt, 1e-9):9.3g} "
            f"sample-steps/s  left ~{left:5.0f}s" + (f"  (job ~{total_left:5.0f}s)"
                                                    if job.total > spec.samples() else ""))
    run_s = time.perf_counter() - t_run0 - compile_s
    arrays = _arrays(spec, state, metrics, sa, R)
    meta = {"name": name, "hash": key, "format": FORMAT, "config": config_to_dict(cfg),
            "label_names": list(spec.label_names), "max_dataset": spec.max_dataset,
            "runs": len(spec.runs),
            "timings": {"compile_s": compile_s, "run_s": run_s,
                        "sample_steps_per_s": samples_done / max(run_s, 1e-9)},
            "devices": devices(), "versions": versions(),
            "git_commit": git_commit()}
    if jax.process_index() == 0:
        _atomic_write(sdir / ARRAYS, lambda f: np.savez(f, **arrays))
        _atomic_write(sdir / SIDECAR, lambda f: f.write(json.dumps(meta, indent=2).encode()))
        ckpt.unlink(missing_ok=True)
    PROGRESS.update(done=True)
    div = arrays["diverged_step"]
    for i in np.flatnonzero(div >= 0):
        lab = ", ".join(f"{k}={arrays[f'labels/{k}'][i]}" for k in spec.label_names)
        log(f"{tag}WARNING: run {i} ({lab or f'seed {spec.runs[i].seed}'}) diverged at step "
            f"{int(div[i])} (non-finite parameters); the others went on")
    return Runs(arrays, meta, name)


def _samples_through(step, cfg, batch_R: np.ndarray) -> int:
    """Samples all runs drew in steps [0, step)."""
    n, s0 = 0, 0
    for p, ph in enumerate(cfg.phases):
        k = max(0, min(int(step), s0 + ph.steps) - s0)
        n += k * int(batch_R[:, p].sum())
        s0 += ph.steps
    return n


def _leaf_names(state) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]


def _save_checkpoint(path: Path, key: str, state, metrics: dict, next_interval: int) -> None:
    leaves = [_to_host(x) for x in jax.tree.leaves(state)]
    if jax.process_index() != 0:
        return
    z = {f"state/{n}": x for n, x in zip(_leaf_names(state), leaves)}
    z.update({f"metrics/{k}": np.concatenate(v, axis=1) for k, v in metrics.items()})
    z["hash"] = np.asarray(key)
    z["format"] = np.asarray(FORMAT)
    z["next_interval"] = np.asarray(next_interval)
    _atomic_write(path, lambda f: np.savez(f, **z))


def _load_checkpoint(path: Path, key: str, state, shard, log: Log, tag: str):
    """(state, metrics, next interval) from a checkpoint of this spec, or None (said why)."""
    try:
        z = load_npz(path)
    except ConfigError as e:
        log(f"{tag}checkpoint {e}: restarting this spec from scratch")
        return None
    fmt = int(z["format"]) if "format" in z else None
    if fmt != FORMAT:
        log(f"{tag}checkpoint {path} has format {fmt}, this version writes {FORMAT}: "
            "restarting this spec from scratch")
        return None
    if str(z.get("hash")) != key:
        log(f"{tag}checkpoint {path} belongs to another configuration: restarting from scratch")
        return None
    names = _leaf_names(state)
    leaves, treedef = jax.tree.flatten(state)
    missing = [n for n in names if f"state/{n}" not in z]
    bad = [n for n, x in zip(names, leaves) if f"state/{n}" in z and z[f"state/{n}"].shape
           != tuple(x.shape)]
    if missing or bad or any(f"metrics/{k}" not in z for k in METRICS):
        log(f"{tag}checkpoint {path} does not match this version's state "
            f"({(missing + bad)[:1]}): restarting from scratch")
        return None
    state = jax.tree.unflatten(treedef, [_to_global(z[f"state/{n}"], shard) for n in names])
    metrics = {k: [z[f"metrics/{k}"]] for k in METRICS}
    return state, metrics, int(z["next_interval"])


def _label_array(values: list) -> np.ndarray:
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.asarray(values, bool)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return np.asarray(values, np.float64)
    return np.asarray([str(v) for v in values])


def _arrays(spec: RunSpec, state, metrics: dict, sa: dict, R: int) -> dict:
    cfg = spec.config
    steps, _ = log_schedule(cfg)
    per_log = np.diff(np.concatenate([[0], steps]))  # steps added at each log point
    ends = np.cumsum([p.steps for p in cfg.phases])
    ph = np.minimum(np.searchsorted(ends, steps - 1, side="right"), len(ends) - 1)
    samples = np.cumsum(per_log[None, :] * sa["batch"][:R][:, ph].astype(np.int64), axis=1)
    arrays = {"seeds": np.asarray([r.seed for r in spec.runs], np.int64), "steps": steps,
              "samples": samples.astype(np.int64),
              "diverged_step": _to_host(state.diverged_step)[:R],
              "params/V": _to_host(state.params.V)[:R], "params/A": _to_host(state.params.A)[:R],
              "task/P": _to_host(state.task.P)[:R], "task/mu": _to_host(state.task.mu)[:R],
              "task/q": _to_host(state.task.q)[:R]}
    for k, v in sa.items():
        arrays[f"settings/{k}"] = v[:R]
    for k in METRICS:
        arrays[f"metrics/{k}"] = np.concatenate(metrics[k], axis=1)[:R]
    for k in spec.label_names:
        arrays[f"labels/{k}"] = _label_array([r.label_dict[k] for r in spec.runs])
    return arrays


# --- Many specs ---------------------------------------------------------------------------


def execute(specs: Mapping[str, RunSpec], out, *, log: Log = Log(), job: Job | None = None,
            tag: str = "", on_start: Callable[[], None] | None = None) -> RunSet:
    """Run each spec in order into ``out/<name>``; a spec's ``tasks``/``params0`` functions
    see the ``RunSet`` of the specs before it. ``on_start()`` is called once, when the first
    spec is known good (see ``run_spec``). Returns the ``RunSet``."""
    out = Path(out)
    started = []

    def once():
        if not started and on_start is not None:
            started.append(True)
            on_start()

    rs = RunSet()
    job = job or Job(sum(s.samples() for s in specs.values()))
    for i, (name, spec) in enumerate(specs.items()):
        c = spec.config
        t = (f"[{tag}{name} {i + 1}/{len(specs)}: {len(spec.runs)} runs, N={c.task.N} "
             f"T={c.task.T} Q={c.task.Q}] ")
        rs[name] = run_spec(name, spec, out / name, log=log, job=job, context=rs, tag=t,
                            on_start=once)
    return rs


def load(specs: Mapping[str, RunSpec], out) -> RunSet:
    """The saved ``RunSet`` of ``specs`` under ``out`` without training: each spec's stored
    hash must equal its hash now (ConfigError otherwise)."""
    out = Path(out)
    rs = RunSet()
    for name, spec in specs.items():
        spec = spec.validate(name)
        tasks, params0 = _resolve(spec.tasks, rs), _resolve(spec.params0, rs)
        key = spec.key(digest_arrays(tasks), digest_arrays(params0))
        rs[name] = load_runs(out / name, key, name)
    return rs


__all__ = ["execute", "load", "run_spec", "run_mesh", "Log", "Job", "check_tasks", "check_spec",
           "interrupted_message"]
