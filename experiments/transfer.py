"""Transfer (paper claim 4, spec figure 3): finetuning from a pretrained model skips stage 1.

Protocol:
  1. Pretrain on task 1 (random instance per seed) from the uniform start with the paper's
     method (ppd), spec "pretrain" (label seed; ``Setup.pre_phases``: longer, ends with a
     low-noise phase, so V is close to P1).
  2. For each seed and each rho in the grid, a downstream task 2 = ``correlated_task``
     (``scbjax.transfer``): cos(P1 C_N, P2 C_N) = rho exactly, fresh q2 (``SAME_Q``). The key of
     task 2 is ``fold_in(PRNGKey(seed), 1)``: it depends on the seed only, so across rho only
     the correlation changes.
  3. Spec "downstream" (labels arm, seed, rho): "scratch" (uniform start) and "finetune"
     (V = V_pretrained of the same seed, A reset to uniform; ``COPY_A`` copies A too), the same
     downstream hyperparameters (``Setup.down_phases``) and the same data stream (common random
     numbers: the run of (seed, rho) has key ``fold_in(fold_in(PRNGKey(seed), 2), rho index)``
     in both arms).

eps [recon, fixed before measuring]: ``EPS_FRAC`` times the excess population loss of the
uniform start on that downstream task (the scratch run's value at step 0); the same eps for
both arms. Samples to eps: first log point with excess loss <= eps; never -> infinite.
Downstream training uses one constant phase, so the crossing time is set by the dynamics and
not by a schedule boundary; eps is chosen above the noise floor of that phase.

Measured numbers and what was tried: docs/findings.md
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
from matplotlib.ticker import NullFormatter

from scbjax import plots
from scbjax.metrics import samples_to_eps
from scbjax.model import Params, uniform_params
from scbjax.reproduce import Claim, fmt
from scbjax.runs import RunSpec, grid, run
from scbjax.task import Task, TaskConfig
from scbjax.train import Phase, TrainConfig
from scbjax.transfer import correlated_task, finetune_params

TITLE = "Transfer: finetuning from a correlated pretrained model skips stage 1"
FIGURES = {
    "fig3_transfer": "Excess loss against samples when training from scratch and when finetuning "
                     "from a model pretrained on a task with correlation rho, and the samples "
                     "to reach eps against rho.",
}

EPS_FRAC = 0.05  # eps = EPS_FRAC * excess loss of the uniform start on the downstream task
SAME_Q = False  # downstream q2 = q1 (True) or fresh (False)
TASK_METHOD = "columns"  # construction of P2, see scbjax.transfer ("columns" / "orthogonal")
COPY_A = False  # finetune from (V_pre, A_pre) (True) or (V_pre, uniform A) (False)
SPEEDUP_MIN = 3.0  # claim 2a: finetune median <= scratch median / SPEEDUP_MIN for rho >= 0.5
RHO_STRONG = 0.5
SHRINK = 0.5  # claim 2b: speedup(0) <= SHRINK * speedup(max rho)
TASK_FOLD, DATA_FOLD = 1, 2  # downstream task key fold_in(seed key, 1); data fold_in(., 2)


@dataclasses.dataclass(frozen=True)
class Setup:
    N: int
    T: int
    Q: int
    seeds: int
    rhos: tuple[float, ...]
    pre_phases: tuple[Phase, ...]
    down_phases: tuple[Phase, ...]
    pre_log: int
    down_log: int


def _ph(steps, batch, lr, lam=0.0):
    return Phase(steps=steps, batch=batch, lr_V=lr, lr_A=lr, lam=lam)


RHOS = (0.0, 0.25, 0.5, 0.75, 0.9)
MODES = {
    "tiny": Setup(N=6, T=16, Q=2, seeds=2, rhos=(0.0, 0.5, 0.9),
                  pre_phases=(_ph(200, 64, 0.03),), down_phases=(_ph(200, 64, 0.03),),
                  pre_log=50, down_log=20),
    "quick": Setup(N=10, T=64, Q=2, seeds=8, rhos=RHOS,
                   pre_phases=(_ph(1024, 256, 0.03), _ph(512, 1024, 0.01)),
                   down_phases=(_ph(1536, 256, 0.03),), pre_log=64, down_log=16),
    "full": Setup(N=10, T=128, Q=2, seeds=32, rhos=RHOS,
                  pre_phases=(_ph(3072, 256, 0.03), _ph(1024, 2048, 0.01)),
                  down_phases=(_ph(4096, 256, 0.03),), pre_log=128, down_log=16),
}
ARMS = ("scratch", "finetune")


def _configs(su: Setup) -> tuple[TrainConfig, TrainConfig]:
    tc = TaskConfig(N=su.N, T=su.T, Q=su.Q)
    pre = TrainConfig(task=tc, phases=su.pre_phases, log_every=su.pre_log)
    down = TrainConfig(task=tc, phases=su.down_phases, log_every=su.down_log)
    return pre, down


def runs(su: Setup) -> dict[str, RunSpec]:
    """"pretrain" (label seed) and "downstream" (labels arm, seed, rho: its tasks built from
    the pretrained tasks, finetune runs starting from the pretrained V of their seed)."""
    pre_cfg, down_cfg = _configs(su)
    down = tuple(run(s, {"arm": arm, "seed": s, "rho": float(rho)}, fold=(DATA_FOLD, r))
                 for arm in ARMS for s in range(su.seeds) for r, rho in enumerate(su.rhos))
    return {
        "pretrain": RunSpec(pre_cfg, grid(range(su.seeds))),
        "downstream": RunSpec(down_cfg, down,
                              tasks=functools.partial(_down_tasks, su, down),
                              params0=functools.partial(_down_params0, su, down)),
    }


def _pretrained_task(pre) -> Task:
    return Task(P=pre["task/P"], mu=pre["task/mu"], q=pre["task/q"])


def _down_tasks(su: Setup, down: tuple, runset) -> Task:
    """Each downstream run's task 2: the (seed, rho) member of its seed's family of tasks
    correlated with that seed's pretraining task (key fold_in(PRNGKey(seed), TASK_FOLD))."""
    pre = runset["pretrain"]
    cfg = _configs(su)[1].task
    seeds = [int(s) for s in pre.label("seed")]
    k_task = jax.vmap(lambda s: jax.random.fold_in(jax.random.PRNGKey(s), TASK_FOLD))(
        np.asarray(seeds, np.uint32))
    rhos = np.asarray(su.rhos, np.float32)

    def family(k, t):  # the tasks of one seed over the rho grid (same key: only rho changes)
        return jax.vmap(lambda r: correlated_task(k, t, r, cfg, SAME_Q, TASK_METHOD))(rhos)

    fam = jax.tree.map(np.asarray, jax.jit(jax.vmap(family))(k_task, _pretrained_task(pre)))
    at = [(seeds.index(r.label_dict["seed"]), su.rhos.index(r.label_dict["rho"])) for r in down]
    return jax.tree.map(lambda x: np.stack([x[i, j] for i, j in at]), fam)


def _down_params0(su: Setup, down: tuple, runset) -> Params:
    """Scratch: the uniform start; finetune: ``finetune_params`` of its seed's pretrained model."""
    pre = runset["pretrain"]
    p0 = uniform_params(su.N, su.T)
    out = []
    for r in down:
        if r.label_dict["arm"] == "finetune":
            p = pre.select(seed=r.label_dict["seed"])
            out.append(finetune_params(Params(V=p["params/V"][0], A=p["params/A"][0]), COPY_A))
        else:
            out.append(p0)
    return Params(V=np.stack([np.asarray(p.V) for p in out]),
                  A=np.stack([np.asarray(p.A) for p in out]))


# --- analysis (loaded runs only) ---------------------------------------------------------


def _to_eps(down, su: Setup) -> dict:
    """arm -> samples to eps [S, R] (seed order of the scratch runs, rho order of ``su.rhos``;
    inf: never), and "ex0": the uniform-start excess loss of each downstream task [S, R]."""
    x = down.samples_L
    seeds = down.select(arm="scratch").values("seed")
    out = {arm: np.full((len(seeds), len(su.rhos)), np.inf) for arm in ARMS}
    out["ex0"] = np.zeros((len(seeds), len(su.rhos)))
    for j, rho in enumerate(su.rhos):
        for i, s in enumerate(seeds):
            ex0 = down.select(arm="scratch", seed=s, rho=rho).metric("excess_loss")[:, 0]
            eps = EPS_FRAC * ex0
            out["ex0"][i, j] = ex0[0]
            for arm in ARMS:
                ex = down.select(arm=arm, seed=s, rho=rho).metric("excess_loss")[0]
                v = samples_to_eps(ex, x, eps[0])
                out[arm][i, j] = v if np.isfinite(v) else np.inf
    return out


def figures(rs, su: Setup) -> dict:
    pre, down = rs["pretrain"], rs["downstream"]
    d = _to_eps(down, su)
    rhos = np.asarray(su.rhos)
    fig, ax = plots.new_figure(1, 3, height=2.3)
    # (a) pretraining
    pex = pre.metric("excess_loss")
    plots.band(ax[0, 0], pre.samples_L, pex / pex[:, :1], color="k", log_y=True,
               label="pretraining (task 1)")
    ax[0, 0].set_title(f"(a) pretraining, N={su.N}, T={su.T}")
    ax[0, 0].set_xlabel("samples")
    ax[0, 0].set_ylabel("excess loss / excess loss at uniform start")
    ax[0, 0].legend(loc="lower left")
    # (b) downstream dynamics, normalised by the uniform-start excess loss of each task
    x = down.samples_L

    def rel(arm, **sel):  # excess loss / the task's uniform-start excess loss, [runs, L]
        a = down.select(arm=arm, **sel)
        ex0 = np.concatenate([down.select(arm="scratch", seed=s, rho=r).metric(
            "excess_loss")[:, 0] for s, r in zip(a.label("seed"), a.label("rho"))])
        return a.metric("excess_loss") / ex0[:, None]

    plots.band(ax[0, 1], x, rel("scratch"), color="k", log_y=True, label="scratch (all rho)")
    cmap = plots.plt.get_cmap("viridis")
    R = len(rhos)
    for r, rho in enumerate(su.rhos):
        plots.band(ax[0, 1], x, rel("finetune", rho=rho), color=cmap(r / max(R - 1, 1)),
                   log_y=True, label=f"finetune rho={rho:g}")
    ax[0, 1].axhline(EPS_FRAC, color="0.4", ls=":", lw=0.8, label="eps")
    ax[0, 1].set_title("(b) downstream task")
    ax[0, 1].set_xlabel("samples")
    ax[0, 1].set_ylabel("excess loss / excess loss at uniform start")
    ax[0, 1].legend(loc="lower left", fontsize=5.5)
    # (c) samples to eps against rho
    a2 = ax[0, 2]
    cap = float(x[-1]) * 1.5
    n_runs = d["scratch"].size
    for arm, col, mk in (("scratch", "k", "s"), ("finetune", "C0", "o")):
        n = np.minimum(d[arm], cap)
        med = np.median(n, axis=0)
        lo, hi = np.quantile(n, [0.25, 0.75], axis=0)
        a2.errorbar(rhos, med, yerr=[med - lo, hi - med], color=col, marker=mk, ms=3,
                    capsize=2, lw=1, label=f"{arm} (median, quartiles)")
        never = int(np.sum(~np.isfinite(d[arm])))
        if never:
            a2.plot([], [], " ", label=f"{arm}: {never}/{n_runs} never (at top)")
    sc_all = np.median(np.minimum(d["scratch"], cap))
    a2.axhline(sc_all, color="k", ls="--", lw=0.8, label="scratch, all rho")
    a2.axhline(sc_all / SPEEDUP_MIN, color="0.5", ls=":", lw=0.8,
               label=f"scratch / {SPEEDUP_MIN:g}")
    a2.set_yscale("log")
    lo_y, hi_y = a2.get_ylim()
    a2.set_ylim(lo_y / 1.2, hi_y * (hi_y / lo_y) ** 1.0)  # headroom for the legend
    a2.set_xlabel("task correlation rho")
    a2.set_ylabel("samples to eps")
    a2.set_title(f"(c) samples to eps ({100 * EPS_FRAC:g}% of start)")
    a2.legend(loc="upper right", fontsize=5.5)
    for a in ax[0, :2]:
        a.xaxis.set_minor_formatter(NullFormatter())
    return {"fig3_transfer": fig}


def claims(rs, su: Setup) -> list[Claim]:
    d = _to_eps(rs["downstream"], su)
    rhos = np.asarray(su.rhos)
    # median samples to eps over seeds, [R] per arm (inf if more than half never reach)
    med_sc, med_ft = np.median(d["scratch"], axis=0), np.median(d["finetune"], axis=0)
    never = [int(np.sum(~np.isfinite(d[arm]))) for arm in ARMS]
    S, R = d["scratch"].shape
    strong = [r for r in range(R) if rhos[r] >= RHO_STRONG]
    ok_a = bool(strong) and all(np.isfinite(med_ft[r]) and med_ft[r] <= med_sc[r] / SPEEDUP_MIN
                               for r in strong)
    m_a = "; ".join(f"rho={rhos[r]:g}: finetune {fmt(med_ft[r])} vs scratch {fmt(med_sc[r])}"
                    for r in strong)
    m_a += (f" (median samples, {S} seeds; never reached eps: scratch {never[0]}/{S * R}, "
            f"finetune {never[1]}/{S * R}; eps = {EPS_FRAC:g} x uniform-start "
            f"excess loss)")
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = med_sc / med_ft
    r_max = int(np.argmax(rhos))
    r0 = np.flatnonzero(rhos == 0.0)
    s0 = float(speed[r0[0]]) if r0.size else float("nan")
    smax = float(speed[r_max])
    ok_b = bool(np.isfinite(s0) and np.isfinite(smax) and s0 <= SHRINK * smax)
    m_b = ", ".join(f"rho={r:g}: {fmt(float(v))}" for r, v in zip(rhos, speed))
    return [
        Claim("2a", "transfer skips stage 1: finetuning needs far fewer samples", m_a,
              f"for every rho >= {RHO_STRONG:g}: median finetune samples to eps <= median "
              f"scratch / {SPEEDUP_MIN:g} (finite)", ok_a),
        Claim("2b", "transfer benefit shrinks as rho -> 0", f"speedup (scratch/finetune "
              f"median samples to eps) {m_b}",
              f"speedup(rho=0) <= {SHRINK:g} x speedup(rho={rhos[r_max]:g})", ok_b),
    ]
