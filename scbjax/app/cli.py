"""Command-line interface: ``scbjax train ...``. Bad input exits with status 2, no traceback."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from scbjax.util.errors import ConfigError
from scbjax.core.losses import GRADS

DESCRIPTION = """\
scbjax: simulate training of a one-layer linear transformer on the Sparse Contextual Bigram
task (Ren, Wang & Lee, NeurIPS 2024). All seeds of a command train in one compiled call."""


class UsageError(Exception):
    """A command line that argparse cannot parse (printed as one line, exit status 2)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``scbjax: error: ...`` (no usage block) and
    returns status 2 from ``main`` instead of exiting."""

    def error(self, message: str):
        raise UsageError(message)


def _path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text)


_path.__name__ = "path"


def _phase(text: str):
    from scbjax.sim.train import Phase

    parts = text.split(",")
    if len(parts) != 5:
        raise argparse.ArgumentTypeError(
            f"want STEPS,BATCH,LR_V,LR_A,LAM (5 comma-separated values), got {text!r}")
    try:
        return Phase(int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3]),
                     float(parts[4]))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}") from None


def _with_defaults(group, cls, added: list[str], defaults: dict) -> None:
    """Show the dataclass default in each derived option's help (the parsed default stays
    None, so that only options given on the command line override --config)."""
    from scbjax.util import fields

    for act in group._group_actions:
        name = act.dest
        if name in added:
            act.help = f"{fields.help_of(cls, name)} (default: {defaults[name]})"


PLUGIN_HELP = ("a Python file that registers optimizers (scbjax.register_optimizer); imported "
               "before the other options are read, repeatable")


def _plugin_arg(group) -> None:
    group.add_argument("--plugin", type=_path, action="append", default=None, metavar="FILE",
                       help=PLUGIN_HELP)


def load_plugins(argv: list[str]) -> None:
    """Import every ``--plugin FILE`` of ``argv`` (before the parser, whose --optimizer
    choices come from the registry)."""
    from scbjax.optim import registry

    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            registry.load_plugin(argv[i + 1])
        elif a.startswith("--plugin="):
            registry.load_plugin(a.split("=", 1)[1])


def add_train_parser(sub) -> None:
    from scbjax.util import fields
    from scbjax.core.task import TaskConfig
    from scbjax.sim.train import Phase, TrainConfig

    t = sub.add_parser("train", help="train many seeds of one configuration in one compiled call",
                       description="Train S seeds (task, init and data streams per seed) of one "
                       "configuration, vmapped in one compiled group; write results.npz and "
                       "run.json to --out (checkpointed: rerunning the same command resumes) and "
                       "print a summary table. Options default to the TrainConfig defaults; "
                       "--config FILE.toml (the same TOML as a sweep's [base]) sets them from a "
                       "file, and options given here override it.")
    none = {f.name: None for f in dataclasses.fields(TrainConfig)}
    g = t.add_argument_group("task (a random SCB instance per seed)")
    added = fields.add_arguments(g, TaskConfig, defaults={k: None for k in TASK_FIELDS})
    _with_defaults(g, TaskConfig, added, dataclasses.asdict(TaskConfig()))
    g = t.add_argument_group("phase (one phase; --phase for a schedule)")
    ph0 = TrainConfig().phases[0]
    added = fields.add_arguments(g, Phase, defaults={f.name: None
                                                     for f in dataclasses.fields(Phase)})
    _with_defaults(g, Phase, added, dataclasses.asdict(ph0))
    g.add_argument("--lr", type=float, default=None, help="learning rate for both V and A")
    g.add_argument("--phase", type=_phase, action="append", default=None,
                   metavar="STEPS,BATCH,LR_V,LR_A,LAM",
                   help="a training phase; repeat for a schedule (overrides --steps, --batch, "
                   "--lr*, --lam)")
    g = t.add_argument_group("training (options marked [recon] are reconstructions)")
    added = fields.add_arguments(g, TrainConfig, skip=("task", "phases"), defaults=none)
    _with_defaults(g, TrainConfig, added, dataclasses.asdict(TrainConfig()))
    g.add_argument("--projection", choices=("affine", "simplex", "none"), default=None,
                   help="projection of the columns of V and A (sets both)")
    g.add_argument("--config", type=_path, default=None, metavar="FILE",
                   help="a TOML or JSON file with the fields of a TrainConfig (as a sweep's "
                   "[base]; a file with a [base] table is read from there)")
    _plugin_arg(g)
    g = t.add_argument_group("seeds and output")
    g.add_argument("--seeds", type=int, default=8, help="number of seeds, trained in one call "
                   "(default: 8)")
    g.add_argument("--seed-offset", type=int, default=0, help="first seed (seeds are offset..; "
                   "default: 0)")
    g.add_argument("--out", type=_path, default=Path("runs/train"),
                   help="output directory (default: runs/train)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace other results already in --out")
    g.add_argument("--chunk-steps", type=int, default=None,
                   help="steps between checkpoints and progress lines (default: a tenth)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


TASK_FIELDS = ("N", "T", "Q", "alpha", "mix", "q_weights", "beta")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="scbjax", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    from scbjax import __version__

    p.add_argument("--version", action="version", version=f"scbjax {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_train_parser(sub)
    r = sub.add_parser("reproduce", help="run every study of the paper, plot every figure and "
                       "check every claim",
                       description="Run every study in scbjax/studies/ (or those named by --only) "
                       "on the one executor (checkpointed: the same command again resumes "
                       "where it stopped and reuses finished runs), keep the raw results in "
                       "--out, regenerate the figures (PNG and PDF) in --figures and print the "
                       "claims table (measured number, criterion, PASS or FAIL). The exit "
                       "status is 0 even when a claim FAILs: a failed claim is a finding, not "
                       "an error.")
    m = r.add_mutually_exclusive_group()
    m.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="the whole reproduction in minutes on a 2-core CPU (the default)")
    m.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="publication setting: more seeds, larger T (sized for a GPU)")
    m.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                   help="miniature sizes: checks the pipeline end to end in seconds (claims "
                   "are not meaningful there)")
    r.set_defaults(mode="quick")
    r.add_argument("--out", type=_path, default=None,
                   help="raw results directory (default: results/reproduce-MODE)")
    r.add_argument("--figures", type=_path, default=None,
                   help="where the figures are written (default: OUT/figures; the README's "
                   "figures/ only when given explicitly, and never from --tiny)")
    r.add_argument("--only", action="append", default=None, metavar="STUDY",
                   help="run only this study (repeatable); one of: " + ", ".join(_studies()))
    r.add_argument("--plan", action="store_true",
                   help="print the plan (groups, runs, samples, estimated time from a short "
                   "calibration on this machine) and train nothing")
    r.add_argument("--resume", action="store_true",
                   help="continue in --out (what the same command does anyway: finished runs "
                   "are reused by hash, interrupted ones resume from their checkpoint)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace results of another mode in --out")
    r.add_argument("--quiet", action="store_true", help="no progress lines")

    pl = sub.add_parser("plot", help="regenerate the figures and the claims table from saved "
                        "results, without training",
                        description="Read the raw results that `scbjax reproduce` saved in "
                        "RESULTS_DIR, redraw every figure and print the claims table.")
    pl.add_argument("results_dir", type=_path, metavar="RESULTS_DIR",
                    help="the --out directory of a reproduce run")
    pl.add_argument("--figures", type=_path, default=None,
                    help="where the figures are written (default: RESULTS_DIR/figures)")
    pl.add_argument("--only", action="append", default=None, metavar="STUDY",
                    help="only this study (repeatable)")
    add_sweep_parser(sub)
    add_bench_parser(sub)
    return p


def _studies() -> tuple[str, ...]:
    from scbjax.app.reproduce import STUDIES

    return STUDIES


def add_sweep_parser(sub) -> None:
    w = sub.add_parser("sweep", help="run (or resume) a sweep spec: seeds x hyperparameters x "
                       "batch / dataset sizes x task shapes",
                       description="Run a sweep spec (TOML or JSON, see README 'Sweeps'): one "
                       "compiled call per task shape and optimizer, the runs sharded over all "
                       "devices, a checkpoint after each chunk of steps. Rerunning the same "
                       "command resumes where it stopped and skips finished groups. Writes "
                       "OUT/table.csv (one row per run), OUT/summary.csv and OUT/groups/.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    w.add_argument("spec", type=_path, metavar="SPEC", help="sweep spec file (.toml or .json)")
    w.add_argument("--out", type=_path, default=None,
                   help="output directory (default: runs/sweeps/<spec name>)")
    w.add_argument("--chunk-steps", type=int, default=None,
                   help="steps between checkpoints (overrides the spec's chunk_steps)")
    w.add_argument("--quiet", action="store_true", help="no progress lines")
    _plugin_arg(w)


def add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="throughput: vmapped seeds against a per-seed loop and the "
                       "floor", description="Benchmark the canonical configuration (N=16, T=64, "
                       "Q=2, B=8, the paper's method): vmapped throughput at several seed counts, "
                       "a per-seed Python loop, the floor (random-number draw time plus the "
                       "arithmetic at the measured matmul rate), compile time and memory.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--json", action="store_true", help="print one JSON object")
    b.add_argument("--seeds", default="1,8,64,256", help="comma-separated seed counts")
    b.add_argument("--steps", type=int, default=500, help="steps per timed vmapped call")
    b.add_argument("--N", type=int, default=16, help="vocabulary size")
    b.add_argument("--T", type=int, default=64, help="context length")
    b.add_argument("--Q", type=int, default=2, help="sparsity")
    b.add_argument("--batch", type=int, default=8, help="batch size")
    b.add_argument("--loop-seeds", type=int, default=2, help="seeds in the per-seed loop")
    b.add_argument("--loop-steps", type=int, default=200, help="steps per seed in the loop")
    b.add_argument("--repeats", type=int, default=3, help="timed repeats (best is kept)")
    b.add_argument("--grad", default="closed", choices=GRADS,
                   help="the step's gradient: closed form (its sums over tokens as scatter-adds, "
                   "or as dense one-hot sums), or autodiff")
    b.add_argument("--breakdown", action="store_true",
                   help="also time the step piece by piece (uniforms, fused rng, sampler, loss, "
                   "gradient, ppd step) at the largest seed count")
    b.add_argument("--grid", action="store_true",
                   help="instead, time every (N, T, seeds) of the grid, fit the cost per "
                   "sample-step against T, T N and N^2, draw --grid-figure and append a table "
                   "to --grid-md")
    b.add_argument("--grid-N", default="8,16,32,64", help="grid: vocabulary sizes")
    b.add_argument("--grid-T", default="16,64,256,1024", help="grid: context lengths")
    b.add_argument("--grid-seeds", default=None,
                   help="grid: seed counts (default 1,8,64,256,1024 on a CPU, up to 16384 on "
                   "a GPU or TPU)")
    b.add_argument("--grid-steps", type=int, default=50, help="grid: steps per timed call")
    b.add_argument("--grid-figure", default="",
                   help="grid: figure path (default: none)")
    b.add_argument("--grid-md", default="",
                   help="grid: Markdown file the section is appended to (default: none; the "
                   "table is printed)")
    b.add_argument("--grid-note", default="", help="grid: a note line for the Markdown section")


def load_config_file(path: Path):
    """A ``TrainConfig`` from a TOML/JSON file: its fields at the top level, or under [base]."""
    import json
    import tomllib

    from scbjax.util import fields
    from scbjax.util.fileio import read_text
    from scbjax.sim.train import TrainConfig

    text = read_text(path, "--config")
    try:
        d = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError("--config", f"{path}: not valid {kind} ({e})") from None
    if isinstance(d, dict) and "base" in d:
        return fields.from_dict(TrainConfig, d["base"], "base")
    return fields.from_dict(TrainConfig, d, "")


def config_from_args(a: argparse.Namespace):
    """The ``TrainConfig`` of ``scbjax train``: the defaults (or --config), then the options
    given on the command line."""
    from scbjax.util import fields
    from scbjax.core.task import TaskConfig
    from scbjax.sim.train import Phase, TrainConfig

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
    from scbjax.core.metrics import stage1_length

    div = runs["diverged_step"]
    ok = div < 0
    rows = [f"{'metric':<16} {'median':>11} {'min':>11} {'max':>11}   (final, over "
            f"{int(ok.sum())}/{len(ok)} finite seeds)"]
    for key in sorted(k for k in runs.arrays if k.startswith("metrics/")):
        x = runs[key][ok, -1] if ok.any() else np.array([np.nan])
        rows.append(f"{key[8:]:<16} {np.median(x):>11.4g} {np.min(x):>11.4g} {np.max(x):>11.4g}")
    e = runs.metric("excess_loss")
    rel = e[ok, -1] / e[ok, 0] if ok.any() else np.array([np.nan])
    rows.append(f"{'excess/initial':<16} {np.median(rel):>11.4g} {np.min(rel):>11.4g} "
                f"{np.max(rel):>11.4g}")
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
    a damaged checkpoint is left to the executor (restarted from scratch, said so). Nothing
    is created here."""
    from scbjax.util.fileio import check_dir, load_json, load_npz
    from scbjax.engine.store import ARRAYS, CHECKPOINT, SIDECAR

    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is not a directory")
    held, why = None, ""
    if (out / SIDECAR).exists() or (out / ARRAYS).exists():
        try:
            meta = load_json(out / SIDECAR)
            held = str(meta["hash"]) if isinstance(meta, dict) and "hash" in meta else "?"
            why = f"{out / SIDECAR}: not a scbjax result"
        except ConfigError as e:
            held, why = "?", str(e)
    elif (out / CHECKPOINT).exists():
        try:
            held = str(load_npz(out / CHECKPOINT).get("hash", "?"))
            why = f"{out / CHECKPOINT}: no hash"
        except ConfigError:
            held = None
    if held is not None and held != key and not overwrite:
        if held == "?":
            raise ConfigError("--out", f"{why}: the results in {out} cannot be identified: "
                              "choose another --out, or --overwrite to replace them")
        raise ConfigError("--out", f"{out} holds other results (another configuration): "
                          "choose another --out, or --overwrite to replace them")
    check_dir(out, "--out")


def cmd_train(a: argparse.Namespace) -> int:
    from scbjax.engine.executor import Log, check_spec, run_spec
    from scbjax.engine.spec import RunSpec, grid

    cfg = config_from_args(a)
    if a.seeds < 1:
        raise ConfigError("seeds", f"must be >= 1, got {a.seeds}")
    if not 0 <= a.seed_offset or a.seed_offset + a.seeds > 2**32:
        raise ConfigError("seed_offset", f"seeds must lie in [0, 2^32): offset {a.seed_offset} "
                          f"+ {a.seeds} seeds")
    spec = RunSpec(cfg, grid(range(a.seed_offset, a.seed_offset + a.seeds)),
                   chunk_steps=a.chunk_steps)
    spec = check_spec(spec, fits_field="task.N")  # fields, memory estimate
    check_train_out(a.out, spec.key(), a.overwrite)
    runs = run_spec("train", spec, a.out, log=Log(a.quiet))
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
    from scbjax.util.fileio import check_dir

    check_dir(figures, "--figures")


def _plot_and_check(results: Path, figures: Path, only, mode: str | None = None) -> None:
    from scbjax.app import reproduce

    t0 = time.perf_counter()
    paths = reproduce.plot_studies(results, figures, only, log=_log, mode=mode)
    print(f"{len(paths)} figure files in {figures}/ ({time.perf_counter() - t0:.1f}s)")
    claims = reproduce.check_claims(results, only, mode=mode)
    print("\nClaims of the paper, checked on the regenerated data:")
    print(reproduce.claims_table(claims))
    if only is None or set(only) == set(reproduce.STUDIES):
        print(f"claims table: {results / reproduce.CLAIMS_FILE}")


def cmd_reproduce(a: argparse.Namespace) -> int:
    from scbjax.app import reproduce

    out = a.out or Path("results") / f"reproduce-{a.mode}"
    figures = a.figures or out / "figures"
    rows = reproduce.plan(a.mode, a.only)  # validates every study's specs
    if not a.plan:
        reproduce.check_out(out, a.mode, a.overwrite, create=False)
        _check_figures_dir(figures)
        reproduce.check_figures_target(figures, a.mode)
    cal = None if a.mode == "tiny" and not a.plan else reproduce.calibrate()
    print(f"plan (reproduce --{a.mode}):")
    print(reproduce.format_plan(rows, cal), flush=True)
    if a.plan:
        return 0
    t0 = time.perf_counter()
    reproduce.run_studies(a.mode, out, a.only, log=_log, quiet=a.quiet, overwrite=a.overwrite)
    _plot_and_check(out, figures, a.only, a.mode)
    print(f"reproduce --{a.mode}: {time.perf_counter() - t0:.0f}s in all; raw results in {out}/")
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from scbjax.app import reproduce

    if not a.results_dir.is_dir():
        raise ConfigError("RESULTS_DIR", f"no such directory: {a.results_dir}")
    figures = a.figures or a.results_dir / "figures"
    _check_figures_dir(figures)
    mode = reproduce.check_results(a.results_dir, a.only)  # every file loads, before drawing
    reproduce.check_figures_target(figures, mode)
    _plot_and_check(a.results_dir, figures, a.only, mode)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    import dataclasses

    from scbjax.app.sweep import format_summary, load_spec, run_sweep

    spec = load_spec(a.spec)
    if a.chunk_steps is not None:
        spec = dataclasses.replace(spec, chunk_steps=a.chunk_steps).validate()
    out = a.out if a.out is not None else Path("runs/sweeps") / spec.name
    t0 = time.perf_counter()
    r = run_sweep(spec, out, quiet=a.quiet)
    n = len(r["rows"])
    print(f"sweep {spec.name!r}: {n} runs in {len(r['groups'])} compiled groups, "
          f"{time.perf_counter() - t0:.1f}s")
    print(format_summary(r["summary"]))
    for w in r["warnings"]:
        print(w)
    print(f"table: {out / 'table.csv'}  summary: {out / 'summary.csv'}  arrays: {out / 'groups'}")
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    import json

    from scbjax.app.bench import BenchConfig, format_bench, run_bench

    def ints(text: str, field: str) -> tuple[int, ...]:
        try:
            xs = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise ConfigError(field, f"want comma-separated integers, got {text!r}") from None
        if any(x < 1 for x in xs):
            raise ConfigError(field, f"values must be >= 1, got {text!r}")
        return xs

    seeds = ints(a.seeds, "seeds")
    for name in ("steps", "N", "T", "Q", "batch", "loop_seeds", "loop_steps", "repeats",
                 "grid_steps"):
        v = getattr(a, name)
        if v < 1:
            raise ConfigError(name, f"must be >= 1, got {v}")
    if a.grid:
        from scbjax.app.bench import default_grid_seeds, grid_command

        grid_seeds = ints(a.grid_seeds, "grid_seeds") if a.grid_seeds else default_grid_seeds()
        return grid_command(ints(a.grid_N, "grid_N"), ints(a.grid_T, "grid_T"), grid_seeds,
                            Q=a.Q, batch=a.batch, steps=a.grid_steps, repeats=a.repeats,
                            figure=a.grid_figure, markdown=a.grid_md, note=a.grid_note,
                            as_json=a.json, grad=a.grad)
    b = BenchConfig(N=a.N, T=a.T, Q=a.Q, batch=a.batch, steps=a.steps, seeds=seeds,
                    loop_seeds=a.loop_seeds, loop_steps=a.loop_steps, repeats=a.repeats,
                    grad=a.grad)
    from scbjax.app.bench import train_config

    from scbjax.engine.resources import check_fits

    check_fits(train_config(b), max(seeds))  # validates N, T, Q; refuses what cannot fit
    r = run_bench(b)
    if a.breakdown:
        from scbjax.app.bench import breakdown, format_breakdown

        r["breakdown_seeds"] = seeds[-1]
        r["breakdown_samples_per_s"] = breakdown(b, seeds[-1])
    print(json.dumps(r) if a.json else format_bench(r))
    if a.breakdown and not a.json:
        print(format_breakdown(r["breakdown_samples_per_s"], seeds[-1]))
    return 0


def _join_dash_values(argv: list[str]) -> list[str]:
    """``--phase -20,8,...``: a value that starts with '-' is joined to its option
    (``--phase=-20,8,...``) so that argparse reads it as the value, not as an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--phase",) and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and "," in argv[i + 1]:
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        load_plugins(argv)
    except ConfigError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2
    parser = build_parser()
    try:
        a = parser.parse_args(_join_dash_values(argv))
    except UsageError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2
    ex = sys.modules.get("scbjax.engine.executor")
    if ex is not None:
        ex.PROGRESS.clear()  # a fresh command (main may be called more than once)
    try:
        commands = {"train": cmd_train, "reproduce": cmd_reproduce, "plot": cmd_plot,
                    "sweep": cmd_sweep, "bench": cmd_bench}
        return commands[a.command](a)
    except ConfigError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``scbjax bench | head``): quietly, 141
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + 13
    except OSError as e:  # the file system refused (disk full, permissions): one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"scbjax: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        ex = sys.modules.get("scbjax.engine.executor")
        why = ex.interrupted_message() if ex is not None else "no run had started: nothing " \
            "to resume"
        print(f"scbjax: interrupted; {why}", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
