"""The one executor: runs every ``RunSpec`` of every job (train, sweep, study).

The specs of a job run in merged groups (``scbjax.engine.merge``: specs that compile to the
same program share one vmapped call; ``merge=False``: one group per spec), each group trained
by ``scbjax.engine.group`` (sharded over all devices, advanced a chunk of log intervals at a
time with each spec's atomic checkpoint between chunks), one group at a time or ``workers``
at once on threads (``concurrent_groups``, ``_concurrently``). Every spec keeps its own folder: one
process at a time writes it (``outdir.hold``); a spec whose results carry its hash and load is
reused (and not merged in); a checkpoint with its hash resumes; results or a checkpoint of
another configuration are refused unless ``overwrite`` (``results.check_other``); a damaged
file restarts the spec, saying so. Progress: one line per chunk, rewritten in place on a
terminal (``progress.Log``).
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Mapping

import jax
import numpy as np

from scbjax.engine import merge as merging
from scbjax.engine import outdir
from scbjax.engine.checkpoint import run_mesh
from scbjax.engine.group import (PROGRESS, check_tasks, init, loop, resume, run_keys, stacked,
                                 write)
from scbjax.engine.merge import Member, label, offsets, take
from scbjax.engine.progress import Job, Log
from scbjax.engine.resources import available_bytes, check_fits, estimate_bytes
from scbjax.engine.results import check_files, check_other, reuse
from scbjax.engine.spec import RunSpec, check_input, check_name, digest_arrays
from scbjax.engine.store import Runs, RunSet, load_runs
from scbjax.sim.train import intervals
from scbjax.util.errors import ConfigError


# --- One spec -----------------------------------------------------------------------------


def _resolve(x, context: RunSet):
    if callable(x):
        x = x(context)
    return None if x is None else jax.tree.map(np.asarray, x)


def check_spec(spec: RunSpec, name: str = "", fits_field: str | None = None) -> RunSpec:
    """What can be checked before anything is compiled or written: the spec's fields and its
    memory estimate (``check_fits``). The generated tasks are checked by ``run_spec`` right
    after init, before any training step and before any file is written."""
    spec = spec.validate(name)
    check_fits(spec.config, len(spec.runs), spec.max_dataset,
               where=fits_field or name or "task.N")
    return spec


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
    m = _member(name, spec, Path(sdir), context if context is not None else RunSet())
    return run_group([m], log=log, job=job or Job(spec.samples()), tag=tag or f"[{name}] ",
                     on_start=on_start, overwrite=overwrite)[name]


def _member(name: str, spec: RunSpec, sdir: Path, context: RunSet) -> Member:
    tasks, params0, key = _inputs(spec, context, name)
    return Member(name, spec, sdir, key, tasks, params0)


def run_group(members: list[Member], *, log: Log, job: Job, tag: str,
              on_start: Callable[[], None] | None = None,
              overwrite: bool = False) -> dict[str, Runs]:
    """Run the specs of one merged group (``merge.groups``: the same compiled program) as one
    vmapped call, each spec reused, resumed and written in its own folder as ``run_spec``
    does; return each spec's ``Runs``. The members' folders are held together; a member
    whose results are finished is reused and not run; members whose checkpoints stand at
    different steps advance as separate groups."""
    def say(text: str) -> None:
        log(tag + text)

    for m in members:
        check_files(m.sdir)
    out: dict = {}
    with contextlib.ExitStack() as held:
        for m in members:
            held.enter_context(outdir.hold(m.sdir, str(m.sdir)))
        todo = []
        for m in members:
            check_other(m.sdir, m.key, overwrite)
            done = reuse(m.name, m.spec, m.sdir, m.key, say)
            if done is None:
                todo.append(m)
                continue
            out[m.name] = done
            job.add(m.spec.samples())
            PROGRESS.update(dir=m.sdir, step=m.spec.config.total_steps, done=True)
        if not todo:
            if on_start is not None:
                on_start()
            return out
        head = todo[0].spec
        check_fits(head.config, sum(m.R for m in todo), max(m.spec.max_dataset for m in todo),
                   where=todo[0].name)
        PROGRESS.update(dir=todo[0].sdir, step=0, total=head.config.total_steps, done=False)
        gs = [init(m.name, m.spec, m.tasks, m.params0) for m in todo]
        if on_start is not None:
            on_start()
        n_int = len(intervals(head.config)[0])
        at: dict = {}
        for m, g in zip(todo, gs):  # each member's checkpoint, if it holds this spec
            at.setdefault(g.next_interval if resume(m, g, n_int, say) else 0, []).append((m, g))
        try:
            for part in at.values():
                ms = [m for m, _ in part]
                g = stacked([g for _, g in part], ms)
                timings = loop(ms, g, job, lambda t: log.progress(tag + t))
                for m, (lo, hi) in zip(ms, offsets(ms)):
                    out[m.name] = write(m, take(g.state, lo, hi), {
                        k: [np.concatenate(v, axis=1)[lo:hi]] for k, v in g.metrics.items()},
                        {k: v[lo:hi] for k, v in g.sa.items()}, timings, ms, say)
        finally:
            log.end()
    return {m.name: out[m.name] for m in members}


def _inputs(spec: RunSpec, context: RunSet, where: str = "") -> tuple:
    """(tasks, params0, hash) of a validated spec: its given tasks and starts (functions of
    the specs before it called on ``context``), of the config's shapes (``check_input``: one
    without the run axis repeated over the runs), and the hash that covers them."""
    R = len(spec.runs)
    tasks, params0 = (check_input(_resolve(x, context), kind, spec.config, R, where)
                      for x, kind in ((spec.tasks, "tasks"), (spec.params0, "params0")))
    return tasks, params0, spec.key(digest_arrays(tasks), digest_arrays(params0))


# --- Many specs ---------------------------------------------------------------------------


def fits(spec: RunSpec, runs: int) -> bool:
    """Whether ``runs`` runs of ``spec``'s program fit in memory (``check_fits``)."""
    try:
        check_fits(spec.config, runs, spec.max_dataset)
    except ConfigError:
        return False
    return True


def execute(specs: Mapping[str, RunSpec], out, *, log: Log = Log(), job: Job | None = None,
            tag: str = "", on_start: Callable[[], None] | None = None,
            overwrite: bool = False, quiet: bool = False, merge: bool = True,
            workers: int | None = None) -> RunSet:
    """Run each spec into ``out/<name>``, holding ``out`` (``outdir.hold``); a spec's
    ``tasks``/``params0`` functions see the ``RunSet`` of the specs before it. ``merge``:
    specs of the same compiled program run as one group (``merge.groups``: a later spec
    without input functions joins the group of an earlier one; what fits in memory); their
    results are those of separate groups, bit for bit on a CPU (docs/findings.md §5.1).
    ``on_start()`` is called once, when the first spec is known good (see ``run_spec``).
    Returns the ``RunSet`` in the order of ``specs``. Every name must be one directory
    component (``spec.check_name``): nothing is written outside ``out``. Results of another
    configuration are replaced only with ``overwrite``: for the specs whose hash is known
    before they run (no ``tasks``/``params0`` functions) this is checked before anything
    trains. ``quiet``: no progress lines (``log=Log(quiet=True)``). ``workers``: groups run
    at once on threads (``concurrent_groups``; None: 1 on a CPU, more on an accelerator)."""
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
        return _execute(specs, out, log, job, tag, on_start, overwrite, merge, workers)


def _execute(specs, out: Path, log: Log, job: Job | None, tag: str, on_start, overwrite: bool,
             merge: bool, workers: int | None) -> RunSet:
    started = []
    lock = threading.Lock()

    def once():
        with lock:
            if not started and on_start is not None:
                started.append(True)
                on_start()

    rs = RunSet()
    job = job or Job(sum(s.samples() for s in specs.values()))
    plan = merging.groups(specs, fits) if merge else [[n] for n in specs]
    workers = concurrent_groups(workers, len(plan))

    def start(i: int, names: list[str]) -> tuple[list[Member], dict]:
        ms = [_member(n, specs[n].validate(n), out / n, rs) for n in names]
        c = ms[0].spec.config
        Qs = ",".join(dict.fromkeys(str(m.spec.config.task.Q) for m in ms))
        t = (f"[{tag}{label(ms)} {i + 1}/{len(plan)}: {sum(m.R for m in ms)} runs, "
             f"N={c.task.N} T={c.task.T} Q={Qs}] ")
        return ms, dict(log=log, job=job, tag=t, on_start=once, overwrite=overwrite)

    if workers == 1:
        for i, names in enumerate(plan):
            ms, kw = start(i, names)
            rs.update(run_group(ms, **kw))
    else:
        _concurrently(plan, specs, start, rs, job, workers)
    return RunSet((n, rs[n]) for n in specs)


def concurrent_groups(workers: int | None, n_groups: int) -> int:
    """How many groups run at once: ``workers`` (None: ``AUTO_WORKERS`` on a GPU or TPU, 1 on
    a CPU), never more than the groups, and 1 under ``jax.distributed`` (every process must
    launch the same programs in one order)."""
    if workers is None:
        workers = 1 if jax.devices()[0].platform == "cpu" else AUTO_WORKERS
    if jax.process_count() > 1:
        return 1
    return max(1, min(int(workers), n_groups))


AUTO_WORKERS = 4  # groups at once on an accelerator: one compiles while others train


def _concurrently(plan, specs, start, rs: RunSet, job: Job, workers: int) -> None:
    """Run the groups of ``plan`` on ``workers`` threads, each group's results in ``rs`` (every
    spec's numbers are those of running it alone: each group is its own program). A group whose
    specs have input functions waits for every group before it (their ``RunSet``); a group
    starts only while the estimated memory of the groups running fits what is available. The
    first error or interrupt stops the job: the other groups stop at their next checkpoint."""
    avail = available_bytes()
    running: dict = {}  # future -> estimated bytes

    def collect(done) -> None:
        for f in done:
            running.pop(f)
            rs.update(f.result())

    pool = ThreadPoolExecutor(workers, thread_name_prefix="scbjax-group")
    try:
        for i, names in enumerate(plan):
            needs = any(callable(specs[n].tasks) or callable(specs[n].params0) for n in names)
            head = specs[names[0]]
            est = estimate_bytes(head.config, sum(len(specs[n].runs) for n in names),
                                 max(specs[n].max_dataset for n in names))
            while running and (needs or len(running) >= workers or (
                    avail is not None and sum(running.values()) + est > avail)):
                collect(wait(running, return_when=ALL_COMPLETED if needs else FIRST_COMPLETED)[0])
            ms, kw = start(i, names)
            running[pool.submit(run_group, ms, **kw)] = est
        while running:
            collect(wait(running, return_when=FIRST_COMPLETED)[0])
    except BaseException:
        job.cancelled.set()  # the others stop at their next checkpoint
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def load(specs: Mapping[str, RunSpec], out) -> RunSet:
    """The saved ``RunSet`` of ``specs`` under ``out`` without training: each spec's stored
    hash must equal its hash now (ConfigError otherwise)."""
    out = Path(out)
    rs = RunSet()
    for name, spec in specs.items():
        check_name(name, f"specs[{name!r}]")
        rs[name] = load_runs(out / name, _inputs(spec.validate(name), rs, name)[2], name)
    return rs


__all__ = ["execute", "load", "run_spec", "run_group", "run_mesh", "run_keys", "Log", "Job",
           "check_tasks", "check_spec", "interrupted_message", "PROGRESS", "fits"]
