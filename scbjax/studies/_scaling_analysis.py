"""The analysis of ``scbjax.studies.scaling`` as pure functions of arrays: the stage lengths of
runs, the paired speedups, and the claims' criteria as functions of fitted exponents."""

from __future__ import annotations

import numpy as np

from scbjax.studies.base import Fit, first_crossing, interval_below

RHO_STRONG = 0.5  # claim 2c: the finetuned exponent must be below scratch's for rho >= this
SHRINK = 0.5  # claim 2b: speedup(rho = 0) <= SHRINK x speedup(largest rho)


def stage_lengths(corr_RxL, excess_RxL, samples_RxL, corr_thr: float, eps_rel: float,
                  ex0_R=None) -> dict[str, np.ndarray]:
    """Per run: ``S1`` (samples to corr_V >= corr_thr), ``S2`` (from there to excess <= eps),
    ``to_eps`` (samples to excess <= eps from step 0); eps = eps_rel x ``ex0_R`` (default: the
    run's own excess loss at step 0). +inf where a threshold is never reached."""
    ex = np.asarray(excess_RxL, float)
    ex0 = ex[:, 0] if ex0_R is None else np.asarray(ex0_R, float)
    X = np.asarray(samples_RxL, float)
    s1 = first_crossing(corr_RxL, X, corr_thr, never=np.inf)
    i1 = np.argmax(X >= s1[:, None], axis=1)  # log index of the stage-1 end (0 if never)
    end = first_crossing(ex, X, eps_rel * ex0, below=True, start=i1, never=np.inf)
    with np.errstate(invalid="ignore"):
        s2 = np.where(np.isfinite(s1), end - s1, np.inf)
    return {"S1": s1, "S2": s2,
            "to_eps": first_crossing(ex, X, eps_rel * ex0, below=True, never=np.inf)}


def speedups(scratch_S, finetune_S) -> np.ndarray:
    """Per-seed speedup scratch / finetune samples to eps: 0 where only the finetuned run never
    reaches eps, nan where neither does."""
    sc, ft = np.asarray(scratch_S, float), np.asarray(finetune_S, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isinf(sc) & np.isinf(ft), np.nan, sc / ft)


def check_stage1(f1_T: Fit) -> bool:
    """1b: the T-exponent interval of stage 1 lies above 0."""
    return bool(np.isfinite(f1_T.lo) and f1_T.lo > 0)


def check_stage2(f1_T: Fit, f2_T: Fit, f2_N: Fit, f2_Q: Fit) -> bool:
    """1c: stage 2's T-exponent interval lies below stage 1's, and its N- or Q-exponent
    interval lies above 0."""
    grows = any(np.isfinite(f.lo) and f.lo > 0 for f in (f2_N, f2_Q))
    return interval_below(f2_T, f1_T) and bool(grows)


def check_transfer(f_scratch: Fit, f_finetune: dict, f_speedup: dict, speedup0_K,
                   rho_strong: float = RHO_STRONG) -> bool:
    """2c: for every rho >= rho_strong, the finetuned T-exponent interval lies below
    scratch's and the speedup's T-exponent interval lies above 0; at rho = 0 the median
    speedup is <= 1 at every T (``speedup0_K``)."""
    strong = [r for r in f_finetune if r >= rho_strong]
    ok = bool(strong) and all(interval_below(f_finetune[r], f_scratch)
                              and np.isfinite(f_speedup[r].lo) and f_speedup[r].lo > 0
                              for r in strong)
    s0 = np.asarray(speedup0_K, float)
    return ok and bool(s0.size and np.all(np.nan_to_num(s0, nan=np.inf) <= 1.0))


def check_shrink(speedup_by_rho: dict, shrink: float = SHRINK) -> bool:
    """2b: speedup(rho = 0) <= shrink x speedup(largest rho)."""
    s0, smax = speedup_by_rho.get(0.0, np.nan), speedup_by_rho[max(speedup_by_rho)]
    return bool(np.isfinite(s0) and np.isfinite(smax) and s0 <= shrink * smax)
