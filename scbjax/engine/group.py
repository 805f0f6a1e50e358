"""One group's training, for ``scbjax.engine.executor``: init, resume, loop, write.

A group is one spec's runs or a merged group's (``scbjax.engine.merge``): vmapped, sharded over
all devices along a 1-D mesh "runs", padded to a multiple of the device count, advanced a chunk
of log intervals at a time (``merge.next_chunk``) with each member's atomic checkpoint
(``checkpoint.save`` of its own runs and hash) between chunks. Each member is initialised on
its own (its tasks checked), resumed from its own checkpoint, and its results written in its
own folder (``results.write``). A run whose parameters turn non-finite is flagged with its
step; the others go on. Progress: one line per chunk (step of total, sample-steps/s, time
left for the group and the job).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import threading
import time
from typing import Any, Callable

import jax
import numpy as np

from scbjax.core import keys
from scbjax.core.task import Task, TaskConfig, make_task
from scbjax.core.task import check_tasks as check_task_arrays
from scbjax.engine import checkpoint, results
from scbjax.engine.checkpoint import pad, run_mesh, to_global, to_host
from scbjax.engine.merge import Member, chunk_limits, next_chunk, offsets, scan_length, stack
from scbjax.engine.meta import config_to_dict, devices, git_commit, versions
from scbjax.engine.progress import Cancelled, Job
from scbjax.engine.spec import FORMAT, RunSpec
from scbjax.engine.store import CHECKPOINT, Runs
from scbjax.sim.step import initial_metrics_runs
from scbjax.sim.train import METRICS, RunSettings, intervals, make_stepper

# What the job is doing, for the message of an interrupt (``executor.interrupted_message``).
PROGRESS: dict = {}


def run_keys(spec: RunSpec) -> np.ndarray:
    """Each run's key (``scbjax.core.keys.run_keys`` of its seed and fold)."""
    return keys.run_keys([r.seed for r in spec.runs], [r.fold for r in spec.runs])


def check_tasks(mu_RxN: np.ndarray, P: np.ndarray, q: np.ndarray, where: str) -> None:
    """Refuse tasks that the sampler cannot draw from (``scbjax.task.check_tasks``: P, q, mu
    finite, mu > 0, P mu = mu), naming the first bad run and the knobs to change."""
    check_task_arrays(Task(P=np.asarray(P), mu=np.asarray(mu_RxN), q=np.asarray(q)), where)


@dataclasses.dataclass
class Group:
    """A group's runs while they train: the stepper, the sharding, the settings (host arrays,
    padded to ``R_pad`` runs), the state, the logged metrics (host blocks, one per chunk) and
    the next log interval to run."""

    stepper: Any
    shard: jax.sharding.NamedSharding
    sa: dict
    state: Any
    metrics: dict
    next_interval: int = 0


def _R_pad(R: int) -> int:
    """R padded to a multiple of the device count, and to 2 runs at least: XLA compiles a
    batch of one run (a vmapped axis of size 1) to other code, with other rounding."""
    ndev = jax.device_count()
    return -(-max(R, 2) // ndev) * ndev


def _settings(spec: RunSpec, R_pad: int, shard) -> tuple[dict, RunSettings]:
    """Each run's settings padded to ``R_pad`` runs: host arrays, and the sharded
    ``RunSettings`` the step reads."""
    sa = {k: pad(v, R_pad) for k, v in spec.settings().items()}
    return sa, RunSettings.of({k: to_global(v, shard) for k, v in sa.items()})


TASK_CHUNK = 16  # runs per call of the task sampler, up to 64 calls (then powers of 2)
TASK_CALLS = 64


def task_chunk(R: int) -> int:
    """Runs per call of the task sampler for ``R`` runs: ``TASK_CHUNK``, or the power of 2
    that keeps the calls within ``TASK_CALLS`` (one compiled batch size for groups of up to
    1,024 runs; an accelerator is not left with thousands of small calls)."""
    return max(TASK_CHUNK, 1 << (-(-R // TASK_CALLS) - 1).bit_length())


@functools.lru_cache(maxsize=32)
def _task_sampler(cfg: TaskConfig) -> Callable:
    """Random tasks of a batch of runs (``make_task`` of each key's task stream, as
    ``Stepper.init`` draws it) as a program of its own, one per task configuration: it is
    most of the cost of compiling a group's init (the Dirichlet's rejection sampler, the
    permutations), and every group of that task configuration shares it, whatever its run
    count (here, and through a compilation cache)."""
    return jax.jit(jax.vmap(lambda key: make_task(keys.streams(key)[0], cfg)))


def sample_tasks(cfg: TaskConfig, keys_R: np.ndarray, shard) -> Task:
    """Each run's task, ``task_chunk(R)`` runs per call, the last call padded (a task is the
    same bits in any batch: tests/engine/test_merge_bits.py), sharded as ``shard``."""
    R = keys_R.shape[0]
    C = task_chunk(R)
    k = pad(keys_R, -(-R // C) * C)
    f = _task_sampler(cfg)
    parts = [jax.device_get(f(k[i:i + C])) for i in range(0, len(k), C)]
    return jax.tree.map(lambda *a: to_global(np.concatenate(a)[:R], shard), *parts)


def init(name: str, spec: RunSpec, tasks, params0) -> Group:
    """Every run's initial state and metrics, padded to a multiple of the device count and
    sharded over the mesh; tasks the sampler cannot draw from are refused."""
    R = len(spec.runs)
    R_pad = _R_pad(R)
    shard = jax.sharding.NamedSharding(run_mesh(), jax.sharding.PartitionSpec("runs"))
    stepper = make_stepper(spec.config, spec.max_dataset)
    sa, settings = _settings(spec, R_pad, shard)
    keys_host = pad(run_keys(spec), R_pad)
    keys_R = to_global(keys_host, shard)

    def padded(x):
        return None if x is None else jax.tree.map(lambda a: to_global(pad(a, R_pad), shard), x)

    tasks = sample_tasks(spec.config.task, keys_host, shard) if tasks is None else padded(tasks)
    args = [keys_R, settings, tasks, padded(params0)]
    in_axes = [0, 0, 0, None if params0 is None else 0]

    def init_runs(*a):
        s = jax.vmap(stepper.init, in_axes=tuple(in_axes))(*a)
        return s, initial_metrics_runs(stepper, s, jax.device_count())

    state, m0 = jax.jit(init_runs, out_shardings=shard)(*args)
    t = state.task
    check_tasks(to_host(t.mu)[:R], to_host(t.P)[:R], to_host(t.q)[:R], f"{name}: task")
    return Group(stepper, shard, sa, state, {k: [to_host(v)[:, None]] for k, v in m0.items()})


def resume(m: Member, g: Group, n_int: int, say: Callable[[str], None]) -> bool:
    """Load ``m``'s checkpoint into ``g`` if it holds this spec (said so); whether it did."""
    ckpt = m.sdir / CHECKPOINT
    if not ckpt.exists():
        return False
    got = checkpoint.load(ckpt, m.key, g.state, g.shard, say, m.R, n_int)
    if got is None:
        return False
    g.state, g.metrics, g.next_interval = got
    start = intervals(m.spec.config)[0]
    at = int(start[g.next_interval]) if g.next_interval < n_int else m.spec.config.total_steps
    say(f"resumed from {ckpt} at step {at}")
    PROGRESS.update(step=at)
    return True


def stacked(gs: list[Group], members: list[Member]) -> Group:
    """One group of the members' groups (all at the same next interval), runs in order."""
    if len(gs) == 1:
        return gs[0]
    Rs = [m.R for m in members]
    R_pad = _R_pad(sum(Rs))
    g0 = gs[0]
    metrics = {k: [stack([np.concatenate(g.metrics[k], axis=1) for g in gs], Rs, R_pad)]
               for k in METRICS}
    return Group(g0.stepper, g0.shard, stack([g.sa for g in gs], Rs, R_pad),
                 stack([g.state for g in gs], Rs, R_pad, g0.shard), metrics, g0.next_interval)


def loop(members: list[Member], g: Group, job: Job, progress: Callable[[str], None]) -> dict:
    """Advance ``g`` chunk by chunk to the end, with each member's checkpoint and a
    ``progress`` line after each chunk; return the timings. The rates and times left count
    chunk time only (compilation excluded)."""
    spec = members[0].spec
    cfg = spec.config
    R = sum(m.R for m in members)
    start, length, phase = intervals(cfg)
    n_int = len(start)
    steps, C_max = chunk_limits(spec)
    C = scan_length(spec)
    adv = jax.jit(functools.partial(g.stepper.advance_runs, shards=jax.device_count()),
                  static_argnums=(3, 4), donate_argnums=(0,))
    compiled: dict = {}
    compile_s = 0.0
    max_b, masked = spec.max_batch(), spec.masked()
    batch_R = g.sa["batch"][:R].astype(np.int64)
    total = sum(m.spec.samples() for m in members)
    steps_before = np.concatenate([[0], np.cumsum(length)])
    job.add(int(_samples_through(steps_before[g.next_interval], cfg, batch_R)))
    t_run0 = time.perf_counter()
    samples_done = 0
    while g.next_interval < n_int:
        if job.cancelled.is_set():  # another group of the job failed or was interrupted
            raise Cancelled
        sel = next_chunk(length, phase, g.next_interval, steps, min(C, C_max))
        p = int(phase[sel[0]])
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
        step = int(start[g.next_interval]) if g.next_interval < n_int else cfg.total_steps
        with _signals_held():  # the checkpoint and the step an interrupt reports, together
            _save(members, g)
            PROGRESS.update(step=step)
        job.ran(n_samp, time.perf_counter() - t0)
        el = time.perf_counter() - t_run0 - compile_s
        left = el / max(samples_done, 1) * max(total - _samples_through(step, cfg, batch_R), 0)
        total_left = job.eta()
        progress(f"step {step:>7d}/{cfg.total_steps}  {n_samp / max(dt, 1e-9):9.3g} "
                 f"sample-steps/s  left ~{left:5.0f}s" + (f"  (job ~{total_left:5.0f}s)"
                                                          if job.total > total else ""))
    run_s = time.perf_counter() - t_run0 - compile_s
    return {"compile_s": compile_s, "run_s": run_s,
            "sample_steps_per_s": samples_done / max(run_s, 1e-9)}


@contextlib.contextmanager
def _signals_held():
    """SIGINT, SIGTERM and SIGHUP that arrive inside the block take effect after it (their
    handlers are restored and the first signal raised again); only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    old = {n: signal.signal(n, lambda num, frame: got.append(num)) for n in sigs}
    try:
        yield
    finally:
        for n, h in old.items():
            signal.signal(n, h)
        if got:
            signal.raise_signal(got[0])


def _save(members: list[Member], g: Group) -> None:
    """Each member's checkpoint: its own runs of the group's state, under its own hash."""
    if len(members) == 1:
        m = members[0]
        checkpoint.save(m.sdir / CHECKPOINT, m.key, g.state, g.metrics, g.next_interval, m.R)
        return
    state = jax.tree.map(to_host, g.state)
    metrics = {k: np.concatenate(v, axis=1) for k, v in g.metrics.items()}
    for m, (lo, hi) in zip(members, offsets(members)):
        checkpoint.save(m.sdir / CHECKPOINT, m.key, jax.tree.map(lambda x: x[lo:hi], state),
                        {k: [v[lo:hi]] for k, v in metrics.items()}, g.next_interval, m.R)


def write(m: Member, state, metrics: dict, sa: dict, timings: dict, members: list[Member],
          say: Callable[[str], None]) -> Runs:
    """Write member ``m``'s results (its runs of the finished group: ``results.write``), name
    the runs that diverged; return the ``Runs``. ``meta["group"]``: the specs it ran with."""
    spec, R = m.spec, m.R
    arrays = results.result_arrays(spec, state, metrics, sa, R)
    meta = {"name": m.name, "hash": m.key, "format": FORMAT,
            "config": config_to_dict(spec.config), "label_names": list(spec.label_names),
            "max_dataset": spec.max_dataset, "runs": R, "timings": timings,
            "devices": devices(), "versions": versions(), "git_commit": git_commit()}
    if len(members) > 1:
        meta["group"] = [x.name for x in members]
    if spec.keep is not None:  # absent: every final array (as before keep)
        meta["keep"] = list(spec.kept)
    meta = results.write(m.sdir, arrays, meta)
    PROGRESS.update(done=True)
    div = arrays["diverged_step"]
    for i in np.flatnonzero(div >= 0):
        lab = ", ".join(f"{k}={arrays[f'labels/{k}'][i]}" for k in spec.label_names)
        say(f"WARNING: run {i} ({lab or f'seed {spec.runs[i].seed}'}) diverged at step "
            f"{int(div[i])} (non-finite parameters); the others went on")
    return Runs(arrays, meta, m.name)


def _samples_through(step, cfg, batch_R: np.ndarray) -> int:
    """Samples all runs drew in steps [0, step)."""
    n, s0 = 0, 0
    for p, ph in enumerate(cfg.phases):
        k = max(0, min(int(step), s0 + ph.steps) - s0)
        n += k * int(batch_R[:, p].sum())
        s0 += ph.steps
    return n
