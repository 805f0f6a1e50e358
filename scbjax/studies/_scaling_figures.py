"""Figures 1-3 of ``scbjax.studies.scaling``, one function each, from the loaded runs and the
study's tables of lengths and fits (``scaling._tables``: (schedule, threshold index) ->
{"lengths", "fits"})."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from scbjax.studies import plots
from scbjax.studies.base import Fit, median


def _loglog(ax, base_x: float = 2) -> None:
    """Log axes where the drawn data allow it (a panel with nothing positive stays linear)."""
    lim = ax.dataLim
    if ax.has_data() and np.isfinite([lim.x0, lim.y0, lim.x1, lim.y1]).all():
        if lim.x0 > 0:
            ax.set_xscale("log", base=base_x)
        if lim.y0 > 0:
            ax.set_yscale("log")


def _ref_line(ax, xs, y0, label="slope 1 (reference)"):
    xs = np.asarray(xs, float)
    plots.reference(ax.plot(xs, y0 * xs / xs[0], ":", color="0.5", lw=0.9, label=label)[0])


def _scatter_fit(ax, xs, rows, fit: Fit, color, marker, label, jitter=0.04, fill=True):
    for x, r in zip(xs, rows):
        r = np.asarray(r, float)
        r = r[np.isfinite(r)]
        xj = x * np.exp(jitter * (np.arange(r.size) - r.size / 2) / max(r.size, 1))
        ax.scatter(xj, r, s=5, color=color, alpha=0.3, linewidths=0)
    med = fit.med
    ax.plot(xs, np.where(np.isfinite(med), med, np.nan), marker, color=color, ms=4,
            mfc=color if fill else "none", ls="none")
    if np.isfinite(fit.b):
        tt = np.geomspace(min(xs), max(xs), 40)
        ax.plot(tt, np.exp(fit.a) * tt ** fit.b, "-" if fill else "--", color=color,
                label=f"{label}: $b$ = {fit.text()}", gid="fit")


def fig_two_stage(a, L: dict, su, thr: tuple[float, float]) -> Figure:
    """Figure 1: the dynamics of the scratch runs ``a`` (at T_fix, first schedule) against
    samples, with the median stage ends of their lengths ``L`` and the thresholds ``thr`` =
    (corr_V, eps) marked."""
    c, e = thr
    x = a.samples_L
    fig, ax = plots.new_figure(1, 3, height=3.0)
    S = plots.SYMBOLS
    plots.band(ax[0, 0], x, a.metric("corr_V"), label=S["corr_V"], color="C0")
    plots.band(ax[0, 0], x, a.metric("corr_A"), label=S["corr_A"], color="C1")
    ax[0, 0].axhline(c, color="C0", ls=":", lw=0.8, label=f"{S['corr_V']} = {c:g}")
    ax[0, 0].set_ylabel("correlation with ground truth")
    ax[0, 0].set_ylim(-0.05, 1.05)
    plots.band(ax[0, 1], x, a.metric("dist_V"), label=S["dist_V"], color="C2")
    plots.band(ax[0, 1], x, a.metric("dist_A"), label=S["dist_A"], color="C3")
    ax[0, 1].set_ylabel("distance to ground truth")
    ex = a.metric("excess_loss")
    plots.band(ax[0, 2], x, ex / ex[:, :1], label="excess loss / initial", color="C4",
               log_y=True)
    ax[0, 2].axhline(e, color="0.5", ls=":", lw=0.8,
                     label=rf"$\varepsilon$ = {e:.0%} of initial")
    ax[0, 2].set_ylabel("excess loss / its initial value")
    for i in range(3):
        plots.mark_x(ax[0, i], median(L["S1"]), label="end of stage 1 (median)")
        plots.mark_x(ax[0, i], median(L["S1"]) + median(L["S2"]),
                     label="end of stage 2 (median)", color="0.6")
        ax[0, i].set_xlabel("samples")
    hl = {}
    for i in range(3):
        for h, lab in zip(*ax[0, i].get_legend_handles_labels()):
            hl.setdefault(lab, h)
    fig.legend(list(hl.values()), list(hl.keys()), loc="outside upper center", ncol=4)
    B0, lr0 = su.schedules[0][1], su.schedules[0][2]
    lam0 = float(a["settings/lam"][0, 0])
    fig.suptitle(f"Two stages from the uniform start: ppd, $\\lambda={lam0:.2g}$; $N={su.N}$, "
                 f"$T={su.T_fix}$, $Q={su.Q}$; {len(a)} seeds\nconstant batch $B={B0}$ and "
                 f"learning rate $\\eta={lr0:g}$")
    plots.letter_panels(fig)
    return fig


def fig_stage_lengths(tab: dict, su, thr: tuple[float, float]) -> Figure:
    """Figure 2: stage lengths against T, N and Q at the thresholds ``thr``, one row per
    schedule."""
    c, e = thr
    names = [n for n, _, _ in su.schedules]
    fig, ax2 = plots.new_figure(len(names), 3, height=2.7 * len(names))
    for i, n in enumerate(names):
        t, f = tab[(n, 0)]["lengths"], tab[(n, 0)]["fits"]
        for jx, (sweep, lab) in enumerate((("T", "context length $T$"),
                                           ("N", "vocabulary $N$"), ("Q", "sparsity $Q$"))):
            g = ax2[i, jx]
            xs = sorted(t[sweep])
            for k, col, mk in (("S1", "C0", "o"), ("S2", "C3", "s")):
                _scatter_fit(g, xs, [t[sweep][v][k] for v in xs], f[(k, sweep)], col, mk,
                             f"stage {k[1]}")
            m1 = f[("S1", sweep)].med
            if np.isfinite(m1[0]):
                _ref_line(g, xs, m1[0])
            _loglog(g)
            g.set_xlabel(lab)
            fixed = {"T": f"$N={su.N}$, $Q={su.Q}$", "N": f"$T={su.T_fix}$, $Q={su.Q}$",
                     "Q": f"$N={su.N}$, $T={su.T_fix}$"}[sweep]
            g.set_title(f"schedule {n}; {fixed}")
            if g.get_legend_handles_labels()[0]:
                g.legend(loc="best", fontsize=5)
        ax2[i, 0].set_ylabel("samples")
    scheds = "; ".join(f"{n}: $B={B}$, $\\eta={lr:g}$" for n, B, lr in su.schedules)
    fig.suptitle(f"Stage lengths: stage 1 until {plots.SYMBOLS['corr_V']} $\\geq {c:g}$, "
                 f"stage 2 then\nuntil the excess loss is $\\leq$ {e:.0%} of its initial "
                 f"value; schedules {scheds}\nmedians over {su.seeds} seeds, fitted "
                 "exponents $b$ with 95% bootstrap intervals")
    plots.letter_panels(fig)
    return fig


def fig_transfer(at, tab: dict, su, e: float) -> Figure:
    """Figure 3: (a) the excess loss of the runs ``at`` (the largest T, first schedule) from
    scratch and finetuned, (b) samples to eps (``e`` of the start's excess loss) against T,
    (c) the median per-seed speedup against T."""
    names = [n for n, _, _ in su.schedules]
    schedules = ", ".join(f"{n}: $B={B}$, $\\eta={lr:g}$" for n, B, lr in su.schedules)
    fig, ax3 = plots.new_figure(1, 3, height=4.4)
    Ts = sorted(su.Ts)
    cmap = plots.plt.get_cmap("viridis")
    R = len(su.rhos)
    sc = at.select(arm="scratch")
    ex0 = dict(zip(sc.label("seed").tolist(), sc.metric("excess_loss")[:, 0]))
    plots.band(ax3[0, 0], sc.samples_L, sc.metric("excess_loss") / sc.metric("excess_loss")[:, :1],
               color="k", log_y=True, label=plots.NAMES["scratch"])
    for j, r in enumerate(su.rhos):
        f = at.select(arm="finetune", rho=float(r))
        e0 = np.asarray([ex0[s] for s in f.label("seed").tolist()])[:, None]
        plots.band(ax3[0, 0], f.samples_L, f.metric("excess_loss") / e0,
                   color=cmap(j / max(R - 1, 1)), log_y=True,
                   label=f"{plots.NAMES['finetune']}, $\\rho={r:g}$")
    ax3[0, 0].axhline(e, color="0.4", ls=":", lw=0.8, label=r"$\varepsilon$")
    ax3[0, 0].set_title(f"$T={max(Ts)}$, schedule {names[0]}")
    ax3[0, 0].set_xlabel("samples")
    ax3[0, 0].set_ylabel("excess loss / uniform start's")
    ax3[0, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=5, ncol=1)
    for i, n in enumerate(names):
        t, f = tab[(n, 0)]["lengths"], tab[(n, 0)]["fits"]
        fill = i == 0
        _scatter_fit(ax3[0, 1], Ts, [t["T"][T]["to_eps"] for T in Ts], f[("scratch", "T")],
                     "k", "s", f"{n}, {plots.NAMES['scratch']}", fill=fill)
        for j, r in enumerate(su.rhos):
            col = cmap(j / max(R - 1, 1))
            if r > 0:
                _scatter_fit(ax3[0, 1], Ts, [t["ft"][r][T] for T in Ts], f[("ft", r)], col,
                             "o", f"{n}, $\\rho={r:g}$", fill=fill)
            med = [median(t["speedup"][r][T]) for T in Ts]
            ax3[0, 2].plot(Ts, med, "o-" if fill else "o--", color=col, ms=3,
                           mfc=col if fill else "none",
                           label=f"{n}, $\\rho={r:g}$: $b$ = {f[('speedup', r)].text()}"
                           if r > 0 else f"{n}, $\\rho={r:g}$")
    m0 = tab[(names[0], 0)]["fits"][("scratch", "T")].med
    if np.isfinite(m0[0]):
        _ref_line(ax3[0, 1], Ts, m0[0])
    for g in ax3[0, 1:]:
        _loglog(g)
        g.set_xlabel("context length $T$")
        if g.get_legend_handles_labels()[0]:
            g.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=5, ncol=1)
    ax3[0, 1].set_ylabel(r"samples to $\varepsilon$")
    ax3[0, 1].set_title(rf"samples to $\varepsilon$ ({e:.0%} of the start's)")
    ax3[0, 2].axhline(1.0, color="0.5", lw=0.8)
    ax3[0, 2].set_ylabel("speedup (from scratch / finetuned)")
    ax3[0, 2].set_title("median per-seed speedup")
    fig.suptitle(f"Transfer against $T$ ($N={su.N}$, $Q={su.Q}$; finetuned from $V=P_1$, $A$ "
                 f"uniform; {su.seeds} seeds)\nschedules {schedules} (open markers, dashed: "
                 f"{names[-1]})")
    plots.letter_panels(fig)
    return fig
