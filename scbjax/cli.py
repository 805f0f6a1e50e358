"""Command-line interface: ``scbjax train ...``. Bad input exits with status 2, no traceback."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from scbjax.errors import ConfigError

DESCRIPTION = """\
scbjax: simulate training of a one-layer linear transformer on the Sparse Contextual Bigram
task (Ren, Wang & Lee, NeurIPS 2024). All seeds of a command train in one compiled call."""


def _phase(text: str):
    from scbjax.train import Phase

    parts = text.split(",")
    if len(parts) != 5:
        raise argparse.ArgumentTypeError(
            f"--phase wants STEPS,BATCH,LR_V,LR_A,LAM (5 comma-separated values), got {text!r}")
    try:
        return Phase(int(parts[0]), int(parts[1]), float(parts[2]), float(parts[3]),
                     float(parts[4]))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--phase {text!r}: {e}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scbjax", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    t = sub.add_parser("train", help="train many seeds of one configuration in one compiled call",
                       description="Train S seeds (task, init and data streams per seed) of one "
                       "configuration in a single jit(vmap(train)) call; write results.npz and "
                       "run.json to --out and print a summary table.",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = t.add_argument_group("task (a random SCB instance per seed)")
    g.add_argument("--N", type=int, default=8, help="vocabulary size (>= 2)")
    g.add_argument("--T", type=int, default=16, help="context length (>= 1)")
    g.add_argument("--Q", type=int, default=2, help="sparsity: positions per query token (1..T)")
    g.add_argument("--alpha", type=float, default=1.0,
                   help="Dirichlet concentration of the columns of P")
    g.add_argument("--mix", type=float, default=0.1,
                   help="weight of the uniform matrix mixed into P (keeps mu > 0)")
    g.add_argument("--q-weights", choices=("uniform", "dirichlet"), default="uniform",
                   help="weights of q(k) on its Q support positions")
    g = t.add_argument_group("training")
    g.add_argument("--seeds", type=int, default=8, help="number of seeds, trained in one call")
    g.add_argument("--seed-offset", type=int, default=0, help="first seed (seeds are offset..)")
    g.add_argument("--optimizer", choices=("ppd", "sgd", "adam"), default="ppd",
                   help="ppd: the paper's preconditioned projected proximal descent")
    g.add_argument("--model", choices=("linear", "softmax"), default="linear",
                   help="linear attention, or softmax attention over positions")
    g.add_argument("--loss", choices=("mse", "ce"), default="mse", help="training loss")
    g.add_argument("--lr", type=float, default=None, help="learning rate for both V and A")
    g.add_argument("--lr-V", type=float, default=0.05, help="learning rate for V")
    g.add_argument("--lr-A", type=float, default=0.05, help="learning rate for A")
    g.add_argument("--lam", type=float, default=1e-3, help="l1 weight on A (ppd only)")
    g.add_argument("--batch", type=int, default=32, help="samples per step")
    g.add_argument("--steps", type=int, default=2000, help="training steps")
    g.add_argument("--phase", type=_phase, action="append", default=None,
                   metavar="STEPS,BATCH,LR_V,LR_A,LAM",
                   help="a training phase; repeat for a schedule (overrides --steps, --batch, "
                   "--lr*, --lam)")
    g.add_argument("--log-every", type=int, default=100, help="log metrics every k steps")
    g.add_argument("--population", action="store_true",
                   help="step with the exact population gradient (no sampling)")
    g = t.add_argument_group("reconstruction options of the paper's method [recon]")
    g.add_argument("--mu", choices=("true", "estimate"), default="true",
                   help="preconditioner: true mu or running estimate from token counts")
    g.add_argument("--projection", choices=("affine", "simplex", "none"), default=None,
                   help="projection of the columns of V and A (sets both)")
    g.add_argument("--projection-V", choices=("affine", "simplex", "none"), default="affine",
                   help="projection of the columns of V")
    g.add_argument("--projection-A", choices=("affine", "simplex", "none"), default="affine",
                   help="projection of the columns of A")
    g.add_argument("--order", choices=("prox_project", "project_prox"), default="prox_project",
                   help="order of the l1 prox and the projection")
    g.add_argument("--init", choices=("uniform", "random"), default="uniform",
                   help="initialisation")
    g = t.add_argument_group("output")
    g.add_argument("--out", type=Path, default=Path("runs/train"), help="output directory")
    g.add_argument("--quiet", action="store_true", help="no progress line")

    r = sub.add_parser("reproduce", help="run every study of the paper, plot every figure and "
                       "check every claim",
                       description="Run every study in experiments/ (or those named by --only), "
                       "keep the raw results in --out, regenerate the figures (PNG and PDF) in "
                       "--figures and print the claims table (measured number, criterion, PASS "
                       "or FAIL). The exit status is 0 even when a claim FAILs: a failed claim "
                       "is a finding, not an error.")
    m = r.add_mutually_exclusive_group()
    m.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="the whole reproduction in minutes on a 2-core CPU (the default)")
    m.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="publication setting: more seeds, larger T (sized for a GPU)")
    m.add_argument("--tiny", dest="mode", action="store_const", const="tiny",
                   help="miniature sizes: checks the pipeline end to end in seconds (claims "
                   "are not meaningful there)")
    r.set_defaults(mode="quick")
    r.add_argument("--out", type=Path, default=None,
                   help="raw results directory (default: results/reproduce-MODE)")
    r.add_argument("--figures", type=Path, default=Path("figures"),
                   help="where the figures are written (default: figures)")
    r.add_argument("--only", action="append", default=None, metavar="STUDY",
                   help="run only this study (repeatable); one of: " + ", ".join(_studies()))
    r.add_argument("--resume", action="store_true",
                   help="skip studies whose results in --out are complete")

    pl = sub.add_parser("plot", help="regenerate the figures and the claims table from saved "
                        "results, without training",
                        description="Read the raw results that `scbjax reproduce` saved in "
                        "RESULTS_DIR, redraw every figure and print the claims table.")
    pl.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                    help="the --out directory of a reproduce run")
    pl.add_argument("--figures", type=Path, default=Path("figures"),
                    help="where the figures are written (default: figures)")
    pl.add_argument("--only", action="append", default=None, metavar="STUDY",
                    help="only this study (repeatable)")
    add_sweep_parser(sub)
    add_bench_parser(sub)
    return p


def _studies() -> tuple[str, ...]:
    from scbjax.reproduce import STUDIES

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
    w.add_argument("spec", type=Path, metavar="SPEC", help="sweep spec file (.toml or .json)")
    w.add_argument("--out", type=Path, default=None,
                   help="output directory (default: runs/sweeps/<spec name>)")
    w.add_argument("--chunk-steps", type=int, default=None,
                   help="steps between checkpoints (overrides the spec's chunk_steps)")
    w.add_argument("--quiet", action="store_true", help="no progress lines")


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
    b.add_argument("--grid-figure", default="experiments/bench_grid.png",
                   help="grid: figure path ('' for none)")
    b.add_argument("--grid-md", default="experiments/BENCHMARKS.md",
                   help="grid: Markdown file the table is appended to ('' for none)")
    b.add_argument("--grid-note", default="", help="grid: a note line for the Markdown section")


def config_from_args(a: argparse.Namespace):
    from scbjax.task import TaskConfig
    from scbjax.train import Phase, TrainConfig

    lr_V = a.lr if a.lr is not None else a.lr_V
    lr_A = a.lr if a.lr is not None else a.lr_A
    phases = tuple(a.phase) if a.phase else (Phase(a.steps, a.batch, lr_V, lr_A, a.lam),)
    proj_V = a.projection or a.projection_V
    proj_A = a.projection or a.projection_A
    if a.seeds < 1:
        raise ConfigError("seeds", f"must be >= 1, got {a.seeds}")
    if a.seed_offset < 0:
        raise ConfigError("seed_offset", f"must be >= 0, got {a.seed_offset}")
    cfg = TrainConfig(task=TaskConfig(N=a.N, T=a.T, Q=a.Q, alpha=a.alpha, mix=a.mix,
                                      q_weights=a.q_weights),
                      phases=phases, optimizer=a.optimizer, model=a.model, loss=a.loss,
                      mu=a.mu, projection_V=proj_V, projection_A=proj_A, order=a.order,
                      init=a.init, log_every=a.log_every, population=a.population)
    return cfg.validate()


class Progress:
    """A one-line progress display fed by ``on_log(step)`` callbacks from the compiled run."""

    def __init__(self, total: int, stream=sys.stderr, enabled: bool = True):
        self.total, self.stream, self.enabled = total, stream, enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.last = -1
        self.last_printed = -1.0

    def __call__(self, step) -> None:
        s = int(np.asarray(step))
        if not self.enabled or s <= self.last:
            return
        self.last = s
        pct = 100 * s / self.total
        if not self.tty and pct < self.last_printed + 10 and s < self.total:
            return  # in a log file, one line per 10%
        self.last_printed = pct
        dt = time.perf_counter() - self.t0
        eta = dt / s * (self.total - s) if s else float("nan")
        line = (f"step {s:>8d}/{self.total} ({pct:5.1f}%) elapsed {dt:6.1f}s  "
                f"left ~{eta:6.1f}s")
        self.stream.write(f"\r{line}" if self.tty else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self.last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def summary_table(arrays: dict) -> str:
    """Final metrics over seeds: median [min, max]; diverged seeds listed with their step."""
    from scbjax.metrics import stage1_length

    div = arrays["diverged_step"]
    ok = div < 0
    rows = [f"{'metric':<14} {'median':>11} {'min':>11} {'max':>11}   (final, over "
            f"{int(ok.sum())}/{len(ok)} finite seeds)"]
    for key in sorted(k for k in arrays if k.startswith("metrics/")):
        x = arrays[key][ok, -1] if ok.any() else np.array([np.nan])
        rows.append(f"{key[8:]:<14} {np.median(x):>11.4g} {np.min(x):>11.4g} {np.max(x):>11.4g}")
    e = arrays["metrics/excess_loss"]
    rel = e[ok, -1] / e[ok, 0] if ok.any() else np.array([np.nan])
    rows.append(f"{'excess/initial':<14} {np.median(rel):>11.4g} {np.min(rel):>11.4g} "
                f"{np.max(rel):>11.4g}")
    s1 = np.asarray([stage1_length(c, arrays["samples"]) for c in arrays["metrics/corr_V"][ok]])
    if s1.size:
        reached = s1[~np.isnan(s1)]
        med = np.median(reached) if reached.size else float("nan")
        rows.append(f"{'stage1_samples':<14} {med:>11.4g}   (samples until corr_V >= 0.5: median "
                    f"over the {reached.size}/{s1.size} seeds that got there)")
    for i in np.flatnonzero(~ok):
        rows.append(f"WARNING: seed {int(arrays['seeds'][i])} diverged at step {int(div[i])} "
                    "(non-finite parameters); excluded above")
    return "\n".join(rows)


def cmd_train(a: argparse.Namespace) -> int:
    cfg = config_from_args(a)
    import jax

    from scbjax.results import save_run, to_arrays
    from scbjax.train import default_hparams, make_train, seed_keys

    seeds = np.arange(a.seed_offset, a.seed_offset + a.seeds)
    progress = Progress(cfg.total_steps, enabled=not a.quiet)
    train = make_train(cfg, on_log=progress)
    f = jax.jit(jax.vmap(train))
    keys = seed_keys(seeds)
    t0 = time.perf_counter()
    compiled = f.lower(keys).compile()
    t1 = time.perf_counter()
    progress.t0 = t1
    result = jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()
    progress.close()
    arrays = to_arrays(result, cfg, seeds, default_hparams(cfg))
    timings = {"compile_s": t1 - t0, "run_s": t2 - t1,
               "sample_steps_per_s": float(len(seeds) * sum(p.steps * p.batch
                                                            for p in cfg.phases) / (t2 - t1))}
    out = save_run(a.out, arrays, cfg, timings, {"seeds": seeds.tolist()})
    print(f"{len(seeds)} seeds x {cfg.total_steps} steps in one compiled call: compile "
          f"{timings['compile_s']:.1f}s, run {timings['run_s']:.1f}s "
          f"({timings['sample_steps_per_s']:.3g} sample-steps/s)")
    print(summary_table(arrays))
    print(f"results: {out / 'results.npz'}  sidecar: {out / 'run.json'}")
    return 0


def _log(msg: str) -> None:
    print(msg, flush=True)


def _plot_and_check(results: Path, figures: Path, only) -> None:
    from scbjax import reproduce

    t0 = time.perf_counter()
    paths = reproduce.plot_studies(results, figures, only, log=_log)
    print(f"{len(paths)} figure files in {figures}/ ({time.perf_counter() - t0:.1f}s)")
    claims = reproduce.check_claims(results, only)
    print("\nClaims of the paper, checked on the regenerated data:")
    print(reproduce.claims_table(claims))
    print(f"claims table: {results / reproduce.CLAIMS_FILE}")


def cmd_reproduce(a: argparse.Namespace) -> int:
    from scbjax import reproduce

    out = a.out or Path("results") / f"reproduce-{a.mode}"
    t0 = time.perf_counter()
    reproduce.run_studies(a.mode, out, a.only, resume=a.resume, log=_log)
    _plot_and_check(out, a.figures, a.only)
    print(f"reproduce --{a.mode}: {time.perf_counter() - t0:.0f}s in all; raw results in {out}/")
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    if not a.results_dir.is_dir():
        raise ConfigError("RESULTS_DIR", f"no such directory: {a.results_dir}")
    _plot_and_check(a.results_dir, a.figures, a.only)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    import dataclasses

    from scbjax.sweep import format_summary, load_spec, run_sweep

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

    from scbjax.bench import BenchConfig, format_bench, run_bench

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
        from scbjax.bench import default_grid_seeds, grid_command

        grid_seeds = ints(a.grid_seeds, "grid_seeds") if a.grid_seeds else default_grid_seeds()
        return grid_command(ints(a.grid_N, "grid_N"), ints(a.grid_T, "grid_T"), grid_seeds,
                            Q=a.Q, batch=a.batch, steps=a.grid_steps, repeats=a.repeats,
                            figure=a.grid_figure, markdown=a.grid_md, note=a.grid_note,
                            as_json=a.json)
    b = BenchConfig(N=a.N, T=a.T, Q=a.Q, batch=a.batch, steps=a.steps, seeds=seeds,
                    loop_seeds=a.loop_seeds, loop_steps=a.loop_steps, repeats=a.repeats)
    from scbjax.bench import train_config

    train_config(b)  # validates N, T, Q (ConfigError naming the field)
    r = run_bench(b)
    if a.breakdown:
        from scbjax.bench import breakdown, format_breakdown

        r["breakdown_seeds"] = seeds[-1]
        r["breakdown_samples_per_s"] = breakdown(b, seeds[-1])
    print(json.dumps(r) if a.json else format_bench(r))
    if a.breakdown and not a.json:
        print(format_breakdown(r["breakdown_samples_per_s"], seeds[-1]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        commands = {"train": cmd_train, "reproduce": cmd_reproduce, "plot": cmd_plot,
                    "sweep": cmd_sweep, "bench": cmd_bench}
        return commands[a.command](a)
    except ConfigError as e:
        print(f"scbjax: error: {e}", file=sys.stderr)
        return 2


def entry() -> None:
    sys.exit(main())
