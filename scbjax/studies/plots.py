"""Plot primitives for the paper's figures. Functions draw on axes or return figures; saving is
done by ``save_figure`` (called from the reproduce driver), never inside a plot function.

The house style: ``STYLE``; every figure from ``new_figure`` (constrained layout: titles,
legends and panel letters inside the canvas); the names a reader sees for arms (``NAMES``) and
metrics (``SYMBOLS``) from here, in words and mathtext, never code; a bold panel letter on
every panel (``letter_panels``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

COLUMN_W = 3.4  # inches: one column of a two-column paper
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
         "figure.dpi": 150, "savefig.dpi": 200, "savefig.bbox": "tight",
         "axes.spines.top": False, "axes.spines.right": False}


# The arms and methods the figures compare, as a reader sees them; keys are the "arm" labels of
# the saved results (and the studies' method names).
NAMES = {
    "ppd": r"ppd, $\lambda=0$",
    "ppd_l1": r"ppd + $\ell_1$ rule",
    "sgd_const": "SGD, constant rate",
    "sgd_decay": "SGD, ppd's decay",
    "scratch": "from scratch",
    "finetune": "finetuned",
    "linear": "linear attention",
    "softmax": "softmax attention",
    "population": "population (exact gradient)",
    "stochastic": "stochastic",
}
# The metrics of the results (``scbjax.core.metrics``) as a reader sees them.
SYMBOLS = {
    "dist_V": r"$\|V-P\|_F$", "dist_A": r"$\|A-q\|_F$",
    "rel_dist_V": r"$\|V-P\|_F/\|P\|_F$", "rel_dist_A": r"$\|A-q\|_F/\|q\|_F$",
    "corr_V": r"$\mathrm{corr}(V,P)$", "corr_A": r"$\mathrm{corr}(A,q)$",
    "excess_loss": "excess population loss",
}


def ppd_name(lam_max: float) -> str:
    """The name of a ppd arm whose largest l1 weight over its phases is ``lam_max``."""
    return NAMES["ppd_l1"] if lam_max > 0 else NAMES["ppd"]


def sgd_name(schedule: str, lr: float) -> str:
    """An SGD arm at initial rate ``lr``: ``schedule`` "constant" or "decay" (ppd's decay)."""
    if schedule == "constant":
        return f"{NAMES['sgd_const']}, $\\eta={lr:g}$"
    return f"{NAMES['sgd_decay']} from $\\eta={lr:g}$"


def new_figure(nrows: int = 1, ncols: int = 1, width: float = 2 * COLUMN_W,
               height: float | None = None, **kw) -> tuple[Figure, np.ndarray]:
    """A figure sized for print with a 2-D array of axes (draw inside ``with style():``)."""
    height = height or 0.85 * width * nrows / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False,
                             constrained_layout=True, **kw)
    return fig, axes


def style():
    """Context for drawing a figure in the house style: ``with style(): fig = ...``."""
    return plt.rc_context(STYLE)


def band(ax: Axes, x_L, Y_SxL, label: str | None = None, color=None, log_x: bool = True,
         log_y: bool = False, quantiles: tuple[float, float] = (0.1, 0.9), **kw) -> None:
    """Median over seeds (rows of ``Y_SxL``, NaN rows ignored) and a quantile band.

    ``x_L`` is the x axis (samples for dynamics plots); x = 0 is dropped on a log axis.
    """
    x = np.asarray(x_L, float)
    Y = np.atleast_2d(np.asarray(Y_SxL, float))
    keep = x > 0 if log_x else np.ones_like(x, bool)
    x, Y = x[keep], Y[:, keep]
    finite = np.all(np.isfinite(Y), axis=1)
    if not finite.any():
        return
    Y = Y[finite]
    med = np.median(Y, axis=0)
    (line,) = ax.plot(x, med, label=label, color=color, **kw)
    if Y.shape[0] > 1:
        lo, hi = np.quantile(Y, quantiles, axis=0)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    if log_x:
        ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")


def heatmap(ax: Axes, M, title: str, xlabel: str = "", ylabel: str = "", cmap: str = "viridis",
            vmin: float | None = None, vmax: float | None = None, colorbar: bool = True):
    """Matrix image with a title, labels and (optionally) a colour bar."""
    im = ax.imshow(np.asarray(M), aspect="auto", interpolation="nearest", cmap=cmap,
                   vmin=vmin, vmax=vmax)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    return im


def letter_panels(fig: Figure) -> None:
    """A bold panel letter "(a)", "(b)", ... left of the top left corner of every axes with
    data (colour bars aside), in the order the axes were made (row by row); the axes' title
    moves to the left, after its letter."""
    k = 0
    for ax in fig.axes:
        if not ax.has_data() or getattr(ax, "_colorbar", None) is not None:
            continue
        if ax.get_title():
            ax.set_title(ax.get_title(), loc="left")
            ax.set_title("")
        ax.annotate(f"({chr(ord('a') + k)})", xy=(0, 1), xycoords="axes fraction",
                    xytext=(-4, 5), textcoords="offset points", ha="right", va="bottom",
                    fontweight="bold", fontsize=STYLE["axes.titlesize"] + 1)
        k += 1


def reference(line):
    """Mark a drawn line as a reference (a slope, a threshold), not data: ``reference(ax.plot(
    ...)[0])``."""
    line.set_gid("reference")
    return line


def mark_x(ax: Axes, x: float, label: str | None = None, color: str = "0.3") -> None:
    """A dashed vertical line (e.g. the stage boundary); nothing if x is not finite."""
    if np.isfinite(x):
        ax.axvline(x, color=color, linestyle="--", linewidth=0.8, label=label)


def save_figure(fig: Figure, out_dir, stem: str, stamp: str = "") -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``out_dir``; close the figure. ``stamp`` (how
    the figure was made) goes into a small footer and the files' metadata (PNG Description,
    PDF Subject)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if stamp:  # the figure's x label: the layout keeps a strip at the bottom for it (figure
        # legends go at the top, "outside upper center")
        fig.supxlabel(stamp, x=0.995, ha="right", fontsize=5, color="0.45")
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        meta = ({"Description": stamp} if p.suffix == ".png" else {"Subject": stamp}) \
            if stamp else None
        fig.savefig(p, dpi=STYLE["savefig.dpi"], bbox_inches="tight", metadata=meta)
    plt.close(fig)
    return paths
