"""Sample complexity in T, N and Q from scratch, and transfer against T (paper P3, P4;
figures 1-3; claims 1b, 1c, 2b, 2c).

The paper's statements checked here (its contribution list, docs/claims.md):
- P3: "from scratch, training first goes through a sample-intensive stage that boosts the
  signal with poly(T) samples, then a more sample-efficient stage reaches final convergence
  with poly(N, Q) samples";
- P4: "with a nontrivial correlation between the pretraining and downstream tasks, finetuning
  a pretrained model bypasses the first stage and converges with only poly(N, Q) samples".

Runs (one engine, one compiled spec per (N, T, Q)). Every run is the paper's method (ppd,
``METHOD``) with a constant batch and learning rate throughout (one phase): the schedule is
the same function of nothing at every T, N, Q, so it cannot decide where a stage ends. Two
such schedules (``Setup.schedules``: the same lr, batches B and 2B, so that the second has
half the noise) run side by side in each spec (the batch is a traced setting: every run draws
the larger batch, the first b draws are those of an unpadded run, the rest are masked).
- ``T<T>`` (N = ``Setup.N``, Q = ``Setup.Q``, every T of ``Setup.Ts``): from scratch (uniform
  start, label arm="scratch", rho = -1) on each seed's own random task, and finetuned
  (arm="finetune", rho in ``RHOS``) on the same task with the same data stream (same seed:
  common random numbers), from V = P1, A uniform. P1 is the transition matrix of a pretraining
  task with cos(P1 C_N, P C_N) = rho exactly (``scbjax.transfer.correlated_P`` from the
  downstream P, key ``fold_in(PRNGKey(seed), PRE_FOLD)``): the model that pretraining on that
  task converges to with unlimited data (the population optimum (P1, q1)), with A reset to
  uniform as in ``scbjax.transfer.finetune_params``. Pretraining samples are not counted in
  either arm. The realised rho is checked: corr_V of a finetune run at step 0 equals it.
- ``N<N>`` (T = ``Setup.T_fix``, Q = ``Setup.Q``) and ``Q<Q>`` (T = ``T_fix``, N =
  ``Setup.N``): from scratch only; the centre (N, T_fix, Q) is the spec ``T<T_fix>``.
A seed's task depends on its seed only (the engine's task key); its P depends on N only, so a
seed has the same P at every T and Q.

Definitions [recon], fixed before measuring (``THRESHOLDS``: two pairs, the verdicts are
reported at both):
- stage 1 (``S1``): samples until corr_V = cos(V C_N, P C_N) first reaches c (0.5; 0.7). A
  cosine means the same at every T, N, Q.
- eps = e x (the run's excess population loss at the uniform start) (e = 10%; 20%): a fraction
  of the learnable loss still unlearned, the same meaning at every T, N, Q. For a finetuned
  run, the uniform start's excess loss on the same task (its scratch run's step 0).
- stage 2 (``S2``): samples from the end of stage 1 until the excess loss first falls to
  <= eps (searched from the stage-1 log point on). Samples to eps (transfer): from step 0.
- Log points every ``max(1, T N / (4 B))`` steps (B the first schedule's batch): the same
  resolution relative to a stage 1 that grows like T (the relative bias of a first-crossing
  time is then the same at every T).
- A run that never crosses within the horizon has length +inf (censored).
- Exponent of a length y against x (T, N or Q): least squares of log(median over seeds of y)
  on log x, one point per x; 95% interval by bootstrap over seeds: ``N_BOOT`` resamples, in
  each the seeds of every x are resampled with replacement (independently per x) and the
  slope refitted; the interval is the 2.5% and 97.5% percentiles of the refitted slopes
  (``fit_exponent``). A resample with an infinite median (half its seeds censored) has no
  slope and counts as -inf for the lower end and +inf for the upper end: with more than 2.5%
  of such resamples the interval is unbounded and every claim that needs that end fails.
- Speedup of a seed at (T, rho) = its scratch samples to eps / its finetune samples to eps
  (paired: the same task and data); its exponent in T as above, on the per-seed speedups.

Claims (``check_*``: pure functions of the fitted exponents; each PASSes only if it holds
under both schedules at both thresholds):
- ``1b`` stage 1 grows with T: the 95% interval of the T-exponent of S1 lies above 0.
- ``1c`` stage 2 does not grow like stage 1: the interval of S2's T-exponent lies below that
  of S1 (upper end < lower end), and S2 grows with N or Q (the interval of its N-exponent or
  of its Q-exponent lies above 0).
- ``2c`` transfer bypasses the T-dependent stage: at every rho >= ``RHO_STRONG`` the interval
  of the T-exponent of the finetuned samples to eps lies below that of the scratch samples to
  eps, and the interval of the speedup's T-exponent lies above 0; at rho = 0 the median
  speedup is <= 1 at every T.
- ``2b`` (unchanged from the earlier transfer study) the benefit shrinks as rho -> 0: at
  T = ``Setup.T_fix``, first schedule, first threshold pair, speedup(rho = 0) <= ``SHRINK`` x
  speedup(largest rho) (speedup: median scratch / median finetune samples to eps).
Observations reported in docs/findings.md, not claims: the corr_V rise in stage 1 (no
plateau) and the size of the speedup (no factor 3 at one T). Measured numbers, the pilot runs
that sized the schedules and what was tried: docs/findings.md.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import numpy as np

from scbjax.optim import l1
from scbjax.studies import plots
from scbjax.core.model import Params, uniform_params
from scbjax.app.reproduce import Claim, fmt
from scbjax.engine.spec import RunSpec, run
from scbjax.core.task import TaskConfig, make_task
from scbjax.core import keys
from scbjax.sim.train import Phase, TrainConfig
from scbjax.core.transfer import correlated_P

TITLE = "Sample complexity in T, N and Q from scratch, and transfer that removes the T-dependence"
FIGURES = {
    "fig1_two_stage": "Training from the uniform start with a constant batch and learning rate: "
                      "corr_V, corr_A, distances to (P, q) and excess loss against samples "
                      "(median and 10-90% band over seeds), the median end of stage 1 and eps "
                      "marked.",
    "fig2_stage_lengths": "Stage-1 and stage-2 lengths against T, N and Q (log-log), per seed "
                          "and median, with fitted exponents, their 95% bootstrap intervals "
                          "and a reference slope 1, for each constant schedule.",
    "fig3_transfer": "Samples to eps from scratch and finetuned from a model pretrained on a "
                     "task of correlation rho, against T, and the speedup against T.",
}

# The method of every run: ppd options; the l1 weight is the studies' default
# (``scbjax.l1.default_lam`` at each schedule's batch and rate, from step 0).
METHOD = dict(optimizer="ppd", mu="true", projection_V="affine", projection_A="affine",
              order="prox_project", prox="soft")
# (corr_V that ends stage 1, eps as a fraction of the initial excess loss): two pairs.
THRESHOLDS = ((0.5, 0.10), (0.7, 0.20))
RHOS = (0.0, 0.5, 0.9)  # correlation of the pretraining task with the downstream task
RHO_STRONG = 0.5  # claim 2c: the finetuned exponent must be below scratch's for rho >= this
SHRINK = 0.5  # claim 2b: speedup(rho = 0) <= SHRINK x speedup(largest rho)
N_BOOT = 2000  # bootstrap resamples per interval
CI = 0.95
BOOT_SEED = 0  # the bootstrap's random stream (fixed: the claims are a function of the runs)
PRE_FOLD = 1  # pretraining task key: fold_in(PRNGKey(seed), PRE_FOLD)
SCRATCH_RHO = -1.0  # the rho label of a scratch run (no pretrained model)


@dataclasses.dataclass(frozen=True)
class Setup:
    Ts: tuple[int, ...]  # the T sweep (N = N, Q = Q): scratch and finetuned runs
    N: int
    Q: int
    T_fix: int  # T of the N and Q sweeps and of figure 1 (a member of Ts)
    Ns: tuple[int, ...]  # the N sweep (contains N)
    Qs: tuple[int, ...]  # the Q sweep (contains Q)
    seeds: int
    schedules: tuple[tuple[str, int, float], ...]  # (name, batch, lr): constant throughout
    steps: int  # horizon of every run (steps)
    rhos: tuple[float, ...] = RHOS


MODES = {
    "tiny": Setup(Ts=(8, 16), N=4, Q=2, T_fix=8, Ns=(3, 4), Qs=(1, 2), seeds=2,
                  schedules=(("A", 16, 0.02), ("B", 32, 0.02)), steps=60, rhos=(0.0, 0.9)),
    "quick": Setup(Ts=(16, 32, 64, 128, 256), N=8, Q=2, T_fix=64, Ns=(4, 8, 16),
                   Qs=(1, 2, 4, 8), seeds=8, schedules=(("A", 32, 0.008), ("B", 64, 0.008)),
                   steps=6000),
    # lr / B x max(T) as in quick (the noise floor at the largest T, about 0.7 lr T / B of
    # the initial excess loss, stays at half the larger eps); batch 64 resolves stage 1 at T = 64
    "full": Setup(Ts=(64, 128, 256, 512, 1024, 2048), N=8, Q=2, T_fix=256,
                  Ns=(4, 8, 16, 32), Qs=(1, 2, 4, 8, 16), seeds=32,
                  schedules=(("A", 64, 0.002), ("B", 128, 0.002)), steps=32000),
}


def log_every(N: int, T: int, batch: int) -> int:
    """Log interval in steps: T N / (4 batch), so that a log interval is a fixed fraction of a
    stage 1 that grows like T (about a tenth of it at N = 8) at every T."""
    return max(1, (T * N) // (4 * batch))


def _config(su: Setup, N: int, T: int, Q: int) -> TrainConfig:
    B = max(b for _, b, _ in su.schedules)
    lr = su.schedules[0][2]
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=Q),
                       phases=(Phase(steps=su.steps, batch=B, lr_V=lr, lr_A=lr),),
                       log_every=log_every(N, T, su.schedules[0][1]), **METHOD)


def _runs(su: Setup, transfer: bool, task: TaskConfig) -> tuple:
    """Scratch runs (and finetuned runs, if ``transfer``) for every schedule and seed; lambda
    is the default l1 weight at the schedule's batch and rate."""
    arms = [("scratch", SCRATCH_RHO)] + ([("finetune", float(r)) for r in su.rhos]
                                         if transfer else [])
    return tuple(run(s, {"sched": name, "arm": arm, "rho": rho, "seed": s}, lr=lr, batch=B,
                     lam=l1.default_lam(task, B, lr))
                 for name, B, lr in su.schedules for arm, rho in arms
                 for s in range(su.seeds))


def runs(su: Setup) -> dict[str, RunSpec]:
    """``T<T>`` (scratch + finetuned), ``N<N>`` and ``Q<Q>`` (scratch) specs."""
    specs = {}
    for T in su.Ts:
        cfg = _config(su, su.N, T, su.Q)
        rr = _runs(su, True, cfg.task)
        specs[f"T{T}"] = RunSpec(cfg, rr,
                                 params0=functools.partial(_starts, su.N, T, su.Q, rr))
    for N in su.Ns:
        if N != su.N:
            cfg = _config(su, N, su.T_fix, su.Q)
            specs[f"N{N}"] = RunSpec(cfg, _runs(su, False, cfg.task))
    for Q in su.Qs:
        if Q != su.Q:
            cfg = _config(su, su.N, su.T_fix, Q)
            specs[f"Q{Q}"] = RunSpec(cfg, _runs(su, False, cfg.task))
    return specs


@functools.partial(jax.jit, static_argnums=(2,))
def _pretrained_P(seeds, rhos, N: int):
    """P1 of each (seed, rho): the downstream P is the seed's own task (the engine's task key,
    ``keys.streams``; P depends on N only), P1 = ``correlated_P`` of it."""
    cfg = TaskConfig(N=N, T=1, Q=1)  # P of make_task does not depend on T or Q

    def one(seed, rho):
        key = jax.random.PRNGKey(seed)
        P = make_task(keys.streams(key)[0], cfg).P
        return correlated_P(jax.random.fold_in(key, PRE_FOLD), P, rho, cfg)

    return jax.vmap(one)(seeds, rhos)


def _starts(N: int, T: int, Q: int, rr: tuple, runset=None) -> Params:
    """Starting parameters per run: uniform (scratch), or (P1, uniform A) (finetune)."""
    u = uniform_params(N, T)
    R = len(rr)
    V = np.broadcast_to(np.asarray(u.V), (R, N, N)).copy()
    A = np.broadcast_to(np.asarray(u.A), (R, T, N)).copy()
    ft = [i for i, r in enumerate(rr) if r.label_dict["arm"] == "finetune"]
    if ft:
        seeds = np.asarray([rr[i].seed for i in ft], np.uint32)
        rhos = np.asarray([rr[i].label_dict["rho"] for i in ft], np.float32)
        V[ft] = np.asarray(_pretrained_P(seeds, rhos, N))
    return Params(V=V, A=A)


# --- analysis: pure functions of arrays ---------------------------------------------------


def first_crossing(Y_RxL: np.ndarray, X_RxL: np.ndarray, thr, below: bool = False,
                   start_R: np.ndarray | None = None) -> np.ndarray:
    """Per row: samples at the first log point (at or after index ``start_R``) where
    Y >= thr (or <= thr with ``below``); ``thr`` a number or one per row; +inf if never."""
    Y, X = np.asarray(Y_RxL, float), np.asarray(X_RxL, float)
    thr = np.broadcast_to(np.asarray(thr, float), (Y.shape[0],))[:, None]
    hit = Y <= thr if below else Y >= thr
    if start_R is not None:
        hit &= np.arange(Y.shape[1])[None, :] >= np.asarray(start_R)[:, None]
    idx = np.argmax(hit, axis=1)
    return np.where(hit.any(1), X[np.arange(Y.shape[0]), idx], np.inf)


def stage_lengths(corr_RxL, excess_RxL, samples_RxL, corr_thr: float, eps_rel: float,
                  ex0_R=None) -> dict[str, np.ndarray]:
    """Per run: ``S1`` (samples to corr_V >= corr_thr), ``S2`` (from there to excess <= eps),
    ``to_eps`` (samples to excess <= eps from step 0); eps = eps_rel x ``ex0_R`` (default: the
    run's own excess loss at step 0). +inf where a threshold is never reached."""
    ex = np.asarray(excess_RxL, float)
    ex0 = ex[:, 0] if ex0_R is None else np.asarray(ex0_R, float)
    X = np.asarray(samples_RxL, float)
    s1 = first_crossing(corr_RxL, X, corr_thr)
    i1 = np.argmax(X >= s1[:, None], axis=1)  # log index of the stage-1 end (0 if never)
    end = first_crossing(ex, X, eps_rel * ex0, below=True, start_R=i1)
    with np.errstate(invalid="ignore"):
        s2 = np.where(np.isfinite(s1), end - s1, np.inf)
    return {"S1": s1, "S2": s2, "to_eps": first_crossing(ex, X, eps_rel * ex0, below=True)}


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
    """Exponent of y against x with a percentile bootstrap interval over seeds (see the module
    docstring). ``Y_KxS``: lengths, one row per x value, one column per seed (+inf censored;
    rows may be ragged lists)."""
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


def speedups(scratch_S, finetune_S) -> np.ndarray:
    """Per-seed speedup scratch / finetune samples to eps: 0 where only the finetuned run never
    reaches eps, nan where neither does."""
    sc, ft = np.asarray(scratch_S, float), np.asarray(finetune_S, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isinf(sc) & np.isinf(ft), np.nan, sc / ft)


def _below(f: Fit, g: Fit) -> bool:
    """The interval of f lies entirely below that of g."""
    return bool(np.isfinite(f.hi) and np.isfinite(g.lo) and f.hi < g.lo)


def check_stage1(f1_T: Fit) -> bool:
    """1b: the T-exponent interval of stage 1 lies above 0."""
    return bool(np.isfinite(f1_T.lo) and f1_T.lo > 0)


def check_stage2(f1_T: Fit, f2_T: Fit, f2_N: Fit, f2_Q: Fit) -> bool:
    """1c: stage 2's T-exponent interval lies below stage 1's, and its N- or Q-exponent
    interval lies above 0."""
    grows = any(np.isfinite(f.lo) and f.lo > 0 for f in (f2_N, f2_Q))
    return _below(f2_T, f1_T) and bool(grows)


def check_transfer(f_scratch: Fit, f_finetune: dict, f_speedup: dict, speedup0_K,
                   rho_strong: float = RHO_STRONG) -> bool:
    """2c: for every rho >= rho_strong, the finetuned T-exponent interval lies below
    scratch's and the speedup's T-exponent interval lies above 0; at rho = 0 the median
    speedup is <= 1 at every T (``speedup0_K``)."""
    strong = [r for r in f_finetune if r >= rho_strong]
    ok = bool(strong) and all(_below(f_finetune[r], f_scratch) and np.isfinite(f_speedup[r].lo)
                              and f_speedup[r].lo > 0 for r in strong)
    s0 = np.asarray(speedup0_K, float)
    return ok and bool(s0.size and np.all(np.nan_to_num(s0, nan=np.inf) <= 1.0))


def check_shrink(speedup_by_rho: dict, shrink: float = SHRINK) -> bool:
    """2b: speedup(rho = 0) <= shrink x speedup(largest rho)."""
    s0, smax = speedup_by_rho.get(0.0, np.nan), speedup_by_rho[max(speedup_by_rho)]
    return bool(np.isfinite(s0) and np.isfinite(smax) and s0 <= shrink * smax)


# --- analysis of the loaded runs ----------------------------------------------------------


def _tables(rs, su: Setup) -> dict:
    """Per (schedule, threshold index): lengths per sweep value [seeds] and fits."""
    out = {}
    for name, _, _ in su.schedules:
        for j, (c, e) in enumerate(THRESHOLDS):
            t = {"T": {}, "N": {}, "Q": {}, "ft": {r: {} for r in su.rhos}}
            for T in su.Ts:
                a = rs[f"T{T}"].select(sched=name)
                sc = a.select(arm="scratch")
                L = stage_lengths(sc.metric("corr_V"), sc.metric("excess_loss"), sc.samples, c, e)
                t["T"][T] = L
                ex0 = dict(zip(sc.label("seed").tolist(), sc.metric("excess_loss")[:, 0]))
                for r in su.rhos:
                    f = a.select(arm="finetune", rho=float(r))
                    e0 = np.asarray([ex0[s] for s in f.label("seed").tolist()])
                    t["ft"][r][T] = stage_lengths(f.metric("corr_V"), f.metric("excess_loss"),
                                                  f.samples, c, e, ex0_R=e0)["to_eps"]
            for sweep, vals, spec in (("N", su.Ns, "N"), ("Q", su.Qs, "Q")):
                centre = su.N if sweep == "N" else su.Q
                for v in vals:
                    sc = (rs[f"T{su.T_fix}"].select(sched=name, arm="scratch") if v == centre
                          else rs[f"{spec}{v}"].select(sched=name))
                    t[sweep][v] = stage_lengths(sc.metric("corr_V"), sc.metric("excess_loss"),
                                                sc.samples, c, e)
            fits = {}
            for sweep in ("T", "N", "Q"):
                xs = sorted(t[sweep])
                for k in ("S1", "S2"):
                    fits[(k, sweep)] = fit_exponent(xs, [t[sweep][x][k] for x in xs])
            Ts = sorted(su.Ts)
            fits[("scratch", "T")] = fit_exponent(Ts, [t["T"][T]["to_eps"] for T in Ts])
            sp = {}
            for r in su.rhos:
                fits[("ft", r)] = fit_exponent(Ts, [t["ft"][r][T] for T in Ts])
                sp[r] = {T: speedups(t["T"][T]["to_eps"], t["ft"][r][T]) for T in Ts}
                fits[("speedup", r)] = fit_exponent(Ts, [sp[r][T] for T in Ts])
            t["speedup"] = sp
            out[(name, j)] = {"lengths": t, "fits": fits}
    return out


def _med(x) -> float:
    x = np.asarray(x, float)
    x = x[~np.isnan(x)]
    return float(np.median(x)) if x.size else float("nan")


def _tag(name: str, j: int) -> str:
    """A sub-case: schedule name and threshold number, e.g. "A1"."""
    return f"{name}{j + 1}"


def _sched_text(su: Setup) -> str:
    return ", ".join(f"{n}: batch {B}, lr {lr:g}" for n, B, lr in su.schedules)


def _legend(su: Setup) -> str:
    th = ", ".join(f"{j + 1}: (corr_V {c:g}, eps {e:.0%})" for j, (c, e) in
                   enumerate(THRESHOLDS))
    return f"schedules {_sched_text(su)}; thresholds {th}"


def _verdict(ok: bool) -> str:
    return "" if ok else " (fails)"


def claims(rs, su: Setup) -> list[Claim]:
    tab = _tables(rs, su)
    keys = list(tab)
    k0 = keys[0]
    Ts = sorted(su.Ts)
    # 1b
    ok1 = {k: check_stage1(tab[k]["fits"][("S1", "T")]) for k in keys}
    t0 = tab[k0]["lengths"]["T"]
    cens1 = sum(int(np.isinf(t["S1"]).sum()) for k in keys
                for t in tab[k]["lengths"]["T"].values())
    m1 = ("b1 = " + "; ".join(f"{_tag(*k)}: {tab[k]['fits'][('S1', 'T')].text()}"
                              f"{_verdict(ok1[k])}" for k in keys)
          + f". Median S1 ({_tag(*k0)}) at T = {', '.join(map(str, Ts))}: "
          + ", ".join(fmt(_med(t0[T]["S1"])) for T in Ts)
          + f"; runs never ending stage 1: {cens1}. (S1 against N at T = {su.T_fix}: b = "
          + f"{tab[k0]['fits'][('S1', 'N')].text()})")
    c1b = Claim("1b", "stage 1 grows with T: \"a sample-intensive stage that boosts the signal "
                "with poly(T) samples\"", m1,
                "95% bootstrap interval of the T-exponent b1 of the stage-1 length S1 above 0, "
                f"in every sub-case ({_legend(su)})", all(ok1.values()))
    # 1c
    ok2, parts = {}, []
    for k in keys:
        f = tab[k]["fits"]
        ok2[k] = check_stage2(f[("S1", "T")], f[("S2", "T")], f[("S2", "N")], f[("S2", "Q")])
        parts.append(f"{_tag(*k)}: b2 = {f[('S2', 'T')].text()} vs b1 = "
                     f"{f[('S1', 'T')].text()}; N: {f[('S2', 'N')].text()}; Q: "
                     f"{f[('S2', 'Q')].text()}{_verdict(ok2[k])}")
    cens2 = sum(int(np.isinf(L["S2"]).sum()) for k in keys for sw in ("T", "N", "Q")
                for L in tab[k]["lengths"][sw].values())
    m2 = ("; ".join(parts) + f". Median S2 ({_tag(*k0)}) at T = {', '.join(map(str, Ts))}: "
          + ", ".join(fmt(_med(t0[T]["S2"])) for T in Ts) + f"; censored S2: {cens2}")
    c1c = Claim("1c", "stage 2 does not grow like stage 1 and grows with N or Q: \"then a more "
                "sample-efficient stage reaches final convergence with poly(N, Q) samples\"",
                m2, "interval of the T-exponent b2 of the stage-2 length S2 entirely below that "
                f"of b1, and the interval of S2's N- or Q-exponent (at T = {su.T_fix}) above 0, "
                "in every sub-case", all(ok2.values()))
    # 2c
    ok3, parts = {}, []
    for k in keys:
        f, sp = tab[k]["fits"], tab[k]["lengths"]["speedup"]
        s0 = [_med(sp[0.0][T]) for T in Ts] if 0.0 in sp else []
        ft = {r: f[("ft", r)] for r in su.rhos if r > 0}
        fs = {r: f[("speedup", r)] for r in su.rhos if r > 0}
        ok3[k] = check_transfer(f[("scratch", "T")], ft, fs, s0)
        parts.append(f"{_tag(*k)}: scratch {f[('scratch', 'T')].text()}; "
                     + "; ".join(f"rho {r:g}: finetune {ft[r].text()}, speedup "
                                 f"{fs[r].text()}" for r in ft)
                     + f"; rho 0 speedup {', '.join(fmt(v, 2) for v in s0)}"
                     + _verdict(ok3[k]))
    spm = tab[k0]["lengths"]["speedup"]
    sp_text = "; ".join(f"rho {r:g}: " + ", ".join(fmt(_med(spm[r][T]), 2) for T in Ts)
                        for r in su.rhos)
    rho_real = [_med(rs[f"T{Ts[0]}"].select(arm="finetune", rho=float(r))
                     .metric("corr_V")[:, 0]) for r in su.rhos]
    c2c = Claim("2c", "finetuning bypasses the T-dependent stage: \"finetuning a pretrained "
                "model bypasses the first stage and converges with only poly(N, Q) samples\"",
                "T-exponents of the samples to eps: " + "; ".join(parts)
                + f". Median per-seed speedup ({_tag(*k0)}) at T = {', '.join(map(str, Ts))}: "
                + sp_text + "; realised rho " + ", ".join(fmt(v, 2) for v in rho_real),
                f"for every rho >= {RHO_STRONG:g}: interval of the T-exponent of the "
                "finetuned samples to eps entirely below scratch's, and interval of the "
                "T-exponent of the per-seed speedup (scratch / finetune) above 0; at rho = 0 "
                "the median speedup <= 1 at every T; in every sub-case", all(ok3.values()))
    # 2b
    t_ref = tab[k0]["lengths"]
    sc = t_ref["T"][su.T_fix]["to_eps"]
    sb = {float(r): _med(sc) / _med(t_ref["ft"][r][su.T_fix]) for r in su.rhos}
    c2b = Claim("2b", "transfer benefit shrinks as rho -> 0",
                f"T = {su.T_fix}, {_tag(*k0)}: speedup (median scratch / median finetune "
                "samples to eps) " + ", ".join(f"rho {r:g}: {fmt(v, 3)}" for r, v in sb.items()),
                f"speedup(rho = 0) <= {SHRINK:g} x speedup(rho = {max(su.rhos):g})",
                check_shrink(sb))
    return [c1b, c1c, c2b, c2c]


# --- figures ------------------------------------------------------------------------------


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
    ax.plot(xs, y0 * xs / xs[0], ":", color="0.5", lw=0.9, label=label)


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
                label=f"{label}: b = {fit.text()}")


def figures(rs, su: Setup) -> dict:
    tab = _tables(rs, su)
    names = [n for n, _, _ in su.schedules]
    c, e = THRESHOLDS[0]
    # figure 1: dynamics at T_fix, first schedule
    a = rs[f"T{su.T_fix}"].select(sched=names[0], arm="scratch")
    x = a.samples_L
    L = tab[(names[0], 0)]["lengths"]["T"][su.T_fix]
    fig1, ax = plots.new_figure(1, 3, height=3.0)
    plots.band(ax[0, 0], x, a.metric("corr_V"), label="corr_V", color="C0")
    plots.band(ax[0, 0], x, a.metric("corr_A"), label="corr_A", color="C1")
    ax[0, 0].axhline(c, color="C0", ls=":", lw=0.8, label=f"corr_V = {c:g}")
    ax[0, 0].set_ylabel("correlation with ground truth")
    ax[0, 0].set_ylim(-0.05, 1.05)
    plots.band(ax[0, 1], x, a.metric("dist_V"), label="||V - P||_F", color="C2")
    plots.band(ax[0, 1], x, a.metric("dist_A"), label="||A - q||_F", color="C3")
    ax[0, 1].set_ylabel("distance to ground truth")
    ex = a.metric("excess_loss")
    plots.band(ax[0, 2], x, ex / ex[:, :1], label="excess loss / initial", color="C4",
               log_y=True)
    ax[0, 2].axhline(e, color="0.5", ls=":", lw=0.8, label=f"eps = {e:.0%} of initial")
    ax[0, 2].set_ylabel("excess loss / its initial value")
    for i in range(3):
        plots.mark_x(ax[0, i], _med(L["S1"]), label="end of stage 1 (median)")
        plots.mark_x(ax[0, i], _med(L["S1"]) + _med(L["S2"]), label="end of stage 2 (median)",
                     color="0.6")
        ax[0, i].set_xlabel("samples")
    hl = {}
    for i in range(3):
        for h, lab in zip(*ax[0, i].get_legend_handles_labels()):
            hl.setdefault(lab, h)
    fig1.legend(list(hl.values()), list(hl.keys()), loc="outside lower center", ncol=4)
    B0, lr0 = su.schedules[0][1], su.schedules[0][2]
    lam0 = float(a["settings/lam"][0, 0])
    fig1.suptitle(f"Two stages from the uniform start (ppd, $\\lambda$={lam0:.2g}; N={su.N}, "
                  f"T={su.T_fix}, Q={su.Q}; {len(a)} seeds; constant batch {B0}, lr {lr0:g})")

    # figure 2: stage lengths against T, N, Q; one row per schedule
    fig2, ax2 = plots.new_figure(len(names), 3, height=2.7 * len(names))
    for i, n in enumerate(names):
        t, f = tab[(n, 0)]["lengths"], tab[(n, 0)]["fits"]
        for jx, (sweep, lab) in enumerate((("T", "context length T"), ("N", "vocabulary N"),
                                           ("Q", "sparsity Q"))):
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
            fixed = {"T": f"N={su.N}, Q={su.Q}", "N": f"T={su.T_fix}, Q={su.Q}",
                     "Q": f"N={su.N}, T={su.T_fix}"}[sweep]
            B, lr = su.schedules[i][1], su.schedules[i][2]
            g.set_title(f"{n}: batch {B}, lr {lr:g}; {fixed}")
            if g.get_legend_handles_labels()[0]:
                g.legend(loc="best", fontsize=5)
        ax2[i, 0].set_ylabel("samples")
    fig2.suptitle(f"Stage lengths (stage 1: until corr_V >= {c:g}; stage 2: then until the "
                  f"excess loss <= {e:.0%} of its initial value)\nmedians over {su.seeds} "
                  "seeds, fitted exponents b with 95% bootstrap intervals")

    # figure 3: transfer against T
    fig3, ax3 = plots.new_figure(1, 3, height=4.4)
    Ts = sorted(su.Ts)
    cmap = plots.plt.get_cmap("viridis")
    R = len(su.rhos)
    at = rs[f"T{max(Ts)}"].select(sched=names[0])
    sc = at.select(arm="scratch")
    ex0 = dict(zip(sc.label("seed").tolist(), sc.metric("excess_loss")[:, 0]))
    plots.band(ax3[0, 0], sc.samples_L, sc.metric("excess_loss") / sc.metric("excess_loss")[:, :1],
               color="k", log_y=True, label="scratch")
    for j, r in enumerate(su.rhos):
        f = at.select(arm="finetune", rho=float(r))
        e0 = np.asarray([ex0[s] for s in f.label("seed").tolist()])[:, None]
        plots.band(ax3[0, 0], f.samples_L, f.metric("excess_loss") / e0,
                   color=cmap(j / max(R - 1, 1)), log_y=True, label=f"finetune rho={r:g}")
    ax3[0, 0].axhline(e, color="0.4", ls=":", lw=0.8, label="eps")
    ax3[0, 0].set_title(f"(a) T = {max(Ts)}, schedule {names[0]}")
    ax3[0, 0].set_xlabel("samples")
    ax3[0, 0].set_ylabel("excess loss / uniform start's")
    ax3[0, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=5, ncol=1)
    for i, n in enumerate(names):
        t, f = tab[(n, 0)]["lengths"], tab[(n, 0)]["fits"]
        fill = i == 0
        _scatter_fit(ax3[0, 1], Ts, [t["T"][T]["to_eps"] for T in Ts], f[("scratch", "T")],
                     "k", "s", f"{n} scratch", fill=fill)
        for j, r in enumerate(su.rhos):
            col = cmap(j / max(R - 1, 1))
            if r > 0:
                _scatter_fit(ax3[0, 1], Ts, [t["ft"][r][T] for T in Ts], f[("ft", r)], col,
                             "o", f"{n} rho={r:g}", fill=fill)
            med = [_med(t["speedup"][r][T]) for T in Ts]
            ax3[0, 2].plot(Ts, med, "o-" if fill else "o--", color=col, ms=3,
                           mfc=col if fill else "none",
                           label=f"{n} rho={r:g}: b = {f[('speedup', r)].text()}"
                           if r > 0 else f"{n} rho={r:g}")
    m0 = tab[(names[0], 0)]["fits"][("scratch", "T")].med
    if np.isfinite(m0[0]):
        _ref_line(ax3[0, 1], Ts, m0[0])
    for g in ax3[0, 1:]:
        _loglog(g)
        g.set_xlabel("context length T")
        if g.get_legend_handles_labels()[0]:
            g.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=5, ncol=1)
    ax3[0, 1].set_ylabel("samples to eps")
    ax3[0, 1].set_title(f"(b) samples to eps ({e:.0%} of start)")
    ax3[0, 2].axhline(1.0, color="0.5", lw=0.8)
    ax3[0, 2].set_ylabel("speedup (scratch / finetune)")
    ax3[0, 2].set_title("(c) median per-seed speedup")
    fig3.suptitle(f"Transfer against T (N={su.N}, Q={su.Q}; finetuned from V = P1, A uniform; "
                  f"{su.seeds} seeds)\nschedules {_sched_text(su)} (open markers, dashed: "
                  f"{names[-1]})")
    return {"fig1_two_stage": fig1, "fig2_stage_lengths": fig2, "fig3_transfer": fig3}


def observations(rs, su: Setup) -> dict:
    """Numbers for docs/findings.md, not claims: corr_V at half of stage 1 (the old 1a
    plateau), and the speedup at each T against a factor 3 (the old 2a)."""
    name = su.schedules[0][0]
    a = rs[f"T{su.T_fix}"].select(sched=name, arm="scratch")
    x, cv = a.samples_L, np.median(a.metric("corr_V"), 0)
    s1 = _med(stage_lengths(a.metric("corr_V"), a.metric("excess_loss"), a.samples,
                            *THRESHOLDS[0])["S1"])
    half = float(cv[np.flatnonzero(x <= s1 / 2)[-1]]) if math.isfinite(s1) else float("nan")
    ex = np.median(a.metric("excess_loss") / a.metric("excess_loss")[:, :1], 0)
    ex_s1 = float(ex[np.flatnonzero(x <= s1)[-1]]) if math.isfinite(s1) else float("nan")
    tab = _tables(rs, su)
    t = tab[(name, 0)]["lengths"]
    sp = {r: {T: _med(t["T"][T]["to_eps"]) / _med(t["ft"][r][T]) for T in sorted(su.Ts)}
          for r in su.rhos}
    floor = {}
    for T in sorted(su.Ts):
        ex_T = rs[f"T{T}"].select(sched=name, arm="scratch").metric("excess_loss")
        floor[T] = _med(ex_T[:, -1] / ex_T[:, 0])
    return {"S1": s1, "corr_V_at_half_S1": half, "final_corr_V": float(cv[-1]),
            "excess_at_S1": ex_s1, "speedup_of_medians": sp, "final_excess_rel": floor}
