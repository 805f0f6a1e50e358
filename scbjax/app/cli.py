"""Command-line interface: ``scbjax train ...``. Bad input exits with status 2, no traceback;
so do a JAX_PLATFORMS this machine lacks and a stdout that cannot be written (/dev/full).
Ctrl-C, SIGTERM and SIGHUP stop a command with one line (exit 130, 143, 129)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import jax

from scbjax import __version__
from scbjax.app.bench import BenchConfig
from scbjax.app.commands import cmd_bench, cmd_plot, cmd_reproduce, cmd_sweep, cmd_train
from scbjax.app.plot_runs import add_plot_options
from scbjax.app.process import (Interrupted, StdoutError, drop_stdout, named_stdout,
                                signals_as_interrupts)
from scbjax.app.reproduce import STUDIES
from scbjax.core.task import TaskConfig
from scbjax.engine import executor
from scbjax.optim import registry
from scbjax.sim.train import Phase, TrainConfig
from scbjax.util import backend, fields
from scbjax.util.errors import ConfigError

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


PHASE_FORMAT = "steps=N,batch=B,lr=X,lam=Y"


def _workers(text: str) -> int:
    """--workers: an integer >= 1 (argparse names the option and exits 2 otherwise)."""
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


WORKERS_HELP = ("groups trained at once, on threads: one compiles or checkpoints while another "
                "trains; each group's numbers are those of running it alone (default: 1 on a "
                "CPU, 4 on a GPU or TPU)")


def _phase(text: str):
    """``--phase steps=2000,batch=32,lr=0.05,lam=0.001``: a ``Phase`` from NAME=VALUE pairs,
    NAME any Phase field (``lr`` sets lr_V and lr_A); a field left out takes its default."""
    names = [f.name for f in dataclasses.fields(Phase)]
    kw = {}
    for part in text.split(","):
        name, sep, value = (x.strip() for x in part.partition("="))
        if not sep or name not in names + ["lr"]:
            raise argparse.ArgumentTypeError(
                f"want NAME=VALUE pairs separated by commas, NAME one of {', '.join(names)} or "
                f"lr (both rates), e.g. {PHASE_FORMAT}; got {text!r}")
        try:
            v = fields.parse_text(Phase, "lr_V" if name == "lr" else name, value)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{text!r}: {name}: {e}") from None
        for n in ("lr_V", "lr_A") if name == "lr" else (name,):
            if n in kw:
                raise argparse.ArgumentTypeError(f"{text!r}: {n} given twice")
            kw[n] = v
    if "steps" not in kw:
        raise argparse.ArgumentTypeError(f"{text!r}: steps=N is required")
    return Phase(**kw)


def _with_defaults(group, cls, added: list[str], defaults: dict) -> None:
    """Show the dataclass default in each derived option's help (the parsed default stays
    None, so that only options given on the command line override --config)."""
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
    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            registry.load_plugin(argv[i + 1])
        elif a.startswith("--plugin="):
            registry.load_plugin(a.split("=", 1)[1])


def add_train_parser(sub) -> None:
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
                   metavar=PHASE_FORMAT,
                   help="a training phase from NAME=VALUE pairs of the phase options above "
                   "(lr: both rates; a field left out takes its default); repeat for a "
                   "schedule (overrides --steps, --batch, --lr*, --lam)")
    g = t.add_argument_group("training (options marked [recon] are reconstructions)")
    added = fields.add_arguments(g, TrainConfig, skip=("task", "phases"), defaults=none)
    _with_defaults(g, TrainConfig, added, dataclasses.asdict(TrainConfig()))
    g.add_argument("--projection", choices=("affine", "simplex", "none"), default=None,
                   help="projection of the columns of V and A (sets both)")
    g.add_argument("--config", type=_path, default=None, metavar="FILE",
                   help="a TOML or JSON file with the fields of a TrainConfig (as a sweep's "
                   "[base]; a file with a [base] table is read from there), or a saved run's "
                   "run.json (its config)")
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
                   help="miniature sizes: checks the pipeline end to end in about two minutes on 2 "
                   "cores, mostly compilation (claims "
                   "are not meaningful there)")
    r.set_defaults(mode="quick")
    r.add_argument("--out", type=_path, default=None,
                   help="raw results directory (default: results/reproduce-MODE)")
    r.add_argument("--figures", type=_path, default=None,
                   help="where the figures are written (default: OUT/figures; the README's "
                   "figures/ only when given explicitly, and never from --tiny)")
    r.add_argument("--only", action="append", default=None, metavar="STUDY",
                   help="run only this study (repeatable); one of: " + ", ".join(STUDIES))
    r.add_argument("--plan", action="store_true",
                   help="print the plan (specs, the merged groups they run in, runs, samples, MB of "
                   "results, estimated time from a short calibration on this machine) and "
                   "train nothing")
    r.add_argument("--resume", action="store_true",
                   help="continue in --out (what the same command does anyway: finished runs "
                   "are reused by hash, interrupted ones resume from their checkpoint)")
    r.add_argument("--overwrite", action="store_true",
                   help="replace results of another mode, or of specs whose configuration "
                   "changed, in --out (each replaced when its new results are done; with "
                   "--only, only those studies)")
    r.add_argument("--workers", type=_workers, default=None, help=WORKERS_HELP)
    r.add_argument("--quiet", action="store_true", help="no progress lines")

    pl = sub.add_parser("plot", help="regenerate the figures and the claims table from saved "
                        "results, without training; or plot a train or sweep output",
                        description="Read the raw results that `scbjax reproduce` saved in "
                        "RESULTS_DIR, redraw every figure and print the claims table. For the "
                        "--out of `scbjax train` or `scbjax sweep` (or a folder of spec "
                        "folders), draw one figure of the options below.")
    pl.add_argument("results_dir", type=_path, metavar="RESULTS_DIR",
                    help="the --out directory of a reproduce, train or sweep run")
    pl.add_argument("--figures", type=_path, default=None,
                    help="where the figures are written (default: RESULTS_DIR/figures)")
    pl.add_argument("--only", action="append", default=None, metavar="STUDY",
                    help="only this study (repeatable; reproduce outputs)")
    add_plot_options(pl)
    add_sweep_parser(sub)
    add_bench_parser(sub)
    return p


def add_sweep_parser(sub) -> None:
    w = sub.add_parser("sweep", help="run (or resume) a sweep spec: seeds x hyperparameters x "
                       "batch / dataset sizes x task shapes",
                       description="Run a sweep spec (TOML or JSON, see docs/sweeps.md): one "
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
    w.add_argument("--overwrite", action="store_true",
                   help="replace results in --out of another sweep, or of groups whose "
                   "configuration the spec no longer gives (replaced as each group finishes)")
    w.add_argument("--workers", type=_workers, default=None, help=WORKERS_HELP)
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
    fields.add_arguments(b, BenchConfig)  # --N, --T, --Q, --batch, --steps, --loop-*, ...
    b.add_argument("--breakdown", action="store_true",
                   help="also time the step piece by piece (uniforms, fused rng, sampler, loss, "
                   "gradient, ppd step) at the largest seed count")
    b.add_argument("--batch-grid", action="store_true",
                   help="instead, time the step at every batch of --batch-grid-B and seed count "
                   "of --batch-grid-seeds (sample-steps/s and seed-steps/s)")
    b.add_argument("--batch-grid-B", default="4,8,64,256", help="batch grid: batch sizes")
    b.add_argument("--batch-grid-seeds", default="256,16384", help="batch grid: seed counts")
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
    if not argv:  # bare `scbjax`: the usage on stdout, the one-line error below
        print(parser.format_usage(), end="")
    try:
        a = parser.parse_args(_join_dash_values(argv))
    except UsageError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2
    executor.PROGRESS.clear()  # a fresh command (main may be called more than once)
    try:
        commands = {"train": cmd_train, "reproduce": cmd_reproduce, "plot": cmd_plot,
                    "sweep": cmd_sweep, "bench": cmd_bench}
        with signals_as_interrupts(), named_stdout():
            backend.check_platforms(jax.devices)  # JAX_PLATFORMS=cuda on a CPU: one line
            rc = commands[a.command](a)
            sys.stdout.flush()  # a full stdout fails here, not at exit
        return rc
    except ConfigError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (``scbjax bench | head``): quietly, 141
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + 13
    except StdoutError as e:  # ``scbjax train ... > /dev/full``
        print(f"scbjax: error: stdout: cannot write: {e.strerror or e}", file=sys.stderr)
        drop_stdout()
        return 2
    except OSError as e:  # the file system refused (disk full, permissions): one line
        where = f"{e.filename}: " if e.filename else ""
        print(f"scbjax: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # SIGTERM, SIGHUP: as Ctrl-C, with the signal's name
        print(f"scbjax: interrupted by {e.name}; {executor.interrupted_message()}",
              file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(f"scbjax: interrupted; {executor.interrupted_message()}", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
