"""What the studies share: the ``Study`` protocol, ``Claim`` and ``fmt`` for the claims table,
the analyses' toolkit (first crossings, final values, medians, exponent fits with bootstrap
intervals) and the small-batch runs of ``vs_sgd`` and ``variance`` (the phase schedule and the
SGD baseline grid)."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from scbjax.core.metrics import first_crossing
from scbjax.engine.spec import Run, RunSpec, grid
from scbjax.engine.store import Runs, RunSet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Study", "Claim", "fmt", "fmt_samples", "first_crossing", "finals", "median", "Fit",
           "fit_exponent", "interval_below", "N_BOOT", "CI", "BOOT_SEED", "FRACTIONS",
           "LR_DECAY", "CONSTANT", "phase_steps", "sgd_grid"]


class Study(Protocol):
    """What a study module ``scbjax.studies.<name>`` defines (``scbjax.app.reproduce`` finds
    every module of the package with ``MODES`` and ``runs``, in the order of ``ORDER``):
    ``TITLE`` one line; ``FIGURES`` figure file stem -> the sentence it shows; ``MODES`` one
    setup per mode ("tiny", "quick", "full"); ``ORDER`` its place in the reproduction;
    ``runs(setup)`` its named runs, as data (each spec runs into ``OUT/<study>/<spec>/``);
    ``figures(runset, setup)`` and ``claims(runset, setup)`` from the loaded runs, addressed
    by spec name and label."""

    TITLE: str
    FIGURES: dict[str, str]
    MODES: dict[str, Any]
    ORDER: int

    def runs(self, setup: Any) -> dict[str, RunSpec]: ...

    def figures(self, runset: RunSet, setup: Any) -> dict[str, Figure]: ...

    def claims(self, runset: RunSet, setup: Any) -> list[Claim]: ...


@dataclasses.dataclass(frozen=True)
class Claim:
    """One automatic check: what was measured, against which criterion, and the verdict."""

    id: str  # "1", "2a", ...
    name: str  # short title, e.g. "two stages: stage-1 length grows with T"
    measured: str  # the measured number(s), human-readable
    criterion: str  # the PASS criterion, human-readable
    passed: bool
    study: str = ""


def fmt(x: float, digits: int = 3) -> str:
    """A number for the claims table (nan as 'n/a')."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}g}"


def fmt_samples(n: int) -> str:
    """A sample count for the claims and figures: "160k", "1.28M"."""
    return f"{n / 1000:g}k" if n < 1_000_000 else f"{n / 1e6:g}M"


# --- analysis -----------------------------------------------------------------------------


def finals(r: Runs, metric: str) -> np.ndarray:
    """Final value of ``metric`` per run; non-finite (diverged) counts as +inf."""
    x = r.final(metric).astype(float)
    return np.where(np.isfinite(x), x, np.inf)


def median(x) -> float:
    """Median of the values that are not nan (+inf counts: censored); nan if there is none."""
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else float("nan")


N_BOOT = 2000  # bootstrap resamples per interval
CI = 0.95
BOOT_SEED = 0  # the bootstrap's random stream (fixed: the claims are a function of the runs)


@dataclasses.dataclass(frozen=True)
class Fit:
    """log(median y) = a + b log x; [lo, hi] the bootstrap interval of b (nan: no fit)."""

    b: float
    lo: float
    hi: float
    a: float
    x: np.ndarray  # [K]
    med: np.ndarray  # [K] medians over seeds (inf: more than half censored)
    undefined: float  # fraction of bootstrap resamples without a slope

    def text(self) -> str:
        return f"{fmt(self.b, 2)} [{fmt(self.lo, 2)}, {fmt(self.hi, 2)}]"


def _slopes(logx_K: np.ndarray, logy_BxK: np.ndarray) -> np.ndarray:
    xc = logx_K - logx_K.mean()
    with np.errstate(invalid="ignore"):
        yc = logy_BxK - logy_BxK.mean(axis=-1, keepdims=True)
        return (yc * xc).sum(-1) / (xc * xc).sum()


def fit_exponent(x_K, Y_KxS, n_boot: int = N_BOOT, seed: int = BOOT_SEED,
                 ci: float = CI) -> Fit:
    """Exponent b of y against x: least squares of log(median over seeds of y) on log x, one
    point per x; its ``ci`` interval by a percentile bootstrap over seeds (``n_boot``
    resamples; in each the seeds of every x are resampled with replacement, independently per
    x, and the slope refitted). ``Y_KxS``: one row per x value, one column per seed (+inf
    censored; rows may be ragged lists). A resample with an infinite or non-positive median
    has no slope and counts as -inf for the lower end and +inf for the upper end."""
    x = np.asarray(x_K, float)
    rows = [np.asarray(r, float) for r in Y_KxS]
    K = len(rows)
    with np.errstate(divide="ignore"):
        med = np.asarray([np.median(r) for r in rows])
        ok = np.isfinite(med).all() and (med > 0).all() and np.unique(x).size >= 2
        b = float(_slopes(np.log(x), np.log(med)[None])[0]) if ok else np.nan
    a = float(np.mean(np.log(med)) - b * np.mean(np.log(x))) if ok else np.nan
    if K < 2 or np.unique(x).size < 2:
        return Fit(b, np.nan, np.nan, a, x, med, 1.0)
    rng = np.random.default_rng(seed)
    meds = np.empty((n_boot, K))
    for k, r in enumerate(rows):
        idx = rng.integers(0, r.size, size=(n_boot, r.size))
        meds[:, k] = np.median(r[idx], axis=1)
    good = np.isfinite(meds).all(1) & (meds > 0).all(1)
    undefined = float(1.0 - good.mean())
    alpha = (1.0 - ci) / 2
    s = _slopes(np.log(x), np.log(np.where(good[:, None], meds, 1.0)))
    # an undefined resample counts as the most extreme slope on the side being bounded
    lo = np.quantile(np.where(good, s, -np.inf), alpha, method="inverted_cdf")
    hi = np.quantile(np.where(good, s, np.inf), 1 - alpha, method="inverted_cdf")
    return Fit(b, float(lo), float(hi), a, x, med, undefined)


def interval_below(f: Fit, g: Fit) -> bool:
    """The interval of f lies entirely below that of g."""
    return bool(np.isfinite(f.hi) and np.isfinite(g.lo) and f.hi < g.lo)


# --- the small-batch runs of vs_sgd and variance --------------------------------------------

FRACTIONS = (0.2, 0.4, 0.4)  # phases: fraction of the steps
LR_DECAY = (1.0, 0.3, 0.1)  # phases: learning rate / initial learning rate
CONSTANT = (1.0,) * len(LR_DECAY)  # phases: a constant learning rate


def phase_steps(steps: int) -> list[int]:
    """Steps per phase: ``FRACTIONS`` of ``steps``, rounded, the last phase taking the rest."""
    n = [int(round(f * steps)) for f in FRACTIONS]
    return n[:-1] + [steps - sum(n[:-1])]


def sgd_grid(seeds: Sequence[int], key: str, arms, **settings) -> tuple[Run, ...]:
    """SGD runs for each seed at every initial rate of each arm: ``arms`` holds (label value,
    rates, rate factor per phase) triples; labels ``key`` (the value) and ``lr`` (the rate);
    lr_V = lr_A = rate x factor in each phase; other ``settings`` as in ``grid``."""
    out = ()
    for arm, lrs, factors in arms:
        for lr in lrs:
            out += grid(seeds, {key: arm, "lr": float(lr)},
                        lr=tuple(float(lr * d) for d in factors), **settings)
    return out
