"""What each ``scbjax`` command does once its arguments are parsed (the parser and ``main``
are ``scbjax.app.cli``). Bad input raises ConfigError, which ``main`` prints as one line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from scbjax.app import bench, bench_batch, bench_grid, plot_runs, reproduce
from scbjax.app.sweep import SweepSpec, load_spec, run_sweep
from scbjax.app.sweep_tables import format_summary
from scbjax.core.metrics import stage1_length
from scbjax.core.task import TaskConfig
from scbjax.engine import outdir
from scbjax.engine.executor import Log, check_spec, run_spec
from scbjax.engine.meta import config_from_dict
from scbjax.engine.resources import check_fits
from scbjax.engine.spec import RunSpec, grid
from scbjax.engine.outdir import JOB_FILE
from scbjax.engine.store import checkpoint_hash, identify
from scbjax.sim.train import Phase, TrainConfig
from scbjax.util import fields
from scbjax.util.errors import ConfigError
from scbjax.util.fileio import check_dir, read_table


SWEEP_KEYS = tuple(f.name for f in dataclasses.fields(SweepSpec) if f.name != "base")
RUN_JSON_KEYS = ("hash", "format", "config")  # a saved run's run.json (``store.SIDECAR``)


def load_config_file(path: Path):
    """A ``TrainConfig`` from a TOML/JSON file: its fields at the top level, or under [base];
    or a saved run's ``run.json`` (keys hash, format, config): its ``config``."""
    d = read_table(path, "--config")
    if isinstance(d, dict) and all(k in d for k in RUN_JSON_KEYS):
        if not isinstance(d["config"], dict):
            raise ConfigError("--config", f"{path} is a run.json whose 'config' is not an "
                              f"object ({type(d['config']).__name__})")
        return config_from_dict(d["config"], "config")
    sweep_keys = [k for k in SWEEP_KEYS if isinstance(d, dict) and k in d]
    if sweep_keys:
        raise ConfigError("--config", f"{path} is a sweep spec (it has {'/'.join(sweep_keys)}): "
                          "run it with `scbjax sweep`")
    if isinstance(d, dict) and "base" in d:
        other = sorted(str(k) for k in d if k != "base")
        if other:
            raise ConfigError("--config", f"{path}: unknown top-level key {other[0]!r} beside "
                              "[base] (a config file has the TrainConfig fields at the top "
                              "level, or under [base] alone)")
        return fields.from_dict(TrainConfig, d["base"], "base")
    return fields.from_dict(TrainConfig, d, "")


def config_from_args(a: argparse.Namespace):
    """The ``TrainConfig`` of ``scbjax train``: the defaults (or --config), then the options
    given on the command line."""
    base = load_config_file(a.config) if a.config is not None else TrainConfig()
    task = dataclasses.replace(base.task, **fields.values_from_args(a, TaskConfig))
    top = fields.values_from_args(a, TrainConfig, skip=("task", "phases"))
    if a.projection is not None:
        top.setdefault("projection_V", a.projection)
        top.setdefault("projection_A", a.projection)
    ph = fields.values_from_args(a, Phase)
    if a.lr is not None:
        if "lr_V" in ph or "lr_A" in ph:
            raise ConfigError("lr", "give --lr or --lr-V/--lr-A, not both")
        ph["lr_V"] = ph["lr_A"] = a.lr
    if a.phase:
        if ph:
            raise ConfigError("phase", "give --phase or --steps/--batch/--lr*/--lam, not both")
        phases = tuple(a.phase)
    elif ph:
        if len(base.phases) != 1:
            raise ConfigError("phase", f"--config has {len(base.phases)} phases: set them "
                              "with --phase, not --steps/--batch/--lr*/--lam")
        phases = (dataclasses.replace(base.phases[0], **ph),)
    else:
        phases = base.phases
    cfg = dataclasses.replace(base, task=task, phases=phases, **top)
    return cfg.validate()


def summary_table(runs) -> str:
    """Final metrics over seeds: median [min, max]; diverged seeds listed with their step."""
    div = runs["diverged_step"]
    ok = div < 0
    rows = [f"{'metric':<16} {'median':>11} {'min':>11} {'max':>11}   (final, over "
            f"{int(ok.sum())}/{len(ok)} finite seeds)"]
    for key in sorted(k for k in runs.arrays if k.startswith("metrics/")):
        x = runs[key][ok, -1] if ok.any() else np.array([np.nan])
        rows.append(f"{key[8:]:<16} {np.median(x):>11.4g} {np.min(x):>11.4g} {np.max(x):>11.4g}")
    e = runs.metric("excess_loss")[ok]
    pos = e[:, 0] > 0  # a task the initial parameters solve (mix 1) has no ratio
    rel = e[pos, -1] / e[pos, 0]
    if rel.size:
        rows.append(f"{'excess/initial':<16} {np.median(rel):>11.4g} {np.min(rel):>11.4g} "
                    f"{np.max(rel):>11.4g}" + ("" if pos.all() else f"   (over the "
                    f"{int(pos.sum())}/{pos.size} seeds with an initial excess loss > 0)"))
    else:
        rows.append(f"{'excess/initial':<16} {'n/a':>11} {'n/a':>11} {'n/a':>11}   (no finite "
                    "seed has an initial excess loss > 0)")
    s1 = np.asarray([stage1_length(c, x) for c, x in zip(runs.metric("corr_V")[ok],
                                                           runs.samples[ok])])
    if s1.size:
        reached = s1[~np.isnan(s1)]
        med = np.median(reached) if reached.size else float("nan")
        rows.append(f"{'stage1_samples':<16} {med:>11.4g}   (samples until corr_V >= 0.5: median "
                    f"over the {reached.size}/{s1.size} seeds that got there)")
    for i in np.flatnonzero(~ok):
        rows.append(f"WARNING: seed {int(runs['seeds'][i])} diverged at step {int(div[i])} "
                    "(non-finite parameters); excluded above")
    return "\n".join(rows)


def check_train_out(out: Path, key: str, overwrite: bool) -> None:
    """Refuse an --out that is a file, unwritable, or holds other (or unidentifiable)
    results, unless ``overwrite``: then the run replaces them when it finishes (nothing is
    removed before). Results or a checkpoint of this very spec are kept (reused or resumed);
    a damaged checkpoint is left to the executor (restarted from scratch, said so). What the
    folder holds is read from its results file first (``store.identify``)."""
    held, why = identify(out) if out.is_dir() else (None, "")
    if held != key and checkpoint_hash(out) == key:
        held = key  # a run of this spec was interrupted (perhaps while writing its results)
    other = (f"{why}: the results in {out} cannot be identified" if held == "?" else
             f"{out} holds other results (another configuration)")
    outdir.claim(out, held, key, other, overwrite)


def cmd_train(a: argparse.Namespace) -> int:
    """``scbjax train``: the seeds of one configuration in one compiled group."""
    cfg = config_from_args(a)
    if a.seeds < 1:
        raise ConfigError("seeds", f"must be >= 1, got {a.seeds}")
    if not 0 <= a.seed_offset or a.seed_offset + a.seeds > 2**32:
        raise ConfigError("seed_offset", f"seeds must lie in [0, 2^32): offset {a.seed_offset} "
                          f"+ {a.seeds} seeds")
    try:  # counted before any run is built; the field: task.N if one seed cannot fit
        check_fits(cfg, 1)
    except ConfigError:
        check_fits(cfg, a.seeds, where="task.N")
    check_fits(cfg, a.seeds, where="seeds")
    spec = RunSpec(cfg, grid(range(a.seed_offset, a.seed_offset + a.seeds)),
                   chunk_steps=a.chunk_steps)
    spec = check_spec(spec, fits_field="task.N")  # fields, memory estimate
    check_train_out(a.out, spec.key(), a.overwrite)
    with outdir.hold(a.out):
        check_train_out(a.out, spec.key(), a.overwrite)  # again, now that no one else writes
        runs = run_spec("train", spec, a.out, log=Log(a.quiet), overwrite=a.overwrite)
    tm = runs.meta["timings"]
    print(f"{len(runs)} seeds x {cfg.total_steps} steps in one compiled group: compile "
          f"{tm['compile_s']:.1f}s, run {tm['run_s']:.1f}s "
          f"({tm['sample_steps_per_s']:.3g} sample-steps/s)")
    print(summary_table(runs))
    print(f"results: {a.out / 'results.npz'}  sidecar: {a.out / 'run.json'}")
    return 0


def _log(msg: str) -> None:
    print(msg, flush=True)


def _check_figures_dir(figures: Path) -> None:
    check_dir(figures, "--figures")


def _plot_and_check(results: Path, figures: Path, only, mode: str | None = None) -> None:
    """Redraw the figures of ``results`` into ``figures`` and print the claims table."""
    t0 = time.perf_counter()
    paths = reproduce.plot_studies(results, figures, only, log=_log, mode=mode)
    print(f"{len(paths)} figure files in {figures}/ ({time.perf_counter() - t0:.1f}s)")
    claims = reproduce.check_claims(results, only, mode=mode)
    print("\nClaims of the paper, checked on the regenerated data:")
    print(reproduce.claims_table(claims))
    if only is None or set(only) == set(reproduce.STUDIES):
        print(f"claims table: {results / reproduce.CLAIMS_FILE}")


def cmd_reproduce(a: argparse.Namespace) -> int:
    """``scbjax reproduce``: plan, run every study, plot, check the claims."""
    out = a.out or Path("results") / f"reproduce-{a.mode}"
    figures = a.figures or out / "figures"
    if not a.plan:  # the folders first: cheap, while building every spec takes seconds
        reproduce.check_out(out, a.mode, a.overwrite, create=False, only=a.only)
        _check_figures_dir(figures)
        reproduce.check_figures_target(figures, a.mode)
    rows = reproduce.plan(a.mode, a.only)  # validates every study's specs
    cal = None if a.mode == "tiny" and not a.plan else reproduce.calibrate()
    print(f"plan (reproduce --{a.mode}):")
    print(reproduce.format_plan(rows, cal), flush=True)
    if a.plan:
        return 0
    t0 = time.perf_counter()
    with outdir.hold(out):
        reproduce.run_studies(a.mode, out, a.only, log=_log, quiet=a.quiet,
                              overwrite=a.overwrite, workers=a.workers)
        _plot_and_check(out, figures, a.only, a.mode)
    print(f"reproduce --{a.mode}: {time.perf_counter() - t0:.0f}s in all; raw results in {out}/")
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    """``scbjax plot``: the figures and claims of saved results, without training."""
    if not a.results_dir.is_dir():
        raise ConfigError("RESULTS_DIR", f"no such directory: {a.results_dir}")
    figures = a.figures or a.results_dir / "figures"
    _check_figures_dir(figures)
    if not (a.results_dir / JOB_FILE).exists():  # a train or sweep output
        if a.only:
            raise ConfigError("--only", "a study of a `scbjax reproduce` output; "
                              f"{a.results_dir} has no {JOB_FILE}")
        for p in plot_runs.plot_runs(a.results_dir, figures, a):
            print(p)
        return 0
    if plot_runs.given_options(a):
        raise ConfigError(plot_runs.given_options(a)[0], "for train and sweep outputs; "
                          f"{a.results_dir} is a `scbjax reproduce` output")
    mode = reproduce.check_results(a.results_dir, a.only)  # every file loads, before drawing
    reproduce.check_figures_target(figures, mode)
    _plot_and_check(a.results_dir, figures, a.only, mode)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    """``scbjax sweep``: run (or resume) a sweep spec."""
    spec = load_spec(a.spec)
    if a.chunk_steps is not None:
        spec = dataclasses.replace(spec, chunk_steps=a.chunk_steps).validate()
    out = a.out if a.out is not None else Path("runs/sweeps") / spec.name
    t0 = time.perf_counter()
    r = run_sweep(spec, out, quiet=a.quiet, overwrite=a.overwrite, workers=a.workers)
    n = len(r["rows"])
    print(f"sweep {spec.name!r}: {n} runs in {len(r['groups'])} compiled groups, "
          f"{time.perf_counter() - t0:.1f}s")
    print(format_summary(r["summary"]))
    for w in r["warnings"]:
        print(w)
    print(f"table: {out / 'table.csv'}  summary: {out / 'summary.csv'}  arrays: {out / 'groups'}")
    return 0


def _ints(text: str, field: str) -> tuple[int, ...]:
    """Comma-separated integers >= 1."""
    try:
        xs = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(field, f"want comma-separated integers, got {text!r}") from None
    if any(x < 1 for x in xs):
        raise ConfigError(field, f"values must be >= 1, got {text!r}")
    return xs


def cmd_bench(a: argparse.Namespace) -> int:
    """``scbjax bench``: throughput against a per-seed loop and the floor, or the grid."""
    seeds = _ints(a.seeds, "seeds")
    b = bench.BenchConfig(seeds=seeds, **fields.values_from_args(a, bench.BenchConfig)).validate()
    if a.grid_steps < 1:
        raise ConfigError("grid_steps", f"must be an integer >= 1, got {a.grid_steps}")
    if a.grid:
        grid_seeds = (_ints(a.grid_seeds, "grid_seeds") if a.grid_seeds
                      else bench_grid.default_grid_seeds())
        g = bench_grid.GridConfig(Ns=_ints(a.grid_N, "grid_N"), Ts=_ints(a.grid_T, "grid_T"),
                                  seeds=grid_seeds, Q=a.Q, batch=a.batch, steps=a.grid_steps,
                                  repeats=a.repeats, grad=a.grad)
        return bench_grid.grid_command(bench_grid.GridOptions(
            g, figure=a.grid_figure, markdown=a.grid_md, note=a.grid_note, as_json=a.json))
    if a.batch_grid:
        Bs = _ints(a.batch_grid_B, "batch_grid_B")
        grid_seeds = _ints(a.batch_grid_seeds, "batch_grid_seeds")
        check_fits(bench.train_config(dataclasses.replace(b, batch=max(Bs))), max(grid_seeds))
        r = bench_batch.run_batch_grid(b, Bs, grid_seeds)
        print(json.dumps(r) if a.json else bench_batch.format_batch_grid(r))
        return 0
    check_fits(bench.train_config(b), max(seeds))  # validates N, T, Q; refuses what cannot fit
    r = bench.run_bench(b)
    if a.breakdown:
        r["breakdown_seeds"] = seeds[-1]
        r["breakdown_samples_per_s"] = bench.breakdown(b, seeds[-1])
    print(json.dumps(r) if a.json else bench.format_bench(r))
    if a.breakdown and not a.json:
        print(bench.format_breakdown(r["breakdown_samples_per_s"], seeds[-1]))
    return 0
