"""``scbjax bench --grid``: how the cost grows over (N, T, seeds).

Every point of the grid is timed as the bench times its vmapped call against its floor
(``scbjax.app.bench``); the seconds per sample-step are fitted against T, T N and N^2 per seed
count, drawn as a figure and written as a Markdown section for benchmarks/BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path

import jax
import numpy as np

from scbjax.app.bench import (BenchConfig, best_interleaved, device_info, flops_per_sample_step,
                              machine, matmul_flops_per_s, rng_call, train_config, vmapped_call)
from scbjax.core.task import TaskConfig
from scbjax.engine.meta import git_commit, versions
from scbjax.engine.resources import check_fits
from scbjax.sim.train import TrainConfig, seed_keys
from scbjax.util.errors import ConfigError
from scbjax.util.fields import field
from scbjax.util.fileio import check_dir

GRID_N = (8, 16, 32, 64)
GRID_T = (16, 64, 256, 1024)
GRID_SEEDS = (1, 8, 64, 256, 1024)
GRID_SEEDS_ACCEL = (1, 8, 64, 256, 1024, 4096, 16384)  # default on a GPU / TPU
COST_TERMS = ("1", "T", "T N", "N^2")


@dataclasses.dataclass(frozen=True)
class GridConfig:
    """The points of the grid and how each is timed."""

    Ns: tuple[int, ...] = field(GRID_N, "vocabulary sizes")
    Ts: tuple[int, ...] = field(GRID_T, "context lengths")
    seeds: tuple[int, ...] = field(GRID_SEEDS, "seed counts")
    Q: int = field(2, "sparsity (at most T at each point)")
    batch: int = field(8, "batch size")
    steps: int = field(50, "steps per timed call")
    repeats: int = field(3, "timed repeats (best is kept)")
    grad: str = field("closed", "the step's gradient (losses.GRADS)")


@dataclasses.dataclass(frozen=True)
class GridOptions:
    """What ``scbjax bench --grid`` runs and where its results go."""

    config: GridConfig = field(help="the grid and its timing", default_factory=GridConfig)
    figure: str = field("", "figure path (empty: none)")
    markdown: str = field("", "Markdown file the section is appended to (empty: none)")
    note: str = field("", "a note line for the Markdown section")
    as_json: bool = field(False, "print one JSON object instead of the table")


def default_grid_seeds() -> tuple[int, ...]:
    return GRID_SEEDS if jax.devices()[0].platform == "cpu" else GRID_SEEDS_ACCEL


def run_grid(g: GridConfig, progress=None) -> dict:
    """Throughput, floor and ratio at every (N, T, seeds) of the grid (the bench's ``vmapped``
    and floor, ``g.steps`` steps per timed call), and the fitted cost per sample-step."""
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
            "matmul_flops_per_s": rate, "machine": machine(), "device": device_info(),
            "versions": versions()}


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
    import matplotlib  # here, not at the top: only a grid with a figure needs it

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


def check_grid_fits(g: GridConfig) -> None:
    """Refuse a grid whose largest point would not fit (``check_fits``), naming the option that
    makes it too large: --grid-N (at the smallest T), --grid-T, then --grid-seeds."""
    def config(N: int, T: int) -> TrainConfig:
        return train_config(BenchConfig(N=N, T=T, Q=min(g.Q, T), batch=g.batch, steps=g.steps,
                                        seeds=(1,), repeats=g.repeats, grad=g.grad))

    N, T, S = max(g.Ns), max(g.Ts), max(g.seeds)
    for where, cfg, runs in (("grid_N", config(N, min(g.Ts)), 1), ("grid_T", config(N, T), 1),
                             ("grid_seeds", config(N, T), S)):
        check_fits(cfg, runs, where=where)


def figure_formats() -> set[str]:
    """The file extensions matplotlib can save a figure as (png, pdf, svg, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase  # only for a grid with a figure

    return set(FigureCanvasBase.get_supported_filetypes())


def check_outputs(o: GridOptions) -> None:
    """Before the grid runs: --grid-figure's format is one matplotlib writes, and neither it nor
    --grid-md is a directory or in a folder that cannot be written."""
    for where, path in (("grid_figure", o.figure), ("grid_md", o.markdown)):
        if not path:
            continue
        p = Path(path)
        if p.is_dir():
            raise ConfigError(where, f"{p} is a directory: give a file path")
        if p.exists() and not os.access(p, os.W_OK):
            raise ConfigError(where, f"{p} cannot be written (permission denied)")
        check_dir(p.parent, where)
    ext = Path(o.figure).suffix.lower().lstrip(".")
    if o.figure and ext and ext not in figure_formats():
        raise ConfigError("grid_figure", f"{o.figure}: unknown figure format {ext!r} (one of "
                          f"{', '.join(sorted(figure_formats()))})")


def grid_command(o: GridOptions) -> int:
    """``scbjax bench --grid``: run the grid (progress on stderr), draw ``o.figure``, append
    the section to ``o.markdown`` (empty: skip either), print the table (or the JSON)."""
    g = o.config
    for N in g.Ns:
        for T in g.Ts:
            TaskConfig(N=N, T=T, Q=min(g.Q, T)).validate()
    check_grid_fits(g)
    check_outputs(o)

    def progress(x):
        print(f"N={x['N']} T={x['T']} seeds={x['seeds']}: {x['samples_per_s']:.4g} "
              f"sample-steps/s, ratio to floor {x['ratio_to_floor']:.2f}", file=sys.stderr,
              flush=True)

    r = run_grid(g, progress)
    if o.figure:
        Path(o.figure).parent.mkdir(parents=True, exist_ok=True)
        plot_grid(r, o.figure)
        r["figure"] = str(o.figure)
    if o.markdown:
        command = (f"scbjax bench --grid --grid-N {','.join(map(str, g.Ns))} --grid-T "
                   f"{','.join(map(str, g.Ts))} --grid-seeds {','.join(map(str, g.seeds))} "
                   f"--grid-steps {g.steps}")
        Path(o.markdown).parent.mkdir(parents=True, exist_ok=True)
        with open(o.markdown, "a") as f:
            f.write("\n" + grid_markdown_section(r, command, o.note))
    print(json.dumps(r) if o.as_json else format_grid(r))
    return 0
