"""Sparse recovery: where does the paper's l1 step earn its place? (paper claim 5, issue 9)

At context lengths T in ``Setup.Ts`` and batch sizes B in ``Setup.batches`` (N, Q fixed), S
seeds; every arm of a (T, B) sees the same tasks and the same samples (same seeds, batch and
steps: the data stream of step t is ``fold_in(data_key, t)``). ppd follows the small-batch
schedule of ``vs_sgd`` (three phases, learning rate decaying 1, 0.3, 0.1; at batch B the rate is
scaled by B / 8, at most ``LR_MAX``); the l1 weight lambda acts only after the first phase.
Arms (spec ``<arm>_T<T>_B<B>``, labels arm, lam, seed):
- ``soft``: today's step, soft-threshold by eta_A lambda, then the affine projection
  [prox="soft"], lambda in {0, ``LAM_SMALL``, lambda_n};
- ``exact``: the exact prox of lambda ||a||_1 + indicator{1^T a = 1} [prox="affine_exact"],
  lambda in lambda_n x ``EXACT_SCALES``;
- ``precond``: the threshold in the preconditioned metric, eta_A lambda / mu_k
  [prox="precond"], lambda_n;
- ``free``: l1 with A unconstrained [projection_A="none", prox="soft"] (V's projection fixes
  the scale), lambda_n;
- ``debias``: ``exact`` at lambda_n, then a last phase with lambda = 0 on the support found
  (A's exact zeros kept at zero, the affine projection over the support) [Phase.freeze];
- ``sgd``: plain SGD at constant rates ``SGD_LRS`` (schedule="constant") and with ppd's decay
  (schedule="decay"), the controls.
lambda_n, the noise level [recon, the spec's rule of thumb]: an off-support entry of column k
of A gets a preconditioned gradient whose per-step noise at the truth is sigma / sqrt(mu_k B),
sigma^2 = E[((P^T r)_{x_t})^2] with r = P X q_k - e_y the residual of the ground truth; the
prox keeps such entries at zero when the threshold exceeds that noise times sqrt(2 log T):
lambda_n = sqrt(2 log T) sigma sqrt(N / B) (mu_k ~ 1/N), sigma by Monte Carlo on the task of
seed 0 (``noise_sigma``).

Default rule (fixed before measuring, issue 9 item 3): a variant becomes the studies' default
iff at B = 8 and every T its median off-support mass is <= ``EXACT_OFF`` (the support recovered
exactly, zeros off it), its median ||A - q||_F is below soft lambda = 0's and its median
||V - P||_F at most ``V_SLACK`` x soft lambda = 0's; otherwise the default stays lambda = 0.
Claim ``6`` (paper: with a small batch the method converges to the ground truth where
unregularized SGD fails): at B = 8 and every T, the default ppd arm's median relative distances
rel_dist_V and rel_dist_A are both < ``REL_OK`` after the budget, while constant-rate SGD's best
rate (chosen per distance) leaves at least one of them >= ``REL_OK``.

Measured numbers and what was tried: docs/findings.md
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scbjax import plots
from scbjax.reproduce import Claim, fmt
from scbjax.runs import RunSpec, grid
from scbjax.task import TaskConfig
from scbjax.train import Phase, TrainConfig

TITLE = "Sparse recovery: the l1 step's variants against lambda = 0 and SGD at small batch"
FIGURES = {
    "fig8_sparse": "Final distances ||A - q||_F and ||V - P||_F, exact-support rate and "
                   "off-support mass of A for each variant of the l1 step (and SGD), at two "
                   "context lengths T and two batch sizes (median and quartiles over seeds).",
}

FRACTIONS = (0.2, 0.4, 0.4)  # phases: fraction of the steps (as vs_sgd)
LR_DECAY = (1.0, 0.3, 0.1)
LR = 0.01  # at batch 8; scaled by B / 8
LR_MAX = 0.1
LAM_SMALL = 1e-3
EXACT_SCALES = (0.25, 1.0)
SGD_LRS = (0.1, 0.3, 1.0)
SGD_DECAY_LRS = (1.0,)
EXACT_OFF = 1e-3  # default rule: median off-support mass <= this
V_SLACK = 1.05  # default rule: median ||V - P|| <= this x soft lambda = 0's
REL_OK = 0.1  # claim 6
DEFAULT = {"arm": "soft", "lam": 0.0}  # the studies' default l1 step (see the default rule)
N_LOGS = 32


@dataclasses.dataclass(frozen=True)
class Setup:
    N: int
    Q: int
    Ts: tuple[int, ...]
    batches: tuple[int, ...]
    samples: int  # per run, at every batch
    seeds: int
    mc: int = 4096  # Monte Carlo samples for sigma


MODES = {
    "tiny": Setup(N=5, Q=2, Ts=(8,), batches=(8,), samples=1600, seeds=2, mc=512),
    "quick": Setup(N=10, Q=2, Ts=(64, 256), batches=(8, 64), samples=160_000, seeds=6),
    "full": Setup(N=10, Q=2, Ts=(64, 256, 1024), batches=(8, 64), samples=640_000, seeds=32),
}


def noise_sigma(N: int, T: int, Q: int, n: int) -> float:
    """sigma = sqrt(E[((P^T r)_{x_t})^2]) at the ground truth of seed 0's task (Monte Carlo,
    n samples), r = P X q_k - e_y."""
    import jax

    from scbjax.sampler import sample
    from scbjax.task import make_task
    from scbjax.train import seed_keys

    key = seed_keys(np.asarray([0]))[0]
    k_task, _, k_data = jax.random.split(key, 3)
    task = make_task(k_task, TaskConfig(N=N, T=T, Q=Q))
    b = sample(jax.random.fold_in(k_data, 2**30), task, n)
    P, q = np.asarray(task.P, np.float64), np.asarray(task.q, np.float64)
    tok, qry, y = np.asarray(b.tokens), np.asarray(b.query), np.asarray(b.target)
    h_BxN = np.zeros((n, N))
    np.add.at(h_BxN, (np.repeat(np.arange(n), T), tok.reshape(-1)),
              q[np.tile(np.arange(T), n), np.repeat(qry, T)])
    r_BxN = h_BxN @ P.T - np.eye(N)[y]
    g_BxN = r_BxN @ P  # (P^T r) per sample
    g_BxT = np.take_along_axis(g_BxN, tok, axis=1)
    return float(np.sqrt(np.mean(g_BxT ** 2)))


def lam_noise(su: Setup, T: int, B: int) -> float:
    """lambda_n = sqrt(2 log T) sigma sqrt(N / B)."""
    sigma = noise_sigma(su.N, T, su.Q, su.mc)
    return float(math.sqrt(2 * math.log(T)) * sigma * math.sqrt(su.N / B))


def _steps(su: Setup, B: int) -> list[int]:
    total = su.samples // B
    n = [int(round(f * total)) for f in FRACTIONS]
    return n[:-1] + [total - sum(n[:-1])]


def _config(su: Setup, T: int, B: int, freeze_last: bool = False, **kw) -> TrainConfig:
    lr = min(LR * B / 8, LR_MAX)
    steps = _steps(su, B)
    phases = tuple(Phase(steps=k, batch=B, lr_V=lr * d, lr_A=lr * d,
                         freeze=freeze_last and i == len(steps) - 1)
                   for i, (k, d) in enumerate(zip(steps, LR_DECAY)))
    return TrainConfig(task=TaskConfig(N=su.N, T=T, Q=su.Q), phases=phases,
                       log_every=max(1, sum(steps) // N_LOGS), **kw)


def _lam(lam: float) -> tuple[float, ...]:
    """lambda after the first phase only."""
    return (0.0,) + (float(lam),) * (len(FRACTIONS) - 1)


def arm_runs(su: Setup, arm: str, lams) -> tuple:
    out = ()
    for lam in lams:
        out += grid(range(su.seeds), {"arm": arm, "lam": float(lam)}, lam=_lam(lam))
    return out


def runs(su: Setup) -> dict[str, RunSpec]:
    """Per (T, B): soft and exact at every (T, B); debias and the SGD controls at the small
    batch; precond and free at the small batch and the smallest T (the budget of --quick)."""
    specs = {}
    B0, T0 = min(su.batches), min(su.Ts)
    for T in su.Ts:
        for B in su.batches:
            ln = lam_noise(su, T, B)
            tag = f"T{T}_B{B}"
            soft = (0.0, LAM_SMALL, ln) if B == B0 else (0.0, ln)
            specs[f"soft_{tag}"] = RunSpec(_config(su, T, B), arm_runs(su, "soft", soft))
            exact = [ln * c for c in EXACT_SCALES] if B == B0 else [ln]
            specs[f"exact_{tag}"] = RunSpec(_config(su, T, B, prox="affine_exact"),
                                            arm_runs(su, "exact", exact))
            if B != B0:
                continue
            if T == T0:
                specs[f"precond_{tag}"] = RunSpec(_config(su, T, B, prox="precond"),
                                                  arm_runs(su, "precond", (ln,)))
                specs[f"free_{tag}"] = RunSpec(_config(su, T, B, projection_A="none"),
                                               arm_runs(su, "free", (ln,)))
            specs[f"debias_{tag}"] = RunSpec(_config(su, T, B, True, prox="affine_exact"),
                                             arm_runs(su, "debias", (ln,)))
            cfg = _config(su, T, B, optimizer="sgd")
            sgd = ()
            for schedule, lrs, decay in (("constant", SGD_LRS, (1.0,) * len(LR_DECAY)),
                                         ("decay", SGD_DECAY_LRS, LR_DECAY)):
                for lr in lrs:
                    sgd += grid(range(su.seeds), {"arm": f"sgd_{schedule}", "lam": float(lr)},
                                lr=tuple(float(lr * d) for d in decay), lam=0.0)
            specs[f"sgd_{tag}"] = RunSpec(cfg, sgd)
    return specs


# --- analysis -----------------------------------------------------------------------------

METRICS = ("dist_A", "dist_V", "support_rate", "off_support_mass", "zeros_A", "rel_dist_V",
           "rel_dist_A")
PPD_ARMS = ("soft", "exact", "precond", "free", "debias")


def _final(r, name: str) -> np.ndarray:
    x = r.final(name).astype(float)
    return np.where(np.isfinite(x), x, np.inf)


def table(rs, su: Setup) -> list[dict]:
    """One row per (T, B, arm, lam): medians of the final metrics over seeds."""
    ln = {(T, B): _largest_lam(rs, T, B) for T in su.Ts for B in su.batches}
    rows = []
    for T in su.Ts:
        for B in su.batches:
            for arm in PPD_ARMS + ("sgd",):
                if f"{arm}_T{T}_B{B}" not in rs:
                    continue
                r = rs[f"{arm}_T{T}_B{B}"]
                for a in r.values("arm"):
                    for lam in r.select(arm=a).values("lam"):
                        x = r.select(arm=a, lam=lam)
                        row = {"T": T, "B": B, "arm": a, "lam": lam, "lam_n": ln[(T, B)],
                               "samples": int(x.samples[0, -1]), "seeds": len(x)}
                        for m in METRICS:
                            row[m] = float(np.median(_final(x, m)))
                        rows.append(row)
    return rows


def _largest_lam(rs, T: int, B: int) -> float:
    """lambda_n of (T, B): the soft arm's largest lambda."""
    return float(max(rs[f"soft_T{T}_B{B}"].values("lam")))


def _row(rows, **kw) -> dict:
    for r in rows:
        if all(math.isclose(r[k], v, rel_tol=1e-6) if isinstance(v, float) else r[k] == v
               for k, v in kw.items()):
            return r
    raise KeyError(kw)


def _rank(rows, r) -> int:
    """The rank of r's lambda among its arm's lambdas at its (T, B) (lambda_n depends on T)."""
    lams = sorted({x["lam"] for x in rows if x["T"] == r["T"] and x["B"] == r["B"]
                   and x["arm"] == r["arm"]})
    return lams.index(r["lam"])


def choose_default(rows, su: Setup) -> tuple[dict, list[str]]:
    """The default rule at the small batch: (arm and lambda rank of the default, the variants
    that passed). A variant is an arm and the rank of its lambda (the same lambda rule at
    every T)."""
    B = min(su.batches)
    base = {T: _row(rows, T=T, B=B, arm="soft", lam=0.0) for T in su.Ts}
    cands: dict = {}
    for r in rows:
        if r["B"] == B and r["arm"] in PPD_ARMS and not (r["arm"] == "soft" and r["lam"] == 0):
            cands.setdefault((r["arm"], _rank(rows, r)), []).append(r)
    ok = []
    for (arm, k), rs_ in cands.items():
        if len(rs_) == len(su.Ts) and all(
                r["off_support_mass"] <= EXACT_OFF and r["dist_A"] < base[r["T"]]["dist_A"]
                and r["dist_V"] <= V_SLACK * base[r["T"]]["dist_V"] for r in rs_):
            ok.append((sum(r["dist_A"] for r in rs_), arm, k))
    if not ok:
        return dict(DEFAULT), []
    ok.sort()
    return {"arm": ok[0][1], "rank": ok[0][2]}, [f"{a} (lambda rank {k})" for _, a, k in ok]


def _default_runs(rs, chosen: dict, T: int, B: int):
    r = rs[f"{chosen['arm']}_T{T}_B{B}"].select(arm=chosen["arm"])
    if "lam" in chosen:
        return r.select(lam=chosen["lam"])
    return r.select(lam=sorted(r.values("lam"))[chosen["rank"]])


def figures(rs, su: Setup) -> dict:
    rows = table(rs, su)
    panels = (("dist_A", r"$\|A-q\|_F$", True), ("dist_V", r"$\|V-P\|_F$", True),
              ("support_rate", "exact-support rate", False),
              ("off_support_mass", "off-support mass", True))
    fig, ax = plots.new_figure(len(su.batches), len(panels), height=2.6 * len(su.batches))
    for i, B in enumerate(su.batches):
        sub = [r for r in rows if r["B"] == B]
        keys: list = []  # (arm, rank of lambda): the same x at every T
        labels: dict = {}
        for r in sub:
            k = (r["arm"], _rank(rows, r))
            if k not in keys:
                keys.append(k)
                labels[k] = _short(r)
        for j, (m, lab, logy) in enumerate(panels):
            a = ax[i, j]
            for t, T in enumerate(su.Ts):
                for r in (r for r in sub if r["T"] == T):
                    x = rs[f"{r['arm'].split('_')[0]}_T{T}_B{B}"].select(arm=r["arm"],
                                                                         lam=r["lam"])
                    v = _final(x, m)
                    v = v[np.isfinite(v)]
                    if not v.size:
                        continue
                    med = float(np.median(v))
                    lo, hi = np.quantile(v, [0.25, 0.75])
                    a.errorbar([keys.index((r["arm"], _rank(rows, r))) + 0.15 * t], [med],
                               yerr=[[max(med - lo, 0)], [max(hi - med, 0)]],
                               fmt="os"[t % 2], color=f"C{t}", ms=3, capsize=2,
                               label=f"T={T}")
            a.set_xticks(range(len(keys)), [labels[k] for k in keys], rotation=90, fontsize=5)
            if logy:
                a.set_yscale("log")
            a.set_title(f"{lab}, B={B}", fontsize=7)
            if j == 0:
                h, lbl = a.get_legend_handles_labels()
                uniq = dict(zip(lbl, h))
                a.legend(list(uniq.values()), list(uniq.keys()), loc="best", fontsize=6)
    fig.suptitle(f"The l1 step's variants (N={su.N}, Q={su.Q}, {su.samples} samples per run, "
                 f"{su.seeds} seeds): final medians and quartiles; lambda_n rises with T")
    return {"fig8_sparse": fig}


def _short(r: dict) -> str:
    if r["arm"].startswith("sgd"):
        return f"{r['arm'].replace('sgd_', 'SGD ')} lr {r['lam']:g}"
    if r["lam"] in (0.0, LAM_SMALL):
        return f"{r['arm']} lam {r['lam']:g}"
    return f"{r['arm']} lam_n x{r['lam'] / r['lam_n']:.2g}"


def format_table(rows) -> str:
    cols = ("T", "B", "arm", "lam", "dist_V", "dist_A", "support_rate", "off_support_mass",
            "zeros_A")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c])
                                       for c in cols) + " |")
    return "\n".join(lines)


def claims(rs, su: Setup) -> list[Claim]:
    rows = table(rs, su)
    B = min(su.batches)
    chosen, passed = choose_default(rows, su)
    growth = []
    for arm, pick in (("soft", lambda lams: 0.0), ("exact", max), ("debias", max)):
        if not all(f"{arm}_T{T}_B{B}" in rs for T in su.Ts):
            continue
        vals = []
        for T in su.Ts:
            lams = [r["lam"] for r in rows if r["T"] == T and r["B"] == B and r["arm"] == arm]
            vals.append(_row(rows, T=T, B=B, arm=arm, lam=pick(lams))["dist_A"])
        growth.append(f"{arm} {'lambda 0' if arm == 'soft' else 'lambda_n'}: "
                      + " -> ".join(fmt(v) for v in vals))
    base = [_row(rows, T=T, B=B, arm="soft", lam=0.0) for T in su.Ts]
    c_def = Claim(
        "6a", "l1 step: a variant recovers the support exactly and beats lambda = 0",
        f"variants passing at B={B}: {', '.join(passed) or 'none'} (default kept: "
        f"{chosen}); soft lambda=0 at T={'/'.join(str(T) for T in su.Ts)}: ||V-P|| "
        + "/".join(fmt(r["dist_V"]) for r in base) + ", ||A-q|| "
        + "/".join(fmt(r["dist_A"]) for r in base) + ", off-support mass "
        + "/".join(fmt(r["off_support_mass"]) for r in base)
        + f"; ||A-q|| from T={su.Ts[0]} to T={su.Ts[-1]}: " + "; ".join(growth),
        f"at B={B} and every T: median off-support mass <= {EXACT_OFF:g}, median ||A-q|| "
        f"below soft lambda=0's, median ||V-P|| <= {V_SLACK:g} x soft lambda=0's",
        bool(passed))
    ok, parts = True, []
    for T in su.Ts:
        d = _default_runs(rs, chosen, T, B)
        mV, mA = (float(np.median(_final(d, m))) for m in ("rel_dist_V", "rel_dist_A"))
        sgd = rs[f"sgd_T{T}_B{B}"].select(arm="sgd_constant")
        best = {m: min(float(np.median(_final(sgd.select(lam=lr), m)))
                       for lr in sgd.values("lam")) for m in ("rel_dist_V", "rel_dist_A")}
        ok &= mV < REL_OK and mA < REL_OK and max(best.values()) >= REL_OK
        parts.append(f"T={T}: ppd V {fmt(mV)}, A {fmt(mA)}; SGD best V "
                     f"{fmt(best['rel_dist_V'])}, A {fmt(best['rel_dist_A'])}")
    c_conv = Claim(
        "6b", "small batch: the method converges to the ground truth, SGD does not",
        "; ".join(parts) + f" (median relative distances after {su.samples} samples, B={B})",
        f"default ppd: median rel. distances of V and A both < {REL_OK:g} at every T; "
        f"constant-rate SGD at its best rate (per distance): at least one >= {REL_OK:g}",
        bool(ok))
    return [c_def, c_conv]
