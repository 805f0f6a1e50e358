"""Transfer (paper claim 4, spec figure 3): finetuning from a pretrained model skips stage 1.

Protocol:
  1. Pretrain on task 1 (random instance per seed) from the uniform start with the paper's
     method (ppd), one vmapped call over seeds (``PRE_PHASES``: longer, ends with a low-noise
     phase, so V is close to P1).
  2. For each seed and each rho in the grid, a downstream task 2 = ``correlated_task``
     (``scbjax.transfer``): cos(P1 C_N, P2 C_N) = rho exactly, fresh q2 (``SAME_Q``). The key of
     task 2 depends on the seed only, so across rho only the correlation changes.
  3. One vmapped call over arm x seed x rho: "scratch" (uniform start) and "finetune"
     (V = V_pretrained, A reset to uniform; ``COPY_A`` copies A too), the same downstream
     hyperparameters (``DOWN_PHASES``) and the same data stream (common random numbers).

eps [recon, fixed before measuring]: ``EPS_FRAC`` times the excess population loss of the
uniform start on that downstream task (the scratch run's value at step 0); the same eps for
both arms. Samples to eps: first log point with excess loss <= eps; never -> infinite.
Downstream training uses one constant phase, so the crossing time is set by the dynamics and
not by a schedule boundary; eps is chosen above the noise floor of that phase (batch 256,
lr 0.03: floor about 2% of the uniform-start excess loss at N = 10, T = 64).

What we found (quick setting, see the README): finetuning is faster at large rho and slower
than scratch at rho = 0, but the speedup stays below 3 in this simulator. Probes in
population mode (exact gradients, 4 seeds, eps 5%) give speedups at rho = 0 / 0.5 / 0.9 of
0.8 / 1.4 / 2.2 at T = 64, - / 1.5 / 2.6 at T = 128 and 0.8 / 1.7 / 3.1 at T = 256: from
scratch, stage 1 is a saddle escape whose length in steps grows only slowly with T here, while
the finetuned model still has to learn A from uniform and re-learn the part of V orthogonal to
P1. Not better: lr_A = 3x or 10x lr_V (2.6 at rho = 0.9), A copied (1.5), q2 = q1 (2.2), the
"orthogonal" construction (1.6, with tasks of half the contextual strength).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.ticker import NullFormatter

from scbjax import plots
from scbjax.metrics import samples_to_eps
from scbjax.model import Params, uniform_params
from scbjax.reproduce import Claim, fmt, train_and_save
from scbjax.results import load_run
from scbjax.task import TaskConfig
from scbjax.train import Phase, TrainConfig, seed_keys
from scbjax.transfer import correlated_task, finetune_params, task_corr

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
SETUPS = {
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


def run(mode: str, out: Path) -> None:
    su = SETUPS[mode]
    pre_cfg, down_cfg = _configs(su)
    S, R = su.seeds, len(su.rhos)
    seeds = np.arange(S)
    keys = seed_keys(seeds)

    # 1. pretraining on task 1, one call over seeds
    pre = train_and_save(pre_cfg, seeds, out / "pretrain", keys=keys)

    # 2. downstream tasks [S, R] and starts; runs flattened as arm x seed x rho
    k_task = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    k_data = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
    rhos = jnp.asarray(su.rhos, jnp.float32)
    def family(k, t):  # the R downstream tasks of one seed (same key: only rho changes)
        return jax.vmap(lambda r: correlated_task(k, t, r, down_cfg.task, SAME_Q,
                                                  TASK_METHOD))(rhos)

    tasks_SxR = jax.jit(jax.vmap(family))(k_task, pre.task)
    rcorr_SxR = jax.jit(jax.vmap(jax.vmap(task_corr, in_axes=(None, 0))))(pre.task, tasks_SxR)
    p_ft = finetune_params(pre.params, COPY_A)
    p0 = uniform_params(su.N, su.T)

    def flat(x_SxR):  # [S, R, ...] -> [2 S R, ...] (both arms)
        x = x_SxR.reshape((S * R,) + x_SxR.shape[2:])
        return jnp.concatenate([x, x])

    tasks = jax.tree.map(flat, tasks_SxR)
    rep = lambda x: jnp.repeat(x, R, axis=0)  # noqa: E731  [S, ...] -> [S R, ...]
    params0 = Params(
        V=jnp.concatenate([jnp.broadcast_to(p0.V, (S * R, su.N, su.N)), rep(p_ft.V)]),
        A=jnp.concatenate([jnp.broadcast_to(p0.A, (S * R, su.T, su.N)), rep(p_ft.A)]))
    run_keys = jax.vmap(lambda k: jax.vmap(lambda r: jax.random.fold_in(k, r))(
        jnp.arange(R)))(k_data)
    run_keys = flat(run_keys)

    arm = np.repeat(np.arange(2), S * R)
    seed = np.tile(np.repeat(seeds, R), 2)
    rho = np.tile(np.tile(np.asarray(su.rhos), S), 2)
    train_and_save(down_cfg, seed, out / "downstream", keys=run_keys, task=tasks,
                   params0=params0,
                   arrays={"arm": arm, "rho": rho,
                           "task_corr": np.tile(np.asarray(rcorr_SxR).reshape(-1), 2)},
                   extra={"arms": list(ARMS), "rhos": list(su.rhos), "eps_frac": EPS_FRAC,
                          "same_q": SAME_Q, "task_method": TASK_METHOD, "copy_A": COPY_A,
                          "mode": mode})
    (out / "setup.json").write_text(json.dumps(dataclasses.asdict(su), indent=2))


# --- analysis (saved results only) ------------------------------------------------------------


def _load(out: Path) -> dict:
    pre, _ = load_run(out / "pretrain")
    down, meta = load_run(out / "downstream")
    rhos = np.asarray(meta["rhos"])
    R = len(rhos)
    S = len(down["arm"]) // (2 * R)
    ex = down["metrics/excess_loss"].reshape(2, S, R, -1)  # arm, seed, rho, L
    ex0 = ex[0, :, :, 0]  # uniform start on each downstream task [S, R]
    eps = meta["eps_frac"] * ex0
    samples = down["samples"]
    n_eps = np.full((2, S, R), np.inf)
    for a in range(2):
        for s in range(S):
            for r in range(R):
                v = samples_to_eps(ex[a, s, r], samples, eps[s, r])
                n_eps[a, s, r] = v if np.isfinite(v) else np.inf
    return {"pre": pre, "down": down, "meta": meta, "rhos": rhos, "S": S, "R": R, "ex": ex,
            "ex0": ex0, "eps": eps, "samples": samples, "n_eps": n_eps,
            "task_corr": down["task_corr"][: S * R].reshape(S, R)}


def _medians(d: dict) -> tuple[np.ndarray, np.ndarray]:
    """Median samples to eps over seeds, [R] per arm (inf if more than half never reach)."""
    return np.median(d["n_eps"][0], axis=0), np.median(d["n_eps"][1], axis=0)


def figures(out: Path) -> dict:
    d = _load(out)
    rhos, S, R = d["rhos"], d["S"], d["R"]
    fig, ax = plots.new_figure(1, 3, height=2.3)
    # (a) pretraining
    pre = d["pre"]
    pex = pre["metrics/excess_loss"]
    plots.band(ax[0, 0], pre["samples"], pex / pex[:, :1], color="k", log_y=True,
               label="pretraining (task 1)")
    ax[0, 0].set_title(f"(a) pretraining, N={pre['params/V'].shape[1]}, "
                       f"T={pre['params/A'].shape[1]}")
    ax[0, 0].set_xlabel("samples")
    ax[0, 0].set_ylabel("excess loss / excess loss at uniform start")
    ax[0, 0].legend(loc="lower left")
    # (b) downstream dynamics, normalised by the uniform-start excess loss of each task
    rel = d["ex"] / d["ex0"][None, :, :, None]
    x = d["samples"]
    plots.band(ax[0, 1], x, rel[0].reshape(S * R, -1), color="k", log_y=True,
               label="scratch (all rho)")
    cmap = plots.plt.get_cmap("viridis")
    for r, rho in enumerate(rhos):
        plots.band(ax[0, 1], x, rel[1, :, r], color=cmap(r / max(R - 1, 1)), log_y=True,
                   label=f"finetune rho={rho:g}")
    ax[0, 1].axhline(d["meta"]["eps_frac"], color="0.4", ls=":", lw=0.8, label="eps")
    ax[0, 1].set_title("(b) downstream task")
    ax[0, 1].set_xlabel("samples")
    ax[0, 1].set_ylabel("excess loss / excess loss at uniform start")
    ax[0, 1].legend(loc="lower left", fontsize=5.5)
    # (c) samples to eps against rho
    a2 = ax[0, 2]
    cap = float(x[-1]) * 1.5
    for a, (name, col, mk) in enumerate((("scratch", "k", "s"), ("finetune", "C0", "o"))):
        n = np.minimum(d["n_eps"][a], cap)
        med = np.median(n, axis=0)
        lo, hi = np.quantile(n, [0.25, 0.75], axis=0)
        a2.errorbar(rhos, med, yerr=[med - lo, hi - med], color=col, marker=mk, ms=3,
                    capsize=2, lw=1, label=f"{name} (median, quartiles)")
        never = int(np.sum(~np.isfinite(d["n_eps"][a])))
        if never:
            a2.plot([], [], " ", label=f"{name}: {never}/{S * R} never (at top)")
    sc_all = np.median(np.minimum(d["n_eps"][0], cap))
    a2.axhline(sc_all, color="k", ls="--", lw=0.8, label="scratch, all rho")
    a2.axhline(sc_all / SPEEDUP_MIN, color="0.5", ls=":", lw=0.8,
               label=f"scratch / {SPEEDUP_MIN:g}")
    a2.set_yscale("log")
    lo_y, hi_y = a2.get_ylim()
    a2.set_ylim(lo_y / 1.2, hi_y * (hi_y / lo_y) ** 1.0)  # headroom for the legend
    a2.set_xlabel("task correlation rho")
    a2.set_ylabel("samples to eps")
    a2.set_title(f"(c) samples to eps ({100 * d['meta']['eps_frac']:g}% of start)")
    a2.legend(loc="upper right", fontsize=5.5)
    for a in ax[0, :2]:
        a.xaxis.set_minor_formatter(NullFormatter())
    return {"fig3_transfer": fig}


def claims(out: Path) -> list[Claim]:
    d = _load(out)
    rhos = d["rhos"]
    med_sc, med_ft = _medians(d)
    never = [int(np.sum(~np.isfinite(d["n_eps"][a]))) for a in range(2)]
    S, R = d["S"], d["R"]
    strong = [r for r in range(R) if rhos[r] >= RHO_STRONG]
    ok_a = bool(strong) and all(np.isfinite(med_ft[r]) and med_ft[r] <= med_sc[r] / SPEEDUP_MIN
                               for r in strong)
    m_a = "; ".join(f"rho={rhos[r]:g}: finetune {fmt(med_ft[r])} vs scratch {fmt(med_sc[r])}"
                    for r in strong)
    m_a += (f" (median samples, {S} seeds; never reached eps: scratch {never[0]}/{S * R}, "
            f"finetune {never[1]}/{S * R}; eps = {d['meta']['eps_frac']:g} x uniform-start "
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
