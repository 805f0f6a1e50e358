"""Recovery of the ground truth (paper P2; figure 7; claim 5): ppd from the uniform start
reaches (P, q).

For each (N, T, Q) of the grid (``Setup.settings``), S seeds (each its own random task) train
with the paper's preconditioned projected proximal descent, one spec "N<N>_T<T>_Q<Q>" (label
seed) per setting, and we record the relative distances ||V - P||_F / ||P||_F and
||A - q||_F / ||q||_F against samples.

Reconstruction choices [recon] (module constants, switchable):
- ``METHOD``: ppd options: true mu, affine projection of V and A, prox then project.
- Schedule (``Setup.schedule``, ``phases``): a small-batch phase (batch 32, stage 1: the
  correlation rises), then phases of growing batch and decaying learning rate.
  ``lr_A_ratio(T)``: lr_A = ratio * lr_V after stage 1, ratio = 64 / T clipped to [1, 4].
- the l1 weight: 0 in the first phase, then the studies' default (``scbjax.l1.default_lam``
  at the phase's batch and lr_A).

Measured numbers and what was tried: docs/findings.md

Claim "5": at every setting the median over seeds of both final relative distances is
<= ``EPS_REC`` (fixed, 0.1).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scbjax.core.task import TaskConfig
from scbjax.engine.spec import RunSpec, grid
from scbjax.optim import l1
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import plots
from scbjax.studies.base import Claim, finals, fmt

TITLE = "Recovery of the ground truth (P, q) by the paper's method"
FIGURES = {
    "fig7_recovery": "Relative distances ||V - P||_F/||P||_F and ||A - q||_F/||q||_F against "
                     "samples for each (N, T, Q), median and 10-90% band over seeds, with the "
                     "recovery threshold eps_rec.",
}
ORDER = 5  # after softmax

EPS_REC = 0.1  # claim threshold on the median final relative distances (fixed)
METHOD = dict(optimizer="ppd", mu="true", projection_V="affine", projection_A="affine",
              order="prox_project")


def lr_A_ratio(T: int) -> float:
    """lr_A / lr_V after stage 1: 64 / T clipped to [1, 4]."""
    return float(np.clip(64.0 / T, 1.0, 4.0))


@dataclasses.dataclass(frozen=True)
class Setup:
    settings: tuple[tuple[int, int, int], ...]  # (N, T, Q) of each spec
    seeds: int
    # (steps, batch, lr_V) per phase; lr_A = lr_V (phase 0) or lr_A_ratio(T) * lr_V (later)
    schedule: tuple[tuple[int, int, float], ...]
    log_every: int


MODES = {
    "tiny": Setup(settings=((4, 8, 2),), seeds=2, schedule=((100, 32, 0.2), (100, 256, 0.1)),
                  log_every=50),
    "quick": Setup(settings=((8, 16, 2), (10, 64, 2), (16, 32, 3)), seeds=8,
                   schedule=((2000, 32, 0.2), (500, 256, 0.2), (1000, 1024, 0.1),
                             (500, 2048, 0.03)), log_every=100),
    "full": Setup(settings=((8, 16, 2), (10, 64, 2), (16, 32, 3), (10, 200, 2), (16, 64, 3),
                            (20, 128, 4)), seeds=32,
                  schedule=((4000, 32, 0.2), (1000, 256, 0.2), (2000, 1024, 0.1),
                            (2000, 2048, 0.03), (1000, 4096, 0.01)),
                  log_every=200),
}


def phases(su: Setup, N: int, T: int, Q: int) -> tuple[Phase, ...]:
    """The tuned ppd schedule of ``su``: growing batch, decaying learning rate."""
    r, task = lr_A_ratio(T), TaskConfig(N=N, T=T, Q=Q)
    return tuple(Phase(steps=n, batch=B, lr_V=lr, lr_A=lr * (r if i else 1.0),
                       lam=l1.default_lam(task, B, lr * r) if i else 0.0)
                 for i, (n, B, lr) in enumerate(su.schedule))


def config(N: int, T: int, Q: int, su: Setup) -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=Q), phases=phases(su, N, T, Q),
                       log_every=su.log_every, **METHOD)


def _name(N: int, T: int, Q: int) -> str:
    """The spec of one setting: "N<N>_T<T>_Q<Q>"."""
    return f"N{N}_T{T}_Q{Q}"


def runs(su: Setup) -> dict[str, RunSpec]:
    """One spec per (N, T, Q), named "N<N>_T<T>_Q<Q>", over the same seeds (label seed)."""
    return {_name(N, T, Q): RunSpec(config(N, T, Q, su), grid(range(su.seeds)))
            for N, T, Q in su.settings}


def figures(rs, su: Setup) -> dict:
    fig, axes = plots.new_figure(1, len(su.settings), height=2.3)
    for ax, (N, T, Q) in zip(axes[0], su.settings):
        a = rs[_name(N, T, Q)]
        x = a.samples_L
        for n in np.cumsum([ph.steps * ph.batch for ph in phases(su, N, T, Q)])[:-1]:
            ax.axvline(n, color="0.75", linestyle="--", linewidth=0.6)  # phase ends
        plots.band(ax, x, a.metric("rel_dist_V"), label=plots.SYMBOLS["rel_dist_V"],
                   color="C0", log_y=True)
        plots.band(ax, x, a.metric("rel_dist_A"), label=plots.SYMBOLS["rel_dist_A"],
                   color="C3", log_y=True)
        ax.axhline(EPS_REC, color="0.3", linestyle=":", linewidth=0.9,
                   label=rf"$\varepsilon_\mathrm{{rec}}={EPS_REC:g}$")
        ax.set_title(f"$N={N}$, $T={T}$, $Q={Q}$ ({len(a)} seeds)")
        ax.set_xlabel("samples")
    axes[0, 0].set_ylabel("relative distance to ground truth")
    axes[0, 0].legend(loc="lower left")
    fig.suptitle("Recovery from the uniform start by ppd\ndashed: phase ends, where the batch "
                 "grows and the learning rate decays")
    plots.letter_panels(fig)
    return {"fig7_recovery": fig}


def claims(rs, su: Setup) -> list[Claim]:
    parts, ok = [], True
    for N, T, Q in su.settings:
        a = rs[_name(N, T, Q)]
        dV, dA = finals(a, "rel_dist_V"), finals(a, "rel_dist_A")
        mV, mA = float(np.median(dV)), float(np.median(dA))
        ok &= bool(mV <= EPS_REC and mA <= EPS_REC)
        parts.append(f"({N},{T},{Q}): med V {fmt(mV)} A {fmt(mA)}, worst V {fmt(dV.max())} "
                     f"A {fmt(dA.max())}")
    S = min(len(rs[_name(*nTQ)]) for nTQ in su.settings) if parts else 0
    return [Claim(
        id="5", name="recovery: ppd from the uniform start reaches (P, q)",
        measured="; ".join(parts) + f" ({S} seeds)",
        criterion=f"at every (N,T,Q), median over seeds of final ||V-P||/||P|| and "
                  f"||A-q||/||q|| both <= {EPS_REC:g}",
        passed=ok and bool(parts))]

