"""The one executor: runs every ``RunSpec`` of every job (train, sweep, study).

Per spec: one compiled group (the runs vmapped, sharded over all devices along a 1-D mesh
"runs", padded to a multiple of the device count), advanced a chunk of log intervals at a
time with an atomic checkpoint (state leaves stored by pytree path, unpadded, with the spec's
hash and the format version) between chunks. One process at a time writes a folder
(``outdir.hold``). A spec whose results carry its hash and load is reused; a checkpoint with
its hash resumes; results or a checkpoint of another configuration are refused unless
``overwrite`` (``results.check_other``); a damaged file restarts the spec, saying so. A run
whose parameters turn non-finite is flagged with its step; the others go on. Progress: one
line per chunk (spec, step of total, sample-steps/s, time left for the spec and the job),
rewritten in place on a terminal (``progress.Log``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np

from scbjax.core import keys
from scbjax.core.task import Task
from scbjax.core.task import check_tasks as check_task_arrays
from scbjax.engine import checkpoint, outdir
from scbjax.engine.checkpoint import pad, run_mesh, to_global, to_host
from scbjax.engine.resources import check_fits
from scbjax.engine.meta import config_to_dict, devices, git_commit, versions
from scbjax.engine.progress import Job, Log
from scbjax.engine.spec import FORMAT, RunSpec, check_input, check_name, digest_arrays
from scbjax.engine import results
from scbjax.engine.results import check_files, check_other, reuse
from scbjax.engine.store import CHECKPOINT, Runs, RunSet, load_runs
from scbjax.sim.train import METRICS, RunSettings, initial_metrics, intervals, make_stepper


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
    check_task_arrays(Task(P=np.asarray(P), mu=np.asarray(mu_RxN), q=np.asarray(q)), where)


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
             on_start: Callable[[], None] | None = None, overwrite: bool = False) -> Runs:
    """Run (or reuse, or resume) ``spec`` in ``sdir``, holding the folder (``outdir.hold``);
    return its loaded ``Runs``. Results or a checkpoint of another configuration in ``sdir``
    are a ConfigError unless ``overwrite`` (then the new results replace them when they are
    done). ``on_start()`` is called once the spec is known good (reused, or initialised with
    its tasks checked), before anything of it is written."""
    spec = spec.validate(name)
    sdir = Path(sdir)
    job = job or Job(spec.samples())
    tasks, params0, key = _inputs(spec, context if context is not None else RunSet(), name)
    tag = tag or f"[{name}] "

    def say(text: str) -> None:
        log(tag + text)

    def progress(text: str) -> None:
        log.progress(tag + text)

    check_files(sdir)
    with outdir.hold(sdir, str(sdir)):
        check_other(sdir, key, overwrite)
        done = reuse(name, spec, sdir, key, say)
        if done is not None:
            if on_start is not None:
                on_start()
            job.done += spec.samples()
            PROGRESS.update(dir=sdir, step=spec.config.total_steps, done=True)
            return done
        check_fits(spec.config, len(spec.runs), spec.max_dataset, where=name)
        PROGRESS.update(dir=sdir, step=0, total=spec.config.total_steps, done=False)
        g = _init(name, spec, tasks, params0)
        if on_start is not None:
            on_start()
        try:
            timings = _loop(spec, g, sdir / CHECKPOINT, key, job, say, progress)
        finally:
            log.end()
        return _write(name, spec, sdir, key, g, timings, say)


def _inputs(spec: RunSpec, context: RunSet, where: str = "") -> tuple:
    """(tasks, params0, hash) of a validated spec: its given tasks and starts (functions of
    the specs before it called on ``context``), of the config's shapes (``check_input``: one
    without the run axis repeated over the runs), and the hash that covers them."""
    R = len(spec.runs)
    tasks, params0 = (check_input(_resolve(x, context), kind, spec.config, R, where)
                      for x, kind in ((spec.tasks, "tasks"), (spec.params0, "params0")))
    return tasks, params0, spec.key(digest_arrays(tasks), digest_arrays(params0))


@dataclasses.dataclass
class _Group:
    """One spec's runs while they train: the stepper, the sharding, the settings (host arrays,
    padded to ``R_pad`` runs), the state, the logged metrics (host blocks, one per chunk) and
    the next log interval to run."""

    stepper: Any
    shard: jax.sharding.NamedSharding
    sa: dict
    state: Any
    metrics: dict
    next_interval: int = 0


def _settings(spec: RunSpec, R_pad: int, shard) -> tuple[dict, RunSettings]:
    """Each run's settings padded to ``R_pad`` runs: host arrays, and the sharded
    ``RunSettings`` the step reads."""
    sa = {k: pad(v, R_pad) for k, v in spec.settings().items()}
    return sa, RunSettings.of({k: to_global(v, shard) for k, v in sa.items()})


def _init(name: str, spec: RunSpec, tasks, params0) -> _Group:
    """Every run's initial state and metrics, padded to a multiple of the device count and
    sharded over the mesh; tasks the sampler cannot draw from are refused."""
    R = len(spec.runs)
    ndev = jax.device_count()
    R_pad = -(-R // ndev) * ndev
    shard = jax.sharding.NamedSharding(run_mesh(), jax.sharding.PartitionSpec("runs"))
    stepper = make_stepper(spec.config, spec.max_dataset)
    sa, settings = _settings(spec, R_pad, shard)
    args = [to_global(pad(run_keys(spec), R_pad), shard), settings]
    in_axes = [0, 0]
    for x in (tasks, params0):
        if x is None:
            args.append(None)
            in_axes.append(None)
        else:
            args.append(jax.tree.map(lambda a: to_global(pad(a, R_pad), shard), x))
            in_axes.append(0)

    def init1(*a):
        s = stepper.init(*a)
        return s, initial_metrics(stepper, s)

    state, m0 = jax.jit(jax.vmap(init1, in_axes=tuple(in_axes)), out_shardings=shard)(*args)
    t = state.task
    check_tasks(to_host(t.mu)[:R], to_host(t.P)[:R], to_host(t.q)[:R], f"{name}: task")
    return _Group(stepper, shard, sa, state, {k: [to_host(v)[:, None]] for k, v in m0.items()})


def _loop(spec: RunSpec, g: _Group, ckpt: Path, key: str, job: Job,
          say: Callable[[str], None], progress: Callable[[str], None]) -> dict:
    """Advance ``g`` chunk by chunk to the end (resumed from ``ckpt`` if it holds this
    spec), with a checkpoint and a ``progress`` line after each chunk; return the timings.
    The rates and times left count chunk time only (compilation excluded)."""
    cfg = spec.config
    R = len(spec.runs)
    start, length, phase = intervals(cfg)
    n_int = len(start)
    chunk = spec.chunk_steps or max(cfg.log_every, -(-cfg.total_steps // 10))
    C = max(1, chunk // cfg.log_every)
    if ckpt.exists():
        got = checkpoint.load(ckpt, key, g.state, g.shard, say, R, n_int)
        if got is not None:
            g.state, g.metrics, g.next_interval = got
            at = int(start[g.next_interval]) if g.next_interval < n_int else cfg.total_steps
            say(f"resumed from {ckpt} at step {at}")
            PROGRESS.update(step=at)
    adv = jax.jit(jax.vmap(g.stepper.advance, in_axes=(0, None, None, None, None)),
                  static_argnums=(3, 4), donate_argnums=(0,))
    compiled: dict = {}
    compile_s = 0.0
    max_b, masked = spec.max_batch(), spec.masked()
    batch_R = g.sa["batch"][:R].astype(np.int64)
    steps_before = np.concatenate([[0], np.cumsum(length)])
    job.done += int(_samples_through(steps_before[g.next_interval], cfg, batch_R))
    t_run0 = time.perf_counter()
    samples_done = 0
    while g.next_interval < n_int:
        p = int(phase[g.next_interval])
        sel = [i for i in range(g.next_interval, min(g.next_interval + C, n_int))
               if phase[i] == p]
        st = np.zeros(C, np.int32)
        ln = np.zeros(C, np.int32)
        st[:len(sel)], ln[:len(sel)] = start[sel], length[sel]
        st[len(sel):] = start[sel[-1]] + length[sel[-1]]
        ck = (max_b[p], masked[p])
        if ck not in compiled:
            t0 = time.perf_counter()
            compiled[ck] = adv.lower(g.state, st, ln, *ck).compile()
            compile_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        g.state, m = compiled[ck](g.state, st, ln)
        m = {k: to_host(v)[:, :len(sel)] for k, v in m.items()}
        dt = time.perf_counter() - t0
        for k in METRICS:
            g.metrics[k].append(m[k])
        g.next_interval = sel[-1] + 1
        n_samp = int(ln.sum()) * int(batch_R[:, p].sum())
        samples_done += n_samp
        checkpoint.save(ckpt, key, g.state, g.metrics, g.next_interval, R)
        job.ran(n_samp, time.perf_counter() - t0)
        step = int(start[g.next_interval]) if g.next_interval < n_int else cfg.total_steps
        PROGRESS.update(step=step)
        el = time.perf_counter() - t_run0 - compile_s
        left = el / max(samples_done, 1) * max(spec.samples() - _samples_through(
            step, cfg, batch_R), 0)
        total_left = job.eta()
        progress(f"step {step:>7d}/{cfg.total_steps}  {n_samp / max(dt, 1e-9):9.3g} "
                 f"sample-steps/s  left ~{left:5.0f}s" + (f"  (job ~{total_left:5.0f}s)"
                                                          if job.total > spec.samples() else ""))
    run_s = time.perf_counter() - t_run0 - compile_s
    return {"compile_s": compile_s, "run_s": run_s,
            "sample_steps_per_s": samples_done / max(run_s, 1e-9)}


def _write(name: str, spec: RunSpec, sdir: Path, key: str, g: _Group, timings: dict,
           say: Callable[[str], None]) -> Runs:
    """Write the results of the finished ``g`` (``results.write``), name the runs that
    diverged; return the ``Runs``."""
    R = len(spec.runs)
    arrays = results.result_arrays(spec, g.state, g.metrics, g.sa, R)
    meta = {"name": name, "hash": key, "format": FORMAT, "config": config_to_dict(spec.config),
            "label_names": list(spec.label_names), "max_dataset": spec.max_dataset,
            "runs": R, "timings": timings, "devices": devices(), "versions": versions(),
            "git_commit": git_commit()}
    meta = results.write(sdir, arrays, meta)
    PROGRESS.update(done=True)
    div = arrays["diverged_step"]
    for i in np.flatnonzero(div >= 0):
        lab = ", ".join(f"{k}={arrays[f'labels/{k}'][i]}" for k in spec.label_names)
        say(f"WARNING: run {i} ({lab or f'seed {spec.runs[i].seed}'}) diverged at step "
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


# --- Many specs ---------------------------------------------------------------------------


def execute(specs: Mapping[str, RunSpec], out, *, log: Log = Log(), job: Job | None = None,
            tag: str = "", on_start: Callable[[], None] | None = None,
            overwrite: bool = False, quiet: bool = False) -> RunSet:
    """Run each spec in order into ``out/<name>``, holding ``out`` (``outdir.hold``); a
    spec's ``tasks``/``params0`` functions see the ``RunSet`` of the specs before it.
    ``on_start()`` is called once, when the first spec is known good (see ``run_spec``).
    Returns the ``RunSet``. Every name must be one directory component
    (``spec.check_name``): nothing is written outside ``out``. Results of another
    configuration are replaced only with ``overwrite``: for the specs whose hash is known
    before they run (no ``tasks``/``params0`` functions) this is checked before anything
    trains. ``quiet``: no progress lines (``log=Log(quiet=True)``)."""
    out = Path(out)
    if quiet:
        log = Log(quiet=True)
    for name in specs:
        check_name(name, f"specs[{name!r}]")
    with outdir.hold(out, str(out)):
        if not overwrite:
            for name, spec in specs.items():
                if not (callable(spec.tasks) or callable(spec.params0)):
                    check_files(out / name)
                    check_other(out / name, _inputs(spec.validate(name), RunSet(), name)[2],
                                False)
        return _execute(specs, out, log, job, tag, on_start, overwrite)


def _execute(specs, out: Path, log: Log, job: Job | None, tag: str, on_start, overwrite: bool):
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
                            on_start=once, overwrite=overwrite)
    return rs


def load(specs: Mapping[str, RunSpec], out) -> RunSet:
    """The saved ``RunSet`` of ``specs`` under ``out`` without training: each spec's stored
    hash must equal its hash now (ConfigError otherwise)."""
    out = Path(out)
    rs = RunSet()
    for name, spec in specs.items():
        check_name(name, f"specs[{name!r}]")
        rs[name] = load_runs(out / name, _inputs(spec.validate(name), rs, name)[2], name)
    return rs


__all__ = ["execute", "load", "run_spec", "run_mesh", "Log", "Job", "check_tasks", "check_spec",
           "interrupted_message"]
