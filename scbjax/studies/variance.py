"""The small-batch claim (paper P5; figure 8; claims 6a-6d): without the l1 step the error of A
grows with T and with more training, with it it does not.

The paper's sentence: "We empirically verify that our gradient-based methods converge to the
ground truth with a small batch size, while unregularized stochastic gradient descent fails due
to the large variance"; after the first stage the method converges "with poly(N, Q) samples".

Runs, at batch ``Setup.batch`` (8), every T of ``Setup.Ts`` and both budgets of
``Setup.samples`` (the larger 4x the smaller); every arm of a (T, budget) sees the same tasks and
samples (seeds ``Setup.seeds``: the data stream of step t is ``fold_in(data_key, t)``):
- ``ppd``: ppd without the l1 step (lambda = 0), on ``vs_sgd``'s small-batch schedule (three
  phases, ``base.FRACTIONS`` of the steps, rate ``vs_sgd.PPD_LR`` x ``base.LR_DECAY``, the
  rate scaled by B / 8 at a larger batch, at most ``LR_MAX``), soft prox, affine projections;
- ``ppd_l1``: the same with the l1 step after the first phase, lambda = ``l1.lam_for`` of the
  phase's step size (the variance rule, docs/spec.md; its constant chosen on tuning seeds);
- ``sgd_const``: unregularized SGD at a constant rate, every rate of ``SGD_LRS``;
- ``sgd_decay``: unregularized SGD with ppd's decay from every rate of ``SGD_DECAY_LRS``
  (both ``base.sgd_grid``).
SGD arms are reported at their best rate, chosen per distance, T and budget (median over seeds).
Controls: ``ppd``/``ppd_l1`` at ``Setup.batch_ctrl`` (64) at ``Setup.ctrl_Ts`` (the larger
budget only); and at one more (N, Q, T) (``Setup.extra``) at batch 8.

Metrics per run: final rel. distances of V and A, off-support mass, and samples until
rel dist_A <= eps for each eps of ``EPS`` (+inf when never: censored, counted in the table).
T-exponents by ``base.fit_exponent`` (log median against log T, bootstrap over seeds).

Claims (criteria fixed before measuring; docs/claims.md):
- ``6a`` variance: at B = 8 and the larger budget, every unregularized arm's T-exponent of the
  final rel dist_A has its interval above 0, and at the largest T its median does not fall
  with 4x the samples (large >= small); the l1 arm's interval lies below each of theirs.
- ``6b`` small batch: at B = 8 and every T >= ``Setup.T_large`` (256), the l1 arm's median
  final rel dist_A and rel dist_V (larger budget) are below every unregularized arm's, and its
  rel dist_A falls from the smaller budget to the larger.
- ``6c`` default: ``l1.DEFAULT`` agrees with the decision rule ``decide_default`` on this run.
- ``6d`` another (N, Q): at ``Setup.extra``, ppd's median rel dist_A does not fall with 4x the
  samples and the l1 arm ends below it at both budgets.
Measured numbers, the tuning table and what was tried: docs/findings.md.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from scbjax.core.task import TaskConfig
from scbjax.engine.executor import Log, execute, load
from scbjax.engine.outdir import stored_mode
from scbjax.engine.spec import FINAL_SMALL, RunSpec, grid
from scbjax.optim import l1
from scbjax.sim.train import Phase, TrainConfig
from scbjax.studies import _variance_figures as figs
from scbjax.studies import vs_sgd
from scbjax.studies._variance_tables import (ARMS, EPS, V_SLACK, check_extra, check_small_batch,
                                             check_variance, decide_default, format_exponents,
                                             format_table, row)
from scbjax.studies.base import (CONSTANT, LR_DECAY, Claim, finals, first_crossing,
                                 fit_exponent, fmt, fmt_samples, median, phase_steps, sgd_grid)

TITLE = "Small batch: the l1 step against the variance that grows with T"
FIGURES = {
    "fig8_variance": "At batch 8: final relative distances of A and V against T for each arm "
                     "and budget (median and quartiles over seeds, log-log, fitted lines), and "
                     "at the largest T the distances against samples for every arm.",
}
ORDER = 6  # last

PPD_METHOD = dict(vs_sgd.PPD_METHOD, prox="soft")
SGD_LRS = (0.003, 0.01, 0.03)
SGD_DECAY_LRS = (0.01, 0.03, 0.1)
LR_MAX = 0.1
METRICS = ("rel_dist_A", "rel_dist_V", "off_support_mass")
C_GRID = (0.0, 0.0625, 0.125, 0.25, 0.5, 1.0, 2.0)  # tuning: the rule constant (0: lambda 0)


@dataclasses.dataclass(frozen=True)
class Setup:
    N: int
    Q: int
    Ts: tuple[int, ...]
    samples: tuple[int, int]  # the two budgets (samples per run), the larger >= 4x
    seeds: int  # ppd arms
    sgd_seeds: int  # each SGD rate
    extra: tuple[int, int, int]  # (N, Q, T) of the second setting
    ctrl_seeds: int | None = None  # the controls (batch 64, the extra setting); None: seeds
    ctrl_Ts: tuple[int, ...] = ()  # the batch-64 control's T values
    T_large: int = 256  # claim 6b: every T >= this
    batch: int = 8
    batch_ctrl: int = 64
    seed0: int = 0  # seeds seed0 .. seed0 + seeds - 1
    n_logs: int = 32
    C: float | None = None  # the rule's constant (None: l1.RULE_C)
    tune: bool = False  # tuning layout: ppd at every C of C_GRID, no SGD, no controls


MODES = {
    "tiny": Setup(N=4, Q=2, Ts=(8, 16), samples=(800, 3200), seeds=2, sgd_seeds=2,
                  extra=(5, 1, 16), T_large=16, n_logs=8),
    "quick": Setup(N=10, Q=2, Ts=(64, 256, 1024), samples=(160_000, 640_000), seeds=6,
                   sgd_seeds=3, ctrl_seeds=4, extra=(16, 4, 512), ctrl_Ts=(64, 256, 1024)),
    "full": Setup(N=10, Q=2, Ts=(64, 256, 1024, 4096), samples=(320_000, 1_280_000),
                  seeds=16, sgd_seeds=8, extra=(16, 4, 4096), ctrl_Ts=(64, 256, 1024, 4096)),
}
# The tuning runs (python -m scbjax.studies.variance tune OUT): seeds disjoint from every
# mode's (their tasks too: a task is a function of its seed).
TUNE = Setup(N=10, Q=2, Ts=(256, 1024), samples=(160_000, 640_000), seeds=4, sgd_seeds=0,
             extra=(10, 2, 1024), seed0=l1.TUNE_SEED, tune=True)


def lr_at(B: int) -> float:
    """ppd's initial rate at batch B: ``vs_sgd.PPD_LR`` x B / 8, at most ``LR_MAX``."""
    return min(vs_sgd.PPD_LR * B / 8, LR_MAX)


def rate(su: Setup, B: int) -> float:
    """The initial rate of a run at batch B: the batch-64 control keeps batch 8's rate (its
    per-step gradient variance is 8x smaller, its steps 8x fewer at equal samples)."""
    return lr_at(su.batch)


def config(su: Setup, N: int, Q: int, T: int, B: int, samples: int, opt: str) -> TrainConfig:
    """The config of optimizer ``opt`` ("ppd" or "sgd") at one setting and budget: the
    small-batch schedule (``base.phase_steps``) over ``samples // B`` steps."""
    steps = phase_steps(samples // B)
    lr = rate(su, B)
    phases = tuple(Phase(steps=k, batch=B, lr_V=lr * d, lr_A=lr * d)
                   for k, d in zip(steps, LR_DECAY))
    method = PPD_METHOD if opt == "ppd" else {"optimizer": "sgd"}
    return TrainConfig(task=TaskConfig(N=N, T=T, Q=Q), phases=phases,
                       log_every=max(1, sum(steps) // su.n_logs), **method)


def rule_lams(cfg: TrainConfig, C: float | None = None) -> tuple[float, ...]:
    """lambda per phase: 0 in the first, the rule at each later phase's step size."""
    C = l1.RULE_C if C is None else C
    return (0.0,) + tuple(l1.lam_for(cfg.task, p.batch, p.lr_A, C) for p in cfg.phases[1:])


def name(opt: str, N: int, Q: int, T: int, B: int, samples: int) -> str:
    """The spec of optimizer ``opt`` ("ppd" or "sgd") at one setting and budget."""
    return f"{opt}_N{N}_Q{Q}_T{T}_B{B}_n{samples}"


def _seeds(su: Setup, n: int) -> range:
    return range(su.seed0, su.seed0 + n)


def _ppd_runs(su: Setup, cfg: TrainConfig, control: bool) -> tuple:
    if su.tune:
        out = ()
        for C in C_GRID:
            out += grid(_seeds(su, su.seeds), {"arm": "ppd_l1", "C": C}, lam=rule_lams(cfg, C))
        return out
    n = su.seeds if not control or su.ctrl_seeds is None else su.ctrl_seeds
    return (grid(_seeds(su, n), {"arm": "ppd"}, lam=0.0)
            + grid(_seeds(su, n), {"arm": "ppd_l1"}, lam=rule_lams(cfg, su.C)))


def _sgd_runs(su: Setup) -> tuple:
    return sgd_grid(_seeds(su, su.sgd_seeds), "arm", (("sgd_const", SGD_LRS, CONSTANT),
                                                     ("sgd_decay", SGD_DECAY_LRS, LR_DECAY)),
                    lam=0.0)


def settings(su: Setup) -> list[tuple[int, int, int, int]]:
    """(N, Q, T, B) of every setting: the T sweep at batch 8, the controls, the extra."""
    out = [(su.N, su.Q, T, su.batch) for T in su.Ts]
    if not su.tune:
        out += [(su.N, su.Q, T, su.batch_ctrl) for T in su.ctrl_Ts]
        out.append((*su.extra, su.batch))
    return out


def budgets(su: Setup, B: int) -> tuple[int, ...]:
    """Both budgets at batch 8; the larger only for the batch-64 control."""
    return su.samples if B == su.batch else su.samples[-1:]


def runs(su: Setup) -> dict[str, RunSpec]:
    """One spec per arm, setting and budget; the analysis reads metrics only, so the T-sized
    final A and q are not stored (``FINAL_SMALL``)."""
    specs = {}
    for N, Q, T, B in settings(su):
        for n in budgets(su, B):
            cfg = config(su, N, Q, T, B, n, "ppd")
            control = (N, Q, B) != (su.N, su.Q, su.batch)
            specs[name("ppd", N, Q, T, B, n)] = RunSpec(cfg, _ppd_runs(su, cfg, control),
                                                        keep=FINAL_SMALL)
            if _has_sgd(su, N, Q, T, B, n):
                specs[name("sgd", N, Q, T, B, n)] = RunSpec(
                    config(su, N, Q, T, B, n, "sgd"), _sgd_runs(su), keep=FINAL_SMALL)
    return specs


# --- analysis -----------------------------------------------------------------------------


def arm_runs(rs, su: Setup, arm: str, N: int, Q: int, T: int, B: int, n: int,
             metric: str = "rel_dist_A"):
    """The runs of ``arm`` at one setting and budget; an SGD arm at its best rate for
    ``metric`` (lowest median final value)."""
    if arm.startswith("sgd"):
        r = rs[name("sgd", N, Q, T, B, n)].select(arm=arm)
        lrs = r.values("lr")
        best = min(lrs, key=lambda lr: median(finals(r.select(lr=lr), metric)))
        return r.select(lr=best)
    return rs[name("ppd", N, Q, T, B, n)].select(arm=arm)


def samples_to(r, eps: float) -> np.ndarray:
    """Per run: samples until rel dist_A <= eps first (+inf: never, censored)."""
    Y = r.metric("rel_dist_A").astype(float)
    return first_crossing(np.where(np.isfinite(Y), Y, np.inf), r.samples, eps, below=True,
                          never=np.inf)


def _has_sgd(su: Setup, N: int, Q: int, T: int, B: int, n: int) -> bool:
    """SGD runs at the T sweep's batch: the larger budget at every T, the smaller at the
    largest T (claim 6a's 4x comparison)."""
    return ((N, Q, B) == (su.N, su.Q, su.batch) and not su.tune
            and (n == su.samples[-1] or T == max(su.Ts)))


def _arms_at(su: Setup, N: int, Q: int, T: int, B: int, n: int) -> tuple[str, ...]:
    return ARMS if _has_sgd(su, N, Q, T, B, n) else ("ppd", "ppd_l1")


def table(rs, su: Setup) -> list[dict]:
    """One row per (setting, budget, arm): medians of the final metrics (an SGD arm at its best
    rate per metric), samples to each eps (median; censored runs counted)."""
    rows = []
    for N, Q, T, B in settings(su):
        for n in budgets(su, B):
            for arm in _arms_at(su, N, Q, T, B, n):
                row = {"N": N, "Q": Q, "T": T, "B": B, "samples": n, "arm": arm}
                for m in METRICS:
                    r = arm_runs(rs, su, arm, N, Q, T, B, n, m)
                    row[m] = median(finals(r, m))
                    if arm.startswith("sgd"):
                        row[f"lr_{m}"] = float(r.label("lr")[0])
                r = arm_runs(rs, su, arm, N, Q, T, B, n)
                row["seeds"] = len(r)
                for eps in EPS:
                    s = samples_to(r, eps)
                    row[f"to_{eps:g}"] = median(s)
                    row[f"censored_{eps:g}"] = int(np.isinf(s).sum())
                rows.append(row)
    return rows


def exponents(rs, su: Setup, B: int | None = None) -> dict:
    """(arm, budget, metric) -> ``Fit`` of the final metric against T at batch B (the T sweep
    at batch 8, the control's T values at ``batch_ctrl``)."""
    B = su.batch if B is None else B
    Ts = su.Ts if B == su.batch else su.ctrl_Ts
    out = {}
    for arm in ARMS if B == su.batch else ("ppd", "ppd_l1"):
        for n in budgets(su, B):
            if not all(arm in _arms_at(su, su.N, su.Q, T, B, n) for T in Ts):
                continue
            for m in METRICS:
                Y = [finals(arm_runs(rs, su, arm, su.N, su.Q, T, B, n, m), m) for T in Ts]
                out[(arm, n, m)] = fit_exponent(Ts, Y)
    for arm in ("ppd", "ppd_l1"):  # samples to eps at the larger budget
        for eps in EPS:
            Y = [samples_to(arm_runs(rs, su, arm, su.N, su.Q, T, B, su.samples[-1]), eps)
                 for T in Ts]
            out[(arm, su.samples[-1], f"to_{eps:g}")] = fit_exponent(Ts, Y)
    return out


def claims(rs, su: Setup) -> list[Claim]:
    rows = table(rs, su)
    fits = exponents(rs, su)
    small, large = su.samples
    k_s, k_l = fmt_samples(small), fmt_samples(large)
    T = max(su.Ts)
    ex = "; ".join(f"{a} {fits[(a, large, 'rel_dist_A')].text()}" for a in ARMS)
    grow = "; ".join(
        f"{a} " + " -> ".join(fmt(row(rows, N=su.N, Q=su.Q, T=T, B=su.batch, samples=n,
                                       arm=a)["rel_dist_A"]) for n in su.samples)
        for a in ARMS)
    ctrl = exponents(rs, su, su.batch_ctrl) if len(su.ctrl_Ts) >= 2 else {}
    ctrl_text = (f"; control B={su.batch_ctrl}: ppd {ctrl[('ppd', large, 'rel_dist_A')].text()}"
                 f", ppd_l1 {ctrl[('ppd_l1', large, 'rel_dist_A')].text()}" if ctrl else "")
    c6a = Claim(
        "6a", "small batch: without the l1 step the error of A grows with T and with training",
        f"T-exponent of median final rel dist_A (B={su.batch}, {k_l} samples, T="
        + "/".join(map(str, su.Ts)) + f"): {ex}; at T={T}, {k_s} -> {k_l}: {grow}"
        + ctrl_text,
        f"every unregularized arm (ppd lambda=0, SGD constant and with ppd's decay, best rate "
        f"per T): interval above 0 and at T={T} no fall with 4x samples; the l1 arm's "
        "interval below each of theirs",
        check_variance(fits, rows, su))
    parts = []
    for Tl in (t for t in su.Ts if t >= su.T_large):
        cell = {a: row(rows, N=su.N, Q=su.Q, T=Tl, B=su.batch, samples=large, arm=a)
                for a in ARMS}
        s = row(rows, N=su.N, Q=su.Q, T=Tl, B=su.batch, samples=small, arm="ppd_l1")
        parts.append(f"T={Tl}: " + ", ".join(
            f"{a} A {fmt(cell[a]['rel_dist_A'])} V {fmt(cell[a]['rel_dist_V'])}" for a in ARMS)
            + f"; ppd_l1 A {fmt(s['rel_dist_A'])} -> {fmt(cell['ppd_l1']['rel_dist_A'])}")
    c6b = Claim(
        "6b", "small batch: the l1 method converges where unregularized methods fail",
        "; ".join(parts) + f" (median final rel. distances, B={su.batch}, {k_l} samples)",
        f"at every T >= {su.T_large}: ppd_l1's rel dist_A and rel dist_V below every "
        f"unregularized arm's, and its rel dist_A falls from {k_s} to {k_l}",
        check_small_batch(rows, su))
    decided = decide_default(rows, su)
    c6c = Claim(
        "6c", "the studies' default l1 step follows this evidence",
        f"decision on this run: {decided!r}; l1.DEFAULT = {l1.DEFAULT!r} (rule constant "
        f"C = {l1.RULE_C:g})",
        f"'rule' iff at T={T}, {k_l} samples: ppd_l1's rel dist_A < ppd's and rel dist_V "
        f"<= {V_SLACK:g} x ppd's; it equals l1.DEFAULT",
        decided == l1.DEFAULT)
    N2, Q2, T2 = su.extra
    c = {(a, n): row(rows, N=N2, Q=Q2, T=T2, B=su.batch, samples=n, arm=a)["rel_dist_A"]
         for a in ("ppd", "ppd_l1") for n in su.samples}
    c6d = Claim(
        "6d", f"the same at (N, Q, T) = ({N2}, {Q2}, {T2})",
        f"median final rel dist_A, {k_s} -> {k_l}: ppd {fmt(c[('ppd', small)])} -> "
        f"{fmt(c[('ppd', large)])}, ppd_l1 {fmt(c[('ppd_l1', small)])} -> "
        f"{fmt(c[('ppd_l1', large)])}",
        "ppd (lambda=0) does not fall with 4x samples; ppd_l1 below it at both budgets",
        check_extra(rows, su))
    return [c6a, c6b, c6c, c6d]


# --- figures ------------------------------------------------------------------------------


def figures(rs, su: Setup) -> dict:
    """Figure 8 (``_variance_figures``): the arms at batch 8, distances of A and V."""
    fits = exponents(rs, su)
    ms = ("rel_dist_A", "rel_dist_V")
    Y = {(a, n, m): [finals(arm_runs(rs, su, a, su.N, su.Q, T, su.batch, n, m), m)
                     for T in su.Ts]
         for a in ARMS for n in su.samples for m in ms if (a, n, m) in fits}
    last = {(a, m): arm_runs(rs, su, a, su.N, su.Q, max(su.Ts), su.batch, su.samples[-1], m)
            for a in ARMS for m in ms}
    return {"fig8_variance": figs.fig_variance(su, fits, Y, last)}


# --- the tuning of the rule's constant and the reports (docs/findings.md) ----------------


def tune_table(rs, su: Setup = TUNE) -> tuple[list[dict], float]:
    """Per C of ``C_GRID``, T and budget: medians of the final rel. distances on the tuning
    seeds; and the chosen C: the least sum over cells of log median rel dist_A + log median
    rel dist_V."""
    rows, score = [], {C: 0.0 for C in C_GRID}
    for T in su.Ts:
        for n in su.samples:
            r = rs[name("ppd", su.N, su.Q, T, su.batch, n)]
            for C in C_GRID:
                x = r.select(C=C)
                a, v = median(finals(x, "rel_dist_A")), median(finals(x, "rel_dist_V"))
                lam = float(x["settings/lam"][0, -1]) if "settings/lam" in x else float("nan")
                rows.append({"T": T, "samples": n, "C": C, "lam_last": lam, "rel_dist_A": a,
                             "rel_dist_V": v})
                score[C] += float(np.log(a) + np.log(v))
    return rows, min(C_GRID, key=lambda C: score[C])


def main(argv: list[str]) -> int:
    """``tune OUT``: run the tuning seeds and print the tuning table and the chosen C;
    ``report OUT``: the table and exponents of a ``reproduce`` output's variance study."""
    if len(argv) != 2 or argv[0] not in ("tune", "report"):
        print("usage: python -m scbjax.studies.variance tune|report OUT", file=sys.stderr)
        return 2
    out = Path(argv[1])
    if argv[0] == "tune":
        rs = execute(runs(TUNE), out, log=Log(quiet=True))
        rows, C = tune_table(rs)
        print("| T | samples | C | lambda (last phase) | rel_dist_A | rel_dist_V |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['T']} | {r['samples']} | {r['C']:g} | {r['lam_last']:.3g} | "
                  f"{r['rel_dist_A']:.3g} | {r['rel_dist_V']:.3g} |")
        print(f"chosen C = {C:g}")
        return 0
    mode = stored_mode(out)
    su = MODES[mode]
    rs = load(runs(su), out / "variance")
    print(format_table(table(rs, su)))
    print()
    print(format_exponents(exponents(rs, su)))
    print()
    if len(su.ctrl_Ts) >= 2:
        print(format_exponents(exponents(rs, su, su.batch_ctrl)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
