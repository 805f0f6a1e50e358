"""Sample complexity in T, N and Q from scratch, and transfer against T (paper P3, P4; figures
1-3; claims 1b, 1c, 2b, 2c).

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
  time is then the same at every T). In --full they are log-spaced beyond the first ~43
  such intervals (``LOG_PER_DECADE`` per decade: consecutive points 2.3% apart, at every T):
  stage 1 ends within the linear part, and the later crossings (excess <= eps, which ends
  stage 2 and gives the samples to eps) are located to 2.3% of their time at every T.
- A run that never crosses within the horizon has length +inf (censored).
- Exponent of a length y against x (T, N or Q): least squares of log(median over seeds of y)
  on log x, one point per x; 95% interval by bootstrap over seeds (``base.fit_exponent``,
  ``base.N_BOOT`` resamples): the 2.5% and 97.5% percentiles of the refitted slopes. A
  resample with an infinite median (half its seeds censored) has no slope and counts as -inf
  for the lower end and +inf for the upper end: with more than 2.5% of such resamples the
  interval is unbounded and every claim that needs that end fails.
- Speedup of a seed at (T, rho) = its scratch samples to eps / its finetune samples to eps
  (paired: the same task and data); its exponent in T as above, on the per-seed speedups.

Claims (``check_*`` of ``_scaling_analysis``: pure functions of the fitted exponents; each
PASSes only if it holds under both schedules at both thresholds):
- ``1b`` stage 1 grows with T: the 95% interval of the T-exponent of S1 lies above 0.
- ``1c`` stage 2 does not grow like stage 1: the interval of S2's T-exponent lies below that
  of S1 (upper end < lower end), and S2 grows with N or Q (the interval of its N-exponent or
  of its Q-exponent lies above 0).
- ``2c`` transfer bypasses the T-dependent stage: at every rho >= ``RHO_STRONG`` the interval
  of the T-exponent of the finetuned samples to eps lies below that of the scratch samples to
  eps, and the interval of the speedup's T-exponent lies above 0; at rho = 0 the median
  speedup is <= 1 at every T.
- ``2b`` the benefit shrinks as rho -> 0: at T = ``Setup.T_fix``, first schedule, first
  threshold pair, speedup(rho = 0) <= ``SHRINK`` x speedup(largest rho) (speedup: median
  scratch / median finetune samples to eps).
The figures are drawn by ``_scaling_figures``. Measured numbers, observations that are not
claims, the pilot runs that sized the schedules and what was tried: docs/findings.md.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from scbjax.core import keys
from scbjax.core.model import Params, uniform_params
from scbjax.core.task import TaskConfig, make_task
from scbjax.core.transfer import correlated_P, finetune_params
from scbjax.engine.spec import FINAL_SMALL, RunSpec, run
from scbjax.optim import l1
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import _scaling_figures as figs
from scbjax.studies._scaling_analysis import (RHO_STRONG, SHRINK, check_shrink, check_stage1,
                                              check_stage2, check_transfer, speedups,
                                              stage_lengths)
from scbjax.studies.base import Claim, fit_exponent, fmt, median

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
ORDER = 1  # first in the reproduction

# The method of every run: ppd options; the l1 weight is the studies' default
# (``scbjax.l1.default_lam`` at each schedule's batch and rate, from step 0).
METHOD = dict(optimizer="ppd", mu="true", projection_V="affine", projection_A="affine",
              order="prox_project", prox="soft")
# (corr_V that ends stage 1, eps as a fraction of the initial excess loss): two pairs.
THRESHOLDS = ((0.5, 0.10), (0.7, 0.20))
RHOS = (0.0, 0.5, 0.9)  # correlation of the pretraining task with the downstream task
PRE_FOLD = 1  # pretraining task key: fold_in(PRNGKey(seed), PRE_FOLD)
SCRATCH_RHO = -1.0  # the rho label of a scratch run (no pretrained model)
LOG_PER_DECADE = 100  # --full: log points per decade of steps beyond the first 43 intervals


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
    log_per_decade: int = 0  # 0: a log point every log interval; K: log-spaced (K per decade)


MODES = {
    "tiny": Setup(Ts=(8, 16), N=4, Q=2, T_fix=8, Ns=(3, 4), Qs=(1, 2), seeds=2,
                  schedules=(("A", 16, 0.02), ("B", 32, 0.02)), steps=60, rhos=(0.0, 0.9)),
    "quick": Setup(Ts=(16, 32, 64, 128, 256), N=8, Q=2, T_fix=64, Ns=(4, 8, 16),
                   Qs=(1, 2, 4, 8), seeds=8, schedules=(("A", 32, 0.008), ("B", 64, 0.008)),
                   steps=6000),
    # the same lr / B x max(T) as quick
    "full": Setup(Ts=(64, 128, 256, 512, 1024, 2048), N=8, Q=2, T_fix=256,
                  Ns=(4, 8, 16, 32), Qs=(1, 2, 4, 8, 16), seeds=32,
                  schedules=(("A", 64, 0.002), ("B", 128, 0.002)), steps=32000,
                  log_per_decade=LOG_PER_DECADE),
}


def log_every(N: int, T: int, batch: int) -> int:
    """Log interval in steps: T N / (4 batch), so that a log interval is a fixed fraction of a
    stage 1 that grows like T at every T."""
    return max(1, (T * N) // (4 * batch))


def _config(su: Setup, N: int, T: int, Q: int) -> TrainConfig:
    B = max(b for _, b, _ in su.schedules)
    lr = su.schedules[0][2]
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=Q),
                       phases=(Phase(steps=su.steps, batch=B, lr_V=lr, lr_A=lr),),
                       log_every=log_every(N, T, su.schedules[0][1]),
                       log_per_decade=su.log_per_decade, **METHOD)


def _runs(su: Setup, transfer: bool, task: TaskConfig) -> tuple:
    """Scratch runs (and finetuned runs, if ``transfer``) for every schedule and seed; lambda
    is the default l1 weight at the schedule's batch and rate."""
    arms = [("scratch", SCRATCH_RHO)] + ([("finetune", float(r)) for r in su.rhos]
                                         if transfer else [])
    return tuple(run(s, {"sched": name, "arm": arm, "rho": rho, "seed": s}, lr=lr, batch=B,
                     lam=l1.default_lam(task, B, lr))
                 for name, B, lr in su.schedules for arm, rho in arms
                 for s in range(su.seeds))


def spec_name(sweep: str, x: int) -> str:
    """The spec of one value x of a sweep ("T", "N" or "Q"): "T<T>", "N<N>" or "Q<Q>"."""
    return f"{sweep}{x}"


def runs(su: Setup) -> dict[str, RunSpec]:
    """``T<T>`` (scratch + finetuned), ``N<N>`` and ``Q<Q>`` (scratch) specs; the analysis
    reads metrics only, so the T-sized final A and q are not stored (``FINAL_SMALL``)."""
    specs = {}
    for T in su.Ts:
        cfg = _config(su, su.N, T, su.Q)
        rr = _runs(su, True, cfg.task)
        specs[spec_name("T", T)] = RunSpec(cfg, rr, keep=FINAL_SMALL,
                                           params0=functools.partial(_starts, su.N, T, su.Q, rr))
    for N in su.Ns:
        if N != su.N:
            cfg = _config(su, N, su.T_fix, su.Q)
            specs[spec_name("N", N)] = RunSpec(cfg, _runs(su, False, cfg.task), keep=FINAL_SMALL)
    for Q in su.Qs:
        if Q != su.Q:
            cfg = _config(su, su.N, su.T_fix, Q)
            specs[spec_name("Q", Q)] = RunSpec(cfg, _runs(su, False, cfg.task), keep=FINAL_SMALL)
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
    """Starting parameters per run: uniform (scratch), or ``finetune_params`` of the
    pretrained model (P1, q1): V = P1, A uniform (finetune)."""
    u = uniform_params(N, T)
    R = len(rr)
    V = np.broadcast_to(np.asarray(u.V), (R, N, N)).copy()
    A = np.broadcast_to(np.asarray(u.A), (R, T, N)).copy()
    ft = [i for i, r in enumerate(rr) if r.label_dict["arm"] == "finetune"]
    if ft:
        seeds = np.asarray([rr[i].seed for i in ft], np.uint32)
        rhos = np.asarray([rr[i].label_dict["rho"] for i in ft], np.float32)
        # the pretrained A (q1) is not needed: finetune_params resets it to uniform
        start = finetune_params(Params(V=_pretrained_P(seeds, rhos, N), A=A[ft]))
        V[ft], A[ft] = np.asarray(start.V), np.asarray(start.A)
    return Params(V=V, A=A)


# --- analysis of the loaded runs ----------------------------------------------------------


def _tables(rs, su: Setup) -> dict:
    """Per (schedule, threshold index): lengths per sweep value [seeds] and fits."""
    out = {}
    for name, _, _ in su.schedules:
        for j, (c, e) in enumerate(THRESHOLDS):
            t = {"T": {}, "N": {}, "Q": {}, "ft": {r: {} for r in su.rhos}}
            for T in su.Ts:
                a = rs[spec_name("T", T)].select(sched=name)
                sc = a.select(arm="scratch")
                L = stage_lengths(sc.metric("corr_V"), sc.metric("excess_loss"), sc.samples, c, e)
                t["T"][T] = L
                ex0 = dict(zip(sc.label("seed").tolist(), sc.metric("excess_loss")[:, 0]))
                for r in su.rhos:
                    f = a.select(arm="finetune", rho=float(r))
                    e0 = np.asarray([ex0[s] for s in f.label("seed").tolist()])
                    t["ft"][r][T] = stage_lengths(f.metric("corr_V"), f.metric("excess_loss"),
                                                  f.samples, c, e, ex0_R=e0)["to_eps"]
            for sweep, vals in (("N", su.Ns), ("Q", su.Qs)):
                centre = su.N if sweep == "N" else su.Q
                for v in vals:
                    sc = (rs[spec_name("T", su.T_fix)].select(sched=name, arm="scratch")
                          if v == centre else rs[spec_name(sweep, v)].select(sched=name))
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
          + ", ".join(fmt(median(t0[T]["S1"])) for T in Ts)
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
          + ", ".join(fmt(median(t0[T]["S2"])) for T in Ts) + f"; censored S2: {cens2}")
    c1c = Claim("1c", "stage 2 does not grow like stage 1 and grows with N or Q: \"then a more "
                "sample-efficient stage reaches final convergence with poly(N, Q) samples\"",
                m2, "interval of the T-exponent b2 of the stage-2 length S2 entirely below that "
                f"of b1, and the interval of S2's N- or Q-exponent (at T = {su.T_fix}) above 0, "
                "in every sub-case", all(ok2.values()))
    # 2c
    ok3, parts = {}, []
    for k in keys:
        f, sp = tab[k]["fits"], tab[k]["lengths"]["speedup"]
        s0 = [median(sp[0.0][T]) for T in Ts] if 0.0 in sp else []
        ft = {r: f[("ft", r)] for r in su.rhos if r > 0}
        fs = {r: f[("speedup", r)] for r in su.rhos if r > 0}
        ok3[k] = check_transfer(f[("scratch", "T")], ft, fs, s0)
        parts.append(f"{_tag(*k)}: scratch {f[('scratch', 'T')].text()}; "
                     + "; ".join(f"rho {r:g}: finetune {ft[r].text()}, speedup "
                                 f"{fs[r].text()}" for r in ft)
                     + f"; rho 0 speedup {', '.join(fmt(v, 2) for v in s0)}"
                     + _verdict(ok3[k]))
    spm = tab[k0]["lengths"]["speedup"]
    sp_text = "; ".join(f"rho {r:g}: " + ", ".join(fmt(median(spm[r][T]), 2) for T in Ts)
                        for r in su.rhos)
    rho_real = [median(rs[spec_name("T", Ts[0])].select(arm="finetune", rho=float(r))
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
    sb = {float(r): median(sc) / median(t_ref["ft"][r][su.T_fix]) for r in su.rhos}
    c2b = Claim("2b", "transfer benefit shrinks as rho -> 0",
                f"T = {su.T_fix}, {_tag(*k0)}: speedup (median scratch / median finetune "
                "samples to eps) " + ", ".join(f"rho {r:g}: {fmt(v, 3)}" for r, v in sb.items()),
                f"speedup(rho = 0) <= {SHRINK:g} x speedup(rho = {max(su.rhos):g})",
                check_shrink(sb))
    return [c1b, c1c, c2b, c2c]


# --- figures ------------------------------------------------------------------------------


def figures(rs, su: Setup) -> dict:
    """Figures 1-3 (``_scaling_figures``) at the first threshold pair."""
    tab = _tables(rs, su)
    first = su.schedules[0][0]
    return {
        "fig1_two_stage": figs.fig_two_stage(
            rs[spec_name("T", su.T_fix)].select(sched=first, arm="scratch"),
            tab[(first, 0)]["lengths"]["T"][su.T_fix], su, THRESHOLDS[0]),
        "fig2_stage_lengths": figs.fig_stage_lengths(tab, su, THRESHOLDS[0]),
        "fig3_transfer": figs.fig_transfer(
            rs[spec_name("T", max(su.Ts))].select(sched=first), tab, su, THRESHOLDS[0][1]),
    }
