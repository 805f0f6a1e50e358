"""``scbjax plot`` of a train, sweep or any folder of spec folders (each a results.npz and
run.json): curves of a metric against samples or steps, or final values against a label;
the median over seeds and a 25-75% band, one line per ``--hue`` value, one panel per
``--col`` value. (A ``scbjax reproduce`` output is ``reproduce.plot_studies``.)"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import numpy as np

from scbjax.app.reproduce import stamp_line, tracked_files
from scbjax.engine.store import ARRAYS, SIDECAR, load_runs
from scbjax.studies import plots
from scbjax.util.errors import ConfigError

QUANTILES = (0.25, 0.75)
BAND = "median over seeds, band 25-75%"
X_AXES = ("samples", "steps")


def add_plot_options(pl) -> None:
    """The options of ``scbjax plot`` for train and sweep outputs."""
    g = pl.add_argument_group("train and sweep outputs (or any folder of spec folders)")
    g.add_argument("--y", default="excess_loss", metavar="METRIC",
                   help="the metric to plot (default: excess_loss)")
    g.add_argument("--x", default=None, metavar="X",
                   help="samples or steps for curves (default: samples); with --final, a label "
                   "(e.g. batch)")
    g.add_argument("--hue", default=None, metavar="LABEL", help="one line per value of LABEL")
    g.add_argument("--col", default=None, metavar="LABEL", help="one panel per value of LABEL")
    g.add_argument("--where", action="append", default=None, metavar="LABEL=VALUE",
                   help="only the runs with this label value (repeatable)")
    g.add_argument("--final", action="store_true",
                   help="final values against the label --x instead of curves")
    g.add_argument("--logx", action="store_true", help="logarithmic x axis")
    g.add_argument("--logy", action="store_true", help="logarithmic y axis")


def given_options(a: argparse.Namespace) -> list[str]:
    """The train/sweep options given on the command line (not for a reproduce output)."""
    defaults = {"y": "excess_loss", "x": None, "hue": None, "col": None, "where": None,
                "final": False, "logx": False, "logy": False}
    return [f"--{k}" for k, v in defaults.items() if getattr(a, k) != v]


@dataclasses.dataclass
class Table:
    """The runs of one or more spec folders: labels (as text) [R]; metrics, samples and steps
    [R, L], NaN after each run's own ``length`` [R] of log points (folders of sweep groups
    with different step counts, e.g. an equal-samples sweep)."""
    labels: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    samples: np.ndarray
    steps: np.ndarray
    length: np.ndarray
    what: str

    def final(self, name: str, m: np.ndarray) -> np.ndarray:
        """The last logged value of metric ``name`` of the runs in ``m`` [r, 1]."""
        return self.metrics[name][m, self.length[m] - 1][:, None]

    def mask(self, **values) -> np.ndarray:
        m = np.ones(len(self.samples), bool)
        for k, v in values.items():
            m &= self.labels[k] == v
        return m


def spec_dirs(out: Path) -> tuple[list[Path], str]:
    """The spec folders of ``out`` and what it is (train, sweep or folders)."""
    if (out / ARRAYS).exists() or (out / SIDECAR).exists():
        return [out], "train"
    if (out / "sweep.json").exists():
        return sorted(p for p in (out / "groups").glob("*") if p.is_dir()), "sweep"
    dirs = sorted(p for p in out.glob("*") if (p / ARRAYS).exists())
    if not dirs:
        raise ConfigError("RESULTS_DIR", f"{out}: no job.json, {ARRAYS} or spec folders "
                          f"(DIR/{ARRAYS}): not a `scbjax reproduce`, train or sweep output")
    return dirs, "folders"


def load_table(out: Path) -> Table:
    """Every run under ``out`` (a sweep's groups combined, on the labels they share)."""
    dirs, kind = spec_dirs(out)
    if not dirs:
        raise ConfigError("RESULTS_DIR", f"{out}: a sweep output without groups/")
    runs = [load_runs(d) for d in dirs]
    names = [k for k in runs[0].label_names if all(k in r.label_names for r in runs)]
    metrics = sorted(k[8:] for k in runs[0].arrays if k.startswith("metrics/"))
    L = max(len(r.steps) for r in runs)

    def cat(per_run):  # [r, l] arrays of each folder -> [R, L] float, NaN-padded
        return np.concatenate([np.pad(np.asarray(x, float), ((0, 0), (0, L - x.shape[1])),
                                      constant_values=np.nan) for x in per_run])

    return Table(labels={k: np.concatenate([r.label(k).astype(str) for r in runs])
                         for k in names},
                 metrics={m: cat([r.metric(m) for r in runs]) for m in metrics},
                 samples=cat([r.samples for r in runs]),
                 steps=cat([np.broadcast_to(r.steps, (len(r), len(r.steps))) for r in runs]),
                 length=np.concatenate([np.full(len(r), len(r.steps)) for r in runs]),
                 what=f"{kind} {out.resolve().name}")


def _check_name(name, known, option: str, what: str) -> None:
    if name is not None and name not in known:
        raise ConfigError(option, f"unknown {what} {name!r}; known: {', '.join(known)}")


def _where(t: Table, where: list[str] | None) -> dict[str, str]:
    out = {}
    for w in where or ():
        name, sep, value = w.partition("=")
        if not sep:
            raise ConfigError("--where", f"want LABEL=VALUE, got {w!r}")
        _check_name(name, list(t.labels), "--where", "label")
        if value not in t.labels[name]:
            raise ConfigError("--where", f"{name} has no value {value!r}; values: "
                              f"{', '.join(ordered(t.labels[name]))}")
        out[name] = value
    return out


def check_options(t: Table, a: argparse.Namespace) -> None:
    """ConfigError naming the option of an unknown metric, label or x axis."""
    labels = list(t.labels)
    _check_name(a.y, list(t.metrics), "--y", "metric")
    if a.final:
        if a.x is None:
            raise ConfigError("--x", f"--final needs --x LABEL; labels: {', '.join(labels)}")
        _check_name(a.x, labels, "--x", "label")
    elif a.x not in (None, *X_AXES):
        raise ConfigError("--x", f"curves are against samples or steps, not {a.x!r} (a "
                          "label, e.g. --x batch, needs --final)")
    _check_name(a.hue, labels, "--hue", "label")
    _check_name(a.col, labels, "--col", "label")


def ordered(values) -> list[str]:
    """Distinct values, numerically sorted when they are all numbers."""
    vs = list(dict.fromkeys(np.asarray(values).tolist()))
    try:
        return sorted(vs, key=float)
    except ValueError:
        return vs


def _cells(t: Table, a, keep: dict) -> list[tuple]:
    """(col value, hue value, run mask) of every panel and line; runs of a line (of one --x
    value, with --final) that differ in a label other than the seed, --hue, --col and --x are
    refused."""
    base = t.mask(**keep)
    cols = ordered(t.labels[a.col][base]) if a.col else [None]
    hues = ordered(t.labels[a.hue][base]) if a.hue else [None]
    free = [k for k in t.labels if k not in ("seed", a.hue, a.col, a.x, *keep)]
    cells = []
    for c in cols:
        for h in hues:
            m = base & t.mask(**{k: v for k, v in ((a.col, c), (a.hue, h)) if k})
            if not m.any():
                continue
            # with --final, labels that go with --x (zipped axes: batch and lr) may vary
            parts = ([m & (t.labels[a.x] == v) for v in ordered(t.labels[a.x][m])]
                     if a.final else [m])
            differ = {k: vs for p in parts for k in free
                      if len(vs := ordered(t.labels[k][p])) > 1}
            if differ:
                raise ConfigError("--hue", "the runs of one line differ in " + ", ".join(
                    f"{k} ({', '.join(vs)})" for k, vs in differ.items()) + " besides the "
                    "seed: give each as --hue, --col or --where LABEL=VALUE")
            cells.append((c, h, m))
    return cells


def _stats(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and 25-75% band over the finite rows (seeds) of ``Y``."""
    Y = Y[np.all(np.isfinite(Y), axis=1)]
    if not len(Y):
        nan = np.full(Y.shape[1], np.nan)
        return nan, nan, nan
    lo, hi = np.quantile(Y, QUANTILES, axis=0)
    return np.median(Y, axis=0), lo, hi


def curves(t: Table, a: argparse.Namespace) -> dict:
    """data[(col, hue)] = (x, median, lo, hi, Y): what ``draw`` plots (Y: the runs' values)."""
    check_options(t, a)
    data = {}
    for c, h, m in _cells(t, a, _where(t, a.where)):
        if a.final:
            data[(c, h)] = _final_points(t, a, m)
            continue
        x, Y = _x_of(t, a.x or "samples", m), t.metrics[a.y][m][:, :t.length[m][0]]
        keep = x > 0 if a.logx else np.ones(len(x), bool)  # as plots.band: no 0 on a log axis
        data[(c, h)] = (x[keep], *_stats(Y[:, keep]), Y[:, keep])
    return data


def draw(t: Table, a: argparse.Namespace, data: dict):
    """The figure of ``curves``: one panel per --col value, one line per --hue value."""
    cols = list(dict.fromkeys(c for c, _ in data))
    hues = list(dict.fromkeys(h for _, h in data))  # one colour per value in every panel
    with plots.style():
        fig, axes = plots.new_figure(1, len(cols), width=max(plots.COLUMN_W, 2.6 * len(cols)),
                                     height=2.6, sharey=True)
        for (c, h), (x, med, lo, hi, Y) in data.items():
            ax, color = axes[0, cols.index(c)], f"C{hues.index(h) % 10}"
            if a.final:
                pos = x if x.dtype.kind == "f" else np.arange(len(x))
                ax.plot(pos, med, marker="o", label=h or "median", color=color)
                ax.fill_between(pos, lo, hi, color=color, alpha=0.2, linewidth=0)
                if x.dtype.kind != "f":
                    ax.set_xticks(pos, x)
            else:
                plots.band(ax, x, Y, label=h or "median", color=color, log_x=a.logx,
                           quantiles=QUANTILES)
            ax.set_title(f"{a.col} = {c}" if a.col else t.what)
            ax.set_xlabel(a.x or "samples")
            ax.set_xscale("log" if a.logx else "linear")
            ax.set_yscale("log" if a.logy else "linear")
        axes[0, 0].set_ylabel(f"final {a.y}" if a.final else a.y)
        lines = {}  # every --hue value, whichever panel has it
        for ax in axes[0]:
            lines.update(zip(ax.get_legend_handles_labels()[1], ax.get_legend_handles_labels()[0]))
        axes[0, -1].legend(lines.values(), lines.keys(), loc="best",
                           title=f"{a.hue} ({BAND})" if a.hue else BAND)
        if a.where:
            fig.suptitle(", ".join(a.where), fontsize=plots.STYLE["axes.titlesize"])
    return fig


def _x_of(t: Table, xname: str, m: np.ndarray) -> np.ndarray:
    n = t.length[m][0]
    st = t.steps[m][:, :n]
    if not ((t.length[m] == n).all() and (st == st[:1]).all()):
        raise ConfigError("--x", "the runs of one line have different log points (groups with "
                          "different step counts): give the label that tells them apart as "
                          "--hue, --col or --where, or plot --final")
    if xname == "steps":
        return st[0]
    s = t.samples[m][:, :n]
    if not (s == s[:1]).all():
        raise ConfigError("--x", "the runs of one line see different samples per log point: "
                          "use --x steps")
    return s[0].astype(float)


def _final_points(t: Table, a, m: np.ndarray):
    """(x, median, lo, hi, finals) of the final --y over the runs of each --x value."""
    xs = ordered(t.labels[a.x][m])
    finals = [t.final(a.y, m & (t.labels[a.x] == v)) for v in xs]
    stats = [_stats(f) for f in finals]
    med, lo, hi = (np.array([s[i][0] for s in stats]) for i in range(3))
    try:
        x = np.array([float(v) for v in xs])
    except ValueError:
        x = np.array(xs)  # categories, in order of appearance
    return x, med, lo, hi, finals


def stem(a: argparse.Namespace) -> str:
    """The figure's file name from the options, e.g. excess_loss_vs_samples_by_lam_col_batch."""
    s = f"{a.y}_final" if a.final else a.y
    s += f"_vs_{a.x or 'samples'}"
    s += f"_by_{a.hue}" if a.hue else ""
    s += f"_col_{a.col}" if a.col else ""
    s += "".join(f"_where_{w}" for w in a.where or ())
    return re.sub(r"[^A-Za-z0-9_.=-]", "-", s)


def plot_runs(out: Path, figures: Path, a: argparse.Namespace) -> list[Path]:
    """Draw the figure of the options from the runs under ``out``; write PNG and PDF (over
    files git tracks only into a --figures given explicitly)."""
    t = load_table(out)
    data = curves(t, a)  # every check before anything is drawn
    tracked = sorted({f"{stem(a)}.png", f"{stem(a)}.pdf"} & set(tracked_files(figures)))
    if tracked and a.figures is None:
        raise ConfigError("--figures", f"{figures / tracked[0]} is tracked by git: give "
                          "--figures to write there, or another folder")
    fig = draw(t, a, data)
    return plots.save_figure(fig, figures, stem(a), stamp=stamp_line(f"plot {t.what}"))
