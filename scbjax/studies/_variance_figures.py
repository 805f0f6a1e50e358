"""Figure 8 of ``scbjax.studies.variance``: final relative distances against T per arm and
budget, and at the largest T the distances against samples, from values the study hands over."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from scbjax.studies import plots
from scbjax.studies._variance_tables import ARMS
from scbjax.studies.base import fmt, fmt_samples, median

COLORS = {"ppd": "C0", "ppd_l1": "C3", "sgd_const": "C2", "sgd_decay": "C1"}


def _vs_T(ax, su, fits: dict, Y: dict, metric: str) -> None:
    """Median and quartiles of the final ``metric`` against T (``Y[(arm, budget, metric)]``:
    its values per T), and the fitted lines."""
    Ts = np.asarray(su.Ts, float)
    for arm in ARMS:
        for n, style, marker in zip(su.samples, ("--", "-"), ("o", "s")):
            if (arm, n, metric) not in fits:  # SGD at the smaller budget: the largest T only
                continue
            Y_T = Y[(arm, n, metric)]
            med = np.asarray([median(y) for y in Y_T])
            lo = np.asarray([np.quantile(y, 0.25) for y in Y_T])
            hi = np.asarray([np.quantile(y, 0.75) for y in Y_T])
            ok = np.isfinite(med)
            f = fits[(arm, n, metric)]
            ax.errorbar(Ts[ok], med[ok], yerr=[np.maximum(med - lo, 0)[ok],
                                               np.maximum(hi - med, 0)[ok]],
                        fmt=marker, color=COLORS[arm], ms=3.5, capsize=2,
                        mfc="white" if style == "--" else COLORS[arm])
            if np.isfinite(f.b):
                ax.plot(Ts, np.exp(f.a) * Ts ** f.b, style, color=COLORS[arm], lw=1.2,
                        label=f"{plots.NAMES[arm]}, {fmt_samples(n)}: slope {fmt(f.b, 2)}",
                        gid="fit")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length $T$")


def _vs_samples(ax, last: dict, metric: str) -> None:
    """``metric`` against samples for the runs ``last[(arm, metric)]`` of every arm."""
    for arm in ARMS:
        r = last[(arm, metric)]
        lab = plots.NAMES[arm]
        if arm.startswith("sgd"):
            lab += f" (best $\\eta={float(r.label('lr')[0]):g}$)"
        plots.band(ax, r.samples_L, r.metric(metric), label=lab, color=COLORS[arm],
                   log_y=True)
    ax.set_xlabel("samples")
    ax.xaxis.set_minor_formatter(NullFormatter())


def fig_variance(su, fits: dict, Y: dict, last: dict) -> Figure:
    """Figure 8 from the fits (``variance.exponents``), the final values per T ``Y`` and the
    runs ``last`` at the largest T and budget (an SGD arm at its best rate per metric)."""
    fig, ax = plots.new_figure(2, 2, height=7.0)
    for j, m in enumerate(("rel_dist_A", "rel_dist_V")):
        _vs_T(ax[0, j], su, fits, Y, m)
        ax[0, j].set_ylabel(plots.SYMBOLS[m] + " (final)")
        ax[0, j].set_title(f"final distance against $T$, $B={su.batch}$")
        ax[0, j].legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False,
                        fontsize=6, ncol=1)
        _vs_samples(ax[1, j], last, m)
        ax[1, j].set_ylabel(plots.SYMBOLS[m])
        ax[1, j].set_title(f"$T={max(su.Ts)}$, {fmt_samples(su.samples[-1])} samples")
    for g in ax[1]:  # the same arms in both
        g.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False, fontsize=6)
    fig.suptitle(f"Small batch ($B={su.batch}$, $N={su.N}$, $Q={su.Q}$): open markers and "
                 f"dashed fits {fmt_samples(su.samples[0])} samples, filled and solid "
                 f"{fmt_samples(su.samples[-1])}\nmedian and quartiles over seeds; SGD at its "
                 "best rate per distance, $T$ and budget")
    plots.letter_panels(fig)
    return fig
