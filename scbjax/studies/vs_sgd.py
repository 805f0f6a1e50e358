"""The paper's method against plain SGD with small batches (paper P5, its Figure 1; figure 4;
claims 3a, 3b).

Per setting (N, T, Q) (``Setup.cases``), S seeds (each its own random task; the same tasks for
both methods):
- ppd (spec "<claim>_ppd", label seed): preconditioned projected proximal descent at batch
  ``BATCH`` throughout, three phases (``base.FRACTIONS`` of the steps) with learning rate
  ``PPD_LR`` times ``base.LR_DECAY``, the default l1 weight after the first phase
  (``scbjax.optim.l1``) and the options in ``PPD_METHOD``;
- SGD (spec "<claim>_sgd", labels schedule, lr, seed): plain SGD on the unregularized MSE (same
  model, same uniform start, no preconditioning, no projection, no prox), same batch and same
  number of steps (so the same number of samples), constant learning rate
  (schedule="constant") at every rate lr of ``SGD_LRS`` (the baseline of the claims);
- control (information only, not in the claims): SGD with ppd's decay ``base.LR_DECAY`` from
  each initial rate lr of ``SGD_DECAY_LRS`` (schedule="decay"). All SGD seeds x schedules of
  a setting in one compiled group (``base.sgd_grid``).
We record ||V - P||_F and ||A - q||_F against samples.

Reconstruction choices [recon] (module constants, switchable): ``PPD_METHOD`` (true mu, affine
projection of V and A, prox then project), the ppd schedule (``base.FRACTIONS``,
``base.LR_DECAY``, ``PPD_LR``; the l1 weight: ``scbjax.optim.l1.default_lam``), ``LR_A_RATIO``
(lr_A / lr_V after phase 0, per setting), ``BATCH``, ``SGD_LRS``. A diverged (non-finite) run
counts as distance +inf.

Measured numbers and what was tried: docs/findings.md

Claims "3a" (setting 1) and "3b" (setting 2): at an equal number of samples, the median over
seeds of ppd's final ||V - P||_F is below SGD's median at SGD's best learning rate for that
distance, and likewise for ||A - q||_F (best rate chosen separately per distance).
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from scbjax.core.task import TaskConfig
from scbjax.engine.spec import RunSpec, grid
from scbjax.optim import l1
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import plots
from scbjax.studies.base import (CONSTANT, LR_DECAY, Claim, finals, fmt, phase_steps,
                                 sgd_grid)

TITLE = "Small-batch training: the paper's method (ppd) against plain SGD"
FIGURES = {
    "fig4_vs_sgd": "Distances ||V - P||_F and ||A - q||_F against samples at batch 8, ppd "
                   "against constant-rate SGD at several learning rates (and, dashed, SGD given "
                   "ppd's decaying schedule), median and 10-90% band over seeds, for two "
                   "(N, T, Q) settings (rows).",
}
ORDER = 3  # after population

BATCH = 8
SGD_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)  # the baseline of the claims: constant rate
SGD_DECAY_LRS = (0.1, 0.3, 1.0)  # control (not in the claims): SGD with ppd's lr decay
PPD_METHOD = dict(mu="true", projection_V="affine", projection_A="affine",
                  order="prox_project")
PPD_LR = 0.01  # ppd's initial lr_V (= lr_A in phase 0)
LR_A_RATIO = {"3a": 1.0, "3b": 2.0}  # lr_A / lr_V after phase 0, per setting
N_LOGS = 40  # about this many log points per run


@dataclasses.dataclass(frozen=True)
class Case:
    """One setting: its claim id, (N, T, Q) and total steps (the same for ppd and SGD)."""

    claim: str
    N: int
    T: int
    Q: int
    steps: int


@dataclasses.dataclass(frozen=True)
class Setup:
    seeds: int
    cases: tuple[Case, ...]


MODES = {
    "tiny": Setup(seeds=2, cases=(Case("3a", 6, 16, 2, 400), Case("3b", 8, 12, 3, 400))),
    "quick": Setup(seeds=8, cases=(Case("3a", 10, 200, 2, 20000),
                                   Case("3b", 16, 64, 3, 20000))),
    "full": Setup(seeds=32, cases=(Case("3a", 10, 200, 2, 40000),
                                   Case("3b", 16, 64, 3, 40000))),
}


def ppd_config(N: int, T: int, Q: int, steps: int, ratio: float = 1.0) -> TrainConfig:
    """ppd's schedule; lambda 0 in the first phase, then the default l1 weight
    (``scbjax.l1.default_lam``) at each phase's batch and lr_A."""
    task = TaskConfig(N=N, T=T, Q=Q)
    phases = []
    for i, (k, d) in enumerate(zip(phase_steps(steps), LR_DECAY)):
        lr_A = PPD_LR * d * (ratio if i else 1.0)
        lam = l1.default_lam(task, BATCH, lr_A) if i else 0.0
        phases.append(Phase(steps=k, batch=BATCH, lr_V=PPD_LR * d, lr_A=lr_A, lam=lam))
    return TrainConfig(task=task, phases=tuple(phases), optimizer="ppd",
                       log_every=max(1, steps // N_LOGS), **PPD_METHOD)


def sgd_config(N: int, T: int, Q: int, steps: int) -> TrainConfig:
    """Same phase lengths as ppd (the rates, per run, are constant or decaying)."""
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=Q), optimizer="sgd",
                       phases=tuple(Phase(steps=k, batch=BATCH) for k in phase_steps(steps)),
                       log_every=max(1, steps // N_LOGS))


def spec_name(c: Case, method: str) -> str:
    """The spec of ``method`` ("ppd" or "sgd") at one setting: "<claim>_<method>"."""
    return f"{c.claim}_{method}"


def runs(su: Setup) -> dict[str, RunSpec]:
    """Per setting: "<claim>_ppd" (label seed) and "<claim>_sgd" (labels schedule, lr, seed:
    lr_V = lr_A = lr in every phase, or lr times ``LR_DECAY``; lam 0 from the config)."""
    seeds = range(su.seeds)
    specs = {}
    for c in su.cases:
        specs[spec_name(c, "ppd")] = RunSpec(
            ppd_config(c.N, c.T, c.Q, c.steps, LR_A_RATIO.get(c.claim, 1.0)), grid(seeds))
        sgd = sgd_grid(seeds, "schedule", (("constant", SGD_LRS, CONSTANT),
                                           ("decay", SGD_DECAY_LRS, LR_DECAY)))
        specs[spec_name(c, "sgd")] = RunSpec(sgd_config(c.N, c.T, c.Q, c.steps), sgd)
    return specs


def _best(sgd, name: str, schedule: str = "constant") -> tuple[float, float]:
    """(initial lr, median final distance) of SGD's best rate for distance ``name``."""
    runs = sgd.select(schedule=schedule)
    lrs = runs.values("lr")
    m = [float(np.median(finals(runs.select(lr=lr), name))) for lr in lrs]
    b = int(np.argmin(m))
    return lrs[b], m[b]


def figures(rs, su: Setup) -> dict:
    fig, axes = plots.new_figure(len(su.cases), 2, height=2.4 * len(su.cases))
    cmap = plt.get_cmap("viridis")
    for i, c in enumerate(su.cases):
        ppd, sgd = rs[spec_name(c, "ppd")], rs[spec_name(c, "sgd")]
        const = sgd.select(schedule="constant")
        lrs = const.values("lr")
        ppd_name = plots.ppd_name(float(np.max(ppd["settings/lam"])))
        for j, name in enumerate(("dist_V", "dist_A")):
            ax, lab = axes[i, j], plots.SYMBOLS[name]
            for k, lr in enumerate(lrs):
                Y = const.select(lr=lr).metric(name)
                nd = int((~np.all(np.isfinite(Y), axis=1)).sum())
                tag = plots.sgd_name("constant", lr) + (f" ({nd} of {len(Y)} diverged)"
                                                        if nd else "")
                color = cmap(k / max(1, len(lrs) - 1) * 0.9)
                if nd == len(Y):  # nothing finite to draw: legend entry only
                    ax.plot([], [], color=color, linestyle=":", label=tag)
                    continue
                plots.band(ax, sgd.samples_L, Y, label=tag, log_y=True, color=color)
            if "decay" in sgd.values("schedule"):  # control at its best initial rate
                lr0, _ = _best(sgd, name, "decay")
                plots.band(ax, sgd.samples_L,
                           sgd.select(schedule="decay", lr=lr0).metric(name),
                           label=plots.sgd_name("decay", lr0), color="0.35",
                           linestyle="--", log_y=True)
            plots.band(ax, ppd.samples_L, ppd.metric(name), label=ppd_name, color="C3",
                       log_y=True, linewidth=1.8)
            ax.set_title(f"{lab}: $N={c.N}$, $T={c.T}$, $Q={c.Q}$, $B={BATCH}$")
            ax.set_xlabel("samples")
            ax.set_ylabel(lab)
        axes[i, 1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("ppd against plain SGD at equal samples (median and 10-90% band over seeds)")
    plots.letter_panels(fig)
    return {"fig4_vs_sgd": fig}


def claims(rs, su: Setup) -> list[Claim]:
    res = []
    for c in su.cases:
        ppd, sgd = rs[spec_name(c, "ppd")], rs[spec_name(c, "sgd")]
        parts, ok = [], True
        for name, lab in (("dist_V", "||V-P||"), ("dist_A", "||A-q||")):
            m_ppd = float(np.median(finals(ppd, name)))
            lr, m_sgd = _best(sgd, name)
            ok &= bool(m_ppd < m_sgd)
            txt = f"{lab}: ppd {fmt(m_ppd)} vs SGD {fmt(m_sgd)} (best lr {lr:g})"
            if "decay" in sgd.values("schedule"):  # information only, not in the criterion
                lr, m_dec = _best(sgd, name, "decay")
                txt += f" [control, SGD with ppd's lr decay from lr {lr:g}: {fmt(m_dec)}]"
            parts.append(txt)
        n = int(ppd.samples_L[-1])
        lrs = sgd.select(schedule="constant").values("lr")
        res.append(Claim(
            id=c.claim, name=f"ppd beats SGD at small batch, (N,T,Q)=({c.N},{c.T},{c.Q})",
            measured="; ".join(parts) + f"; {n} samples, batch {BATCH}, {len(ppd)} seeds",
            criterion="median final ppd distance < constant-lr SGD's at its best lr, for V "
                      f"and for A (SGD lrs {', '.join(f'{x:g}' for x in lrs)})",
            passed=ok))
    return res
