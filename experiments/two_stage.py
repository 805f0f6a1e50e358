"""Two stages from scratch (paper claim 3; spec figures 1 and 2).

The paper's method ``ppd`` (true mu, affine projection, prox then project) from the uniform start,
at several context lengths T with the same N, Q and hyperparameter schedule (one compiled call
per T, all seeds vmapped). Each seed has its own task instance.

Definitions [recon], fixed before measuring (module constants):
- stage 1 (``S1``): samples until corr_V first reaches ``CORR_THR`` = 0.5
  (``scbjax.metrics.stage1_length``);
- eps: ``EPS_REL`` = 2% of the initial excess population loss of the uniform start on that seed's
  task; stage 2 (``S2``): samples from the end of stage 1 until the excess loss first falls
  to <= eps (first log point at or after the stage-1 log point);
- exponents: least squares of log(length) = a + b log(T) over all per-seed points that reached
  the threshold; 95% t-interval of b from the regression (n - 2 degrees of freedom).
Schedule [recon choice, documented]: two phases, identical for every T. Phase 1 (small batch
B = 8) resolves stage 1 with log points every 16 samples (2.5% of the shortest stage 1);
phase 2 (batch 512) has a noise floor below eps at every T. The switch lies at a fixed sample
count (16000) after the last stage-1 end of every seed (checked and reported in claim 1b), so
stage 2 = (rest of phase 1, < 16000 samples) + phase-2 time (quick mode: median stage 2 of
1.4e5 to 2.3e5 samples). One phase
was tried first (same N, Q, lambda 0 to 0.3): at batch 8 (lr 0.01 to 0.05) the excess loss
stalls at 8-22% of its initial value (growing with T), at batch 64 (lr 0.01 / 0.03) at 2.6-12.5%,
at batch 256 (lr 0.03, 1500 steps) at 1.35-5% at T = 256, so eps = 2% is out of reach at the
largest T within the quick budget, while a large batch from the start leaves stage 1 (about
700 samples at T = 32) only a few steps long. Observed: in the population dynamics corr_V is 1
after one step (the first preconditioned V-gradient is exactly P C_N), so the rise of corr_V in
stage 1 is a sampling effect (signal growing against the averaged gradient noise), while the
excess loss shows the plateau.
Claims:
- ``1a`` at ``fig_T``: median-over-seeds corr_V at the last log point <= S1/2 (S1 = median
  stage-1 length) is <= 0.2, and the final median corr_V >= 0.9;
- ``1b`` lower end of the 95% CI of the stage-1 exponent b1 > 0;
- ``1c`` stage-2 exponent b2 <= 0.5 * b1, and every T has >= 8 seeds reaching eps.
"""

from __future__ import annotations

import dataclasses
import math
import numpy as np

from scbjax import plots
from scbjax.metrics import stage1_length
from scbjax.reproduce import Claim, fmt
from scbjax.runs import RunSpec, grid
from scbjax.task import TaskConfig
from scbjax.train import Phase, TrainConfig

TITLE = "Two stages from scratch: a T-dependent plateau, then a fast second stage"
FIGURES = {
    "fig1_two_stage": "Training from the uniform start with the paper's method: corr_V, corr_A, "
                      "distances to (P, q) and excess population loss against samples (median "
                      "and 10-90% band over seeds), the median end of stage 1 marked.",
    "fig2_stage_lengths": "Stage-1 length (samples until corr_V >= 0.5) and stage-2 length "
                          "(samples from there until the excess loss is <= 2% of its initial "
                          "value) against T on log-log axes, per seed and median, with "
                          "least-squares exponents.",
}
CORR_THR = 0.5  # stage 1 ends when corr_V first reaches this
EPS_REL = 0.02  # eps = 2% of the initial excess population loss (per seed)
MIN_SEEDS = 8  # claim 1c: every T needs this many seeds reaching eps
PLATEAU_MAX = 0.2  # claim 1a: median corr_V at S1/2 must be <= this
FINAL_MIN = 0.9  # claim 1a: final median corr_V must be >= this


@dataclasses.dataclass(frozen=True)
class Settings:
    N: int = 8
    Q: int = 2
    Ts: tuple[int, ...] = (32, 64, 128, 256)
    fig_T: int = 128
    seeds: int = 8
    # phases (steps, batch, lr, lambda), identical for every T: a small batch that resolves
    # stage 1, then a large batch whose noise floor lies well below eps
    phases: tuple[tuple[int, int, float, float], ...] = ((2000, 8, 0.01, 0.03),
                                                         (2500, 512, 0.03, 0.03))
    log_every: int = 2


MODES = {
    "tiny": Settings(N=4, Ts=(8, 16), fig_T=16, seeds=2, phases=((60, 8, 0.05, 0.03),),
                     log_every=4),
    "quick": Settings(),
    "full": Settings(Ts=(32, 64, 128, 256, 512, 1024), fig_T=256, seeds=32,
                     phases=((8000, 8, 0.01, 0.03), (4000, 1024, 0.03, 0.03))),
}


def _config(st: Settings, T: int) -> TrainConfig:
    return TrainConfig(task=TaskConfig(N=st.N, T=T, Q=st.Q),
                       phases=tuple(Phase(steps=n, batch=B, lr_V=lr, lr_A=lr, lam=lam)
                                    for n, B, lr, lam in st.phases),
                       log_every=st.log_every)


def _hp_text(st: Settings) -> str:
    return "; ".join(f"{n} steps B={B} lr={lr} lambda={lam}" for n, B, lr, lam in st.phases)


def runs(st: Settings) -> dict[str, RunSpec]:
    """One spec per T ("T<T>"), the same seeds and schedule."""
    return {f"T{T}": RunSpec(_config(st, T), grid(range(st.seeds), {"T": T})) for T in st.Ts}


# --- analysis (saved results only) ------------------------------------------------------------


def stage_lengths(a) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed (stage-1, stage-2) lengths in samples; nan where the threshold is never reached."""
    x = a.samples_L
    cv, ex = a["metrics/corr_V"], a["metrics/excess_loss"]
    s1, s2 = np.full(cv.shape[0], np.nan), np.full(cv.shape[0], np.nan)
    for i in range(cv.shape[0]):
        s1[i] = stage1_length(cv[i], x, CORR_THR)
        if not np.isfinite(s1[i]):
            continue
        i1 = int(np.searchsorted(x, s1[i]))
        hit = np.flatnonzero(ex[i, i1:] <= EPS_REL * ex[i, 0])
        if hit.size:
            s2[i] = x[i1 + hit[0]] - s1[i]
    return s1, s2


def _t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t (numerical integration of the density; no scipy)."""
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    t = np.linspace(0.0, 60.0, 600001)
    f = c * (1 + t * t / df) ** (-(df + 1) / 2)
    cdf = 0.5 + np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(t))])
    return float(np.interp(p, cdf, t))


def fit_exponent(T_n: np.ndarray, y_n: np.ndarray) -> dict:
    """log y = a + b log T by least squares over the finite, positive points; 95% t-CI of b."""
    ok = np.isfinite(y_n) & (y_n > 0)
    X, Y = np.log(T_n[ok]), np.log(y_n[ok])
    n = int(ok.sum())
    if n < 3 or np.unique(X).size < 2:
        return {"a": np.nan, "b": np.nan, "lo": np.nan, "hi": np.nan, "n": n}
    Sxx = np.sum((X - X.mean()) ** 2)
    b = float(np.sum((X - X.mean()) * (Y - Y.mean())) / Sxx)
    a = float(Y.mean() - b * X.mean())
    s2 = np.sum((Y - a - b * X) ** 2) / (n - 2)
    h = _t_quantile(0.975, n - 2) * math.sqrt(s2 / Sxx)
    return {"a": a, "b": b, "lo": b - h, "hi": b + h, "n": n}


def _analyse(rs, st: Settings) -> dict:
    runs = {T: rs[f"T{T}"] for T in st.Ts}
    Ts = np.asarray(sorted(runs))
    L = {T: stage_lengths(runs[T]) for T in Ts}
    T_n = np.concatenate([np.full(L[T][0].size, T) for T in Ts]).astype(float)
    f1 = fit_exponent(T_n, np.concatenate([L[T][0] for T in Ts]))
    f2 = fit_exponent(T_n, np.concatenate([L[T][1] for T in Ts]))
    return {"runs": runs, "Ts": Ts, "L": L, "f1": f1, "f2": f2}


def figures(rs, st: Settings) -> dict:
    r = _analyse(rs, st)
    runs = r["runs"]
    a = runs[st.fig_T]
    x = a.samples_L
    s1_med = float(np.nanmedian(r["L"][st.fig_T][0])) if np.isfinite(r["L"][st.fig_T][0]).any() \
        else np.nan
    fig1, ax = plots.new_figure(1, 3, height=3.0)
    plots.band(ax[0, 0], x, a["metrics/corr_V"], label="corr_V", color="C0")
    plots.band(ax[0, 0], x, a["metrics/corr_A"], label="corr_A", color="C1")
    ax[0, 0].set_ylabel("correlation with ground truth")
    ax[0, 0].set_ylim(-0.05, 1.05)
    plots.band(ax[0, 1], x, a["metrics/dist_V"], label="||V - P||_F", color="C2")
    plots.band(ax[0, 1], x, a["metrics/dist_A"], label="||A - q||_F", color="C3")
    ax[0, 1].set_ylabel("distance to ground truth")
    ex = a["metrics/excess_loss"]
    plots.band(ax[0, 2], x, ex, label="excess loss", color="C4", log_y=True)
    ax[0, 2].axhline(EPS_REL * float(np.median(ex[:, 0])), color="0.5", linestyle=":",
                     linewidth=0.8, label=f"eps = {EPS_REL:.0%} of initial (median)")
    ax[0, 2].set_ylabel("excess population loss")
    for i in range(3):
        plots.mark_x(ax[0, i], s1_med, label="end of stage 1 (median)")
        if len(st.phases) > 1:
            plots.mark_x(ax[0, i], st.phases[0][0] * st.phases[0][1], color="0.7",
                         label="batch switch")
        ax[0, i].set_xlabel("samples")
    hl = {}
    for i in range(3):
        for h, lab in zip(*ax[0, i].get_legend_handles_labels()):
            hl.setdefault(lab, h)
    fig1.legend(list(hl.values()), list(hl.keys()), loc="outside lower center", ncol=4)
    fig1.suptitle(f"Two-stage dynamics from the uniform start (ppd; N={st.N}, T={st.fig_T}, "
                  f"Q={st.Q}; {len(a)} seeds)\n{_hp_text(st)}")

    fig2, ax2 = plots.new_figure(1, 1, width=plots.COLUMN_W, height=2.8)
    g = ax2[0, 0]
    Ts = r["Ts"]
    for k, (name, f, c, m) in enumerate((("stage 1", r["f1"], "C0", "o"),
                                         ("stage 2", r["f2"], "C3", "s"))):
        y = [r["L"][T][k] for T in Ts]
        for T, yT in zip(Ts, y):
            jit = T * np.exp(0.04 * (np.arange(yT.size) - yT.size / 2) / max(yT.size, 1))
            g.scatter(jit, yT, s=6, color=c, alpha=0.35, linewidths=0)
        med = [np.nanmedian(yT) if np.isfinite(yT).any() else np.nan for yT in y]
        g.plot(Ts, med, m, color=c, markersize=4, label=f"{name}: median over seeds")
        if np.isfinite(f["b"]):
            tt = np.geomspace(Ts.min(), Ts.max(), 50)
            g.plot(tt, np.exp(f["a"]) * tt ** f["b"], "-", color=c,
                   label=f"{name} fit: b = {f['b']:.2f} [{f['lo']:.2f}, {f['hi']:.2f}]")
    g.set_xscale("log", base=2)
    g.set_yscale("log")
    g.set_xlabel("context length T")
    g.set_ylabel("samples")
    g.set_title(f"Stage lengths against T (N={st.N}, Q={st.Q})\n{_hp_text(st)}")
    g.legend(loc="best")
    return {"fig1_two_stage": fig1, "fig2_stage_lengths": fig2}


def claims(rs, st: Settings) -> list[Claim]:
    r = _analyse(rs, st)
    Ts, L = r["Ts"], r["L"]
    # 1a
    a = r["runs"][st.fig_T]
    x, cv = a.samples_L, np.median(a["metrics/corr_V"], 0)
    s1 = L[st.fig_T][0]
    S1 = float(np.nanmedian(s1)) if np.isfinite(s1).any() else np.nan
    if np.isfinite(S1):
        idx = np.flatnonzero(x <= S1 / 2)[-1]
        c_half = float(cv[idx])
    else:
        c_half = np.nan
    ex = np.median(a["metrics/excess_loss"] / a["metrics/excess_loss"][:, :1], 0)
    ex_S1 = float(ex[np.flatnonzero(x <= S1)[-1]]) if np.isfinite(S1) else np.nan
    ok_a = bool(np.isfinite(c_half) and c_half <= PLATEAU_MAX and cv[-1] >= FINAL_MIN)
    c1a = Claim("1a", "two stages: plateau, then rise (T = %d)" % st.fig_T,
                f"S1 = {fmt(S1)} samples; median corr_V at S1/2 = {fmt(c_half)}, "
                f"final = {fmt(float(cv[-1]))} (context: median excess loss at S1 = "
                f"{fmt(100 * ex_S1)}% of initial)",
                f"median corr_V at the last log point <= S1/2 is <= {PLATEAU_MAX} and final "
                f"median corr_V >= {FINAL_MIN}", ok_a)
    # 1b
    f1, f2 = r["f1"], r["f2"]
    miss1 = {int(T): int(np.isnan(L[T][0]).sum()) for T in Ts}
    n_ph1 = st.phases[0][0] * st.phases[0][1]  # samples in the first (small-batch) phase
    late = sum(int(np.sum(L[T][0] > n_ph1)) for T in Ts)
    meds1 = ", ".join(f"T={T}: {fmt(float(np.nanmedian(L[T][0])))}" for T in Ts
                      if np.isfinite(L[T][0]).any())
    c1b = Claim("1b", "two stages: stage-1 length grows with T",
                f"b1 = {fmt(f1['b'])}, 95% CI [{fmt(f1['lo'])}, {fmt(f1['hi'])}] "
                f"(n = {f1['n']}); median S1: {meds1}; seeds never reaching corr_V >= "
                f"{CORR_THR}: {sum(miss1.values())} ({miss1}); stage 1 ending after the first "
                f"phase ({n_ph1} samples): {late}",
                "lower end of the 95% t-interval (regression over per-seed points) of b1 > 0",
                bool(np.isfinite(f1["lo"]) and f1["lo"] > 0))
    # 1c
    n2 = {int(T): int(np.isfinite(L[T][1]).sum()) for T in Ts}
    enough = all(v >= MIN_SEEDS for v in n2.values())
    meds2 = ", ".join(f"T={T}: {fmt(float(np.nanmedian(L[T][1])))}" for T in Ts
                      if np.isfinite(L[T][1]).any())
    c1c = Claim("1c", "two stages: stage 2 grows far less with T",
                f"b2 = {fmt(f2['b'])}, 95% CI [{fmt(f2['lo'])}, {fmt(f2['hi'])}] vs "
                f"0.5 * b1 = {fmt(0.5 * f1['b'])}; median S2: {meds2}; seeds reaching eps "
                f"per T: {n2}",
                f"b2 <= 0.5 * b1 and every T has >= {MIN_SEEDS} seeds reaching eps "
                f"({EPS_REL:.0%} of the initial excess loss)",
                bool(enough and np.isfinite(f2["b"]) and np.isfinite(f1["b"])
                     and f2["b"] <= 0.5 * f1["b"]))
    return [c1a, c1b, c1c]
