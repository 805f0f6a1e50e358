"""Population (infinite-sample) dynamics beside stochastic runs at several batch sizes (figure 6;
simulator checks S1, S2).

Every seed has its own task instance (the task stream of its key) and is trained four times with
the paper's method ``ppd`` from the uniform start, with the same learning rate, lambda and number
of steps: with the exact population gradient (``TrainConfig(population=True)``) and with sampled
batches of size B in ``BATCHES``. The population run is drawn against steps * B for each B, so a
stochastic run and its infinite-batch limit share the x axis (samples).

Simulator checks (not paper claims), fixed before measuring:
- ``S1`` population limit: at the largest B, with m_stoch(l) and m_pop(l) the medians over seeds
  of the excess population loss at log point l, and r_pop(l) = median over seeds of
  pop(l) / pop(0): PASS iff m_stoch(l) / m_pop(l) lies in [1/1.5, 1.5] at every l >= 1 with
  r_pop(l) >= 1%.
- ``S2`` noise floor shrinks with batch: the final median excess loss decreases strictly as B
  grows.
Measured numbers and what was observed: docs/findings.md
Reconstruction choices: those of ``scbjax.sim.train.TrainConfig`` defaults (true mu, affine
projection, prox then project); the settings per mode are in ``MODES``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scbjax.core.task import TaskConfig
from scbjax.engine.spec import RunSpec, grid
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import plots
from scbjax.studies.base import Claim, fmt

TITLE = "Population (infinite-sample) dynamics against stochastic runs at several batch sizes"
FIGURES = {
    "fig6_population": "Excess population loss and relative distance ||V - P||_F/||P||_F "
                       "against samples for stochastic runs at batch sizes B (median and 10-90% "
                       "band over seeds) beside the exact population-gradient dynamics drawn at "
                       "samples = steps * B.",
}
ORDER = 2  # after scaling
RATIO = 1.5  # S1: allowed factor between stochastic and population excess loss
REL_FLOOR = 0.01  # S1: compare where the population excess loss is >= 1% of its initial value


@dataclasses.dataclass(frozen=True)
class Settings:
    N: int = 8
    T: int = 32
    Q: int = 2
    seeds: int = 8
    steps: int = 4000
    lr: float = 0.01
    lam: float = 0.0
    batches: tuple[int, ...] = (4, 32, 256)
    log_every: int = 20


MODES = {
    "tiny": Settings(N=4, T=8, seeds=2, steps=60, batches=(4, 16), log_every=10),
    "quick": Settings(),
    "full": Settings(T=64, seeds=32, steps=6000, batches=(4, 32, 256, 2048), log_every=20),
}


def _config(st: Settings, batch: int, population: bool) -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=st.N, T=st.T, Q=st.Q),
                       phases=(Phase(steps=st.steps, batch=batch, lr_V=st.lr, lr_A=st.lr,
                                     lam=st.lam),),
                       log_every=st.log_every, population=population)


POP = "pop"  # the spec of the population run


def spec_name(B: int) -> str:
    """The spec of the stochastic runs at batch size B: "B<B>"."""
    return f"B{B}"


def runs(st: Settings) -> dict[str, RunSpec]:
    """The population run (``POP``) and one stochastic run per batch size (``spec_name``), same
    seeds."""
    seeds = range(st.seeds)
    specs = {POP: RunSpec(_config(st, 1, True), grid(seeds))}
    for B in st.batches:
        specs[spec_name(B)] = RunSpec(_config(st, B, False), grid(seeds, {"B": B}))
    return specs


def _load(rs, st: Settings):
    """The population runs and, per batch size, the stochastic runs."""
    return rs[POP], {B: rs[spec_name(B)] for B in st.batches}


def figures(rs, st: Settings) -> dict:
    pop, runs = _load(rs, st)
    n = len(st.batches)
    fig, ax = plots.new_figure(2, n, height=3.8)
    for j, B in enumerate(st.batches):
        a, x = runs[B], runs[B].samples_L
        xp = pop.steps * B
        # corr(V, P) of the exact dynamics is 1 from its first step (a constant line): the
        # second row shows the relative distance of V instead, where the noise floor shows
        for i, name in enumerate(("excess_loss", "rel_dist_V")):
            plots.band(ax[i, j], xp, pop[f"metrics/{name}"], label=plots.NAMES["population"],
                       color="k", log_y=True, linestyle="--")
            plots.band(ax[i, j], x, a[f"metrics/{name}"],
                       label=f"{plots.NAMES['stochastic']}, $B={B}$", color=f"C{j}", log_y=True)
            ax[i, j].set_xlabel(r"samples (steps $\times$ $B$)")
            ax[i, j].set_ylabel(plots.SYMBOLS[name])
        ax[0, j].set_title(f"$B={B}$")
        ax[0, j].legend(loc="lower left")
    c1 = float(np.min(pop["metrics/corr_V"][:, 1:])) if pop.steps.size > 1 else float("nan")
    fig.suptitle(f"Population against stochastic dynamics ($N={st.N}$, $T={st.T}$, $Q={st.Q}$, "
                 f"$\\eta={st.lr:g}$, $\\lambda={st.lam:g}$, {st.steps} steps, {st.seeds} seeds)"
                 f"\nexact gradient: {plots.SYMBOLS['corr_V']} $\\geq {c1:.3f}$ from the first "
                 "step on")
    plots.letter_panels(fig)
    return {"fig6_population": fig}


def claims(rs, st: Settings) -> list[Claim]:
    pop, runs = _load(rs, st)
    e_pop = pop["metrics/excess_loss"]
    m_pop = np.median(e_pop, 0)
    r_pop = np.median(e_pop / e_pop[:, :1], 0)
    Bmax = max(st.batches)
    m_st = np.median(runs[Bmax]["metrics/excess_loss"], 0)
    keep = (r_pop >= REL_FLOOR) & (np.arange(m_pop.size) >= 1)
    ratio = m_st[keep] / m_pop[keep]
    ok1 = bool(keep.any() and np.all((ratio >= 1 / RATIO) & (ratio <= RATIO)))
    n_in = int(np.sum((ratio >= 1 / RATIO) & (ratio <= RATIO)))
    lo, hi = (ratio.min(), ratio.max()) if ratio.size else (np.nan, np.nan)
    c1 = Claim("S1", "population limit: largest batch tracks the exact-gradient curve",
               f"B={Bmax}: ratio stochastic/population in [{fmt(lo)}, {fmt(hi)}] over "
               f"{int(keep.sum())} log points ({n_in} inside)",
               f"median ratio in [1/{RATIO}, {RATIO}] at every log point where the median "
               f"population excess loss is >= {REL_FLOOR:.0%} of its initial value",
               ok1)
    fin = [float(np.median(runs[B]["metrics/excess_loss"][:, -1])) for B in st.batches]
    ok2 = bool(all(a > b for a, b in zip(fin, fin[1:])))
    c2 = Claim("S2", "noise floor shrinks with batch",
               "final median excess: " + ", ".join(f"B={B}: {fmt(f)}"
                                                  for B, f in zip(st.batches, fin))
               + f"; population: {fmt(float(m_pop[-1]))}",
               "final median excess loss strictly decreasing in B", ok2)
    return [c1, c2]
